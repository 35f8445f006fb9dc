"""The export queue on the embedded default (local storage, eager tasks):
asking, deduplicating, running, cancelling, failing, expiring, downloading,
for staff and for portal visitors; and the streaming ZIP itself."""

from __future__ import annotations

import io
import threading
import zipfile
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.utils import timezone
from rest_framework.test import APIClient

from audit.models import AuditEvent
from galleries import services as gallery_services
from galleries.models import Export, ExportStatus
from galleries.services import export_runner, exports
from galleries.storage import LocalMediaStore, media_store
from galleries.tasks import expire_exports, run_export
from galleries.zips import ZipMember, unique_safe_names, zip_chunks
from studio import context
from studio.roles import Role
from studio.tenancy import studio_scope, unscoped
from tests import factories
from tests.helpers import assert_api_error

# --- helpers ----------------------------------------------------------------------------------------


def _url(studio: Any, gallery: Any, suffix: str = "") -> str:
    return f"/api/v1/studios/{studio.slug}/galleries/{gallery.pk}/exports/{suffix}"


def _purl(gallery: Any, suffix: str = "") -> str:
    return f"/api/v1/portal/galleries/{gallery.pk}/exports/{suffix}"


def _gallery_with(studio: Any, names: list[str], **fields: Any) -> tuple[Any, list[Any]]:
    gallery = factories.gallery(studio, **fields)
    return gallery, [factories.ready_asset(studio, gallery, name=name) for name in names]


def _stored(key: str) -> bytes:
    return Path(settings.MEDIA_ROOT, key).read_bytes()


def _publish(gallery: Any) -> None:
    with context.acting_as(factories.TEST_ACTOR), studio_scope(gallery.studio):
        gallery_services.gallery_publish(gallery=gallery)


def _visitor_client(gallery: Any) -> APIClient:
    client = APIClient()
    answer = client.post(
        "/api/v1/portal/access/", {"studio": gallery.studio.slug, "code": gallery.access_code}, format="json"
    )
    assert answer.status_code == 200, answer.content
    return client


def _get(studio: Any, pk: Any) -> Export:
    with studio_scope(studio):
        return Export.objects.get(pk=pk)


def _events(action: str) -> list[AuditEvent]:
    with unscoped():
        return list(AuditEvent.objects.filter(action=action))


def _request(studio: Any, gallery: Any, **fields: Any) -> Export:
    with context.acting_as(factories.TEST_ACTOR), studio_scope(studio):
        export, _ = exports.export_request(gallery=gallery, user=factories.owner_membership(studio).user, **fields)
    return export


def _run(studio: Any, export: Export) -> Export:
    with context.acting_as(factories.TEST_ACTOR), studio_scope(studio):
        exports.export_run(export_id=export.pk)
    return _get(studio, export.pk)


def _zip_of(data: bytes) -> zipfile.ZipFile:
    archive = zipfile.ZipFile(io.BytesIO(data))
    assert archive.testzip() is None  # every member's CRC checks
    return archive


def _leftovers(studio: Any) -> list[Path]:
    """Files under the studio's exports folders (partial output included)."""
    return list(Path(settings.MEDIA_ROOT, "studios", str(studio.pk)).glob("galleries/*/exports/*"))


# --- the ZIP, end to end through the staff API --------------------------------------------------------


