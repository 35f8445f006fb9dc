"""Test data, built through the services (so audit chains stay intact).

``FACTORIES`` maps every studio-owned model to a maker, and the meta-tests
insist that each model with a ``studio`` foreign key has one, so a new model
cannot dodge the cross-studio tests.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

from django.db import models

from audit.models import AuditEvent
from studio import context, services
from studio import services as studio_services
from studio.auditing import Action, audit_record
from studio.models import EmailLog, EmailStatus, Membership, Studio, User
from studio.roles import Role
from studio.tenancy import studio_scope
from teams import services as team_services
from teams.models import Invitation, Team, TeamMember

_seq = itertools.count(1)
PASSWORD = "correct-horse-battery-staple"
TEST_ACTOR = context.Actor.system("tests")


def _n() -> int:
    return next(_seq)


def user(email: str | None = None, **extra: Any) -> User:
    from allauth.account.models import EmailAddress

    email = email or f"user{_n()}@example.com"
    u = User.objects.create_user(email=email, password=PASSWORD, **extra)
    EmailAddress.objects.create(user=u, email=email, verified=True, primary=True)
    return u


def studio(name: str | None = None, *, owner: User | None = None, slug: str = "") -> Studio:
    n = _n()
    with context.acting_as(TEST_ACTOR):
        return services.studio_create(owner=owner or user(), name=name or f"Studio {n}", slug=slug or f"studio-{n}")


def member(studio_: Studio, role: str = Role.VIEWER, *, user_: User | None = None) -> Membership:
    with context.acting_as(TEST_ACTOR), studio_scope(studio_):
        return studio_services.membership_add(user=user_ or user(), role=role)


def owner_membership(studio_: Studio) -> Membership:
    with studio_scope(studio_):
        return Membership.objects.filter(role=Role.OWNER).select_related("user").first()


def team(studio_: Studio, name: str | None = None, members: list[Membership] | None = None) -> Team:
    with context.acting_as(TEST_ACTOR), studio_scope(studio_):
        return team_services.team_create(name=name or f"Team {_n()}", members=members or [])


def team_member(studio_: Studio) -> TeamMember:
    m = member(studio_)
    t = team(studio_, members=[m])
    with studio_scope(studio_):
        return TeamMember.objects.get(team=t)


def invitation(studio_: Studio, email: str | None = None, role: str = Role.VIEWER) -> tuple[Invitation, str]:
    with context.acting_as(TEST_ACTOR), studio_scope(studio_):
        return team_services.invitation_create(actor=None, email=email or f"invitee{_n()}@example.com", role=role)


def audit_event(studio_: Studio) -> AuditEvent:
    with context.acting_as(TEST_ACTOR), studio_scope(studio_):
        return audit_record(action=Action.STUDIO_UPDATED, target=studio_, after={"note": "test"})


def email_log(studio_: Studio) -> EmailLog:
    """A sent email: built directly, so no task runs."""
    with studio_scope(studio_):
        return EmailLog.objects.create(
            studio=studio_,
            kind="test.email",
            recipient=f"someone{_n()}@example.com",
            idempotency_key=f"test:{_n()}",
            subject="Hello",
            body="Hello",
            status=EmailStatus.SENT,
        )


FACTORIES: dict[type[models.Model], Callable[[Studio], models.Model]] = {
    Membership: lambda s: member(s),
    Team: lambda s: team(s),
    TeamMember: team_member,
    Invitation: lambda s: invitation(s)[0],
    AuditEvent: audit_event,
    EmailLog: email_log,
    Studio: lambda s: s,
}


# --- galleries ------------------------------------------------------------------------------------


def gallery(studio_: Studio, **fields: Any) -> Any:
    from galleries import services as gallery_services

    fields.setdefault("title", f"Gallery {_n()}")
    with context.acting_as(TEST_ACTOR), studio_scope(studio_):
        return gallery_services.gallery_create(actor=None, **fields)


def ready_asset(studio_: Studio, gallery_: Any = None, *, name: str | None = None, data: bytes | None = None) -> Any:
    """A real, processed photo: the original is stored and the pipeline runs."""
    import io

    from PIL import Image

    from galleries import services as gallery_services
    from galleries.models import Asset, AssetStatus
    from galleries.storage import media_store, original_key

    gallery_ = gallery_ or gallery(studio_)
    if data is None:
        out = io.BytesIO()
        n = _n()
        Image.new("RGB", (64, 48), (n * 37 % 256, n * 91 % 256, n * 13 % 256)).save(out, "JPEG")
        data = out.getvalue()
    with context.acting_as(TEST_ACTOR), studio_scope(studio_):
        asset = Asset(
            studio=studio_,
            gallery=gallery_,
            original_filename=name or f"IMG_{_n():04d}.jpg",
            content_type="image/jpeg",
            size=len(data),
            status=AssetStatus.PROCESSING,
            sort_order=_n(),
        )
        asset.storage_key = original_key(asset, "jpg")
        asset.save()
        media_store().put(asset.storage_key, data, "image/jpeg")
        return gallery_services.asset_process(asset_id=asset.pk)


def upload_batch(studio_: Studio) -> Any:
    from galleries.models import UploadBatch

    g = gallery(studio_)
    with studio_scope(studio_):
        return UploadBatch.objects.create(studio=studio_, gallery=g)


def pending_deletion(studio_: Studio) -> Any:
    from galleries.models import PendingDeletion

    with studio_scope(studio_):
        return PendingDeletion.objects.create(
            studio=studio_, keys=[f"studios/{studio_.pk}/galleries/g/originals/x.jpg"]
        )


def visitor(studio_: Studio, gallery_: Any = None) -> Any:
    from galleries.models import Visitor

    gallery_ = gallery_ or gallery(studio_)
    with studio_scope(studio_):
        return Visitor.objects.create(studio=studio_, gallery=gallery_, name="Jo Client", email="jo@example.com")


def rating(studio_: Studio) -> Any:
    from galleries import services as gallery_services
    from galleries.models import Rating

    asset = ready_asset(studio_)
    v = visitor(studio_, asset.gallery)
    with context.acting_as(TEST_ACTOR), studio_scope(studio_):
        gallery_services.ratings_set(gallery=asset.gallery, visitor=v, ratings=[(asset, 4)])
        return Rating.objects.get(asset=asset, visitor=v)


def folder(studio_: Studio, gallery_: Any = None, name: str | None = None) -> Any:
    from galleries import services as gallery_services

    gallery_ = gallery_ or gallery(studio_)
    with context.acting_as(TEST_ACTOR), studio_scope(studio_):
        return gallery_services.folder_create(gallery=gallery_, name=name or f"Folder {_n()}")


def placement(studio_: Studio) -> Any:
    from galleries import services as gallery_services
    from galleries.models import Placement

    asset = ready_asset(studio_)
    f = folder(studio_, asset.gallery)
    with context.acting_as(TEST_ACTOR), studio_scope(studio_):
        gallery_services.placements_add(folder=f, assets=[asset])
        return Placement.objects.get(folder=f, asset=asset)


def selection(studio_: Studio) -> Any:
    from galleries import services as gallery_services

    r = rating(studio_)
    with context.acting_as(TEST_ACTOR), studio_scope(studio_):
        return gallery_services.selection_finalize(gallery=r.asset.gallery, visitor=r.visitor)


def export(studio_: Studio, gallery_: Any = None, *, run: bool = True, **fields: Any) -> Any:
    """A ZIP (web size) of a gallery with one photo, run to the end by default:
    done, its file in storage, downloadable."""
    from galleries.models import Export
    from galleries.services.exports import export_request, export_run

    gallery_ = gallery_ or ready_asset(studio_).gallery
    fields.setdefault("kind", "zip")
    with context.acting_as(TEST_ACTOR), studio_scope(studio_):
        made, _ = export_request(gallery=gallery_, user=owner_membership(studio_).user, **fields)
        if run:
            export_run(export_id=made.pk)
        return Export.objects.get(pk=made.pk)


def face(studio_: Studio, asset_: Any = None, *, person_: Any = None, descriptor: Any = None) -> Any:
    """A stored face (a synthetic descriptor, a real crop in storage) in a
    person of its own unless ``person_`` is given; the studio and gallery
    have people in photos on."""
    import numpy as np

    from galleries import faces as face_math
    from galleries.models import Face, Gallery, Person
    from galleries.services.faces import face_thumb_key
    from galleries.storage import media_store
    from tests.gallery_helpers import jpeg

    asset_ = asset_ or ready_asset(studio_)
    if descriptor is None:
        descriptor = np.random.default_rng(_n()).normal(size=128).astype(np.float32) * 0.1
    with studio_scope(studio_):
        Studio.objects.filter(pk=studio_.pk).update(faces_enabled=True)
        Gallery.objects.filter(pk=asset_.gallery_id).update(faces_enabled=True)
        index = Face.objects.filter(asset=asset_).count()
        key = face_thumb_key(asset_, index)
        media_store().put(key, jpeg(32, 32), "image/webp")
        data = face_math.descriptor_bytes(descriptor)
        if person_ is None:
            person_ = Person.objects.create(studio=studio_, gallery_id=asset_.gallery_id, centroid=data)
        made = Face.objects.create(
            studio=studio_,
            gallery_id=asset_.gallery_id,
            asset=asset_,
            person=person_,
            index=index,
            left=0,
            top=0,
            right=100,
            bottom=100,
            score=1.0,
            quality=0.5,
            descriptor=data,
            thumb_key=key,
        )
        from galleries.services.faces import refresh_persons

        refresh_persons([person_.pk])
        return made


def person(studio_: Studio) -> Any:
    from galleries.models import Person

    made = face(studio_)
    with studio_scope(studio_):
        return Person.objects.get(pk=made.person_id)


def face_scan(studio_: Studio) -> Any:
    from galleries.models import FaceScan, FaceScanStatus

    asset_ = ready_asset(studio_)
    with studio_scope(studio_):
        return FaceScan.objects.create(studio=studio_, asset=asset_, status=FaceScanStatus.DONE)


def _register_gallery_factories() -> None:
    from galleries.models import (
        Asset,
        Export,
        Face,
        FaceScan,
        Folder,
        Gallery,
        PendingDeletion,
        Person,
        Placement,
        Rating,
        Selection,
        UploadBatch,
        Visitor,
    )

    FACTORIES.update(
        {
            Gallery: lambda s: gallery(s),
            Asset: lambda s: ready_asset(s),
            UploadBatch: upload_batch,
            Visitor: lambda s: visitor(s),
            Rating: rating,
            Folder: lambda s: folder(s),
            Placement: placement,
            Selection: selection,
            Export: lambda s: export(s),
            PendingDeletion: pending_deletion,
            Face: lambda s: face(s),
            Person: person,
            FaceScan: face_scan,
        }
    )


_register_gallery_factories()


# --- bookings ------------------------------------------------------------------------------------------


def service(studio_: Studio, **fields: Any) -> Any:
    from bookings import services as booking_services
    from bookings.models import Service

    fields.setdefault("name", f"Session {_n()}")
    fields.setdefault("duration_minutes", 60)
    fields.setdefault("min_notice_minutes", 0)
    with context.acting_as(TEST_ACTOR), studio_scope(studio_):
        return booking_services.service_save(service=Service(**fields))


def booking(
    studio_: Studio, *, start: Any = None, status: str = "confirmed", service_: Any = None, **fields: Any
) -> Any:
    """A booking row placed directly (availability is the services' business)."""
    import secrets
    from datetime import timedelta

    from django.utils import timezone

    from bookings.models import Booking
    from studio.models import hash_token

    service_ = service_ or service(studio_)
    start = start or timezone.now().replace(microsecond=0) + timedelta(days=3 + _n() % 50, hours=_n() % 24)
    end = start + timedelta(minutes=service_.duration_minutes)
    with studio_scope(studio_):
        return Booking.objects.create(
            studio=studio_,
            service=service_,
            client_name="Casey Client",
            client_email="casey@example.com",
            starts_at=start,
            ends_at=end,
            blocked_start=start,
            blocked_end=end,
            status=status,
            token_hash=hash_token(secrets.token_urlsafe(16)),
            resource=fields.pop("resource", f"studio-{_n()}"),
            **fields,
        )


def _register_booking_factories() -> None:
    from datetime import time, timedelta

    from django.utils import timezone

    from bookings.models import (
        Booking,
        CalendarFeed,
        ContactSubmission,
        DateOverride,
        Payment,
        Service,
        TimeOff,
        WorkingHours,
    )

    def hours(s: Studio) -> Any:
        with studio_scope(s):
            return WorkingHours.objects.create(studio=s, weekday=0, start_time=time(9), end_time=time(17))

    def override(s: Studio) -> Any:
        with studio_scope(s):
            return DateOverride.objects.create(studio=s, date=timezone.now().date() + timedelta(days=_n()))

    def time_off(s: Studio) -> Any:
        start = timezone.now() + timedelta(days=_n())
        with studio_scope(s):
            return TimeOff.objects.create(studio=s, starts_at=start, ends_at=start + timedelta(hours=4))

    def payment(s: Studio) -> Any:
        b = booking(s)
        with studio_scope(s):
            return Payment.objects.create(studio=s, booking=b, provider="manual", amount=50, currency="USD")

    def feed(s: Studio) -> Any:
        from bookings import services as booking_services

        with context.acting_as(TEST_ACTOR), studio_scope(s):
            return booking_services.feed_create(owner=owner_membership(s), scope="studio")[0]

    def enquiry(s: Studio) -> Any:
        with studio_scope(s):
            return ContactSubmission.objects.create(studio=s, name="Eve", email="eve@example.com", message="Hi")

    FACTORIES.update(
        {
            Service: lambda s: service(s),
            WorkingHours: hours,
            DateOverride: override,
            TimeOff: time_off,
            Booking: lambda s: booking(s),
            Payment: payment,
            CalendarFeed: feed,
            ContactSubmission: enquiry,
        }
    )


_register_booking_factories()
