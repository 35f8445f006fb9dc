"""Export formats of a gallery's photos: the selection CSV, the Lightroom
filename list and the PDF contact sheet. Pure renderers: they read through
the ORM inside the caller's studio scope and write to a binary stream (or
return text); the export queue (galleries.services.exports) decides where
the bytes go.

What is exported (``Scope``)
----------------------------
- ``gallery``: every ready photo not in the trash, in the studio's order.
- ``folder``: the photos of one folder of this gallery, in the folder's own
  order (its placements).
- ``selection``: while a finalised selection is live, the photos it froze
  (``Selection.snapshot``: finalising records the asset ids, and reopening
  is the only way to change them); otherwise what the clients chose so far
  (``selectors.chosen_assets``: rated, or filed in a client's own folder).
  Studio order. Photos deleted or trashed since are left out.

Stars and folders are read live. While a selection is finalised nobody can
change ratings (``services.selection`` refuses), so the stars equal the
frozen ones; folders show the current filing, which staff may still change.

Selection CSV
-------------
One row per photo, UTF-8 with a BOM (Excel otherwise reads it as the
system code page), CRLF line ends, every cell quoted. Columns:

1. ``filename``: the original filename as uploaded;
2. ``average stars``: mean of the visitors' stars, two decimals; empty when
   nobody rated the photo;
3. ``stars: <visitor>``: one column per visitor who rated any photo of the
   export, in the order they first arrived (``Visitor.__str__``: name and
   email, either one, or "Anonymous visitor"; a repeated label gets " (2)",
   " (3)"...); empty when that visitor did not rate the photo;
4. ``folders``: the names of every folder the photo is in (the studio's and
   the clients'), in folder order, joined with "; ";
5. ``chosen by``: the visitors who rated the photo or filed it in one of
   their own folders, joined with "; ";
6. ``finalised by``: who finalised the live selection, for photos in it;
7. ``finalised at (<studio time zone>)``: when, as ``YYYY-MM-DD HH:MM:SS``
   in the studio's time zone (a form Excel and Numbers read as a date);
   empty for photos outside a live selection.

Formula injection (OWASP "CSV Injection"): a cell starting with ``=``,
``+``, ``-``, ``@``, a tab or a carriage return gets a leading ``'``, so a
spreadsheet shows it as text instead of evaluating it. Headers go through the
same escaping (visitor names are client input).

Lightroom list
--------------
For Lightroom Classic's Library filter: Text > Filename > Contains, then
paste. That rule matches any of several terms separated by commas; it has no
quoting, ``!`` before a term or ``+`` before or after one are operators, and
whitespace may split terms too (we treat it so, to be safe). So names are
joined with "," (no space, which would become part of the next term where
whitespace does not split), and a name that contains a comma or whitespace,
starts with ``!`` or ``+`` or ends with ``+`` is replaced by its longest
fragment free of those (of equal ones, the last, with the extension):
"Contains" matches substrings, so the fragment still finds the photo (and
perhaps a neighbour); ``lightroom_text`` lists the names it shortened. Names
are de-duplicated case-insensitively (Lightroom's match ignores case).
Without extensions, a RAW+JPEG pair (IMG_0001.CR3 + IMG_0001.JPG) gives its
base name once.

PDF contact sheet
-----------------
A4 portrait. Page 1 is the cover: the studio's logo and name on a band of its
accent colour, the gallery title, client, event date, what the sheet covers
and its counts. Then grids of ``PER_PAGE`` (4 x 5) thumbnails, each with its
filename, average stars (and each visitor's when at most
``PER_VISITOR_STARS_MAX`` rated it) and folders; every page has "page X of
Y" (the total is known before drawing: 1 + ceil(photos / PER_PAGE)).

Memory stays bounded in images: each 400 px thumbnail is read from storage,
decoded, shrunk to the cell at about 150 dpi and re-encoded as a JPEG that
reportlab embeds as it is (DCTDecode), then dropped; only that JPEG (a few
KB) stays, as part of the PDF itself, which reportlab assembles in memory
and writes to ``out`` in save() (ASCII85 turned off while drawing: it would
add a quarter). Measured (tests and a bench of textured 400 px thumbnails):
300 photos about 9 MiB peak (tracemalloc) and 1-2 s, 1,000 photos about
24 MiB and 5-8 s, against 343 MiB for 1,000 decoded thumbnails.
A missing or unreadable thumbnail is drawn as a grey box.

Fonts: DejaVu Sans (Latin, Greek, Cyrillic and much more) from
``galleries/fonts/`` if a copy is shipped there, else from the system
(Debian's fonts-dejavu-core, /usr/share/fonts) or matplotlib's copy; failing
all of those, reportlab's bundled Vera (Latin-1 only). Characters the font
lacks (emoji, for instance) are drawn as U+FFFD (or "?"), never a crash.
"""

