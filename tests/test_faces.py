"""People in photos (issue 13): the opt-in, the pipeline on a real face
(scikit-image's astronaut pasted into a photo-sized JPEG, uploaded through
the API), persons, the staff filter, and the portal's "find me"."""

from __future__ import annotations

import functools
import io
from typing import Any

import numpy as np
import pytest
from PIL import Image
from rest_framework.test import APIClient

from audit.models import AuditEvent
from galleries import face_search
from galleries import services as gallery_services
from galleries.models import Asset, Face, FaceScan, FaceScanStatus, Gallery, Person
from galleries.storage import media_store
from studio import context
from studio.models import Studio
from studio.tenancy import studio_scope, unscoped
from tests import factories
from tests.gallery_helpers import gallery_url, jpeg, upload
from tests.test_meta import portal_client


@functools.cache
def _astronaut() -> Image.Image:
    from skimage import data

    return Image.fromarray(data.astronaut())


def astronaut_photo(*, left: int = 600, flip: bool = False) -> bytes:
    """A 2200 x 1500 JPEG with the astronaut 1000 px tall in it: her face is
    ~180 px in the 2048 px preview, well above what HOG finds at 1024 px."""
    canvas = Image.new("RGB", (2200, 1500), (90, 110, 130))
    person = _astronaut().resize((1000, 1000))
    if flip:
        person = person.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    canvas.paste(person, (left, 250))
    out = io.BytesIO()
    canvas.save(out, "JPEG", quality=88)
    return out.getvalue()


def selfie_jpeg() -> bytes:
    """Her face, cropped like a selfie (the whole picture also holds a
    face-like patch of similar size, which the selfie rule refuses)."""
    out = io.BytesIO()
    _astronaut().crop((100, 0, 350, 300)).resize((500, 600)).save(out, "JPEG", quality=85)
    return out.getvalue()


def _on(studio: Studio, gallery: Gallery, *, find_me: bool = True) -> None:
    with context.acting_as(factories.TEST_ACTOR), studio_scope(studio):
        gallery_services.studio_faces_enable(studio=studio, consent_text="We compare your selfie, then forget it.")
        gallery_services.gallery_faces_set(gallery=gallery, faces_enabled=True, find_me_enabled=find_me)


def _upload(client: APIClient, studio: Studio, gallery: Gallery, files: list[tuple[str, bytes]], capture) -> dict:
    with capture(execute=True):
        return upload(client, studio, gallery, [(name, data, "image/jpeg") for name, data in files])


def _keys(studio: Studio) -> set[str]:
    return set(media_store().list_keys(f"studios/{studio.pk}/"))


def _actions(studio: Studio) -> list[str]:
    with unscoped():
        return list(AuditEvent.objects.filter(studio=studio).values_list("action", flat=True))


def _her(studio: Studio) -> Person:
    """The astronaut's person (her face is the upper one in the photos)."""
    with studio_scope(studio):
        return Person.objects.get(faces__top__lt=700, faces__asset__original_filename="a1.jpg")


@pytest.fixture
def staff(owner, client_for) -> APIClient:
    return client_for(owner)


@pytest.fixture
def pictured(studio, staff, django_capture_on_commit_callbacks) -> dict[str, Any]:
    """A gallery with faces on: two photos of the astronaut and one without a face."""
    gallery = factories.gallery(studio)
    _on(studio, gallery)
    files = [("a1.jpg", astronaut_photo()), ("a2.jpg", astronaut_photo(left=1100, flip=True)), ("x.jpg", jpeg())]
    _upload(staff, studio, gallery, files, django_capture_on_commit_callbacks)
    with studio_scope(studio):
        by_name = {a.original_filename: a for a in Asset.objects.filter(gallery=gallery)}
    return {"gallery": gallery, "assets": by_name}


