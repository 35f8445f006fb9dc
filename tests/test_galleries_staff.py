"""The staff gallery API under /api/v1/studios/{slug}/galleries/: CRUD, the
lifecycle actions, uploads, assets and their media, the client's ratings and
selections as staff see them, and staff folders. Every role is checked on
every endpoint."""

from __future__ import annotations

import contextlib
import random
from collections.abc import Callable, Iterator
from functools import cached_property
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from audit.models import AuditEvent
from galleries import services
from galleries.models import (
    Asset,
    AssetStatus,
    Folder,
    Gallery,
    GalleryStatus,
    Placement,
    Rating,
    Selection,
    SelectionStatus,
    UploadBatch,
    Visitor,
)
from galleries.services.galleries import CODE_ALPHABET
from galleries.storage import derivative_key, original_key
from studio import context
from studio.auditing import Action
from studio.roles import Role
from studio.tenancy import studio_scope, unscoped
from tests import factories
from tests.gallery_helpers import gallery_url, jpeg, png, upload
from tests.helpers import assert_api_error

# --- helpers -----------------------------------------------------------------------------------------


@contextlib.contextmanager
def _acting(studio) -> Iterator[Any]:
    """Service calls from the test itself: a studio scope and an audit actor."""
    with context.acting_as(factories.TEST_ACTOR), studio_scope(studio):
        yield studio


def _events(studio, action: str, target: Any = None) -> list[AuditEvent]:
    with studio_scope(studio):
        queryset = AuditEvent.objects.filter(action=action)
        if target is not None:
            queryset = queryset.filter(target_id=str(target.pk))
        return list(queryset.order_by("seq"))


def _audit_count(studio) -> int:
    with studio_scope(studio):
        return AuditEvent.objects.count()


def _fresh(studio, obj):
    with studio_scope(studio):
        return type(obj).objects.get(pk=obj.pk)


def _files_under(path: Path) -> list[Path]:
    return sorted(p for p in path.rglob("*") if p.is_file()) if path.exists() else []


def _gallery_dir(gallery) -> Path:
    return Path(settings.MEDIA_ROOT) / "studios" / str(gallery.studio_id) / "galleries" / str(gallery.pk)


def _portal() -> APIClient:
    # A fresh client address: portal throttles count per address, and on
    # Redis their counters outlive a test.
    return APIClient(REMOTE_ADDR=f"10.{random.randint(0, 255)}.{random.randint(0, 255)}.{random.randint(1, 254)}")


def _open_portal(studio, code: str, pin: str = "") -> Any:
    body = {"studio": studio.slug, "code": code}
    if pin:
        body["pin"] = pin
    return _portal().post("/api/v1/portal/access/", body, format="json")


def _body(response) -> bytes:
    # Consuming a streamed body closes the response (the test client's wrapper);
    # closing it again would fire request_finished and drop the DB connection.
    return b"".join(response.streaming_content) if response.streaming else response.content


def _visitor(studio, gallery, name: str, email: str = "") -> Visitor:
    with studio_scope(studio):
        return Visitor.objects.create(studio=studio, gallery=gallery, name=name, email=email)


def _rate(studio, gallery, visitor, *pairs) -> None:
    with _acting(studio):
        services.ratings_set(gallery=gallery, visitor=visitor, ratings=list(pairs))


def _finalize(studio, gallery, visitor) -> Selection:
    with _acting(studio):
        return services.selection_finalize(gallery=gallery, visitor=visitor)


@pytest.fixture
def staff(owner, client_for) -> APIClient:
    return client_for(owner)


# --- 1. CRUD -----------------------------------------------------------------------------------------


