"""What a studio hits on its first day (issue 8, section 6): bookings taken
by phone, times in the studio's zone, the client's link in every email, the
studio told of every booking, deposits paid by hand, storage it can see."""

from __future__ import annotations

import re
import zoneinfo
from datetime import datetime, time, timedelta
from typing import Any

import pytest
from django.conf import settings
from django.core import mail
from django.urls import reverse
from django.utils import timezone

from bookings import notifications, providers
from bookings import services as booking_services
from bookings.links import booking_manage_url
from bookings.models import Booking, BookingStatus, Payment, PaymentStatus, WorkingHours
from galleries import selectors as gallery_selectors
from galleries.models import Asset, AssetStatus, Gallery
from studio import context
from studio.models import Studio
from studio.roles import Role
from studio.tenancy import studio_scope
from tests import factories
from tests.helpers import mail_to, studio_notices

LA = zoneinfo.ZoneInfo("America/Los_Angeles")
MANAGE_LINK = re.compile(r"https?://\S+/book/manage/([\w-]+)/")


@pytest.fixture
def la(db) -> Studio:
    """A Los Angeles studio open 08:00-20:00 local every day, with an address."""
    studio = factories.studio("Sunset Portraits")
    studio.timezone, studio.contact_email = "America/Los_Angeles", "desk@sunset.example"
    studio.save()
    with studio_scope(studio):
        WorkingHours.objects.bulk_create(
            [WorkingHours(studio=studio, weekday=d, start_time=time(8), end_time=time(20)) for d in range(7)]
        )
    return studio


def _day(days: int = 10) -> datetime:
    """A local date some days ahead, at midnight in Los Angeles."""
    local = timezone.now().astimezone(LA) + timedelta(days=days)
    return datetime(local.year, local.month, local.day, tzinfo=LA)


def _at(day: datetime, hour: int, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=LA)


def _acting(studio: Studio) -> Any:
    class _Both:
        def __enter__(self) -> None:
            self.a, self.b = context.acting_as(factories.TEST_ACTOR), studio_scope(studio)
            self.a.__enter__()
            self.b.__enter__()

        def __exit__(self, *exc: Any) -> None:
            self.b.__exit__(*exc)
            self.a.__exit__(*exc)

    return _Both()


def _admin(client: Any, studio: Studio, role: str) -> Any:
    client.force_login(factories.member(studio, role).user)
    return client


def _add_form(service: Any, start: datetime, **extra: Any) -> dict[str, Any]:
    local = start.astimezone(LA)
    return {
        "service": str(service.pk),
        "starts_at_0": local.strftime("%Y-%m-%d"),
        "starts_at_1": local.strftime("%H:%M:%S"),
        "member": "",
        "client_name": "Phone Client",
        "client_email": "phone@example.com",
        "client_phone": "+1 555 0100",
        "notes": "Called on Monday",
        **extra,
    }


def _bookings(studio: Studio) -> list[Booking]:
    with studio_scope(studio):
        return list(Booking.objects.order_by("created_at"))


# --- bookings taken by phone, in the admin ----------------------------------------------------------------------


def test_staff_enter_a_phone_booking_in_the_admin_read_in_the_studio_zone(
    la, client, django_capture_on_commit_callbacks
):
    service = factories.service(la, name="Headshot")
    _admin(client, la, Role.ASSISTANT)
    start = _at(_day(), 16)  # 4 PM in Los Angeles: midnight or 11 PM UTC
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("admin:bookings_booking_add"), _add_form(service, start))
    assert response.status_code == 302, response.context["adminform"].form.errors if response.context else response
    (booking,) = _bookings(la)
    assert booking.starts_at == start and booking.status == BookingStatus.CONFIRMED
    assert (booking.client_name, booking.client_phone, booking.notes) == (
        "Phone Client",
        "+1 555 0100",
        "Called on Monday",
    )
    # The client has their confirmation and their link; the studio is told.
    (confirmation,) = mail_to(mail.outbox, "phone@example.com")
    assert confirmation.subject.startswith("Confirmed") and "04:00 PM" not in confirmation.body
    assert "16:00" in confirmation.body and booking_manage_url(booking) in confirmation.body
    assert studio_notices(mail.outbox, "phone@example.com") == ["New booking"]

    # The list shows it at 16:00 in the studio's zone, labelled.
    page = client.get(reverse("admin:bookings_booking_changelist")).content.decode()
    assert "16:00–17:00 P" in page and "times in America/Los_Angeles" in page