from __future__ import annotations

import csv
import io
import logging
import math
import re
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any, BinaryIO
from zoneinfo import ZoneInfo

from django.core.exceptions import ValidationError
from django.core.files.storage import default_storage
from django.db.models import OuterRef, QuerySet, Subquery

from galleries.models import Asset, AssetStatus, Folder, Gallery, Placement, Rating, Selection, Visitor
from galleries.selectors import chosen_assets, live_selection
from galleries.storage import media_store
from studio.errors import DomainError

logger = logging.getLogger(__name__)

SCOPE_KINDS = ("gallery", "folder", "selection")


@dataclass(frozen=True)
class Scope:
    kind: str  # "gallery" | "folder" | "selection"
    folder_id: uuid.UUID | None = None  # for kind "folder"


class ExportCancelled(Exception):
    """Someone cancelled the export: the contact sheet stops and writes
    nothing; the export runner raises it between ZIP members."""


# --- what is exported ------------------------------------------------------------------------------


def _invalid(field_name: str, message: str) -> DomainError:
    return DomainError(message, code="VALIDATION_ERROR", fields={field_name: [message]})


def _folder_of(gallery: Gallery, folder_id: Any) -> Folder:
    message = "No such folder in this gallery."
    if folder_id is None:
        raise _invalid("folder", "Choose a folder.")
    try:
        folder = Folder.objects.filter(gallery=gallery, pk=folder_id).first()
    except (ValidationError, ValueError) as exc:  # not a UUID
        raise _invalid("folder", message) from exc
    if folder is None:  # another gallery's, another studio's (scoped away), or none
        raise _invalid("folder", message)
    return folder


def scope_assets(gallery: Gallery, scope: Scope) -> QuerySet[Asset]:
    """The ready, not trashed photos a scope covers, in export order."""
    ready = Asset.objects.filter(gallery=gallery, status=AssetStatus.READY, trashed_at=None)
    if scope.kind == "gallery":
        return ready.order_by("sort_order", "created_at")
    if scope.kind == "folder":
        folder = _folder_of(gallery, scope.folder_id)
        # A subquery, not order_by("placements__..."): ordering across the
        # relation would repeat a photo once per folder it sits in.
        place = Placement.objects.filter(folder=folder, asset=OuterRef("pk"))
        return (
            ready.filter(placements__folder=folder)
            .annotate(
                placement_order=Subquery(place.values("sort_order")[:1]),
                placed_at=Subquery(place.values("created_at")[:1]),
            )
            .order_by("placement_order", "placed_at", "sort_order")
        )
    if scope.kind == "selection":
        selection = live_selection(gallery)
        if selection is None:
            return chosen_assets(gallery)
        # The snapshot is the frozen choice: photos rated or filed after
        # finalising (staff can still file) are not part of it.
        return ready.filter(pk__in=_snapshot_ids(selection)).order_by("sort_order", "created_at")
    raise _invalid("scope", f"Unknown scope {scope.kind!r}: use one of {', '.join(SCOPE_KINDS)}.")


def _snapshot_ids(selection: Selection) -> list[str]:
    return [row["asset"] for row in selection.snapshot or [] if row.get("asset")]


# --- facts about the photos, read once per export -----------------------------------------------