def test_zip_of_originals_lists_every_photo_with_its_exact_bytes(
    studio, owner, client_for, django_capture_on_commit_callbacks
):
    gallery, assets = _gallery_with(studio, ["IMG_1.jpg", "img_1.JPG", "DSC 7.jpeg"])
    client = client_for(owner)
    with django_capture_on_commit_callbacks(execute=True):
        created = client.post(_url(studio, gallery), {"kind": "zip", "size": "original"}, format="json")
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["status"] == "queued" and body["download_url"] is None
    assert set(body) == {
        "id", "kind", "scope", "folder", "size", "status", "progress", "filename", "file_size",
        "failure_reason", "created_at", "finished_at", "expires_at", "download_url",
    }  # fmt: skip

    polled = client.get(_url(studio, gallery, f"{body['id']}/")).json()
    assert polled["status"] == "done" and polled["progress"] == 100
    assert polled["filename"].endswith("-originals.zip")
    expected_expiry = timezone.now() + timedelta(hours=settings.EXPORT_TTL_HOURS)
    assert abs((timezone.datetime.fromisoformat(polled["expires_at"]) - expected_expiry).total_seconds()) < 60
    assert polled["download_url"] == _url(studio, gallery, f"{body['id']}/download/")

    response = client.get(polled["download_url"])
    assert response.status_code == 200
    assert response["Content-Type"] == "application/zip"
    assert polled["filename"] in response["Content-Disposition"]
    data = b"".join(response.streaming_content)
    assert len(data) == polled["file_size"]
    archive = _zip_of(data)
    # Unique case-insensitively, in the gallery's order, stored (not deflated).
    assert archive.namelist() == ["IMG_1.jpg", "img_1 (2).JPG", "DSC 7.jpeg"]
    assert {info.compress_type for info in archive.infolist()} == {zipfile.ZIP_STORED}
    for name, asset in zip(archive.namelist(), assets, strict=True):
        assert archive.read(name) == _stored(asset.storage_key)

    downloaded = _events("export.downloaded")
    assert len(downloaded) == 1 and downloaded[0].actor_type == "user"
    assert downloaded[0].target_id == body["id"]


def test_web_size_zip_holds_the_2048_derivatives_named_after_the_originals(studio, owner):
    gallery, assets = _gallery_with(studio, ["Beach.JPG", "Beach.jpeg"])
    export = _run(studio, _request(studio, gallery, kind="zip"))
    assert export.status == ExportStatus.DONE, export.failure_reason
    archive = _zip_of(_stored(export.file_key))
    assert archive.namelist() == ["Beach.webp", "Beach (2).webp"]
    for name, asset in zip(archive.namelist(), assets, strict=True):
        assert archive.read(name) == _stored(asset.derivatives["large"]["key"])


def test_hostile_filenames_are_made_safe_and_unique_in_the_archive(studio, owner):
    hostile = ["../../etc/passwd.jpg", "C:\\Windows\\evil.jpg", "CON.jpg", "con.JPG", "a\x01b\u202egpj.exe.jpg", ".jpg"]
    gallery, _ = _gallery_with(studio, hostile)
    export = _run(studio, _request(studio, gallery, kind="zip", size="original"))
    names = _zip_of(_stored(export.file_key)).namelist()
    assert names == ["_.._etc_passwd.jpg", "C__Windows_evil.jpg", "_CON.jpg", "_con (2).JPG", "abgpj.exe.jpg", "jpg"]
    for name in names:
        assert "/" not in name and "\\" not in name and not name.startswith(".")
        assert all(ord(c) >= 32 for c in name)


def test_unique_safe_names_numbers_repeats_case_insensitively():
    assert unique_safe_names(["IMG_1.jpg", "IMG_1.jpg", "img_1.jpg", "IMG_1 (2).jpg", "NUL", "x" * 300 + ".jpg"]) == [
        "IMG_1.jpg",
        "IMG_1 (2).jpg",
        "img_1 (3).jpg",
        "IMG_1 (2) (2).jpg",
        "_NUL",
        "x" * 196 + ".jpg",
    ]


def test_zip64_records_are_written_when_forced_and_readers_accept_them():
    import struct

    members = [ZipMember(f"{i}.bin", 3, None, lambda i=i: iter([b"%03d" % i])) for i in range(3)]
    data = b"".join(zip_chunks(members, force_zip64=True))
    archive = _zip_of(data)
    assert archive.read("2.bin") == b"002"
    for info in archive.infolist():
        # The local header's extra field starts with header id 0x0001: ZIP64
        # extended information (the central directory needs it only over 4 GiB).
        name_length, extra_length = struct.unpack("<HH", data[info.header_offset + 26 : info.header_offset + 30])
        extra = data[info.header_offset + 30 + name_length :][:extra_length]
        assert extra[:2] == b"\x01\x00"
        # ZIP64 data descriptors: signature, CRC, then two 8-byte sizes.
        assert struct.pack("<QQ", 3, 3) in data