def test_create_without_code_generates_an_unambiguous_one(studio, staff):
    response = staff.post(gallery_url(studio), {"title": "Smith Wedding"}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    code = body["access_code"]
    assert len(code) == 8
    assert set(code) <= set(CODE_ALPHABET)
    assert set(CODE_ALPHABET).isdisjoint("01OI")  # nothing to misread over the phone
    assert body["status"] == GalleryStatus.DRAFT
    assert body["has_pin"] is False
    with studio_scope(studio):
        gallery = Gallery.objects.get(pk=body["id"])
    assert gallery.access_code == code
    assert gallery.studio_id == studio.pk
    assert staff.get(gallery_url(studio, gallery)).json()["asset_count"] == 0
    [event] = _events(studio, Action.GALLERY_CREATED, gallery)
    assert event.after["access_code"] == code
    assert event.after["title"] == "Smith Wedding"


@pytest.mark.parametrize(
    ("given", "stored"),
    [("smith-2025", "SMITH2025"), (" ab cd 12 ", "ABCD12"), ("Demo-Code-9", "DEMOCODE9"), ("wxyz", "WXYZ")],
)
def test_custom_codes_are_normalised(studio, staff, given, stored):
    response = staff.post(gallery_url(studio), {"title": "Custom", "access_code": given}, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["access_code"] == stored
    with studio_scope(studio):
        assert Gallery.objects.get(pk=response.json()["id"]).access_code == stored


@pytest.mark.parametrize("given", ["abc", "no!good", "ÄÖÜ1234", "a_b_c_d_e"])
def test_invalid_codes_are_refused(studio, staff, given):
    response = staff.post(gallery_url(studio), {"title": "Bad", "access_code": given}, format="json")
    error = assert_api_error(response, 400, "INVALID_ACCESS_CODE")
    assert "access_code" in error["fields"]
    with studio_scope(studio):
        assert not Gallery.objects.exists()


def test_duplicate_code_conflicts_in_the_studio_only(studio, other_studio, staff, client_for):
    assert staff.post(gallery_url(studio), {"title": "A", "access_code": "DEMO2025"}, format="json").status_code == 201
    clash = staff.post(gallery_url(studio), {"title": "B", "access_code": "demo-2025"}, format="json")
    error = assert_api_error(clash, 409, "ACCESS_CODE_TAKEN")
    assert "access_code" in error["fields"]
    with studio_scope(studio):
        assert list(Gallery.objects.values_list("title", flat=True)) == ["A"]
    other = client_for(factories.owner_membership(other_studio))
    elsewhere = other.post(gallery_url(other_studio), {"title": "C", "access_code": "demo2025"}, format="json")
    assert elsewhere.status_code == 201, elsewhere.content
    assert elsewhere.json()["access_code"] == "DEMO2025"


def test_pin_is_write_only_and_hashed(studio, staff):
    created = staff.post(gallery_url(studio), {"title": "Pinned", "pin": "4321"}, format="json")
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["has_pin"] is True
    assert "pin" not in body and "pin_hash" not in body
    assert "4321" not in created.content.decode()
    with studio_scope(studio):
        gallery = Gallery.objects.get(pk=body["id"])
    assert gallery.pin_hash and gallery.pin_hash != "4321" and "4321" not in gallery.pin_hash
    assert gallery.check_pin("4321") and not gallery.check_pin("1234")

    detail = staff.get(gallery_url(studio, gallery))
    assert detail.json()["has_pin"] is True and "pin" not in detail.json()
    listed = staff.get(gallery_url(studio)).json()["results"]
    assert all("pin" not in row for row in listed)
    assert "4321" not in str(_events(studio, Action.GALLERY_CREATED, gallery)[0].after)


def test_empty_pin_removes_it_and_signs_clients_out(studio, staff):
    gallery = factories.gallery(studio, pin="123456")
    version = gallery.access_version
    response = staff.patch(gallery_url(studio, gallery), {"pin": ""}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["has_pin"] is False
    fresh = _fresh(studio, gallery)
    assert fresh.pin_hash == ""
    assert fresh.access_version == version + 1
    [event] = _events(studio, Action.GALLERY_UPDATED, gallery)
    assert event.before["has_pin"] is True and event.after["has_pin"] is False


@pytest.mark.parametrize("pin", ["12", "123456789", "12ab"])
def test_malformed_pin_is_refused(studio, staff, pin):
    response = staff.post(gallery_url(studio), {"title": "P", "pin": pin}, format="json")
    error = assert_api_error(response, 400, "VALIDATION_ERROR")
    assert "pin" in error["fields"]


def test_assigned_members_and_team_accept_only_this_studios_ids(studio, other_studio, staff):
    mine = factories.member(studio, Role.PHOTOGRAPHER)
    team = factories.team(studio, "Crew")
    theirs = factories.member(other_studio, Role.PHOTOGRAPHER)
    their_team = factories.team(other_studio, "Their crew")

    ok = staff.post(
        gallery_url(studio),
        {"title": "Assigned", "assigned_members": [str(mine.pk)], "assigned_team": str(team.pk)},
        format="json",
    )
    assert ok.status_code == 201, ok.content
    assert ok.json()["assigned_members"] == [str(mine.pk)]
    assert ok.json()["assigned_team"] == str(team.pk)

    foreign = staff.post(
        gallery_url(studio), {"title": "X", "assigned_members": [str(mine.pk), str(theirs.pk)]}, format="json"
    )
    error = assert_api_error(foreign, 400, "VALIDATION_ERROR")
    assert str(theirs.pk) in " ".join(error["fields"]["assigned_members"])
    foreign_team = staff.post(gallery_url(studio), {"title": "Y", "assigned_team": str(their_team.pk)}, format="json")
    assert "assigned_team" in assert_api_error(foreign_team, 400, "VALIDATION_ERROR")["fields"]
    with studio_scope(studio):
        assert list(Gallery.objects.values_list("title", flat=True)) == ["Assigned"]

    gallery_id = ok.json()["id"]
    patched = staff.patch(f"{gallery_url(studio)}{gallery_id}/", {"assigned_members": [str(theirs.pk)]}, format="json")
    assert_api_error(patched, 400, "VALIDATION_ERROR")
    with studio_scope(studio):
        assert list(Gallery.objects.get(pk=gallery_id).assigned_members.all()) == [mine]
    cleared = staff.patch(
        f"{gallery_url(studio)}{gallery_id}/", {"assigned_members": [], "assigned_team": None}, format="json"
    )
    assert cleared.status_code == 200, cleared.content
    assert cleared.json()["assigned_members"] == [] and cleared.json()["assigned_team"] is None


def test_selection_limit_must_be_positive(studio, staff):
    zero = staff.post(gallery_url(studio), {"title": "Z", "selection_limit": 0}, format="json")
    assert "selection_limit" in assert_api_error(zero, 400, "VALIDATION_ERROR")["fields"]
    ok = staff.post(gallery_url(studio), {"title": "Z", "selection_limit": 25}, format="json")
    assert ok.status_code == 201 and ok.json()["selection_limit"] == 25
    gallery_id = ok.json()["id"]
    patched = staff.patch(f"{gallery_url(studio)}{gallery_id}/", {"selection_limit": 0}, format="json")
    assert_api_error(patched, 400, "VALIDATION_ERROR")
    unlimited = staff.patch(f"{gallery_url(studio)}{gallery_id}/", {"selection_limit": None}, format="json")
    assert unlimited.status_code == 200 and unlimited.json()["selection_limit"] is None


def test_list_filters_and_asset_count(studio, other_studio, staff):
    smith = factories.gallery(studio, title="Smith Wedding")
    jones = factories.gallery(studio, title="Portraits", client_name="Ann Jones", visibility="unlisted")
    lee = factories.gallery(studio, title="Family", client_email="kim@lee.example", visibility="public")
    factories.gallery(other_studio, title="Smith elsewhere")
    with _acting(studio):
        services.gallery_publish(gallery=jones)
        services.gallery_publish(gallery=lee)
        services.gallery_unpublish(gallery=lee, archive=True)
    factories.ready_asset(studio, smith)
    factories.ready_asset(studio, smith)

    def titles(query: str = "") -> set[str]:
        response = staff.get(gallery_url(studio) + query)
        assert response.status_code == 200, response.content
        return {row["title"] for row in response.json()["results"]}

    assert titles() == {"Smith Wedding", "Portraits", "Family"}
    assert titles("?status=published") == {"Portraits"}
    assert titles("?status=draft&status=archived") == {"Smith Wedding", "Family"}
    assert titles("?visibility=unlisted") == {"Portraits"}
    assert titles("?visibility=private") == {"Smith Wedding"}
    assert titles("?q=smith") == {"Smith Wedding"}
    assert titles("?q=JONES") == {"Portraits"}
    assert titles("?q=lee.example") == {"Family"}
    assert titles("?q=nothing-like-this") == set()
    assert titles("?status=published&q=smith") == set()
    assert_api_error(staff.get(gallery_url(studio) + "?status=bogus"), 400, "VALIDATION_ERROR")

    rows = {row["title"]: row for row in staff.get(gallery_url(studio)).json()["results"]}
    assert rows["Smith Wedding"]["asset_count"] == 2
    assert rows["Portraits"]["asset_count"] == 0
    assert staff.get(gallery_url(studio, smith)).json()["asset_count"] == 2


def test_update_is_audited_with_before_and_after(studio, staff):
    gallery = factories.gallery(studio, title="Old title", client_name="Ann")
    response = staff.patch(
        gallery_url(studio, gallery), {"title": "New title", "download_permission": "originals"}, format="json"
    )
    assert response.status_code == 200, response.content
    assert response.json()["title"] == "New title"
    [event] = _events(studio, Action.GALLERY_UPDATED, gallery)
    assert event.before["title"] == "Old title" and event.after["title"] == "New title"
    assert event.before["download_permission"] == "web" and event.after["download_permission"] == "originals"
    assert event.after["client_name"] == "Ann"
    assert event.actor_user_id == factories.owner_membership(studio).user_id
    # Nothing changed: nothing to audit.
    assert staff.patch(gallery_url(studio, gallery), {"title": "New title"}, format="json").status_code == 200
    assert len(_events(studio, Action.GALLERY_UPDATED, gallery)) == 1


def test_put_replaces_the_editable_fields(studio, staff):
    gallery = factories.gallery(studio, title="Old", client_name="Ann", selection_limit=5)
    response = staff.put(gallery_url(studio, gallery), {"title": "Replaced"}, format="json")
    assert response.status_code == 200, response.content
    fresh = _fresh(studio, gallery)
    assert fresh.title == "Replaced"
    assert fresh.access_code == gallery.access_code  # omitted: kept


def test_patching_the_code_rotates_it(studio, staff):
    gallery = factories.gallery(studio, access_code="FIRST123")
    version = gallery.access_version
    response = staff.patch(gallery_url(studio, gallery), {"access_code": "second-456"}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["access_code"] == "SECOND456"
    fresh = _fresh(studio, gallery)
    assert fresh.access_code == "SECOND456"
    assert fresh.access_version == version + 1
    [event] = _events(studio, Action.GALLERY_CODE_ROTATED, gallery)
    assert event.before == {"access_code": "FIRST123"}
    assert event.after == {"access_code": "SECOND456"}
    # The same code written differently is no rotation.
    assert staff.patch(gallery_url(studio, gallery), {"access_code": "second-456"}, format="json").status_code == 200
    assert len(_events(studio, Action.GALLERY_CODE_ROTATED, gallery)) == 1
    assert _fresh(studio, gallery).access_version == version + 1


def test_patching_to_a_taken_or_invalid_code_changes_nothing(studio, staff):
    factories.gallery(studio, access_code="TAKEN111")
    gallery = factories.gallery(studio, access_code="MINE2222", title="Mine")
    taken = staff.patch(gallery_url(studio, gallery), {"access_code": "taken111", "title": "T"}, format="json")
    assert_api_error(taken, 409, "ACCESS_CODE_TAKEN")
    invalid = staff.patch(gallery_url(studio, gallery), {"access_code": "x!", "title": "T"}, format="json")
    assert_api_error(invalid, 400, "INVALID_ACCESS_CODE")
    fresh = _fresh(studio, gallery)
    assert (fresh.access_code, fresh.title) == ("MINE2222", "Mine")
    assert _events(studio, Action.GALLERY_CODE_ROTATED, gallery) == []


def test_delete_removes_the_gallery_its_assets_and_files(studio, staff, django_capture_on_commit_callbacks):
    gallery = factories.gallery(studio)
    keep = factories.gallery(studio)
    first = factories.ready_asset(studio, gallery)
    second = factories.ready_asset(studio, gallery)
    kept_asset = factories.ready_asset(studio, keep)
    folder = factories.folder(studio, gallery)
    visitor = _visitor(studio, gallery, "Jo")
    _rate(studio, gallery, visitor, (first, 5))
    with _acting(studio):
        services.gallery_set_cover(gallery=gallery, asset=first)
        services.placements_add(folder=folder, assets=[second])
    _finalize(studio, gallery, visitor)
    files = _files_under(_gallery_dir(gallery))
    assert len(files) == 8  # two originals, three derivatives each
    kept_files = _files_under(_gallery_dir(keep))
    assert kept_files

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = staff.delete(gallery_url(studio, gallery))
    assert response.status_code == 204, response.content
    assert callbacks
    with unscoped():
        assert not Gallery.objects.filter(pk=gallery.pk).exists()
        assert not Asset.objects.filter(gallery_id=gallery.pk).exists()
        assert not Folder.objects.filter(gallery_id=gallery.pk).exists()
        assert not Rating.objects.filter(asset_id__in=[first.pk, second.pk]).exists()
        assert not Selection.objects.filter(gallery_id=gallery.pk).exists()
        assert not Visitor.objects.filter(gallery_id=gallery.pk).exists()
        assert Asset.objects.filter(pk=kept_asset.pk).exists()
    assert _files_under(_gallery_dir(gallery)) == []
    assert _files_under(_gallery_dir(keep)) == kept_files
    [event] = _events(studio, Action.GALLERY_DELETED, gallery)
    assert event.before["title"] == gallery.title
    assert staff.get(gallery_url(studio, gallery)).status_code == 404


def test_another_studios_gallery_is_not_found(studio, other_studio, staff):
    theirs = factories.gallery(other_studio)
    for method, suffix in [("get", ""), ("patch", ""), ("delete", ""), ("post", "publish/"), ("get", "assets/")]:
        response = getattr(staff, method)(gallery_url(studio, theirs, suffix), {}, format="json")
        assert_api_error(response, 404, "NOT_FOUND")
    with unscoped():
        assert Gallery.objects.get(pk=theirs.pk).status == GalleryStatus.DRAFT


# --- 2. Roles on every endpoint --------------------------------------------------------------------------

READ, WRITE, ADMIN = 0, 1, 2
LEVEL = {Role.VIEWER: READ, Role.ASSISTANT: WRITE, Role.PHOTOGRAPHER: ADMIN, Role.ADMIN: ADMIN, Role.OWNER: ADMIN}


class World:
    """One gallery and, made on demand, what an endpoint needs."""

    def __init__(self, studio) -> None:
        self.studio = studio
        self.gallery = factories.gallery(studio, title="Roles")

    def url(self, suffix: str = "") -> str:
        return gallery_url(self.studio, self.gallery, suffix)

    @cached_property
    def asset(self) -> Asset:
        return factories.ready_asset(self.studio, self.gallery)

    @cached_property
    def folder(self) -> Folder:
        return factories.folder(self.studio, self.gallery, "Album")

    @cached_property
    def other_folder(self) -> Folder:
        return factories.folder(self.studio, self.gallery, "Prints")

    @cached_property
    def placed(self) -> Asset:
        with _acting(self.studio):
            services.placements_add(folder=self.folder, assets=[self.asset])
        return self.asset

    @cached_property
    def batch(self) -> UploadBatch:
        with studio_scope(self.studio):
            return UploadBatch.objects.create(studio=self.studio, gallery=self.gallery)

    @cached_property
    def visitor(self) -> Visitor:
        return _visitor(self.studio, self.gallery, "Jo Client", "jo@example.com")

    @cached_property
    def selection(self) -> Selection:
        _rate(self.studio, self.gallery, self.visitor, (self.asset, 4))
        return _finalize(self.studio, self.gallery, self.visitor)

    def published(self) -> World:
        with _acting(self.studio):
            services.gallery_publish(gallery=self.gallery)
        return self


Request = tuple[str, Any]
ENDPOINTS: list[tuple[str, int, str, Callable[[World], Request], int]] = [
    ("gallery-list", READ, "get", lambda w: (gallery_url(w.studio), None), 200),
    ("gallery-get", READ, "get", lambda w: (w.url(), None), 200),
    ("gallery-create", WRITE, "post", lambda w: (gallery_url(w.studio), {"title": "New"}), 201),
    ("gallery-patch", WRITE, "patch", lambda w: (w.url(), {"title": "Renamed"}), 200),
    ("gallery-put", WRITE, "put", lambda w: (w.url(), {"title": "Replaced"}), 200),
    ("gallery-delete", ADMIN, "delete", lambda w: (w.url(), None), 204),
    ("publish", ADMIN, "post", lambda w: (w.url("publish/"), None), 200),
    ("unpublish", ADMIN, "post", lambda w: (w.published().url("unpublish/"), None), 200),
    ("rotate-code", ADMIN, "post", lambda w: (w.url("rotate-code/"), {"access_code": "ROTATED9"}), 200),
    ("set-cover", WRITE, "post", lambda w: (w.url("set-cover/"), {"asset": str(w.asset.pk)}), 200),
    ("reopen-selection", ADMIN, "post", lambda w: (w.selection and w.url("reopen-selection/"), None), 200),
    ("regenerate", WRITE, "post", lambda w: (w.asset and w.url("regenerate-derivatives/"), {}), 202),
    ("asset-list", READ, "get", lambda w: (w.asset and w.url("assets/"), None), 200),
    ("asset-get", READ, "get", lambda w: (w.url(f"assets/{w.asset.pk}/"), None), 200),
    ("asset-delete", WRITE, "delete", lambda w: (w.url(f"assets/{w.asset.pk}/"), None), 204),
    ("asset-media", READ, "get", lambda w: (w.url(f"assets/{w.asset.pk}/media/thumb/"), None), 200),
    (
        "upload-presign",
        WRITE,
        "post",
        lambda w: (w.url("uploads/"), {"files": [{"filename": "a.jpg", "size": 10, "content_type": "image/jpeg"}]}),
        201,
    ),
    ("upload-progress", READ, "get", lambda w: (w.url(f"uploads/{w.batch.pk}/"), None), 200),
    ("upload-complete", WRITE, "post", lambda w: (w.url(f"uploads/{w.batch.pk}/complete/"), {}), 200),
    ("ratings", READ, "get", lambda w: (w.selection and w.url("ratings/"), None), 200),
    ("selection-list", READ, "get", lambda w: (w.selection and w.url("selections/"), None), 200),
    ("selection-get", READ, "get", lambda w: (w.url(f"selections/{w.selection.pk}/"), None), 200),
    ("visitors", READ, "get", lambda w: (w.visitor and w.url("visitors/"), None), 200),
    ("folder-list", READ, "get", lambda w: (w.folder and w.url("folders/"), None), 200),
    ("folder-create", WRITE, "post", lambda w: (w.url("folders/"), {"name": "Favourites"}), 201),
    ("folder-rename", WRITE, "patch", lambda w: (w.url(f"folders/{w.folder.pk}/"), {"name": "Renamed"}), 200),
    ("folder-delete", WRITE, "delete", lambda w: (w.url(f"folders/{w.folder.pk}/"), None), 204),
    (
        "folder-add",
        WRITE,
        "post",
        lambda w: (w.url(f"folders/{w.folder.pk}/add/"), {"assets": [str(w.asset.pk)]}),
        204,
    ),
    (
        "folder-remove",
        WRITE,
        "post",
        lambda w: (w.url(f"folders/{w.folder.pk}/remove/"), {"assets": [str(w.placed.pk)]}),
        204,
    ),
    (
        "folder-move",
        WRITE,
        "post",
        lambda w: (
            w.url(f"folders/{w.folder.pk}/move/"),
            {"assets": [str(w.placed.pk)], "to": str(w.other_folder.pk)},
        ),
        204,
    ),
]


@pytest.mark.parametrize("role", list(LEVEL), ids=str)
@pytest.mark.parametrize(("need", "method", "build", "ok"), [e[1:] for e in ENDPOINTS], ids=[e[0] for e in ENDPOINTS])
def test_role_scopes(studio, client_for, role, need, method, build, ok):
    membership = factories.owner_membership(studio) if role == Role.OWNER else factories.member(studio, role)
    client = client_for(membership)
    world = World(studio)
    url, body = build(world)
    before = _audit_count(studio)
    response = getattr(client, method)(url, body, format="json") if body is not None else getattr(client, method)(url)
    content = _body(response)
    if LEVEL[role] >= need:
        assert response.status_code == ok, content
        return
    error = assert_api_error(response, 403, "PERMISSION_DENIED")
    assert error["message"]
    assert _audit_count(studio) == before  # nothing was done
    fresh = _fresh(studio, world.gallery)
    assert (fresh.status, fresh.access_code, fresh.title) == (
        world.gallery.status,
        world.gallery.access_code,
        world.gallery.title,
    )


def test_non_members_get_404_everywhere(studio, other_studio, client_for):
    stranger = client_for(factories.owner_membership(other_studio))
    world = World(studio)
    for name, _, method, build, _ in ENDPOINTS:
        url, body = build(world)
        response = getattr(stranger, method)(url, body or {}, format="json")
        assert response.status_code == 404, (name, response.status_code)


def test_assistant_cannot_rotate_the_code_through_patch(studio, client_for, make_member):
    gallery = factories.gallery(studio, access_code="KEEPME22")
    assistant = client_for(make_member(Role.ASSISTANT))
    assert_api_error(assistant.post(gallery_url(studio, gallery, "rotate-code/")), 403, "PERMISSION_DENIED")
    response = assistant.patch(gallery_url(studio, gallery), {"access_code": "STOLEN99"}, format="json")
    assert response.status_code == 403, response.content
    assert _fresh(studio, gallery).access_code == "KEEPME22"


def test_assistant_may_edit_but_not_change_access(studio, client_for, make_member):
    gallery = factories.gallery(studio, access_code="KEEPME22")
    assistant = client_for(make_member(Role.ASSISTANT))
    edited = assistant.patch(gallery_url(studio, gallery), {"title": "By the assistant"}, format="json")
    assert edited.status_code == 200, edited.content
    for suffix in ["publish/", "unpublish/", "rotate-code/", "reopen-selection/"]:
        assert_api_error(assistant.post(gallery_url(studio, gallery, suffix)), 403, "PERMISSION_DENIED")
    assert_api_error(assistant.delete(gallery_url(studio, gallery)), 403, "PERMISSION_DENIED")
    fresh = _fresh(studio, gallery)
    assert (fresh.title, fresh.status, fresh.access_code) == ("By the assistant", GalleryStatus.DRAFT, "KEEPME22")


# --- 3. Lifecycle actions ---------------------------------------------------------------------------------


def test_publish_and_unpublish(studio, staff):
    gallery = factories.gallery(studio, access_code="LIVE2025")
    version = gallery.access_version
    assert _open_portal(studio, "LIVE2025").status_code == 403  # a draft is not open

    published = staff.post(gallery_url(studio, gallery, "publish/"))
    assert published.status_code == 200, published.content
    assert published.json()["status"] == GalleryStatus.PUBLISHED
    assert _fresh(studio, gallery).access_version == version  # publishing cuts nobody off
    assert [e.after for e in _events(studio, Action.GALLERY_PUBLISHED, gallery)] == [{"status": "published"}]
    portal = _portal()
    opened = portal.post("/api/v1/portal/access/", {"studio": studio.slug, "code": "live2025"}, format="json")
    assert opened.status_code == 200, opened.content
    assert portal.get(f"/api/v1/portal/galleries/{gallery.pk}/").status_code == 200

    # Publishing again changes nothing.
    assert staff.post(gallery_url(studio, gallery, "publish/")).status_code == 200
    assert len(_events(studio, Action.GALLERY_PUBLISHED, gallery)) == 1

    unpublished = staff.post(gallery_url(studio, gallery, "unpublish/"))
    assert unpublished.status_code == 200, unpublished.content
    assert unpublished.json()["status"] == GalleryStatus.DRAFT
    assert _fresh(studio, gallery).access_version == version + 1
    [event] = _events(studio, Action.GALLERY_UNPUBLISHED, gallery)
    assert (event.before, event.after) == ({"status": "published"}, {"status": "draft"})
    # The open portal session ends with it.
    assert portal.get(f"/api/v1/portal/galleries/{gallery.pk}/").status_code in (401, 403)

    staff.post(gallery_url(studio, gallery, "unpublish/"))
    assert _fresh(studio, gallery).access_version == version + 1  # already a draft: no bump


def test_rotate_code_generates_a_new_code_and_cuts_the_old_one(studio, staff):
    gallery = factories.gallery(studio, access_code="OLDCODE1")
    staff.post(gallery_url(studio, gallery, "publish/"))
    portal = _portal()
    assert (
        portal.post("/api/v1/portal/access/", {"studio": studio.slug, "code": "OLDCODE1"}, format="json").status_code
        == 200
    )
    version = _fresh(studio, gallery).access_version

    rotated = staff.post(gallery_url(studio, gallery, "rotate-code/"), {}, format="json")
    assert rotated.status_code == 200, rotated.content
    new = rotated.json()["access_code"]
    assert new != "OLDCODE1" and len(new) == 8 and set(new) <= set(CODE_ALPHABET)
    assert _fresh(studio, gallery).access_version == version + 1
    [event] = _events(studio, Action.GALLERY_CODE_ROTATED, gallery)
    assert event.before == {"access_code": "OLDCODE1"} and event.after == {"access_code": new}

    assert_api_error(_open_portal(studio, "OLDCODE1"), 403, "ACCESS_DENIED")
    assert _open_portal(studio, new.lower()).status_code == 200
    # The session opened with the old code is over.
    assert portal.get(f"/api/v1/portal/galleries/{gallery.pk}/").status_code == 401

    custom = staff.post(gallery_url(studio, gallery, "rotate-code/"), {"access_code": "smith-2026"}, format="json")
    assert custom.status_code == 200 and custom.json()["access_code"] == "SMITH2026"
    assert _open_portal(studio, "SMITH2026").status_code == 200
    assert_api_error(_open_portal(studio, new), 403, "ACCESS_DENIED")


def test_rotate_code_refuses_taken_and_invalid_codes(studio, staff):
    factories.gallery(studio, access_code="TAKEN111")
    gallery = factories.gallery(studio, access_code="MINE2222")
    taken = staff.post(gallery_url(studio, gallery, "rotate-code/"), {"access_code": "taken-111"}, format="json")
    assert_api_error(taken, 409, "ACCESS_CODE_TAKEN")
    invalid = staff.post(gallery_url(studio, gallery, "rotate-code/"), {"access_code": "no"}, format="json")
    assert_api_error(invalid, 400, "INVALID_ACCESS_CODE")
    fresh = _fresh(studio, gallery)
    assert fresh.access_code == "MINE2222" and fresh.access_version == gallery.access_version
    assert _events(studio, Action.GALLERY_CODE_ROTATED, gallery) == []


def test_set_cover_takes_a_ready_asset_of_this_gallery_only(studio, other_studio, staff):
    gallery = factories.gallery(studio)
    ready = factories.ready_asset(studio, gallery)
    elsewhere = factories.ready_asset(studio)  # another gallery of the studio
    foreign = factories.ready_asset(other_studio)
    with studio_scope(studio):
        waiting = Asset.objects.create(
            studio=studio,
            gallery=gallery,
            original_filename="late.jpg",
            storage_key=f"studios/{studio.pk}/late.jpg",
            content_type="image/jpeg",
            size=10,
        )

    response = staff.post(gallery_url(studio, gallery, "set-cover/"), {"asset": str(ready.pk)}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["cover"] == str(ready.pk)
    assert _fresh(studio, gallery).cover_id == ready.pk
    [event] = _events(studio, Action.GALLERY_COVER_SET, gallery)
    assert event.after == {"cover": str(ready.pk)}

    other = staff.post(gallery_url(studio, gallery, "set-cover/"), {"asset": str(elsewhere.pk)}, format="json")
    assert_api_error(other, 400, "INVALID_COVER")
    not_ready = staff.post(gallery_url(studio, gallery, "set-cover/"), {"asset": str(waiting.pk)}, format="json")
    assert_api_error(not_ready, 400, "INVALID_COVER")
    theirs = staff.post(gallery_url(studio, gallery, "set-cover/"), {"asset": str(foreign.pk)}, format="json")
    assert "asset" in assert_api_error(theirs, 400, "VALIDATION_ERROR")["fields"]
    assert _fresh(studio, gallery).cover_id == ready.pk

    cleared = staff.post(gallery_url(studio, gallery, "set-cover/"), {"asset": None}, format="json")
    assert cleared.status_code == 200 and cleared.json()["cover"] is None
    assert _fresh(studio, gallery).cover_id is None


def test_reopen_selection(studio, staff):
    gallery = factories.gallery(studio)
    assert_api_error(staff.post(gallery_url(studio, gallery, "reopen-selection/")), 409, "NO_FINALIZED_SELECTION")

    asset = factories.ready_asset(studio, gallery)
    visitor = _visitor(studio, gallery, "Jo Client", "jo@example.com")
    _rate(studio, gallery, visitor, (asset, 5))
    selection = _finalize(studio, gallery, visitor)

    response = staff.post(gallery_url(studio, gallery, "reopen-selection/"))
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["id"] == str(selection.pk)
    assert body["status"] == SelectionStatus.REOPENED
    assert body["reopened_at"]
    fresh = _fresh(studio, selection)
    assert fresh.status == SelectionStatus.REOPENED
    assert fresh.reopened_by_id == factories.owner_membership(studio).user_id
    [event] = _events(studio, Action.SELECTION_REOPENED, selection)
    assert event.after == {"status": "reopened"}
    # The client may rate again.
    _rate(studio, gallery, visitor, (asset, 2))
    assert_api_error(staff.post(gallery_url(studio, gallery, "reopen-selection/")), 409, "NO_FINALIZED_SELECTION")


def test_regenerate_derivatives(studio, other_studio, staff, django_capture_on_commit_callbacks):
    gallery = factories.gallery(studio)
    first = factories.ready_asset(studio, gallery)
    second = factories.ready_asset(studio, gallery)
    foreign = factories.ready_asset(studio)
    with studio_scope(studio):
        failed = Asset.objects.create(
            studio=studio,
            gallery=gallery,
            original_filename="bad.jpg",
            storage_key=f"studios/{studio.pk}/bad.jpg",
            content_type="image/jpeg",
            size=10,
            status=AssetStatus.FAILED,
        )
    thumbs = {a.pk: Path(settings.MEDIA_ROOT) / a.derivatives["thumb"]["key"] for a in (first, second)}
    for path in thumbs.values():
        path.unlink()
    processed = len(_events(studio, Action.ASSET_PROCESSED))

    with django_capture_on_commit_callbacks(execute=True):
        response = staff.post(gallery_url(studio, gallery, "regenerate-derivatives/"), {}, format="json")
    assert response.status_code == 202, response.content
    assert {row["id"] for row in response.json()} == {str(first.pk), str(second.pk)}
    [event] = _events(studio, Action.ASSET_REGENERATE_REQUESTED, gallery)
    assert set(event.after["assets"]) == {str(first.pk), str(second.pk)}
    assert all(path.is_file() for path in thumbs.values())  # made again
    assert len(_events(studio, Action.ASSET_PROCESSED)) == processed + 2
    assert _fresh(studio, failed).status == AssetStatus.FAILED

    # Chosen assets: only ready ones of this gallery.
    with django_capture_on_commit_callbacks(execute=True):
        some = staff.post(
            gallery_url(studio, gallery, "regenerate-derivatives/"),
            {"assets": [str(first.pk), str(failed.pk)]},
            format="json",
        )
    assert some.status_code == 202 and [row["id"] for row in some.json()] == [str(first.pk)]
    wrong = staff.post(
        gallery_url(studio, gallery, "regenerate-derivatives/"), {"assets": [str(foreign.pk)]}, format="json"
    )
    assert "assets" in assert_api_error(wrong, 400, "VALIDATION_ERROR")["fields"]
    assert len(_events(studio, Action.ASSET_REGENERATE_REQUESTED, gallery)) == 2

    # Nothing ready: accepted, nothing queued, nothing audited.
    empty = factories.gallery(studio)
    with django_capture_on_commit_callbacks() as callbacks:
        nothing = staff.post(gallery_url(studio, empty, "regenerate-derivatives/"), {}, format="json")
    assert nothing.status_code == 202 and nothing.json() == []
    assert callbacks == []
    assert _events(studio, Action.ASSET_REGENERATE_REQUESTED, empty) == []


# --- 4. Uploads ---------------------------------------------------------------------------------------------


def test_upload_end_to_end_with_progress(studio, staff, django_capture_on_commit_callbacks):
    gallery = factories.gallery(studio)
    files = [
        ("a.jpg", jpeg(320, 240), "image/jpeg"),
        ("b.png", png(), "image/png"),
        ("broken.jpg", b"this is text, not a photo\n" * 20, "image/jpeg"),
    ]
    with django_capture_on_commit_callbacks(execute=True):
        result = upload(staff, studio, gallery, files)
    batch = result["batch"]
    assert len(result["presign"]["targets"]) == 3 and result["presign"]["rejected"] == []
    assert len(result["processing"]) == 2
    assert result["missing"] == []
    [failed] = result["failed"]
    assert failed["filename"] == "broken.jpg"
    assert "not a JPEG" in failed["reason"]

    [requested] = _events(studio, Action.UPLOAD_REQUESTED, gallery)
    total = sum(len(data) for _, data, _ in files)
    # Small files: each reserves its size again for its derivatives.
    assert requested.after == {"batch": batch, "files": 3, "bytes": total, "reserved_bytes": 2 * total, "rejected": 0}
    assert requested.actor_user_id == factories.owner_membership(studio).user_id

    progress = staff.get(gallery_url(studio, gallery, f"uploads/{batch}/"))
    assert progress.status_code == 200, progress.content
    body = progress.json()
    assert body["id"] == batch
    assert body["counts"] == {"awaiting_upload": 0, "processing": 0, "ready": 2, "failed": 1}
    assert body["done"] is True
    assert body["failed"] == [failed]

    with studio_scope(studio):
        broken = Asset.objects.get(pk=failed["asset"])
        ready = list(Asset.objects.filter(gallery=gallery, status=AssetStatus.READY))
    assert broken.status == AssetStatus.FAILED and broken.failure_reason == failed["reason"]
    assert (Path(settings.MEDIA_ROOT) / broken.storage_key).exists()  # kept until the cleanup's retention
    assert {a.original_filename for a in ready} == {"a.jpg", "b.png"}
    assert all(set(a.derivatives) == {"thumb", "medium", "large"} for a in ready)

    # Completing again finds nothing new.
    again = staff.post(gallery_url(studio, gallery, f"uploads/{batch}/complete/"), {}, format="json")
    assert again.status_code == 200
    assert again.json() == {"processing": [], "failed": [], "missing": []}
    assert staff.get(gallery_url(studio, gallery, f"uploads/{batch}/")).json()["counts"]["ready"] == 2


def test_upload_progress_while_files_are_missing(studio, staff, django_capture_on_commit_callbacks):
    from tests.gallery_helpers import post_to_target

    gallery = factories.gallery(studio)
    data = {"one.jpg": jpeg(100, 80), "two.jpg": jpeg(90, 60, colour=(1, 2, 3))}
    presign = staff.post(
        gallery_url(studio, gallery, "uploads/"),
        {
            "files": [
                *({"filename": n, "size": len(d), "content_type": "image/jpeg"} for n, d in data.items()),
                {"filename": "notes.txt", "size": 5, "content_type": "text/plain"},
            ]
        },
        format="json",
    )
    assert presign.status_code == 201, presign.content
    body = presign.json()
    assert [r["filename"] for r in body["rejected"]] == ["notes.txt"]
    targets = {t["filename"]: t for t in body["targets"]}
    batch = body["batch"]
    [requested] = _events(studio, Action.UPLOAD_REQUESTED, gallery)
    assert requested.after["files"] == 2 and requested.after["rejected"] == 1

    waiting = staff.get(gallery_url(studio, gallery, f"uploads/{batch}/")).json()
    assert waiting["counts"]["awaiting_upload"] == 2 and waiting["done"] is False

    assert post_to_target(targets["one.jpg"], data["one.jpg"]).status_code == 204
    with django_capture_on_commit_callbacks(execute=True):
        first = staff.post(gallery_url(studio, gallery, f"uploads/{batch}/complete/"), {}, format="json").json()
    assert first["processing"] == [targets["one.jpg"]["asset"]]
    assert first["missing"] == [targets["two.jpg"]["asset"]]
    half = staff.get(gallery_url(studio, gallery, f"uploads/{batch}/")).json()
    assert half["counts"] == {"awaiting_upload": 1, "processing": 0, "ready": 1, "failed": 0}
    assert half["done"] is False

    assert post_to_target(targets["two.jpg"], data["two.jpg"]).status_code == 204
    with django_capture_on_commit_callbacks(execute=True):
        second = staff.post(gallery_url(studio, gallery, f"uploads/{batch}/complete/"), {}, format="json").json()
    assert second == {"processing": [targets["two.jpg"]["asset"]], "failed": [], "missing": []}
    done = staff.get(gallery_url(studio, gallery, f"uploads/{batch}/")).json()
    assert done["counts"]["ready"] == 2 and done["done"] is True and done["failed"] == []


def test_upload_batch_of_another_gallery_is_not_found(studio, staff):
    gallery = factories.gallery(studio)
    other = factories.gallery(studio)
    with studio_scope(studio):
        batch = UploadBatch.objects.create(studio=studio, gallery=other)
    assert_api_error(staff.get(gallery_url(studio, gallery, f"uploads/{batch.pk}/")), 404, "NOT_FOUND")
    assert staff.get(gallery_url(studio, other, f"uploads/{batch.pk}/")).status_code == 200


# --- 5. Assets ----------------------------------------------------------------------------------------------


def _fake_assets(studio, gallery, count: int, *, status: str = AssetStatus.READY, start: int = 0) -> list[Asset]:
    with studio_scope(studio):
        assets = []
        for index in range(start, start + count):
            asset = Asset(
                studio=studio,
                gallery=gallery,
                original_filename=f"IMG_{index:05d}.jpg",
                content_type="image/jpeg",
                size=1000 + index,
                status=status,
                sort_order=index,
                width=4000,
                height=3000,
            )
            asset.storage_key = original_key(asset, "jpg")
            if status == AssetStatus.READY:
                asset.derivatives = {
                    size: {"key": derivative_key(asset, size), "width": w, "height": w * 3 // 4, "bytes": 100}
                    for size, w in (("thumb", 400), ("medium", 1200), ("large", 2048))
                }
            assets.append(asset)
        return Asset.objects.bulk_create(assets)


def test_asset_list_filters_ratings_and_urls(studio, staff):
    gallery = factories.gallery(studio)
    other = factories.gallery(studio)
    ready = factories.ready_asset(studio, gallery, name="ready.jpg")
    trashed = factories.ready_asset(studio, gallery, name="trashed.jpg")
    [failed] = _fake_assets(studio, gallery, 1, status=AssetStatus.FAILED, start=900)
    [waiting] = _fake_assets(studio, gallery, 1, status=AssetStatus.AWAITING_UPLOAD, start=901)
    factories.ready_asset(studio, other, name="elsewhere.jpg")
    ann = _visitor(studio, gallery, "Ann")
    bob = _visitor(studio, gallery, "Bob")
    _rate(studio, gallery, ann, (ready, 5), (trashed, 1))
    _rate(studio, gallery, bob, (ready, 2))
    with _acting(studio):
        services.assets_trash(gallery=gallery, assets=[trashed])

    def rows(query: str = "") -> dict[str, dict]:
        response = staff.get(gallery_url(studio, gallery, "assets/") + query)
        assert response.status_code == 200, response.content
        return {row["original_filename"]: row for row in response.json()["results"]}

    everything = rows()
    assert set(everything) == {"ready.jpg", "trashed.jpg", failed.original_filename, waiting.original_filename}
    assert set(rows("?status=ready")) == {"ready.jpg", "trashed.jpg"}
    assert set(rows("?status=failed&status=awaiting_upload")) == {failed.original_filename, waiting.original_filename}
    assert set(rows("?trashed=true")) == {"trashed.jpg"}
    assert "trashed.jpg" not in rows("?trashed=false") and "ready.jpg" in rows("?trashed=false")
    assert set(rows("?status=ready&trashed=false")) == {"ready.jpg"}

    row = everything["ready.jpg"]
    assert row["average_stars"] == pytest.approx(3.5) and row["rating_count"] == 2
    assert row["trashed"] is False and everything["trashed.jpg"]["trashed"] is True
    assert everything["trashed.jpg"]["average_stars"] == pytest.approx(1.0)
    assert everything[failed.original_filename]["average_stars"] is None
    assert everything[failed.original_filename]["rating_count"] == 0
    base = gallery_url(studio, gallery, f"assets/{ready.pk}/media/")
    assert row["urls"] == {v: f"{base}{v}/" for v in ("thumb", "medium", "large", "original")}
    assert everything[failed.original_filename]["urls"] == dict.fromkeys(("thumb", "medium", "large", "original"))
    assert everything[waiting.original_filename]["urls"]["original"] is None
    assert row["status"] == AssetStatus.READY and row["width"] == 64 and row["height"] == 48

    detail = staff.get(gallery_url(studio, gallery, f"assets/{ready.pk}/"))
    assert detail.status_code == 200 and detail.json()["average_stars"] == pytest.approx(3.5)
    # Only through its own gallery.
    assert_api_error(staff.get(gallery_url(studio, other, f"assets/{ready.pk}/")), 404, "NOT_FOUND")


def test_media_streams_for_members(studio, other_studio, client_for, make_member):
    gallery = factories.gallery(studio)
    asset = factories.ready_asset(studio, gallery)
    viewer = client_for(make_member(Role.VIEWER))
    for variant in ("thumb", "medium", "large"):
        response = viewer.get(gallery_url(studio, gallery, f"assets/{asset.pk}/media/{variant}/"))
        assert response.status_code == 200, variant
        assert response["Content-Type"] == "image/webp"
        data = _body(response)
        assert data[:4] == b"RIFF" and data[8:12] == b"WEBP"
    original = viewer.get(gallery_url(studio, gallery, f"assets/{asset.pk}/media/original/?download=1"))
    assert original.status_code == 200
    assert _body(original)[:3] == b"\xff\xd8\xff"
    assert "attachment" in original["Content-Disposition"]

    assert viewer.get(gallery_url(studio, gallery, f"assets/{asset.pk}/media/huge/")).status_code == 404
    missing = viewer.get(gallery_url(studio, gallery, "assets/00000000-0000-0000-0000-000000000001/media/thumb/"))
    assert_api_error(missing, 404, "NOT_FOUND")
    other_gallery = factories.gallery(studio)
    wrong_gallery = viewer.get(gallery_url(studio, other_gallery, f"assets/{asset.pk}/media/thumb/"))
    assert_api_error(wrong_gallery, 404, "NOT_FOUND")
    [waiting] = _fake_assets(studio, gallery, 1, status=AssetStatus.AWAITING_UPLOAD, start=50)
    assert viewer.get(gallery_url(studio, gallery, f"assets/{waiting.pk}/media/thumb/")).status_code == 404
    assert viewer.get(gallery_url(studio, gallery, f"assets/{waiting.pk}/media/original/")).status_code == 404
    stranger = client_for(factories.owner_membership(other_studio))
    assert stranger.get(gallery_url(studio, gallery, f"assets/{asset.pk}/media/thumb/")).status_code == 404
    assert APIClient().get(gallery_url(studio, gallery, f"assets/{asset.pk}/media/thumb/")).status_code == 401


def test_delete_asset_moves_it_to_the_bin_then_purge_removes_files(studio, staff, django_capture_on_commit_callbacks):
    gallery = factories.gallery(studio)
    cover = factories.ready_asset(studio, gallery)
    other = factories.ready_asset(studio, gallery)
    with _acting(studio):
        services.gallery_set_cover(gallery=gallery, asset=cover)
    cover_files = [
        Path(settings.MEDIA_ROOT) / k for k in [cover.storage_key, *(d["key"] for d in cover.derivatives.values())]
    ]
    assert all(p.is_file() for p in cover_files)

    with django_capture_on_commit_callbacks(execute=True):
        response = staff.delete(gallery_url(studio, gallery, f"assets/{cover.pk}/"))
    assert response.status_code == 204, response.content
    # In the bin: gone from every list and no longer the cover, bytes kept.
    assert all(p.is_file() for p in cover_files)
    assert _fresh(studio, gallery).cover_id is None
    with studio_scope(studio):
        assert list(Asset.objects.filter(gallery=gallery)) == [other]
        assert Asset.with_deleted.get(pk=cover.pk).deleted_at is not None
    [event] = _events(studio, Action.ASSET_DELETED, cover)
    assert event.before["original_filename"] == cover.original_filename and "in_bin_until" in event.after
    assert [a["id"] for a in staff.get(gallery_url(studio, gallery, "assets/")).json()["results"]] == [str(other.pk)]
    binned = staff.get(gallery_url(studio, gallery, "assets/"), {"in_bin": "true"}).json()["results"]
    assert [a["id"] for a in binned] == [str(cover.pk)]
    assert_api_error(staff.get(gallery_url(studio, gallery, f"assets/{cover.pk}/")), 404, "NOT_FOUND")
    assert staff.delete(gallery_url(studio, gallery, f"assets/{cover.pk}/")).status_code == 404  # already in the bin
    # A photo not in the bin cannot be purged in one step.
    assert_api_error(staff.post(gallery_url(studio, gallery, f"assets/{other.pk}/purge/")), 409, "NOT_IN_BIN")
    assert_api_error(staff.post(gallery_url(studio, gallery, f"assets/{other.pk}/restore/")), 409, "NOT_IN_BIN")

    with django_capture_on_commit_callbacks(execute=True):
        response = staff.post(gallery_url(studio, gallery, f"assets/{cover.pk}/purge/"))
    assert response.status_code == 204, response.content
    assert not any(p.exists() for p in cover_files)
    assert (Path(settings.MEDIA_ROOT) / other.storage_key).is_file()
    with studio_scope(studio):
        assert not Asset.with_deleted.filter(pk=cover.pk).exists()
    assert _events(studio, Action.ASSET_PURGED, cover)
    assert_api_error(staff.post(gallery_url(studio, gallery, f"assets/{cover.pk}/purge/")), 404, "NOT_FOUND")


def test_restore_from_the_bin_brings_the_photo_back_as_it_was(studio, staff):
    gallery = factories.gallery(studio)
    asset = factories.ready_asset(studio, gallery)
    assert staff.delete(gallery_url(studio, gallery, f"assets/{asset.pk}/")).status_code == 204
    response = staff.post(gallery_url(studio, gallery, f"assets/{asset.pk}/restore/"))
    assert response.status_code == 200, response.content
    assert response.json()["id"] == str(asset.pk) and response.json()["status"] == "ready"
    assert [a["id"] for a in staff.get(gallery_url(studio, gallery, "assets/")).json()["results"]] == [str(asset.pk)]
    assert _events(studio, Action.ASSET_RESTORED_FROM_BIN, asset)
    assert staff.get(gallery_url(studio, gallery, "assets/"), {"in_bin": "true"}).json()["results"] == []


def test_asset_list_query_count_does_not_grow_with_the_page(studio, staff):
    gallery = factories.gallery(studio)
    assets = _fake_assets(studio, gallery, 150)
    visitors = [_visitor(studio, gallery, f"V{i}") for i in range(3)]
    with studio_scope(studio):
        Rating.objects.bulk_create(
            [
                Rating(studio=studio, asset=a, visitor=v, stars=1 + (i % 5))
                for i, a in enumerate(assets)
                for v in visitors
            ]
        )
    url = gallery_url(studio, gallery, "assets/")
    staff.get(url + "?page_size=1")  # warm up: token last-used write, caches

    counts = {}
    for size in (10, 100):
        with CaptureQueriesContext(connection) as queries:
            response = staff.get(f"{url}?page_size={size}")
        assert response.status_code == 200, response.content
        body = response.json()
        assert len(body["results"]) == size
        assert all(row["rating_count"] == 3 and row["urls"]["thumb"] for row in body["results"])
        counts[size] = len(queries)
    assert counts[10] == counts[100], counts
    assert counts[100] <= 5, counts  # token, membership, gallery, one page of assets

    # The next page follows on.
    page = staff.get(f"{url}?page_size=100").json()
    rest = staff.get(page["next"]).json()
    assert len(rest["results"]) == 50
    seen = [row["id"] for row in page["results"] + rest["results"]]
    assert len(set(seen)) == 150


# --- 6. What clients did: ratings, selections, visitors ----------------------------------------------


def test_ratings_summary(studio, staff):
    gallery = factories.gallery(studio)
    first = factories.ready_asset(studio, gallery, name="first.jpg")
    second = factories.ready_asset(studio, gallery, name="second.jpg")
    unrated = factories.ready_asset(studio, gallery, name="unrated.jpg")
    jo = _visitor(studio, gallery, "Jo Client", "jo@example.com")
    anon = _visitor(studio, gallery, "")
    mail = _visitor(studio, gallery, "", "only@example.com")
    _rate(studio, gallery, jo, (first, 5), (second, 2))
    _rate(studio, gallery, anon, (first, 3))
    _rate(studio, gallery, mail, (first, 4))

    response = staff.get(gallery_url(studio, gallery, "ratings/"))
    assert response.status_code == 200, response.content
    rows = {row["original_filename"]: row for row in response.json()["results"]}
    assert set(rows) == {"first.jpg", "second.jpg", "unrated.jpg"}
    assert rows["first.jpg"]["id"] == str(first.pk)
    assert rows["first.jpg"]["average_stars"] == pytest.approx(4.0)
    assert rows["first.jpg"]["rating_count"] == 3
    assert rows["first.jpg"]["ratings"] == [
        {"visitor": str(jo.pk), "label": "Jo Client (jo@example.com)", "stars": 5},
        {"visitor": str(anon.pk), "label": "Anonymous visitor", "stars": 3},
        {"visitor": str(mail.pk), "label": "only@example.com", "stars": 4},
    ]
    assert rows["second.jpg"]["average_stars"] == pytest.approx(2.0)
    assert rows["second.jpg"]["ratings"] == [{"visitor": str(jo.pk), "label": "Jo Client (jo@example.com)", "stars": 2}]
    assert rows["unrated.jpg"] == {
        "id": str(unrated.pk),
        "original_filename": "unrated.jpg",
        "average_stars": None,
        "rating_count": 0,
        "ratings": [],
    }


def _snapshot_stars(row: dict) -> dict[str, int]:
    """{visitor label: stars} of a snapshot row, whether stars are kept by
    label ({label: n}) or as a list of {visitor, label, stars}."""
    stars = row["stars"]
    if isinstance(stars, dict):
        return stars
    return {entry["label"]: entry["stars"] for entry in stars}


def test_selections_list_finalised_and_reopened_with_snapshots(studio, staff):
    gallery = factories.gallery(studio)
    first = factories.ready_asset(studio, gallery, name="first.jpg")
    second = factories.ready_asset(studio, gallery, name="second.jpg")
    jo = _visitor(studio, gallery, "Jo Client", "jo@example.com")
    with _acting(studio):
        folder = services.folder_create(gallery=gallery, name="Album", visitor=jo)
    _rate(studio, gallery, jo, (first, 4))
    older = _finalize(studio, gallery, jo)
    assert staff.post(gallery_url(studio, gallery, "reopen-selection/")).status_code == 200
    with _acting(studio):
        services.placements_add(folder=folder, assets=[second])
    newer = _finalize(studio, gallery, jo)

    response = staff.get(gallery_url(studio, gallery, "selections/"))
    assert response.status_code == 200, response.content
    results = response.json()["results"]
    assert [r["id"] for r in results] == [str(newer.pk), str(older.pk)]
    latest, reopened = results
    assert latest["status"] == SelectionStatus.FINALIZED and latest["reopened_at"] is None
    assert reopened["status"] == SelectionStatus.REOPENED and reopened["reopened_at"]
    assert latest["finalized_by_label"] == "Jo Client (jo@example.com)"
    assert reopened["asset_count"] == 1 and latest["asset_count"] == 2
    [row] = reopened["snapshot"]
    assert (row["asset"], row["filename"], row["average"], row["folders"]) == (str(first.pk), "first.jpg", 4.0, [])
    assert _snapshot_stars(row) == {"Jo Client (jo@example.com)": 4}
    assert [r["filename"] for r in latest["snapshot"]] == ["first.jpg", "second.jpg"]
    row = latest["snapshot"][1]
    assert (row["asset"], row["average"], row["folders"]) == (str(second.pk), None, ["Album"])
    assert _snapshot_stars(row) == {}
    detail = staff.get(gallery_url(studio, gallery, f"selections/{older.pk}/"))
    assert detail.status_code == 200 and detail.json() == reopened
    other = factories.gallery(studio)
    assert staff.get(gallery_url(studio, other, "selections/")).json()["results"] == []
    assert_api_error(staff.get(gallery_url(studio, other, f"selections/{older.pk}/")), 404, "NOT_FOUND")


def test_visitors_list(studio, staff):
    gallery = factories.gallery(studio, access_code="VISIT123")
    other = factories.gallery(studio)
    jo = _visitor(studio, gallery, "Jo Client", "jo@example.com")
    _visitor(studio, other, "Somebody else")
    staff.post(gallery_url(studio, gallery, "publish/"))
    opened = _portal().post(
        "/api/v1/portal/access/",
        {"studio": studio.slug, "code": "VISIT123", "name": "Sam", "email": "sam@example.com"},
        format="json",
    )
    assert opened.status_code == 200, opened.content

    response = staff.get(gallery_url(studio, gallery, "visitors/"))
    assert response.status_code == 200, response.content
    rows = response.json()["results"]
    assert {(r["name"], r["email"]) for r in rows} == {("Jo Client", "jo@example.com"), ("Sam", "sam@example.com")}
    assert set(rows[0]) == {"id", "name", "email", "created_at", "last_seen_at"}
    assert str(jo.pk) in {r["id"] for r in rows}


# --- 7. Staff folders ---------------------------------------------------------------------------------------


def _placed(studio, folder) -> list:
    with studio_scope(studio):
        return list(Placement.objects.filter(folder=folder).order_by("sort_order").values_list("asset_id", flat=True))


def test_folder_crud(studio, staff):
    gallery = factories.gallery(studio)
    url = gallery_url(studio, gallery, "folders/")
    created = staff.post(url, {"name": "Album"}, format="json")
    assert created.status_code == 201, created.content
    album = created.json()
    assert album["name"] == "Album" and album["asset_count"] == 0 and album["sort_order"] == 1
    second = staff.post(url, {"name": "Prints"}, format="json").json()
    assert second["sort_order"] == 2
    with studio_scope(studio):
        folder = Folder.objects.get(pk=album["id"])
    assert folder.created_by_visitor is None
    assert [e.after for e in _events(studio, Action.FOLDER_CREATED, folder)] == [
        {"name": "Album", "gallery": str(gallery.pk)}
    ]

    duplicate = staff.post(url, {"name": "Album"}, format="json")
    assert "name" in assert_api_error(duplicate, 409, "DUPLICATE_NAME")["fields"]
    # The same name in another gallery is fine.
    assert staff.post(gallery_url(studio, factories.gallery(studio), "folders/"), {"name": "Album"}).status_code == 201

    renamed = staff.patch(f"{url}{album['id']}/", {"name": "Wedding album"}, format="json")
    assert renamed.status_code == 200, renamed.content
    assert renamed.json()["name"] == "Wedding album"
    [event] = _events(studio, Action.FOLDER_UPDATED, folder)
    assert (event.before, event.after) == ({"name": "Album"}, {"name": "Wedding album"})
    clash = staff.patch(f"{url}{album['id']}/", {"name": "Prints"}, format="json")
    assert_api_error(clash, 409, "DUPLICATE_NAME")
    assert staff.put(f"{url}{album['id']}/", {"name": "X"}, format="json").status_code == 405

    listed = staff.get(url).json()["results"]
    assert [f["name"] for f in listed] == ["Wedding album", "Prints"]

    assert staff.delete(f"{url}{album['id']}/").status_code == 204
    with studio_scope(studio):
        assert not Folder.objects.filter(pk=folder.pk).exists()
    assert len(_events(studio, Action.FOLDER_DELETED, folder)) == 1
    assert [f["name"] for f in staff.get(url).json()["results"]] == ["Prints"]


def test_folder_patch_without_a_name_is_not_a_server_error(studio, staff):
    folder = factories.folder(studio, name="Album")
    # (Was a KeyError, a 500, before FolderViewSet.perform_update checked for the name.)
    staff.raise_request_exception = False
    response = staff.patch(gallery_url(studio, folder.gallery, f"folders/{folder.pk}/"), {}, format="json")
    assert response.status_code in (200, 400), response.status_code
    assert _fresh(studio, folder).name == "Album"
    assert _events(studio, Action.FOLDER_UPDATED, folder) == []


def test_folder_add_remove_move(studio, staff):
    gallery = factories.gallery(studio)
    a, b, c = (factories.ready_asset(studio, gallery) for _ in range(3))
    foreign = factories.ready_asset(studio)
    album = factories.folder(studio, gallery, "Album")
    prints = factories.folder(studio, gallery, "Prints")
    elsewhere = factories.folder(studio, name="Elsewhere")

    def post(folder, action: str, body: dict) -> Any:
        return staff.post(gallery_url(studio, gallery, f"folders/{folder.pk}/{action}/"), body, format="json")

    assert post(album, "add", {"assets": [str(a.pk), str(b.pk), str(c.pk)]}).status_code == 204
    assert _placed(studio, album) == [a.pk, b.pk, c.pk]
    assert post(album, "add", {"assets": [str(b.pk)]}).status_code == 204  # already there: no duplicate
    assert _placed(studio, album) == [a.pk, b.pk, c.pk]
    counts = {
        f["name"]: f["asset_count"] for f in staff.get(gallery_url(studio, gallery, "folders/")).json()["results"]
    }
    assert counts == {"Album": 3, "Prints": 0}

    assert post(album, "remove", {"assets": [str(b.pk)]}).status_code == 204
    assert _placed(studio, album) == [a.pk, c.pk]
    [removed] = _events(studio, Action.PLACEMENTS_REMOVED, album)
    assert removed.after == {"assets": [str(b.pk)]}

    assert post(album, "move", {"assets": [str(c.pk)], "to": str(prints.pk)}).status_code == 204
    assert _placed(studio, album) == [a.pk]
    assert _placed(studio, prints) == [c.pk]
    [moved] = _events(studio, Action.PLACEMENTS_MOVED, album)
    assert moved.after == {"to": str(prints.pk), "assets": [str(c.pk)]}

    wrong_asset = post(album, "add", {"assets": [str(foreign.pk)]})
    assert "assets" in assert_api_error(wrong_asset, 400, "VALIDATION_ERROR")["fields"]
    wrong_folder = post(album, "move", {"assets": [str(a.pk)], "to": str(elsewhere.pk)})
    assert_api_error(wrong_folder, 400, "INVALID_FOLDER")
    assert_api_error(post(album, "add", {"assets": "nope"}), 400, "VALIDATION_ERROR")
    assert _placed(studio, album) == [a.pk]
    assert_api_error(post(elsewhere, "add", {"assets": [str(a.pk)]}), 404, "NOT_FOUND")


def test_staff_folder_writes_work_while_the_selection_is_finalised(studio, staff):
    gallery = factories.gallery(studio, access_code="FINAL234")
    a = factories.ready_asset(studio, gallery)
    b = factories.ready_asset(studio, gallery)
    album = factories.folder(studio, gallery, "Album")
    staff.post(gallery_url(studio, gallery, "publish/"))
    portal = _portal()
    assert portal.post("/api/v1/portal/access/", {"studio": studio.slug, "code": "FINAL234"}).status_code == 200
    rated = portal.put(f"/api/v1/portal/galleries/{gallery.pk}/assets/{a.pk}/rating/", {"stars": 5}, format="json")
    assert rated.status_code == 204, rated.content
    assert portal.post(f"/api/v1/portal/galleries/{gallery.pk}/selection/").status_code == 201

    # The client is locked out...
    locked = portal.post(f"/api/v1/portal/galleries/{gallery.pk}/folders/", {"name": "Mine"}, format="json")
    assert_api_error(locked, 409, "SELECTION_FINALIZED")

    # ...staff are not.
    url = gallery_url(studio, gallery, "folders/")
    created = staff.post(url, {"name": "Retouch"}, format="json")
    assert created.status_code == 201, created.content
    retouch = created.json()["id"]
    assert staff.patch(f"{url}{retouch}/", {"name": "Retouching"}, format="json").status_code == 200
    assert staff.post(f"{url}{album.pk}/add/", {"assets": [str(a.pk), str(b.pk)]}, format="json").status_code == 204
    assert staff.post(f"{url}{album.pk}/remove/", {"assets": [str(a.pk)]}, format="json").status_code == 204
    moved = staff.post(f"{url}{album.pk}/move/", {"assets": [str(b.pk)], "to": retouch}, format="json")
    assert moved.status_code == 204, moved.content
    assert staff.delete(f"{url}{album.pk}/").status_code == 204
    with studio_scope(studio):
        assert [f.name for f in Folder.objects.filter(gallery=gallery)] == ["Retouching"]
        assert Selection.objects.get(gallery=gallery).status == SelectionStatus.FINALIZED
    assert _placed(studio, Folder(pk=retouch)) == [b.pk]