def test_pipeline_finds_stores_and_groups_the_face(studio, pictured) -> None:
    a1, a2, x = (pictured["assets"][n] for n in ("a1.jpg", "a2.jpg", "x.jpg"))
    with studio_scope(studio):
        scans = {s.asset_id: s for s in FaceScan.objects.all()}
        assert {s.status for s in scans.values()} == {FaceScanStatus.DONE}
        assert scans[x.pk].face_count == 0
        # HOG also takes the patch on her suit for a face at this size: each
        # photo has two, and the patch is another "person". Hers is the upper.
        faces_ = list(Face.objects.filter(top__lt=700).order_by("asset__original_filename"))
        assert [f.asset_id for f in faces_] == [a1.pk, a2.pk]
        assert all(len(bytes(f.descriptor)) == 512 for f in Face.objects.all())
        assert all(100 < f.right - f.left < 300 for f in faces_)
        # One person: the flipped, moved copy joined the first one's.
        person = _her(studio)
        assert {f.person_id for f in faces_} == {person.pk} and person.face_count == 2
        assert person.cover_id in {f.pk for f in faces_}
    crop = media_store().open(faces_[0].thumb_key).read()
    assert Image.open(io.BytesIO(crop)).size == (160, 160)
    assert _actions(studio).count("asset.faces_detected") == 3


def test_detection_is_idempotent_and_a_rerun_overwrites(studio, pictured) -> None:
    a1 = pictured["assets"]["a1.jpg"]
    keys = _keys(studio)
    with context.acting_as(factories.TEST_ACTOR), studio_scope(studio):
        counts = (Face.objects.filter(asset=a1).count(), Person.objects.count())
        gallery_services.asset_detect_faces(asset_id=a1.pk)  # done: nothing happens
        assert _actions(studio).count("asset.faces_detected") == 3
        FaceScan.objects.filter(asset=a1).update(status=FaceScanStatus.PENDING)
        gallery_services.asset_detect_faces(asset_id=a1.pk)
        assert (Face.objects.filter(asset=a1).count(), Person.objects.count()) == counts
    assert _keys(studio) == keys  # same crop key, overwritten


def test_regenerating_previews_regenerates_faces(studio, staff, pictured, django_capture_on_commit_callbacks) -> None:
    gallery, a1 = pictured["gallery"], pictured["assets"]["a1.jpg"]
    with studio_scope(studio):
        before = Face.objects.get(asset=a1, top__lt=700).pk
    with django_capture_on_commit_callbacks(execute=True):
        response = staff.post(gallery_url(studio, gallery, "regenerate-derivatives/"), {"assets": [str(a1.pk)]})
    assert response.status_code == 202, response.content
    with studio_scope(studio):
        after = Face.objects.get(asset=a1, top__lt=700)
        her = _her(studio)
        assert after.pk != before and after.person_id == her.pk
        # Her person was both left (old face) and joined (new face): counted
        # once, and her cover is one of her current faces.
        assert her.face_count == 2 and Face.objects.filter(pk=her.cover_id, person=her).exists()
    assert _actions(studio).count("asset.faces_detected") == 4


def test_bad_input_ends_as_a_reason(studio, pictured) -> None:
    a1, a2 = pictured["assets"]["a1.jpg"], pictured["assets"]["a2.jpg"]
    media_store().put(a1.derivatives["large"]["key"], b"not an image at all", "image/webp")
    media_store().delete([a2.derivatives["large"]["key"]])
    with context.acting_as(factories.TEST_ACTOR), studio_scope(studio):
        FaceScan.objects.update(status=FaceScanStatus.PENDING)
        for asset in (a1, a2):
            gallery_services.asset_detect_faces(asset_id=asset.pk)
        scans = {s.asset_id: s for s in FaceScan.objects.all()}
    assert scans[a1.pk].status == FaceScanStatus.FAILED and "could not be read" in scans[a1.pk].reason
    assert scans[a2.pk].status == FaceScanStatus.FAILED and "missing" in scans[a2.pk].reason
    assert "asset.faces_failed" in _actions(studio)


def test_opt_in_off_runs_nothing(studio, staff, django_capture_on_commit_callbacks) -> None:
    gallery = factories.gallery(studio)
    _upload(staff, studio, gallery, [("a.jpg", astronaut_photo())], django_capture_on_commit_callbacks)
    with context.acting_as(factories.TEST_ACTOR), studio_scope(studio):
        assert not FaceScan.objects.exists() and not Face.objects.exists()
        with pytest.raises(gallery_services.FacesDisabled):  # the studio first
            gallery_services.gallery_faces_set(gallery=gallery, faces_enabled=True)