def test_more_than_65535_entries_get_a_zip64_end_of_central_directory():
    members = [ZipMember(f"{i}.txt", 0, None, lambda: iter(())) for i in range(65_536)]
    data = b"".join(zip_chunks(members))
    assert b"PK\x06\x06" in data[-200:]  # the ZIP64 end of central directory record
    assert len(zipfile.ZipFile(io.BytesIO(data)).namelist()) == 65_536


# --- dedupe -------------------------------------------------------------------------------------------------


def test_asking_again_while_queued_returns_the_same_export(studio, owner, client_for):
    gallery, _ = _gallery_with(studio, ["a.jpg"])
    client = client_for(owner)
    first = client.post(_url(studio, gallery), {"kind": "zip"}, format="json")
    again = client.post(_url(studio, gallery), {"kind": "zip", "size": "web", "scope": "gallery"}, format="json")
    other = client.post(_url(studio, gallery), {"kind": "zip", "size": "original"}, format="json")
    assert (first.status_code, again.status_code, other.status_code) == (201, 200, 201)
    assert again.json()["id"] == first.json()["id"] != other.json()["id"]
    assert len(_events("export.requested")) == 2


def test_a_request_losing_the_insert_race_returns_the_winners_row(studio, owner, monkeypatch):
    """The partial unique constraint decides: the loser's insert fails and it reads the winner's row."""
    gallery, _ = _gallery_with(studio, ["a.jpg"])
    winner = _request(studio, gallery, kind="csv")
    real_active = exports._active
    calls = []

    def blind_first(*args: Any) -> Any:
        calls.append(1)
        return None if len(calls) == 1 else real_active(*args)

    monkeypatch.setattr(exports, "_active", blind_first)
    with context.acting_as(factories.TEST_ACTOR), studio_scope(studio):
        export, created = exports.export_request(
            gallery=gallery, kind="csv", user=factories.owner_membership(studio).user
        )
    assert (export.pk, created) == (winner.pk, False)
    with studio_scope(studio):
        assert Export.objects.filter(gallery=gallery).count() == 1


@pytest.mark.django_db(transaction=True)
def test_concurrent_identical_requests_make_one_export(threaded_db, monkeypatch):
    # Committed for real here: an eager run would finish the export between
    # two requests, and a new one after it is right. Keep it queued.
    monkeypatch.setattr(exports, "_queue_run_on_commit", lambda export: None)
    studio = factories.studio()
    gallery, _ = _gallery_with(studio, ["a.jpg"])
    user = factories.owner_membership(studio).user
    barrier = threading.Barrier(4)
    results: list[Any] = []

    def ask() -> None:
        from django.db import connection

        try:
            barrier.wait()
            with context.acting_as(factories.TEST_ACTOR), studio_scope(studio):
                results.append(exports.export_request(gallery=gallery, kind="zip", user=user))
        except Exception as exc:  # noqa: BLE001 - reported below
            results.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=ask) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not [r for r in results if isinstance(r, Exception)], results
    assert len({export.pk for export, _ in results}) == 1
    assert sorted(created for _, created in results) == [False, False, False, True]


# --- running, cancelling, failing ----------------------------------------------------------------------


def test_a_duplicate_task_finds_the_export_claimed_and_does_nothing(studio, owner):
    gallery, _ = _gallery_with(studio, ["a.jpg"])
    export = _request(studio, gallery, kind="zip")
    assert run_export.apply(args=[str(studio.pk), str(export.pk)]).get() == "done"
    assert run_export.apply(args=[str(studio.pk), str(export.pk)]).get() is None
    assert run_export.name.startswith("exports.")