def test_an_admin_booking_obeys_the_same_hold_and_overlap_rules(la, client):
    service = factories.service(la, buffer_after_minutes=30)
    _admin(client, la, Role.ASSISTANT)
    day = _day()
    with _acting(la):
        held, _ = booking_services.booking_hold(
            service=service, starts_at=_at(day, 10), client_name="Web", client_email="web@example.com"
        )
    url = reverse("admin:bookings_booking_add")
    # A live hold, a time inside another booking's buffer, a time outside the hours: refused, nothing saved.
    for start in (_at(day, 10), _at(day, 10, 30), _at(day, 11), _at(day, 21)):
        response = client.post(url, _add_form(service, start))
        assert response.status_code == 200, start
        assert "not available" in response.content.decode()
    assert [b.pk for b in _bookings(la)] == [held.pk]
    # Outside the hours is a staff decision ("any time"); another booking's time never is.
    assert client.post(url, _add_form(service, _at(day, 21), anytime="on")).status_code == 302
    refused = client.post(url, _add_form(service, _at(day, 10, 30), anytime="on"))
    assert refused.status_code == 200 and len(_bookings(la)) == 2


def test_an_expired_hold_does_not_block_a_staff_booking(la):
    service = factories.service(la)
    start = _at(_day(), 12)
    with _acting(la):
        held, _ = booking_services.booking_hold(
            service=service, starts_at=start, client_name="Web", client_email="web@example.com"
        )
        later = timezone.now() + timedelta(hours=1)
        booking = booking_services.booking_create(
            service=service, starts_at=start, client_name="Phone", client_email="p@example.com", now=later
        )
    held.refresh_from_db()
    assert (held.status, held.cancel_reason) == (BookingStatus.CANCELLED, "hold_expired")
    assert booking.status == BookingStatus.CONFIRMED and booking.resource == held.resource


def test_a_staff_booking_can_name_the_member_and_only_one_of_the_service(la):
    photographer = factories.member(la, Role.PHOTOGRAPHER)
    stranger = factories.member(la, Role.PHOTOGRAPHER)
    service = factories.service(la)
    with studio_scope(la):
        service.members.set([photographer])
    with _acting(la):
        booking = booking_services.booking_create(
            service=service,
            starts_at=_at(_day(), 12),
            client_name="A",
            client_email="a@example.com",
            member=photographer,
            anytime=True,
        )
        assert list(booking.assigned_members.all()) == [photographer]
        from studio.errors import DomainError

        with pytest.raises(DomainError) as refused:
            booking_services.booking_create(
                service=service,
                starts_at=_at(_day(), 14),
                client_name="B",
                client_email="b@example.com",
                member=stranger,
                anytime=True,
            )
    assert refused.value.code == "MEMBER_NOT_ON_SERVICE"


def test_the_admin_date_filter_groups_by_the_studio_day(la, client):
    service = factories.service(la)
    day = _day()
    with _acting(la):
        late = booking_services.booking_create(
            service=service, starts_at=_at(day, 23), client_name="Late", client_email="l@example.com", anytime=True
        )
    assert late.starts_at.astimezone(zoneinfo.ZoneInfo("UTC")).date() != day.date()  # the next day in UTC
    _admin(client, la, Role.VIEWER)
    response = client.get(
        reverse("admin:bookings_booking_changelist"),
        {"starts_at__year": day.year, "starts_at__month": day.month, "starts_at__day": day.day},
    )
    assert [b.pk for b in response.context["cl"].result_list] == [late.pk]
    assert "23:00–00:00 P" in response.content.decode()


