"""Streaming ZIP archives of a gallery's photos (zipstream-ng): built as
they are written to storage, never held whole in memory or on disk.

Members are stored, not deflated: JPEG, WebP and HEIC are compressed
already, so deflate would spend the worker's CPU to save nothing. Sizes are
declared up front, so zipstream-ng writes ZIP64 records only where an entry
or the archive needs them (over 4 GiB, or over 65,535 entries).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime

import zipstream

# Names Windows refuses whatever the extension ("CON.jpg" cannot be created).
_RESERVED = {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(1, 10)), *(f"LPT{i}" for i in range(1, 10))}
# Path separators and characters Windows or macOS refuse in a name.
_UNSAFE = re.compile(r'[\\/:*?"<>|]')
# C0 and C1 controls, DEL, and the bidirectional overrides that make
# "photo\u202egpj.exe" display as "photoexe.jpg".
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")
MAX_NAME_BYTES = 200


@dataclass(frozen=True)
class ZipMember:
    name: str
    size: int
    # Not written yet: zipstream-ng 1.9.3's add() takes no date, so entries
    # carry the time the archive was built. Kept so callers need not change
    # when a version that takes one arrives.
    modified: datetime | None
    # Called when the member's turn comes, so nothing is opened (or
    # downloaded) before it is written, and a cancellation between members
    # opens nothing more.
    open: Callable[[], Iterator[bytes]]


def safe_name(name: str) -> str:
    """One path component a reader can create anywhere: no directories, no
    traversal, no control characters, no reserved Windows names, at most
    MAX_NAME_BYTES of UTF-8."""
    name = unicodedata.normalize("NFC", name)
    name = _CONTROL.sub("", name)
    name = _UNSAFE.sub("_", name)
    # Windows drops trailing dots and spaces; leading dots hide files.
    name = name.strip().strip(".").strip()
    stem, dot, extension = name.rpartition(".")
    if not dot:
        stem, extension = name, ""
    if not stem:
        stem = "photo"
    if stem.split(".")[0].strip().upper() in _RESERVED:
        stem = f"_{stem}"
    extension = extension[:16]
    suffix = f".{extension}" if extension else ""
    while len((stem + suffix).encode()) > MAX_NAME_BYTES:
        stem = stem[:-1]
    return stem + suffix


def unique_safe_names(names: Iterable[str]) -> list[str]:
    """Each name made safe (safe_name), then unique case-insensitively (two
    files differing only in case overwrite each other on Windows and macOS):
    "IMG_1.jpg", "IMG_1 (2).jpg", "IMG_1 (3).jpg", in the order given."""
    taken: set[str] = set()
    result = []
    for original in names:
        name = safe_name(original)
        stem, dot, extension = name.rpartition(".")
        if not dot:
            stem, extension = name, ""
        suffix = f".{extension}" if extension else ""
        candidate, n = name, 1
        while candidate.casefold() in taken:
            n += 1
            candidate = f"{stem} ({n}){suffix}"
        taken.add(candidate.casefold())
        result.append(candidate)
    return result


def zip_chunks(members: Iterable[ZipMember], *, force_zip64: bool = False) -> Iterator[bytes]:
    """The archive's bytes as they are produced. ``members`` is listed up
    front (a name and a size each); each member's ``open()`` runs only when
    its turn comes. ``force_zip64``
    writes ZIP64 records for every entry (tests, without 4 GiB of data)."""
    archive = zipstream.ZipStream(compress_type=zipstream.ZIP_STORED)
    for member in members:
        # An iterable with no size would force ZIP64 on every entry; the
        # declared size lets zipstream-ng decide per entry.
        archive.add(_opened_when_read(member), member.name, size=None if force_zip64 else member.size)
    yield from archive


def _opened_when_read(member: ZipMember) -> Iterator[bytes]:
    yield from member.open()