@dataclass
class _Facts:
    """Stars, folders and choosers of the exported photos, in a few flat
    queries whatever their number (no per-photo query)."""

    visitor_labels: dict[Any, str]  # rating visitors only, in arrival order, labels unique
    stars: dict[Any, dict[Any, int]] = field(default_factory=dict)  # asset -> visitor -> stars
    folders: dict[Any, list[str]] = field(default_factory=dict)
    choosers: dict[Any, list[Any]] = field(default_factory=dict)  # asset -> visitor ids
    all_visitor_labels: dict[Any, str] = field(default_factory=dict)
    selection: Selection | None = None
    selected_ids: frozenset[str] = frozenset()

    def average(self, asset_id: Any) -> float | None:
        given = self.stars.get(asset_id)
        return sum(given.values()) / len(given) if given else None

    def chosen_by(self, asset_id: Any) -> list[str]:
        return [self.all_visitor_labels[v] for v in self.choosers.get(asset_id, []) if v in self.all_visitor_labels]

    def in_selection(self, asset_id: Any) -> bool:
        return self.selection is not None and str(asset_id) in self.selected_ids


def _unique_labels(visitors: Iterable[Visitor]) -> dict[Any, str]:
    labels: dict[Any, str] = {}
    seen: dict[str, int] = {}
    for visitor in visitors:
        label = str(visitor)
        seen[label] = seen.get(label, 0) + 1
        labels[visitor.pk] = label if seen[label] == 1 else f"{label} ({seen[label]})"
    return labels


def _facts(gallery: Gallery, assets: QuerySet[Asset]) -> _Facts:
    ids = assets.values("pk")
    visitors = list(Visitor.objects.filter(gallery=gallery).order_by("created_at", "pk"))
    all_labels = _unique_labels(visitors)
    stars: dict[Any, dict[Any, int]] = {}
    for asset_id, visitor_id, given in Rating.objects.filter(asset__in=ids).values_list(
        "asset_id", "visitor_id", "stars"
    ):
        stars.setdefault(asset_id, {})[visitor_id] = given
    raters = {visitor_id for given in stars.values() for visitor_id in given}
    folders: dict[Any, list[str]] = {}
    choosers: dict[Any, list[Any]] = {}
    placements = (
        Placement.objects.filter(asset__in=ids)
        .order_by("folder__sort_order", "folder__created_at")
        .values_list("asset_id", "folder__name", "folder__created_by_visitor_id")
    )
    for asset_id, folder_name, owner_id in placements:
        folders.setdefault(asset_id, []).append(folder_name)
        if owner_id is not None:
            choosers.setdefault(asset_id, []).append(owner_id)
    for asset_id, given in stars.items():
        choosers.setdefault(asset_id, []).extend(given)
    order = {v.pk: index for index, v in enumerate(visitors)}
    for asset_id, who in choosers.items():
        choosers[asset_id] = sorted(set(who), key=lambda v: order.get(v, len(order)))
    selection = live_selection(gallery)
    return _Facts(
        visitor_labels={pk: label for pk, label in all_labels.items() if pk in raters},
        stars=stars,
        folders=folders,
        choosers=choosers,
        all_visitor_labels=all_labels,
        selection=selection,
        selected_ids=frozenset(_snapshot_ids(selection)) if selection else frozenset(),
    )


def _stars_text(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}".rstrip("0").rstrip(".")


# --- selection CSV -----------------------------------------------------------------------------------

# OWASP CSV Injection: what makes Excel, LibreOffice or Numbers read a cell as a formula.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: Any) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


class _CsvRows:
    """Escaped, quoted rows encoded one at a time onto any binary ``write``
    (a file, a BytesIO, an upload stream): no TextIOWrapper, which wants a
    full io object and closes what it wraps."""

    def __init__(self, out: BinaryIO) -> None:
        self.out = out
        self.buffer = io.StringIO()
        self.writer = csv.writer(self.buffer, quoting=csv.QUOTE_ALL, lineterminator="\r\n")
        out.write("\ufeff".encode())  # the BOM: Excel reads the file as UTF-8

    def write(self, cells: list[Any]) -> None:
        self.writer.writerow([csv_cell(cell) for cell in cells])
        self.out.write(self.buffer.getvalue().encode("utf-8"))
        self.buffer.seek(0)
        self.buffer.truncate()