def test_the_booking_page_never_shows_the_link_hash(la, client):
    with _acting(la):
        booking = booking_services.booking_create(
            service=factories.service(la),
            starts_at=_at(_day(), 12),
            client_name="A",
            client_email="a@example.com",
        )
    _admin(client, la, Role.ASSISTANT)
    page = client.get(reverse("admin:bookings_booking_change", args=[booking.pk])).content.decode()
    assert booking.token_hash not in page and "Token hash" not in page
    assert "12:00–13:00 P" in page


# --- deposits paid by hand ----------------------------------------------------------------------------------------


def _awaiting_by_hand(studio: Studio, capture: Any, *, deposit: int = 50) -> tuple[Booking, Payment]:
    service = factories.service(studio, price=200, deposit=deposit, currency="USD")
    with _acting(studio):
        booking, _ = booking_services.booking_hold(
            service=service, starts_at=_at(_day(), 12), client_name="Cleo", client_email="cleo@example.com"
        )
    with capture(execute=True), _acting(studio):
        payment = booking_services.booking_checkout(booking=booking, success_url="s", cancel_url="c")
    booking.refresh_from_db()
    return booking, payment


def test_a_deposit_by_hand_tells_both_sides_and_holds_the_slot_for_days(
    la, settings, django_capture_on_commit_callbacks
):
    settings.PAYMENT_PROVIDER = "manual"
    la.payment_instructions = "Transfer to IBAN US00 TEST 0000, reference: your name."
    la.save()
    before = timezone.now()
    booking, payment = _awaiting_by_hand(la, django_capture_on_commit_callbacks)
    assert booking.status == BookingStatus.AWAITING_PAYMENT and payment.provider == "manual"
    hours = settings.BOOKING_MANUAL_PAYMENT_HOURS
    assert booking.hold_expires_at >= before + timedelta(hours=hours) - timedelta(seconds=5)
    (asked,) = mail_to(mail.outbox, "cleo@example.com")
    assert "50.00 USD" in asked.body and "IBAN US00 TEST 0000" in asked.body
    held_until = booking.hold_expires_at.astimezone(LA).strftime("%H:%M")
    assert held_until in asked.body and booking_manage_url(booking) in asked.body
    assert studio_notices(mail.outbox, "cleo@example.com") == ["Deposit awaited"]
    (studio_mail,) = [m for m in mail.outbox if m.to == ["desk@sunset.example"]]
    assert f"/admin/bookings/booking/{booking.pk}/change/" in studio_mail.body


def test_a_deposit_by_hand_that_never_came_releases_the_time_and_says_so(
    la, settings, django_capture_on_commit_callbacks
):
    settings.PAYMENT_PROVIDER = "manual"
    booking, _ = _awaiting_by_hand(la, django_capture_on_commit_callbacks)
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True), _acting(la):
        assert booking_services.holds_release(now=booking.hold_expires_at + timedelta(seconds=1)) == 1
    booking.refresh_from_db()
    assert (booking.status, booking.cancel_reason) == (BookingStatus.CANCELLED, "hold_expired")
    (released,) = mail_to(mail.outbox, "cleo@example.com")
    assert released.subject.startswith("Time released")
    assert studio_notices(mail.outbox, "cleo@example.com") == ["Unpaid booking released"]


def test_an_abandoned_online_checkout_lapses_quietly(la, settings, django_capture_on_commit_callbacks, monkeypatch):
    class Online(providers.PaymentProvider):
        name = "stripe"

        def create_checkout(self, payment: Any, *, success_url: str, cancel_url: str) -> providers.Checkout:
            return providers.Checkout(reference=f"cs_{payment.pk}", url="https://pay.example/cs")

    monkeypatch.setattr(providers, "provider", lambda: Online())
    booking, _ = _awaiting_by_hand(la, django_capture_on_commit_callbacks)
    assert mail.outbox == []  # the client is on the payment page: nothing to email
    with django_capture_on_commit_callbacks(execute=True), _acting(la):
        booking_services.holds_release(now=booking.hold_expires_at + timedelta(seconds=1))
    assert mail.outbox == []


