"""Shared helpers for gallery tests: small real images, the upload round trip."""

from __future__ import annotations

import io
from typing import Any

from PIL import Image
from rest_framework.test import APIClient

from galleries.models import Gallery
from studio import context
from studio.tenancy import studio_scope
from tests import factories


def jpeg(
    width: int = 640, height: int = 480, *, orientation: int = 1, colour: tuple[int, int, int] = (200, 80, 40)
) -> bytes:
    image = Image.new("RGB", (width, height), colour)
    # Something that is not flat, so encoders do real work.
    for x in range(0, width, 16):
        image.paste((x % 256, 255 - x % 256, 128), (x, 0, x + 8, height))
    exif = Image.Exif()
    exif[0x0112] = orientation
    exif[0x8825] = {1: "N", 2: (37.0, 46.0, 0.0)}  # GPS: must not survive
    exif[0x0132] = "2025:06:14 16:20:00"
    out = io.BytesIO()
    image.save(out, "JPEG", quality=85, exif=exif.tobytes())
    return out.getvalue()


def png(width: int = 300, height: int = 200) -> bytes:
    out = io.BytesIO()
    Image.new("RGBA", (width, height), (10, 200, 30, 128)).save(out, "PNG")
    return out.getvalue()


def gallery_url(studio: Any, gallery: Any = None, suffix: str = "") -> str:
    base = f"/api/v1/studios/{studio.slug}/galleries/"
    return f"{base}{gallery.pk}/{suffix}" if gallery is not None else base


def make_gallery(studio: Any, **fields: Any) -> Gallery:
    from galleries import services

    fields.setdefault("title", "Smith Wedding")
    with context.acting_as(factories.TEST_ACTOR), studio_scope(studio):
        return services.gallery_create(actor=None, **fields)


def upload(client: APIClient, studio: Any, gallery: Any, files: list[tuple[str, bytes, str]]) -> dict[str, Any]:
    """Presign, POST every file to its target, complete. Returns the complete body."""
    response = client.post(
        gallery_url(studio, gallery, "uploads/"),
        {"files": [{"filename": n, "size": len(d), "content_type": t} for n, d, t in files]},
        format="json",
    )
    assert response.status_code == 201, response.content
    body = response.json()
    by_name = {name: data for name, data, _ in files}
    for target in body["targets"]:
        post_to_target(target, by_name[target["filename"]])
    done = client.post(gallery_url(studio, gallery, f"uploads/{body['batch']}/complete/"), {}, format="json")
    assert done.status_code == 200, done.content
    return {"batch": body["batch"], "presign": body, **done.json()}


def post_to_target(target: dict[str, Any], data: bytes, content_type: str | None = None) -> Any:
    """What a browser does with an upload target: a multipart POST."""
    from urllib.parse import urlsplit

    url = target["url"]
    if url.startswith(("http://127.0.0.1:8000", "http://testserver")):
        path = urlsplit(url)
        client = APIClient()
        payload = {**target["fields"], "file": io.BytesIO(data)}
        payload["file"].name = "upload"
        return client.post(f"{path.path}?{path.query}", payload, format="multipart")
    import requests

    return requests.post(
        url,
        data=target["fields"],
        files={"file": ("upload", data, content_type or "application/octet-stream")},
        timeout=30,
    )