def test_turning_the_studio_off_deletes_every_face(studio, pictured, django_capture_on_commit_callbacks) -> None:
    with studio_scope(studio):
        crops = set(Face.objects.values_list("thumb_key", flat=True))
    assert crops <= _keys(studio)
    with (
        django_capture_on_commit_callbacks(execute=True),
        context.acting_as(factories.TEST_ACTOR),
        studio_scope(studio),
    ):
        counts = gallery_services.studio_faces_disable(studio=studio)
    assert counts["faces"] == len(crops) >= 2 and counts["persons"] >= 1 and counts["scans"] == 3
    with studio_scope(studio):
        assert not Face.objects.exists() and not Person.objects.exists() and not FaceScan.objects.exists()
        assert not Gallery.objects.filter(faces_enabled=True).exists()
    assert not crops & _keys(studio)
    assert "faces.disabled" in _actions(studio)


# --- persons (synthetic descriptors: the API, not the math) ------------------------------------------


def test_persons_list_rename_hide_cover_merge_split(studio, staff) -> None:
    a = factories.face(studio, descriptor=np.zeros(128, np.float32))
    gallery = a.gallery
    b = factories.face(studio, factories.ready_asset(studio, gallery), person_=a.person, descriptor=np.full(128, 0.2))
    other = factories.face(studio, factories.ready_asset(studio, gallery), descriptor=np.full(128, -0.2)).person
    url = gallery_url(studio, gallery, "persons/")
    listed = staff.get(url).json()
    assert [(p["face_count"], p["photo_count"]) for p in listed] == [(2, 2), (1, 1)]
    assert staff.get(listed[0]["cover_url"]).status_code == 200
    # A photo in the staff bin leaves both counts until it is restored.
    assets_url = gallery_url(studio, gallery, "assets/")
    assert staff.delete(f"{assets_url}{b.asset_id}/").status_code == 204
    assert [(p["face_count"], p["photo_count"]) for p in staff.get(url).json()] == [(1, 1), (1, 1)]
    assert staff.post(f"{assets_url}{b.asset_id}/restore/").status_code == 200
    assert [(p["face_count"], p["photo_count"]) for p in staff.get(url).json()] == [(2, 2), (1, 1)]
    person = a.person

    renamed = staff.patch(f"{url}{person.pk}/", {"name": "Ada", "cover": str(b.pk)}, format="json")
    assert renamed.status_code == 200, renamed.content
    assert renamed.json()["name"] == "Ada" and renamed.json()["cover"] == str(b.pk)
    bad_cover = staff.patch(f"{url}{person.pk}/", {"cover": str(factories.face(studio).pk)}, format="json")
    assert bad_cover.status_code == 400 and bad_cover.json()["error"]["code"] == "INVALID_PERSON"

    split = staff.post(f"{url}{person.pk}/split/", {}, format="json")
    assert split.status_code == 200 and len(split.json()) == 2
    new_id = next(p["id"] for p in split.json() if p["id"] != str(person.pk))
    merged = staff.post(f"{url}{new_id}/merge/", {"into": str(person.pk)}, format="json")
    assert merged.status_code == 200 and merged.json()["face_count"] == 2

    hidden = staff.patch(f"{url}{other.pk}/", {"hidden": True}, format="json")
    assert hidden.json()["hidden"] is True
    assert [p["name"] for p in staff.get(url).json()] == ["Ada", ""]
    actions = _actions(studio)
    assert {"person.updated", "person.split", "person.merged"} <= set(actions)


def test_staff_asset_list_filters_by_person(studio, staff, pictured) -> None:
    gallery = pictured["gallery"]
    person = _her(studio)
    url = gallery_url(studio, gallery, "assets/")
    body = staff.get(url, {"person": str(person.pk)}).json()
    names = sorted(a["original_filename"] for a in body["results"])
    assert names == ["a1.jpg", "a2.jpg"]
    assert staff.get(url, {"person": str(person.pk), "status": "failed"}).json()["results"] == []
    faces_ = staff.get(gallery_url(studio, gallery, f"assets/{pictured['assets']['a1.jpg'].pk}/faces/")).json()
    assert str(person.pk) in {f["person"] for f in faces_} and len(faces_) == 2