def test_staff_mark_a_deposit_paid_from_the_admin(la, client, settings, django_capture_on_commit_callbacks):
    settings.PAYMENT_PROVIDER = "manual"
    booking, payment = _awaiting_by_hand(la, django_capture_on_commit_callbacks)
    url = reverse("admin:bookings_booking_changelist")
    action = {"action": "mark_deposit_paid", "_selected_action": [str(booking.pk)]}

    # Recording money is booking:admin, as in the API: an assistant has no such action.
    _admin(client, la, Role.ASSISTANT)
    choices = [name for name, _ in client.get(url).context["action_form"].fields["action"].choices]
    assert "mark_deposit_paid" not in choices and "confirm" in choices
    client.post(url, action)
    payment.refresh_from_db()
    assert payment.status == PaymentStatus.PENDING

    admin = factories.member(la, Role.ADMIN)
    client.force_login(admin.user)
    assert "50.00 USD due" in client.get(url).content.decode()
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(url, action, follow=True)
    assert any("Recorded the deposit of 1 booking" in str(m) for m in response.context["messages"])
    payment.refresh_from_db()
    booking.refresh_from_db()
    assert (payment.status, payment.marked_paid_by_id) == (PaymentStatus.PAID, admin.user_id)
    assert booking.status == BookingStatus.CONFIRMED
    assert [m.subject.split(":")[0] for m in mail_to(mail.outbox, "cleo@example.com")] == ["Confirmed"]
    assert "50.00 USD paid" in client.get(url).content.decode()
    # Twice is refused, not recorded twice.
    response = client.post(url, action, follow=True)
    assert any("already paid" in str(m) for m in response.context["messages"])
    with studio_scope(la):
        assert Payment.objects.filter(booking=booking, status=PaymentStatus.PAID).count() == 1


def test_payment_instructions_are_a_studio_setting_owners_edit(la, client_for):
    owner = factories.owner_membership(la)
    response = client_for(owner).patch(
        f"/api/v1/studios/{la.slug}/", {"payment_instructions": "Cash at the studio."}, format="json"
    )
    assert response.status_code == 200, response.content
    la.refresh_from_db()
    assert la.payment_instructions == "Cash at the studio."
    too_long = client_for(owner).patch(
        f"/api/v1/studios/{la.slug}/", {"payment_instructions": "x" * 2001}, format="json"
    )
    assert too_long.status_code == 400


# --- every client email has the link; the studio hears of everything ----------------------------------------


def _links(message: Any) -> list[str]:
    return MANAGE_LINK.findall(message.body)


def test_every_booking_email_to_the_client_carries_a_working_link(la, client, django_capture_on_commit_callbacks):
    service = factories.service(la)
    day = _day(5)
    with django_capture_on_commit_callbacks(execute=True), _acting(la):
        held, raw = booking_services.booking_hold(
            service=service, starts_at=_at(day, 10), client_name="Dana", client_email="dana@example.com"
        )
        booking = booking_services.booking_confirm(booking=held)
        booking = booking_services.booking_reschedule(booking=booking, starts_at=_at(day, 14), by_client=False)
    with django_capture_on_commit_callbacks(execute=True), _acting(la):
        notifications.queue_reminder(booking)
    with django_capture_on_commit_callbacks(execute=True), _acting(la):
        booking_services.booking_cancel(booking=booking, by_client=False)
    sent = mail_to(mail.outbox, "dana@example.com")
    assert [m.subject.split(":")[0] for m in sent] == ["Confirmed", "Rescheduled", "Tomorrow", "Cancelled"]
    for message in sent:
        assert _links(message) == [raw], message.subject
    assert client.get(f"/book/manage/{raw}/").status_code == 200
    # The studio: new, moved (from when), cancelled; never the client's link.
    notices = [m for m in mail.outbox if m.to != ["dana@example.com"]]
    assert [m.subject.split(":")[0] for m in notices] == ["New booking", "Booking moved", "Booking cancelled"]
    assert "10:00" in notices[1].body and "14:00" in notices[1].body
    assert all(not _links(m) for m in notices)


