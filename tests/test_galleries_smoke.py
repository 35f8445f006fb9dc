from galleries.models import Asset, AssetStatus
from studio.tenancy import studio_scope
from tests.gallery_helpers import gallery_url, jpeg, upload


def test_local_round_trip(studio, owner, client_for, api, django_capture_on_commit_callbacks):
    client = client_for(owner)
    created = client.post(gallery_url(studio), {"title": "Smith Wedding", "access_code": "demo-2025"}, format="json")
    assert created.status_code == 201, created.content
    assert created.json()["access_code"] == "DEMO2025"
    with studio_scope(studio):
        from galleries.models import Gallery

        gallery = Gallery.objects.get(pk=created.json()["id"])
    with django_capture_on_commit_callbacks(execute=True):
        result = upload(
            client,
            studio,
            gallery,
            [("a.jpg", jpeg(), "image/jpeg"), ("b.jpg", jpeg(orientation=6, colour=(1, 2, 3)), "image/jpeg")],
        )
    assert len(result["processing"]) == 2, result
    with studio_scope(studio):
        assets = list(Asset.objects.filter(gallery=gallery))
    assert {a.status for a in assets} == {AssetStatus.READY}, [(a.status, a.failure_reason) for a in assets]
    rotated = next(a for a in assets if a.original_filename == "b.jpg")
    assert (rotated.width, rotated.height) == (480, 640)
    assert client.post(gallery_url(studio, gallery, "publish/")).status_code == 200
    opened = api.post("/api/v1/portal/access/", {"studio": studio.slug, "code": "demo2025"}, format="json")
    assert opened.status_code == 200, opened.content
    listing = api.get(f"/api/v1/portal/galleries/{gallery.pk}/assets/")
    assert listing.status_code == 200, listing.content
    items = listing.json()["results"]
    assert len(items) == 2
    thumb = api.get(items[0]["urls"]["thumb"])
    assert thumb.status_code == 200 and thumb["Content-Type"] == "image/webp"
    rate = api.put(
        f"/api/v1/portal/galleries/{gallery.pk}/assets/{items[0]['id']}/rating/", {"stars": 5}, format="json"
    )
    assert rate.status_code == 204, rate.content
    final = api.post(f"/api/v1/portal/galleries/{gallery.pk}/selection/")
    assert final.status_code == 201, final.content
    assert final.json()["asset_count"] == 1
    again = api.put(
        f"/api/v1/portal/galleries/{gallery.pk}/assets/{items[1]['id']}/rating/", {"stars": 3}, format="json"
    )
    assert again.status_code == 409