def test_another_studios_person_answers_404(studio, staff, other_studio) -> None:
    foreign = factories.person(other_studio)
    url = gallery_url(studio, foreign.gallery, f"persons/{foreign.pk}/")
    assert staff.patch(url, {"name": "x"}, format="json").status_code == 404


# --- find me ---------------------------------------------------------------------------------


def _find_me(client: APIClient, gallery: Gallery, data: bytes | None = None) -> Any:
    selfie = io.BytesIO(data or selfie_jpeg())
    selfie.name = "me.jpg"
    return client.post(f"/api/v1/portal/galleries/{gallery.pk}/find-me/", {"selfie": selfie}, format="multipart")


def test_find_me_finds_her_photos_only_and_stores_nothing(studio, pictured) -> None:
    gallery, assets = pictured["gallery"], pictured["assets"]
    portal = portal_client(gallery)
    info = portal.get(f"/api/v1/portal/galleries/{gallery.pk}/find-me/").json()
    assert info == {"enabled": True, "consent_text": "We compare your selfie, then forget it."}
    keys = _keys(studio)
    with studio_scope(studio):
        rows = (Face.objects.count(), Person.objects.count(), FaceScan.objects.count(), Asset.objects.count())
    response = _find_me(portal, gallery)
    assert response.status_code == 200, response.content
    found = {m["asset"] for m in response.json()["matches"]}
    assert found == {str(assets["a1.jpg"].pk), str(assets["a2.jpg"].pk)}
    assert all(m["distance"] < 0.5 for m in response.json()["matches"])
    # Never stored: no object, no row.
    assert _keys(studio) == keys
    with studio_scope(studio):
        assert rows == (Face.objects.count(), Person.objects.count(), FaceScan.objects.count(), Asset.objects.count())

    key = response.json()["key"]
    listed = portal.get(f"/api/v1/portal/galleries/{gallery.pk}/assets/", {"find_me": key}).json()["results"]
    assert {a["id"] for a in listed} == found
    not_me = portal.post(
        f"/api/v1/portal/galleries/{gallery.pk}/find-me/not-me/", {"asset": str(assets["a2.jpg"].pk)}, format="json"
    )
    assert not_me.status_code == 204
    listed = portal.get(f"/api/v1/portal/galleries/{gallery.pk}/assets/", {"find_me": key}).json()["results"]
    assert [a["id"] for a in listed] == [str(assets["a1.jpg"].pk)]
    again = _find_me(portal, gallery).json()["matches"]
    assert [m["asset"] for m in again] == [str(assets["a1.jpg"].pk)]  # "not me" holds for the session


def test_find_me_takes_an_iphones_heic_selfie(studio, pictured, forget_heif_opener) -> None:
    """An iPhone's camera writes HEIC: the same search as the JPEG selfie."""
    pillow_heif = pytest.importorskip("pillow_heif")
    gallery, assets = pictured["gallery"], pictured["assets"]
    out = io.BytesIO()
    pillow_heif.from_pillow(Image.open(io.BytesIO(selfie_jpeg()))).save(out, quality=90)
    forget_heif_opener()
    response = _find_me(portal_client(gallery), gallery, out.getvalue())
    assert response.status_code == 200, response.content
    assert {m["asset"] for m in response.json()["matches"]} == {str(assets["a1.jpg"].pk), str(assets["a2.jpg"].pk)}


def test_find_me_refuses_a_photo_without_a_face(studio, pictured) -> None:
    portal = portal_client(pictured["gallery"])
    response = _find_me(portal, pictured["gallery"], jpeg(400, 300))
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "INVALID_SELFIE"
    assert response.json()["error"]["details"]["reason"] == "no_face"