def _finalised_at(selection: Selection, zone: ZoneInfo) -> str:
    return selection.finalized_at.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S")


def _studio_zone(gallery: Gallery) -> ZoneInfo:
    try:
        return ZoneInfo(gallery.studio.timezone or "UTC")
    except (ValueError, KeyError):  # validated on save; a stale row must not break exports
        return ZoneInfo("UTC")


def write_selection_csv(gallery: Gallery, out: BinaryIO, *, scope: Scope = Scope("selection")) -> int:
    """Write the CSV described in the module docstring; return the rows written (photos)."""
    assets = scope_assets(gallery, scope)
    facts = _facts(gallery, assets)
    zone = _studio_zone(gallery)
    rows_out = _CsvRows(out)
    visitor_ids = list(facts.visitor_labels)
    header = ["filename", "average stars"]
    header += [f"stars: {facts.visitor_labels[v]}" for v in visitor_ids]
    header += ["folders", "chosen by", "finalised by", f"finalised at ({zone.key})"]
    rows_out.write(header)
    finalised_by = finalised_at = ""
    if facts.selection is not None:
        finalised_by = facts.selection.finalized_by_label
        finalised_at = _finalised_at(facts.selection, zone)
    rows = 0
    for asset in assets.only("pk", "original_filename").iterator(chunk_size=500):
        given = facts.stars.get(asset.pk, {})
        selected = facts.in_selection(asset.pk)
        row = [asset.original_filename, _stars_text(facts.average(asset.pk))]
        row += [given.get(v, "") for v in visitor_ids]
        row += [
            "; ".join(facts.folders.get(asset.pk, [])),
            "; ".join(facts.chosen_by(asset.pk)),
            finalised_by if selected else "",
            finalised_at if selected else "",
        ]
        rows_out.write(row)
        rows += 1
    return rows


# --- Lightroom list ------------------------------------------------------------------------------------

# What Lightroom's "Contains" splits terms on, and its term operators.
_LIGHTROOM_SEPARATORS = re.compile(r"[,\s]+")


def _lightroom_term(name: str) -> str:
    fragments = [f.lstrip("!+").rstrip("+") for f in _LIGHTROOM_SEPARATORS.split(name)]
    # Longest; of equals the last, which carries the extension.
    return max(reversed(fragments), key=len, default="")


def _stem(filename: str) -> str:
    stem, dot, _extension = filename.rpartition(".")
    return stem if dot and stem else filename


@dataclass
class _LightroomTerms:
    terms: list[str]
    shortened: list[tuple[str, str]]  # (filename, term used); term "" when nothing usable was left


def _lightroom_terms(names: Iterable[str]) -> _LightroomTerms:
    terms: list[str] = []
    shortened: list[tuple[str, str]] = []
    seen: set[str] = set()
    for name in names:
        term = _lightroom_term(name)
        if term != name:
            shortened.append((name, term))
        if term and term.casefold() not in seen:
            seen.add(term.casefold())
            terms.append(term)
    return _LightroomTerms(terms, shortened)


def _filenames(gallery: Gallery, scope: Scope) -> list[str]:
    return list(scope_assets(gallery, scope).values_list("original_filename", flat=True))


def lightroom_list(gallery: Gallery, *, scope: Scope = Scope("selection"), extensions: bool = True) -> str:
    """The names, comma-separated, to paste into Text > Filename > Contains.
    Without extensions, RAW+JPEG pairs give their base name once."""
    names = _filenames(gallery, scope)
    if not extensions:
        names = [_stem(n) for n in names]
    return ",".join(_lightroom_terms(names).terms)


def lightroom_text(gallery: Gallery, *, scope: Scope = Scope("selection")) -> str:
    """A small text file: a how-to line, then the list with and without extensions."""
    names = _filenames(gallery, scope)
    full = _lightroom_terms(names)
    bare = _lightroom_terms(_stem(n) for n in names)
    lines = [
        f"{gallery.title}: {len(names)} photo{'s' if len(names) != 1 else ''}",
        "How to: in Lightroom Classic's Library, open the filter bar (\\), choose Text > Filename > Contains, "
        "and paste one of the lines below.",
        "",
        "With extensions:",
        ",".join(full.terms),
        "",
        "Without extensions (RAW+JPEG pairs once):",
        ",".join(bare.terms),
    ]
    if full.shortened:
        lines += [
            "",
            "These names contain commas, spaces or filter operators, which Lightroom cannot take literally; "
            "the list has the part shown instead (check these by hand):",
        ]
        lines += [f"  {name!r} -> {term or '(left out)'}" for name, term in full.shortened]
    return "\n".join(lines) + "\n"