def test_cancelling_a_queued_export_is_immediate_and_audited(studio, owner, client_for):
    gallery, _ = _gallery_with(studio, ["a.jpg"])
    client = client_for(owner)
    created = client.post(_url(studio, gallery), {"kind": "zip"}, format="json").json()
    cancelled = client.post(_url(studio, gallery, f"{created['id']}/cancel/"))
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    assert len(_events("export.cancelled")) == 1
    # The task arriving later finds nothing to do.
    assert _run(studio, _get(studio, created["id"])).status == "cancelled"
    assert_api_error(client.post(_url(studio, gallery, f"{created['id']}/cancel/")), 409, "EXPORT_FINISHED")
    # A new request is not deduplicated against a cancelled one.
    assert client.post(_url(studio, gallery), {"kind": "zip"}, format="json").status_code == 201


def test_cancelling_a_running_zip_stops_between_members_and_deletes_the_partial_file(studio, owner, monkeypatch):
    gallery, _ = _gallery_with(studio, ["a.jpg", "b.jpg", "c.jpg"])
    export = _request(studio, gallery, kind="zip", size="original")
    opened: list[str] = []
    real = LocalMediaStore.iter_chunks

    def cancel_during_first(self: Any, key: str, chunk_size: int = 1024 * 1024) -> Any:
        opened.append(key)
        if len(opened) == 1:
            # Someone presses Cancel while the first photo is being written.
            with context.acting_as(factories.TEST_ACTOR):
                running = exports.export_cancel(export=Export.objects.get(pk=export.pk))
            assert running.status == "running" and running.cancel_requested_at is not None
        yield from real(self, key, chunk_size)

    monkeypatch.setattr(LocalMediaStore, "iter_chunks", cancel_during_first)
    done = _run(studio, export)
    assert done.status == ExportStatus.CANCELLED
    assert len(opened) == 1  # the second photo was never opened
    assert done.file_key == "" and _leftovers(studio) == []


def test_a_missing_original_fails_the_export_with_a_reason_and_leaves_no_file(studio, owner):
    gallery, assets = _gallery_with(studio, ["a.jpg", "Missing.jpg", "c.jpg"])
    media_store().delete([assets[1].storage_key])
    failed = _run(studio, _request(studio, gallery, kind="zip", size="original"))
    assert failed.status == ExportStatus.FAILED
    assert "Missing.jpg" in failed.failure_reason and "upload it again" in failed.failure_reason
    assert failed.file_key == "" and failed.expires_at is not None
    assert _leftovers(studio) == []


def test_an_empty_scope_fails_with_a_reason(studio, owner):
    gallery = factories.gallery(studio)
    failed = _run(studio, _request(studio, gallery, kind="zip", scope="selection"))
    assert failed.status == "failed" and failed.failure_reason.startswith("There are no photos to export")


def test_any_unexpected_error_fails_the_export_and_the_ready_email_is_sent_only_when_done(studio, owner, monkeypatch):
    gallery, _ = _gallery_with(studio, ["a.jpg"])
    seen: list[str] = []

    def ready(export: Any) -> None:
        # Inside the transaction that marks it done: the row already says so.
        seen.append(Export.objects.get(pk=export.pk).status)

    monkeypatch.setattr("galleries.notifications.export_ready", ready)
    assert _run(studio, _request(studio, gallery, kind="zip")).status == "done"
    assert seen == ["done"]

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr("galleries.zips.zipstream.ZipStream.add", broken)
    failed = _run(studio, _request(studio, gallery, kind="zip", size="original"))
    assert failed.status == "failed" and "ask again" in failed.failure_reason
    assert seen == ["done"]