def test_a_big_selfie_never_touches_the_disk_and_a_too_big_one_is_refused(studio, pictured, settings, monkeypatch):
    """Django writes an upload above FILE_UPLOAD_MAX_MEMORY_SIZE (2.5 MB) to
    a temporary file; a selfie must stay in memory at any accepted size."""
    from django.core.files import uploadedfile

    written = []
    real = uploadedfile.TemporaryUploadedFile.__init__

    def spy(self, *args, **kwargs):
        written.append(args)
        real(self, *args, **kwargs)

    monkeypatch.setattr(uploadedfile.TemporaryUploadedFile, "__init__", spy)
    gallery = pictured["gallery"]
    portal = portal_client(gallery)
    # A camera-sized selfie: her face in a 4000 x 4800 px JPEG of ~4-5 MB.
    noise = np.random.default_rng(3).integers(0, 40, (4800, 4000, 3), dtype=np.uint8)
    big = Image.fromarray(noise)
    big.paste(Image.open(io.BytesIO(selfie_jpeg())).resize((2500, 3000)), (750, 900))
    out = io.BytesIO()
    big.save(out, "JPEG", quality=92)
    assert out.tell() > 3 * 1024 * 1024
    response = _find_me(portal, gallery, out.getvalue())
    assert response.status_code == 200, response.content
    assert written == []

    settings.FACES_SELFIE_MAX_BYTES = 2 * 1024 * 1024
    refused = _find_me(portal, gallery, out.getvalue())
    assert refused.status_code == 400
    assert refused.json()["error"]["fields"]["selfie"] and written == []


def test_find_me_is_throttled_per_visitor(studio, pictured, settings) -> None:
    settings.FACES_FIND_ME_PER_HOUR = 1
    gallery = pictured["gallery"]
    portal = portal_client(gallery)
    assert _find_me(portal, gallery, jpeg(400, 300)).status_code == 400  # counts: it cost the CPU
    response = _find_me(portal, gallery)
    assert response.status_code == 429
    assert response.json()["error"]["code"] == "TOO_MANY_SEARCHES"
    assert response.json()["error"]["details"]["retry_after_seconds"] > 0


def test_find_me_answers_403_where_the_gallery_does_not_offer_it(studio) -> None:
    gallery = factories.gallery(studio)
    _on(studio, gallery, find_me=False)
    portal = portal_client(gallery)
    assert portal.get(f"/api/v1/portal/galleries/{gallery.pk}/find-me/").json()["enabled"] is False
    response = _find_me(portal, gallery)
    assert response.status_code == 403 and response.json()["error"]["code"] == "FIND_ME_DISABLED"


def test_portal_person_filter_hides_hidden_persons(studio, pictured) -> None:
    gallery = pictured["gallery"]
    person = _her(studio)
    portal = portal_client(gallery)
    url = f"/api/v1/portal/galleries/{gallery.pk}/assets/"
    assert len(portal.get(url, {"person": str(person.pk)}).json()["results"]) == 2
    with studio_scope(studio), context.acting_as(factories.TEST_ACTOR):
        gallery_services.person_update(person=person, hidden=True)
    assert portal.get(url, {"person": str(person.pk)}).json()["results"] == []


# --- the sweeper and the search backends --------------------------------------------------------


def test_sweeper_queues_lost_scans_then_gives_up(studio, settings) -> None:
    from datetime import timedelta

    from django.utils import timezone

    from galleries import tasks

    scan = factories.face_scan(studio)
    old = timezone.now() - timedelta(hours=1)
    with studio_scope(studio):
        FaceScan.objects.filter(pk=scan.pk).update(status=FaceScanStatus.PENDING, updated_at=old)
    settings.CELERY_TASK_ALWAYS_EAGER = False  # see the queueing, not the run
    sent = []
    tasks.detect_faces.apply_async = lambda args, kwargs: sent.append(args)  # type: ignore[method-assign]
    try:
        # An inactive studio's scan is not queued (its task would be skipped).
        Studio.objects.filter(pk=studio.pk).update(is_active=False)
        assert tasks.sweep_face_scans() == 0 and not sent
        Studio.objects.filter(pk=studio.pk).update(is_active=True)
        assert tasks.sweep_face_scans() == 1 and sent
        with studio_scope(studio):
            FaceScan.objects.filter(pk=scan.pk).update(sweeps=settings.FACES_MAX_SWEEPS, queued_at=old, updated_at=old)
        assert tasks.sweep_face_scans() == 0
    finally:
        del tasks.detect_faces.apply_async
    with studio_scope(studio):
        scan.refresh_from_db()
    assert scan.status == FaceScanStatus.FAILED and "did not finish" in scan.reason