# --- PDF contact sheet ------------------------------------------------------------------------------------

COLUMNS, ROWS = 4, 5
PER_PAGE = COLUMNS * ROWS
# Per-visitor stars fit on a cell's line for a couple of visitors, not more.
PER_VISITOR_STARS_MAX = 3
# Thumbnails are re-encoded at about 150 dpi for their cell: sharp on paper
# and on screen, a few KB each in the PDF.
IMAGE_DPI = 150
JPEG_QUALITY = 72

_FONT_NAME = "ContactSheetSans"
_BOLD_FONT_NAME = "ContactSheetSans-Bold"
_FONT_DIRS = (
    Path(__file__).resolve().parent / "fonts",
    Path("/usr/share/fonts/truetype/dejavu"),  # Debian, Ubuntu: fonts-dejavu-core
    Path("/usr/share/fonts/dejavu-sans-fonts"),  # Fedora
    Path("/usr/share/fonts/dejavu"),
    Path("/usr/share/fonts/TTF"),  # Arch
)


def _matplotlib_fonts() -> list[Path]:
    try:
        import matplotlib  # noqa: PLC0415 - optional: only its bundled DejaVu copy matters
    except ImportError:
        return []
    return [Path(matplotlib.get_data_path()) / "fonts" / "ttf"]


@dataclass(frozen=True)
class _Fonts:
    regular: str
    bold: str
    glyphs: frozenset[int]  # code points the regular font can draw
    replacement: str


@cache
def _fonts() -> _Fonts:
    """Register the sheet's fonts once per process (see the module docstring)."""
    import reportlab
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.ttfonts import TTFont

    candidates = [(d / "DejaVuSans.ttf", d / "DejaVuSans-Bold.ttf") for d in (*_FONT_DIRS, *_matplotlib_fonts())]
    vera = Path(reportlab.__file__).resolve().parent / "fonts"
    candidates.append((vera / "Vera.ttf", vera / "VeraBd.ttf"))
    for regular, bold in candidates:
        if not regular.is_file():
            continue
        try:
            font = TTFont(_FONT_NAME, str(regular))
            pdfmetrics.registerFont(font)
            bold_name = _FONT_NAME
            if bold.is_file():
                pdfmetrics.registerFont(TTFont(_BOLD_FONT_NAME, str(bold)))
                bold_name = _BOLD_FONT_NAME
        except Exception:  # a broken font file: try the next one
            logger.warning("contact sheet: cannot use font %s", regular, exc_info=True)
            continue
        glyphs = frozenset(font.face.charToGlyph)
        replacement = "\ufffd" if 0xFFFD in glyphs else "?"
        return _Fonts(_FONT_NAME, bold_name, glyphs, replacement)
    # Not reached with reportlab installed (it ships Vera); kept so a sheet never fails on fonts.
    return _Fonts("Helvetica", "Helvetica-Bold", frozenset(range(32, 256)), "?")


def _printable(text: str, fonts: _Fonts) -> str:
    """Control characters as spaces, and what the font cannot draw as the replacement."""
    out = []
    for char in text:
        if char.isspace() or ord(char) < 32 or 0x7F <= ord(char) < 0xA0:
            out.append(" ")
        elif ord(char) in fonts.glyphs:
            out.append(char)
        else:
            out.append(fonts.replacement)
    return "".join(out)


def _fit(text: str, font: str, size: float, width: float) -> str:
    """The text, cut with an ellipsis to fit ``width`` points."""
    from reportlab.pdfbase.pdfmetrics import stringWidth

    if stringWidth(text, font, size) <= width:
        return text
    ellipsis = "\u2026"
    low, high = 0, len(text)
    while low < high:  # longest prefix that fits with the ellipsis
        middle = (low + high + 1) // 2
        if stringWidth(text[:middle] + ellipsis, font, size) <= width:
            low = middle
        else:
            high = middle - 1
    return text[:low] + ellipsis