def test_progress_is_written_while_a_zip_runs(studio, owner, monkeypatch):
    gallery, _ = _gallery_with(studio, ["a.jpg", "b.jpg"])
    monkeypatch.setattr(export_runner, "PROGRESS_INTERVAL_SECONDS", 0)
    seen: list[int] = []
    real = export_runner._Watch.report

    def spy(self: Any, done: int, total: int) -> None:
        real(self, done, total)
        seen.append(Export.objects.get(pk=self.export.pk).progress)

    monkeypatch.setattr(export_runner._Watch, "report", spy)
    assert _run(studio, _request(studio, gallery, kind="zip", size="original")).progress == 100
    assert seen and max(seen) == 99 and seen == sorted(seen)


def test_csv_lightroom_and_contact_sheet_exports_run_to_files(studio, owner):
    gallery, _ = _gallery_with(studio, ["a.jpg", "b.jpg"])
    csv = _run(studio, _request(studio, gallery, kind="csv"))
    assert csv.status == "done", csv.failure_reason
    assert _stored(csv.file_key).startswith(b"\xef\xbb\xbf") and csv.filename.endswith(".csv")
    lightroom = _run(studio, _request(studio, gallery, kind="lightroom"))
    assert lightroom.status == "done" and b"a.jpg" in _stored(lightroom.file_key)
    sheet = _run(studio, _request(studio, gallery, kind="contact_sheet"))
    assert sheet.status == "done", sheet.failure_reason
    from pypdf import PdfReader

    assert len(PdfReader(io.BytesIO(_stored(sheet.file_key))).pages) >= 2
    assert sheet.file_size == len(_stored(sheet.file_key))


def test_a_contact_sheet_cancelled_while_rendering_stores_nothing(studio, owner, monkeypatch):
    gallery, _ = _gallery_with(studio, ["a.jpg", "b.jpg"])
    export = _request(studio, gallery, kind="contact_sheet")
    real = export_runner._Watch.report

    def cancel_on_first_photo(self: Any, done: int, total: int) -> None:
        if not Export.objects.get(pk=self.export.pk).cancel_requested_at:
            with context.acting_as(factories.TEST_ACTOR):
                exports.export_cancel(export=Export.objects.get(pk=self.export.pk))
        real(self, done, total)

    monkeypatch.setattr(export_runner._Watch, "report", cancel_on_first_photo)
    assert _run(studio, export).status == "cancelled"
    assert _leftovers(studio) == []


# --- expiry and the sweeper ---------------------------------------------------------------------------