def test_a_hold_nobody_confirmed_is_no_news_to_the_studio(la, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True), _acting(la):
        held, _ = booking_services.booking_hold(
            service=factories.service(la), starts_at=_at(_day(), 10), client_name="D", client_email="d@example.com"
        )
        booking_services.booking_cancel(booking=held, by_client=True)
    assert studio_notices(mail.outbox, "d@example.com") == []


def test_the_assigned_members_hear_of_their_bookings_unless_deactivated(la, django_capture_on_commit_callbacks):
    active = factories.member(la, Role.PHOTOGRAPHER)
    gone = factories.member(la, Role.PHOTOGRAPHER)
    service = factories.service(la)
    with studio_scope(la):
        service.members.set([active])
    with django_capture_on_commit_callbacks(execute=True), _acting(la):
        booking = booking_services.booking_create(
            service=service, starts_at=_at(_day(), 12), client_name="E", client_email="e@example.com"
        )
        booking_services.booking_assign(booking=booking, members=[active, gone])
    gone.user.is_active = False
    gone.user.save()
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True), _acting(la):
        booking_services.booking_cancel(booking=booking, by_client=False)
    recipients = sorted(m.to[0] for m in mail.outbox if m.to != ["e@example.com"])
    assert recipients == sorted(["desk@sunset.example", active.user.email])


def test_without_a_studio_address_the_owners_are_told(db, django_capture_on_commit_callbacks):
    studio = factories.studio()
    owner = factories.owner_membership(studio)
    with studio_scope(studio):
        WorkingHours.objects.bulk_create(
            [WorkingHours(studio=studio, weekday=d, start_time=time(0), end_time=time(23, 59)) for d in range(7)]
        )
    with django_capture_on_commit_callbacks(execute=True), _acting(studio):
        booking_services.booking_create(
            service=factories.service(studio),
            starts_at=timezone.now().replace(microsecond=0, second=0, minute=0) + timedelta(days=3),
            client_name="F",
            client_email="f@example.com",
            anytime=True,
        )
    assert [m.to for m in mail.outbox if m.to != ["f@example.com"]] == [[owner.user.email]]


# --- the client's page --------------------------------------------------------------------------------------------


def test_the_manage_page_works_in_the_studio_zone_and_offers_its_slots(la, client):
    la.payment_instructions = "Pay <b>cash</b> on the day."
    la.save()
    service = factories.service(la)
    with _acting(la):
        booking = booking_services.booking_create(
            service=service, starts_at=_at(_day(), 12), client_name="G", client_email="g@example.com"
        )
    raw = MANAGE_LINK.search(booking_manage_url(booking)).group(1)
    response = client.get(f"/book/manage/{raw}/")
    page = response.content.decode()
    assert response.context["page"] == {
        "booking_url": f"/api/v1/public/bookings/{raw}/",
        "slots_url": f"/api/v1/public/studios/{la.slug}/services/{service.pk}/slots/",
        "timezone": "America/Los_Angeles",
    }
    assert 'id="page-data"' in page and "America/Los_Angeles" in page
    # The page's module (static: the CSP allows no inline script) formats in that zone.
    assert '<script type="module" src="/static/site/manage.js">' in page
    assert "timeZone: tz" in (settings.BASE_DIR / "static/site/manage.js").read_text()
    assert "Pay &lt;b&gt;cash&lt;/b&gt; on the day." in page  # the studio's words, escaped
    assert 'type="datetime-local"' not in page  # no time typed in the browser's own zone
    # The slots it offers are the studio's local ones.
    slots = client.get(
        f"/api/v1/public/studios/{la.slug}/services/{service.pk}/slots/",
        {"start": _day().date().isoformat(), "end": _day().date().isoformat()},
    ).json()
    firsts = [datetime.fromisoformat(s["start"]).astimezone(LA) for s in slots[:1]]
    assert firsts and firsts[0].hour == 8