def contact_sheet_pages(photos: int) -> int:
    return 1 + math.ceil(photos / PER_PAGE)


def _hex_colour(value: str) -> Any:
    from reportlab.lib import colors

    try:
        return colors.HexColor(value)
    except (ValueError, TypeError):
        return colors.HexColor("#1f5f8b")


def _thumb_jpeg(asset: Asset, max_px: int) -> bytes | None:
    """The 400 px thumbnail, read and shrunk to ``max_px``, as JPEG bytes;
    None when it is missing or cannot be decoded."""
    from PIL import Image

    key = ((asset.derivatives or {}).get("thumb") or {}).get("key")
    if not key:
        return None
    try:
        buffer = io.BytesIO()
        media_store().download(key, buffer)
        buffer.seek(0)
        with Image.open(buffer) as image:
            image.thumbnail((max_px, max_px))
            out = io.BytesIO()
            image.convert("RGB").save(out, "JPEG", quality=JPEG_QUALITY, optimize=True)
        return out.getvalue()
    except Exception:  # missing object, storage error, corrupt file: a placeholder, not a failed sheet
        logger.warning("contact sheet: no thumbnail for asset %s", asset.pk, exc_info=True)
        return None


def _logo_reader(studio: Any) -> Any:
    from PIL import Image
    from reportlab.lib.utils import ImageReader

    if not studio.logo:
        return None
    try:
        with default_storage.open(studio.logo.name, "rb") as handle:
            image = Image.open(io.BytesIO(handle.read()))
            image.load()
        image.thumbnail((600, 600))
        if image.mode not in ("RGB", "RGBA", "L", "LA"):
            image = image.convert("RGBA")
        return ImageReader(image)
    except Exception:  # a missing or broken logo leaves the studio's name alone on the cover
        logger.warning("contact sheet: cannot read the logo of studio %s", studio.pk, exc_info=True)
        return None


@dataclass(frozen=True)
class _Layout:
    page_width: float
    page_height: float
    margin: float = 36
    gutter: float = 10
    header: float = 24
    footer: float = 22
    text_lines: int = 3
    text_size: float = 7.5
    line_height: float = 9.5

    @property
    def cell_width(self) -> float:
        return (self.page_width - 2 * self.margin - (COLUMNS - 1) * self.gutter) / COLUMNS

    @property
    def cell_height(self) -> float:
        usable = self.page_height - 2 * self.margin - self.header - self.footer
        return (usable - (ROWS - 1) * self.gutter) / ROWS

    @property
    def image_height(self) -> float:
        return self.cell_height - self.text_lines * self.line_height - 4

    def cell_origin(self, index: int) -> tuple[float, float]:
        """Bottom-left corner of the image box of the ``index``-th cell on a page."""
        row, column = divmod(index, COLUMNS)
        x = self.margin + column * (self.cell_width + self.gutter)
        top = self.page_height - self.margin - self.header - row * (self.cell_height + self.gutter)
        return x, top - self.image_height


def _scope_label(gallery: Gallery, scope: Scope, facts: _Facts, zone: ZoneInfo) -> str:
    if scope.kind == "folder":
        return f"Folder: {_folder_of(gallery, scope.folder_id).name}"
    if scope.kind == "selection":
        if facts.selection is None:
            return "The client's selection so far (not finalised)"
        when = facts.selection.finalized_at.astimezone(zone).strftime("%Y-%m-%d %H:%M")
        return f"Selection finalised {when} by {facts.selection.finalized_by_label}"
    return "The whole gallery"