def test_expired_exports_lose_their_files_and_answer_410(studio, owner, client_for):
    gallery, _ = _gallery_with(studio, ["a.jpg"])
    export = _run(studio, _request(studio, gallery, kind="zip"))
    path = Path(settings.MEDIA_ROOT, export.file_key)
    assert path.is_file()
    client = client_for(owner)
    with studio_scope(studio):
        Export.objects.filter(pk=export.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    # Past its expiry but not yet swept: already refused.
    assert_api_error(client.get(_url(studio, gallery, f"{export.pk}/download/")), 410, "EXPORT_EXPIRED")
    assert expire_exports.apply().get() == 1
    expired = _get(studio, export.pk)
    assert expired.status == "expired" and expired.file_key == ""
    assert not path.exists() and _leftovers(studio) == []
    assert_api_error(client.get(_url(studio, gallery, f"{export.pk}/download/")), 410, "EXPORT_EXPIRED")
    assert client.get(_url(studio, gallery, f"{export.pk}/")).json()["download_url"] is None


def test_expiry_leaves_live_exports_alone(studio, owner):
    gallery, _ = _gallery_with(studio, ["a.jpg"])
    export = _run(studio, _request(studio, gallery, kind="zip"))
    assert exports.exports_expire(now=timezone.now()) == 0
    assert _get(studio, export.pk).status == "done"
    assert exports.exports_expire(now=export.expires_at + timedelta(seconds=1)) == 1


def test_an_export_whose_task_never_reached_the_broker_is_queued_again(studio, owner):
    gallery, _ = _gallery_with(studio, ["a.jpg"])
    export = _request(studio, gallery, kind="zip")  # in the test's transaction: never queued
    assert _get(studio, export.pk).enqueued_at is None
    expire_exports.apply().get()
    assert _get(studio, export.pk).status == "queued"  # younger than a minute: the request may still queue it
    with studio_scope(studio):
        Export.objects.filter(pk=export.pk).update(created_at=timezone.now() - timedelta(minutes=2))
    expire_exports.apply().get()
    again = _get(studio, export.pk)
    assert again.status == "done" and again.enqueued_at is not None


def test_a_run_whose_worker_died_is_failed_with_the_reason(studio, owner):
    gallery, _ = _gallery_with(studio, ["a.jpg"])
    export = _request(studio, gallery, kind="zip")
    with studio_scope(studio):
        Export.objects.filter(pk=export.pk).update(
            status="running", started_at=timezone.now() - timedelta(seconds=settings.EXPORT_TIME_LIMIT + 600)
        )
    exports.exports_expire()
    dead = _get(studio, export.pk)
    assert dead.status == "failed" and "stopped before it finished" in dead.failure_reason


# --- the staff API: scopes, tenancy, contract ---------------------------------------------------------------


def test_viewers_list_poll_and_download_but_cannot_ask_or_cancel(studio, make_member, client_for):
    gallery, _ = _gallery_with(studio, ["a.jpg"])
    export = _run(studio, _request(studio, gallery, kind="zip"))
    viewer = client_for(make_member(Role.VIEWER))
    assert viewer.get(_url(studio, gallery)).json()["results"][0]["id"] == str(export.pk)
    assert viewer.get(_url(studio, gallery, f"{export.pk}/download/")).status_code == 200
    assert_api_error(viewer.post(_url(studio, gallery), {"kind": "zip"}, format="json"), 403, "PERMISSION_DENIED")
    assert_api_error(viewer.post(_url(studio, gallery, f"{export.pk}/cancel/")), 403, "PERMISSION_DENIED")
    assistant = client_for(make_member(Role.ASSISTANT))
    assert assistant.post(_url(studio, gallery), {"kind": "csv"}, format="json").status_code == 201


def test_download_before_done_is_409(studio, owner, client_for):
    gallery, _ = _gallery_with(studio, ["a.jpg"])
    export = _request(studio, gallery, kind="zip")
    assert_api_error(client_for(owner).get(_url(studio, gallery, f"{export.pk}/download/")), 409, "EXPORT_NOT_READY")


def test_another_studios_exports_answer_404(studio, other_studio, owner, client_for):
    gallery, _ = _gallery_with(other_studio, ["a.jpg"])
    foreign = _run(other_studio, _request(other_studio, gallery, kind="zip"))
    client = client_for(owner)
    mine = factories.gallery(studio)
    for url in (
        _url(studio, mine, f"{foreign.pk}/"),
        _url(studio, mine, f"{foreign.pk}/download/"),
        _url(other_studio, gallery, f"{foreign.pk}/download/"),
    ):
        assert_api_error(client.get(url), 404, "NOT_FOUND")
    assert_api_error(client.post(_url(studio, mine, f"{foreign.pk}/cancel/")), 404, "NOT_FOUND")
    assert client.get(f"/api/v1/studios/{studio.slug}/exports/").json()["results"] == []


def test_folder_scope_needs_a_folder_of_this_gallery(studio, owner, client_for):
    gallery, assets = _gallery_with(studio, ["a.jpg", "b.jpg"])
    folder = factories.folder(studio, gallery)
    with context.acting_as(factories.TEST_ACTOR), studio_scope(studio):
        gallery_services.placements_add(folder=folder, assets=[assets[1]])
    elsewhere = factories.folder(studio)
    client = client_for(owner)
    assert_api_error(
        client.post(_url(studio, gallery), {"kind": "zip", "scope": "folder"}, format="json"), 400, "VALIDATION_ERROR"
    )
    refused = client.post(
        _url(studio, gallery), {"kind": "zip", "scope": "folder", "folder": str(elsewhere.pk)}, format="json"
    )
    assert assert_api_error(refused, 400, "VALIDATION_ERROR")["fields"]["folder"]
    created = client.post(
        _url(studio, gallery), {"kind": "zip", "scope": "folder", "folder": str(folder.pk)}, format="json"
    )
    assert created.status_code == 201 and created.json()["folder"] == str(folder.pk)
    export = _run(studio, _get(studio, created.json()["id"]))
    assert _zip_of(_stored(export.file_key)).namelist() == ["b.webp"]


def test_the_studio_list_shows_every_export_newest_first(studio, owner, client_for):
    first, _ = _gallery_with(studio, ["a.jpg"])
    second, _ = _gallery_with(studio, ["b.jpg"])
    older = _request(studio, first, kind="csv")
    newer = _request(studio, second, kind="zip")
    body = client_for(owner).get(f"/api/v1/studios/{studio.slug}/exports/").json()
    assert [row["id"] for row in body["results"]] == [str(newer.pk), str(older.pk)]
    assert body["results"][1]["size"] is None and body["results"][0]["size"] == "web"


# --- the portal -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("permission", "web", "original"),
    [("none", 403, 403), ("web", 201, 403), ("originals", 201, 201)],
)
def test_visitors_get_the_sizes_the_gallery_allows(studio, permission, web, original):
    gallery, _ = _gallery_with(studio, ["a.jpg"], download_permission=permission)
    _publish(gallery)
    client = _visitor_client(gallery)
    for size, expected in (("web", web), ("original", original)):
        answer = client.post(_purl(gallery), {"kind": "zip", "size": size}, format="json")
        if expected == 403:
            assert_api_error(answer, 403, "DOWNLOAD_NOT_ALLOWED")
        else:
            assert answer.status_code == 201, answer.content
    assert_api_error(client.post(_purl(gallery), {"kind": "csv"}, format="json"), 400, "VALIDATION_ERROR")


