"""Identifiers.

Public ids are UUIDs so nothing sequential reaches a URL or a payload. We use
version 7 (RFC 9562): the leading 48 bits are milliseconds since the epoch, so
new rows land at the end of the primary-key index instead of scattering across
it, and ids sort roughly by creation time.
"""

from __future__ import annotations

import os
import time
import uuid


def uuid7() -> uuid.UUID:
    ms = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    value = (ms & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76  # version
    value |= ((rand >> 68) & 0xFFF) << 64  # rand_a, 12 bits
    value |= 0b10 << 62  # RFC 4122 variant
    value |= rand & ((1 << 62) - 1)  # rand_b, 62 bits
    return uuid.UUID(int=value)