class _Sheet:
    """Draws one contact sheet on a reportlab canvas."""

    def __init__(self, gallery: Gallery, scope: Scope, canvas: Any, total_pages: int, facts: _Facts) -> None:
        from reportlab.lib.pagesizes import A4

        self.gallery = gallery
        self.scope = scope
        self.canvas = canvas
        self.total_pages = total_pages
        self.facts = facts
        self.fonts = _fonts()
        self.layout = _Layout(*A4)
        self.accent = _hex_colour(gallery.studio.accent_color)
        self.zone = _studio_zone(gallery)
        self.scope_label = _scope_label(gallery, scope, facts, self.zone)
        self.page = 0

    def text(self, x: float, y: float, value: str, *, size: float, width: float, bold: bool = False) -> None:
        font = self.fonts.bold if bold else self.fonts.regular
        self.canvas.setFont(font, size)
        self.canvas.drawString(x, y, _fit(_printable(value, self.fonts), font, size, width))

    def footer(self) -> None:
        from reportlab.lib import colors

        layout = self.layout
        self.canvas.setFillColor(colors.HexColor("#555555"))
        self.canvas.setFont(self.fonts.regular, 8)
        label = f"page {self.page} of {self.total_pages}"
        self.canvas.drawRightString(layout.page_width - layout.margin, layout.margin - 12, label)
        self.text(
            layout.margin,
            layout.margin - 12,
            f"{self.gallery.studio.name} · {self.gallery.title}",
            size=8,
            width=layout.page_width / 2,
        )

    def cover(self, photos: int) -> None:
        from reportlab.lib import colors

        layout, canvas = self.layout, self.canvas
        self.page = 1
        band = 120
        canvas.setFillColor(self.accent)
        canvas.rect(0, layout.page_height - band, layout.page_width, band, stroke=0, fill=1)
        x = layout.margin
        logo = _logo_reader(self.gallery.studio)
        if logo is not None:
            width, height = logo.getSize()
            box = band - 40
            scale = min(box / height, 160 / width)
            canvas.drawImage(
                logo, x, layout.page_height - 20 - height * scale, width * scale, height * scale, mask="auto"
            )
            x += width * scale + 16
        canvas.setFillColor(colors.white)
        width = layout.page_width - x - layout.margin
        self.text(x, layout.page_height - band / 2 - 8, self.gallery.studio.name, size=22, width=width, bold=True)
        canvas.setFillColor(colors.black)
        y = layout.page_height - band - 60
        self.text(layout.margin, y, self.gallery.title, size=26, width=layout.page_width - 2 * layout.margin, bold=True)
        y -= 24
        self.text(layout.margin, y, "Contact sheet", size=12, width=300)
        y -= 40
        event_date = self.gallery.event_date.isoformat() if self.gallery.event_date else "-"
        rated = sum(1 for stars in self.facts.stars.values() if stars)
        facts = [
            ("Client", self.gallery.client_name or self.gallery.client_email or "-"),
            ("Event date", event_date),
            ("Covers", self.scope_label),
            ("Photos", str(photos)),
            ("Rated", str(rated)),
            ("Visitors who rated", str(len(self.facts.visitor_labels))),
            ("Made", datetime.now(self.zone).strftime("%Y-%m-%d %H:%M")),
        ]
        for label, value in facts:
            canvas.setFillColor(self.accent)
            self.text(layout.margin, y, label, size=11, width=130, bold=True)
            canvas.setFillColor(colors.black)
            self.text(layout.margin + 140, y, value, size=11, width=layout.page_width - 2 * layout.margin - 140)
            y -= 20
        self.footer()

    def start_grid_page(self) -> None:
        from reportlab.lib import colors

        self.canvas.showPage()
        self.page += 1
        layout = self.layout
        self.canvas.setFillColor(self.accent)
        top = layout.page_height - layout.margin - 14
        self.text(layout.margin, top, self.gallery.title, size=11, width=layout.page_width / 2, bold=True)
        self.canvas.setFillColor(colors.HexColor("#555555"))
        self.canvas.setFont(self.fonts.regular, 9)
        label = _fit(
            _printable(self.scope_label, self.fonts),
            self.fonts.regular,
            9,
            layout.page_width / 2 - layout.margin,
        )
        self.canvas.drawRightString(layout.page_width - layout.margin, top, label)
        self.footer()

    def stars_line(self, asset_id: Any) -> str:
        given = self.facts.stars.get(asset_id, {})
        if not given:
            return "not rated"
        glyph = "\u2605" if ord("\u2605") in self.fonts.glyphs else "*"
        line = f"{glyph} {_stars_text(self.facts.average(asset_id))} avg"
        if len(given) <= PER_VISITOR_STARS_MAX:
            labels = self.facts.all_visitor_labels
            line += " · " + ", ".join(f"{labels.get(v, '?')} {n}" for v, n in given.items())
        return line

    def cell(self, index: int, asset: Asset, jpeg: bytes | None) -> None:
        from reportlab.lib import colors
        from reportlab.lib.utils import ImageReader

        layout, canvas = self.layout, self.canvas
        x, y = layout.cell_origin(index)
        width, height = layout.cell_width, layout.image_height
        if jpeg is None:
            canvas.setFillColor(colors.HexColor("#d0d0d0"))
            canvas.rect(x, y, width, height, stroke=0, fill=1)
            canvas.setFillColor(colors.HexColor("#707070"))
            canvas.setFont(self.fonts.regular, 8)
            canvas.drawCentredString(x + width / 2, y + height / 2 - 3, "no preview")
        else:
            # A fresh reader per photo, dropped after drawing: reportlab keeps
            # only the JPEG bytes it embeds.
            canvas.drawImage(ImageReader(io.BytesIO(jpeg)), x, y, width, height, preserveAspectRatio=True)
        canvas.setFillColor(colors.black)
        line_y = y - layout.line_height
        self.text(x, line_y, asset.original_filename, size=layout.text_size, width=width, bold=True)
        canvas.setFillColor(colors.HexColor("#444444"))
        self.text(x, line_y - layout.line_height, self.stars_line(asset.pk), size=layout.text_size, width=width)
        folders = "; ".join(self.facts.folders.get(asset.pk, []))
        self.text(x, line_y - 2 * layout.line_height, folders, size=layout.text_size, width=width)

    def image_pixels(self) -> int:
        return max(64, round(max(self.layout.cell_width, self.layout.image_height) / 72 * IMAGE_DPI))