def test_an_invalid_manage_link_is_a_clear_404(db, client):
    response = client.get("/book/manage/not-a-real-token/")
    assert response.status_code == 404 and "not valid" in response.content.decode()


# --- storage ------------------------------------------------------------------------------------------------------


def _stored(studio: Studio, n: int) -> list[Asset]:
    return [factories.ready_asset(studio) for _ in range(n)]


def test_the_storage_report_adds_up_to_what_uploads_are_checked_against(studio):
    ready = _stored(studio, 2)
    gallery = ready[0].gallery
    others = [
        ("p", 5_000_000, AssetStatus.PROCESSING),
        ("f", 700, AssetStatus.FAILED),
        ("w", 9_000, AssetStatus.AWAITING_UPLOAD),
    ]
    with studio_scope(studio):
        for name, size, status in others:
            Asset.objects.create(
                studio=studio,
                gallery=gallery,
                original_filename=f"{name}.jpg",
                storage_key=f"k/{name}",
                size=size,
                status=status,
            )
        report = gallery_selectors.storage_report(studio)
        assert report["used_bytes"] == gallery_selectors.storage_usage(studio)
    originals = sum(a.size for a in ready) + 5_000_000 + 700
    assert report["originals_bytes"] == originals
    assert report["derivatives_bytes"] == sum(a.derivative_bytes for a in ready) > 0
    assert report["reserved_bytes"] == gallery_selectors.derivative_estimate(5_000_000) + 9_000 * 2
    assert (report["photos"], report["photos_ready"]) == (4, 2)
    assert report["quota_bytes"] == studio.storage_quota_bytes and report["level"] == "ok"


@pytest.mark.parametrize(("fraction", "level"), [(0.5, "ok"), (0.8, "warning"), (0.96, "critical"), (1.2, "critical")])
def test_the_studio_sees_its_storage_and_is_warned_at_80_and_95_percent(studio, client, fraction, level):
    (asset,) = _stored(studio, 1)
    used = asset.size + asset.derivative_bytes
    studio.storage_quota_bytes = int(used / fraction)
    studio.save()
    with studio_scope(studio):
        report = gallery_selectors.storage_report(studio)
    assert report["level"] == level
    client.force_login(factories.owner_membership(studio).user)
    index = client.get(reverse("admin:index"))
    notices = index.context["admin_notices"]
    if level == "ok":
        assert notices == []
    else:
        (notice,) = notices
        assert f"{report['used_fraction']:.0%}" in notice
        assert ("refused once it is full" in notice) == (level == "critical")
    page = client.get(reverse("admin:studio_studio_change", args=[studio.pk])).content.decode()
    assert "of the storage quota is used" in page and "1 photos" in page


# --- what a viewer sees ---------------------------------------------------------------------------------------------


def test_a_viewer_never_sees_a_gallery_code_in_the_admin(studio, client):
    gallery = factories.gallery(studio)
    url = reverse("admin:galleries_gallery_change", args=[gallery.pk])
    client.force_login(factories.member(studio, Role.VIEWER).user)
    assert gallery.access_code not in client.get(url).content.decode()
    found = client.get(reverse("admin:galleries_gallery_changelist"), {"q": gallery.access_code})
    assert list(found.context["cl"].result_list) == []
    client.force_login(factories.member(studio, Role.ASSISTANT).user)
    assert gallery.access_code in client.get(url).content.decode()  # they send it to the client


def test_admin_names_read_right(studio):
    assert str(Gallery._meta.verbose_name_plural) == "galleries"