@pytest.mark.postgres
def test_pgvector_answers_like_numpy(studio, pictured) -> None:
    if not face_search.pgvector_available():
        pytest.skip("the pgvector extension is not installed in this database")
    gallery = pictured["gallery"]
    from galleries import faces

    with studio_scope(studio):
        query = faces.from_bytes(bytes(Face.objects.first().descriptor))
        via_sql = face_search._pgvector_matches(gallery, query, 0.5)
        index = face_search.gallery_index(gallery)
        via_numpy = index.photos_of(query, 0.5)
    assert [m.id for m in via_sql] == [m.id for m in via_numpy]


def test_purging_a_photo_or_deleting_the_gallery_takes_the_face_crops(
    studio, staff, pictured, django_capture_on_commit_callbacks
) -> None:
    gallery, a1 = pictured["gallery"], pictured["assets"]["a1.jpg"]
    with studio_scope(studio):
        crops = {
            a: set(Face.objects.filter(asset=a).values_list("thumb_key", flat=True))
            for a in pictured["assets"].values()
        }
    assert crops[a1] and crops[a1] <= _keys(studio)
    assert staff.delete(gallery_url(studio, gallery, f"assets/{a1.pk}/")).status_code == 204
    assert crops[a1] <= _keys(studio)  # in the bin: kept
    with django_capture_on_commit_callbacks(execute=True):
        assert staff.post(gallery_url(studio, gallery, f"assets/{a1.pk}/purge/")).status_code == 204
    assert not crops[a1] & _keys(studio)
    rest = set().union(*(keys for asset, keys in crops.items() if asset != a1))
    assert rest and rest <= _keys(studio)
    with django_capture_on_commit_callbacks(execute=True):
        assert staff.delete(gallery_url(studio, gallery)).status_code == 204
    assert not rest & _keys(studio)


def test_the_switches_over_the_api(studio, staff, client_for, django_capture_on_commit_callbacks) -> None:
    from studio.roles import Role

    gallery = factories.gallery(studio)
    settings_url = f"/api/v1/studios/{studio.slug}/face-settings/"
    assert staff.get(settings_url).json() == {"enabled": False, "consent_text": ""}
    # Gallery switches need the studio's first.
    refused = staff.put(gallery_url(studio, gallery, "face-settings/"), {"faces_enabled": True}, format="json")
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "FACES_DISABLED"
    # Turning on needs the consent text clients will read.
    missing = staff.put(settings_url, {"enabled": True}, format="json")
    assert missing.status_code == 400 and "consent_text" in missing.json()["error"]["fields"]
    on = staff.put(settings_url, {"enabled": True, "consent_text": "We compare, then forget."}, format="json")
    assert on.json() == {"enabled": True, "consent_text": "We compare, then forget."}
    with django_capture_on_commit_callbacks(execute=True):
        both = {"faces_enabled": True, "find_me_enabled": True}
        answer = staff.put(gallery_url(studio, gallery, "face-settings/"), both, format="json")
    assert answer.status_code == 200 and answer.json() == both
    # Only owners switch the studio; a viewer reads.
    viewer = client_for(factories.member(studio, role=Role.VIEWER))
    assert viewer.get(settings_url).status_code == 200
    assert viewer.put(settings_url, {"enabled": False}, format="json").status_code == 403
    off = staff.put(settings_url, {"enabled": False}, format="json")
    assert off.json()["enabled"] is False
    assert staff.get(gallery_url(studio, gallery, "face-settings/")).json() == {
        "faces_enabled": False,
        "find_me_enabled": False,
    }
    assert {"faces.enabled", "gallery.faces_changed", "faces.disabled"} <= set(_actions(studio))