def test_visitors_see_only_their_own_exports_and_downloads_are_audited(
    studio, owner, client_for, django_capture_on_commit_callbacks
):
    gallery, assets = _gallery_with(studio, ["a.jpg"], download_permission="originals")
    _publish(gallery)
    alice, bob = _visitor_client(gallery), _visitor_client(gallery)
    with django_capture_on_commit_callbacks(execute=True):
        mine = alice.post(_purl(gallery), {"kind": "zip", "size": "original"}, format="json").json()
    theirs = bob.post(_purl(gallery), {"kind": "zip", "size": "original"}, format="json").json()
    assert mine["id"] != theirs["id"]  # dedupe is per requester

    assert [row["id"] for row in alice.get(_purl(gallery)).json()["results"]] == [mine["id"]]
    polled = alice.get(_purl(gallery, f"{mine['id']}/")).json()
    assert polled["status"] == "done"
    assert polled["download_url"] == _purl(gallery, f"{mine['id']}/download/")
    for suffix in (f"{mine['id']}/", f"{mine['id']}/download/"):
        assert_api_error(bob.get(_purl(gallery, suffix)), 404, "NOT_FOUND")
    assert_api_error(bob.post(_purl(gallery, f"{mine['id']}/cancel/")), 404, "NOT_FOUND")

    response = alice.get(polled["download_url"])
    assert response.status_code == 200
    assert _zip_of(b"".join(response.streaming_content)).read("a.jpg") == _stored(assets[0].storage_key)
    event = _events("export.downloaded")[0]
    assert event.actor_type == "visitor"

    # Staff see both, whoever asked.
    listed = client_for(owner).get(f"/api/v1/studios/{studio.slug}/exports/").json()["results"]
    assert {row["id"] for row in listed} == {mine["id"], theirs["id"]}

    # The studio narrows downloads afterwards: the original ZIP is refused.
    with context.acting_as(factories.TEST_ACTOR), studio_scope(studio):
        gallery_services.gallery_update(actor=None, gallery=gallery, download_permission="web")
    assert_api_error(alice.get(polled["download_url"]), 403, "DOWNLOAD_NOT_ALLOWED")