def write_contact_sheet(
    gallery: Gallery,
    out: BinaryIO,
    *,
    scope: Scope = Scope("gallery"),
    progress: Callable[[int, int], None] | None = None,
    cancelled: Callable[[], bool] | None = None,
) -> int:
    """Draw the sheet described in the module docstring into ``out``; return
    its page count. ``progress(done, total)`` is called after each photo;
    when ``cancelled()`` answers True the sheet stops, nothing is written to
    ``out`` and ExportCancelled is raised."""
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfgen.canvas import Canvas

    assets = scope_assets(gallery, scope)
    total = assets.count()
    facts = _facts(gallery, assets)
    pages = contact_sheet_pages(total)
    with _binary_streams():
        # reportlab writes to ``out`` only in save(): a cancelled sheet leaves it untouched.
        canvas = Canvas(out, pagesize=A4, pageCompression=1)
        sheet = _Sheet(gallery, scope, canvas, pages, facts)
        canvas.setTitle(f"{gallery.title}: contact sheet")
        canvas.setAuthor(gallery.studio.name)
        sheet.cover(total)
        pixels = sheet.image_pixels()
        fields = ("pk", "original_filename", "derivatives", "studio_id", "gallery_id")
        for done, asset in enumerate(assets.only(*fields).iterator(chunk_size=200)):
            if cancelled is not None and cancelled():
                raise ExportCancelled()
            index = done % PER_PAGE
            if index == 0:
                sheet.start_grid_page()
            sheet.cell(index, asset, _thumb_jpeg(asset, pixels))
            if progress is not None:
                progress(done + 1, total)
        canvas.showPage()
        canvas.save()
    return sheet.page


@contextmanager
def _binary_streams() -> Iterator[None]:
    """reportlab ASCII85-encodes every stream by default (rl_config.useA85),
    which makes each embedded JPEG, and so the PDF and the memory that holds
    it until save(), a quarter larger. The setting is read while drawing and
    saving, and is process-wide: both values make valid PDFs, so a sheet
    drawn meanwhile in another thread is only bigger or smaller."""
    from reportlab import rl_config

    previous = rl_config.useA85
    rl_config.useA85 = 0
    try:
        yield
    finally:
        rl_config.useA85 = previous
