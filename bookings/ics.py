"""iCalendar output (icalendar library): feeds and the invitation attached to
confirmation emails. UIDs are stable (the booking id), SEQUENCE follows
Booking.sequence, cancelled bookings stay in feeds as STATUS:CANCELLED so
calendars remove them, and every zone used gets its VTIMEZONE.

Times are written in the studio's zone, except a wall time that names two
instants (the repeated hour when clocks go back) or none (the skipped hour):
readers only see the wall time, so such an event is written in UTC.

VTIMEZONE components are built here from the zone's own transitions, as
yearly RRULEs where the transitions follow one (as every reader supports),
not as icalendar's lists of RDATEs, which vobject (and so dateutil's tzical)
reads as permanent standard time: a summer event an hour off."""

from __future__ import annotations

import calendar
import functools
import hashlib
import logging
import zoneinfo
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from email.utils import parseaddr
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import icalendar
from django.conf import settings
from django.core.cache import cache
from icalendar import Calendar, Event, Timezone, TimezoneDaylight, TimezoneStandard, vCalAddress, vText

from bookings.models import Booking, BookingStatus
from studio.cache import CACHE_DOWN, studio_cache_key

if TYPE_CHECKING:
    from django.db.models import QuerySet

    from studio.models import Studio

logger = logging.getLogger(__name__)

PRODID = "-//Studio Platform//Bookings//EN"
# Part of every feed's ETag: a change to what this module writes must reach
# calendars that hold an unchanged feed's old ETag (and the cached bodies).
FORMAT_VERSION = 2
_STATUS = {
    BookingStatus.CONFIRMED: "CONFIRMED",
    BookingStatus.COMPLETED: "CONFIRMED",
    BookingStatus.AWAITING_PAYMENT: "TENTATIVE",
    BookingStatus.HELD: "TENTATIVE",
    BookingStatus.CANCELLED: "CANCELLED",
}


def uid_host() -> str:
    return urlsplit(settings.SITE_URL).hostname or "localhost"


def uid(booking: Booking) -> str:
    return f"booking-{booking.pk}@{uid_host()}"


def names_one_instant(local: datetime) -> bool:
    """Whether the wall time of ``local`` (aware) means this instant and no
    other: false in the repeated hour (it means two) and in the skipped one
    (it means none, and readers guess)."""
    wall = local.replace(tzinfo=None)
    instant = local.astimezone(UTC)
    return all(wall.replace(tzinfo=local.tzinfo, fold=fold).astimezone(UTC) == instant for fold in (0, 1))


def _times(booking: Booking) -> tuple[datetime, datetime]:
    tz = zoneinfo.ZoneInfo(booking.studio.timezone)
    start, end = booking.starts_at.astimezone(tz), booking.ends_at.astimezone(tz)
    if names_one_instant(start) and names_one_instant(end):
        return start, end
    # Both in UTC, not only the ambiguous end: readers that take an event's
    # zone from DTSTART handle a mixed pair poorly.
    return booking.starts_at.astimezone(UTC), booking.ends_at.astimezone(UTC)


def event(booking: Booking, *, for_client: bool = False) -> Event:
    vevent = Event()
    vevent.add("uid", uid(booking))
    vevent.add("dtstamp", booking.updated_at)
    vevent.add("last-modified", booking.updated_at)
    vevent.add("sequence", booking.sequence)
    start, end = _times(booking)
    vevent.add("dtstart", start)
    vevent.add("dtend", end)
    title = booking.service.name if for_client else f"{booking.service.name}: {booking.client_name}"
    vevent.add("summary", f"{title} ({booking.studio.name})" if for_client else title)
    vevent.add("status", _STATUS[booking.status])
    if not for_client:
        details = [f"Client: {booking.client_name} <{booking.client_email}>"]
        if booking.client_phone:
            details.append(f"Phone: {booking.client_phone}")
        if booking.notes:
            details.append(booking.notes)
        vevent.add("description", "\n".join(details))
    # RFC 5546: invitations need exactly one ORGANIZER; without a studio
    # address, the address our mail is sent from.
    address = booking.studio.contact_email or parseaddr(settings.DEFAULT_FROM_EMAIL)[1]
    organizer = vCalAddress(f"mailto:{address}")
    organizer.params["cn"] = vText(booking.studio.name)
    vevent.add("organizer", organizer)
    return vevent


def _calendar(name: str) -> Calendar:
    cal = Calendar()
    cal.add("prodid", PRODID)
    cal.add("version", "2.0")
    cal.add("calscale", "GREGORIAN")
    cal.add("x-wr-calname", name)
    return cal


def _zone_days(vevent: Event) -> tuple[tuple[str, date], ...]:
    """The zones an event names, with the local day it names each on."""
    found = []
    for prop in ("DTSTART", "DTEND"):
        tzid = vevent[prop].params.get("TZID")
        if tzid:
            found.append((str(tzid), vevent.decoded(prop).date()))
    return tuple(found)


def _zone_spans(zone_days: Iterable[tuple[str, date]]) -> list[tuple[str, date, date]]:
    """Each zone named, with the first and last day it is named on."""
    days: dict[str, list[date]] = {}
    for tzid, day in zone_days:
        days.setdefault(tzid, []).append(day)
    return [(tzid, min(named), max(named)) for tzid, named in sorted(days.items())]


def _with_timezones(cal: Calendar, events: list[Event]) -> Calendar:
    """Add a VTIMEZONE for each zone the events name, then the events (zones
    first, for readers that resolve a TZID as they meet it)."""
    for tzid, first, last in _zone_spans(day for vevent in events for day in _zone_days(vevent)):
        cal.add_component(vtimezone(tzid, first, last))
    for vevent in events:
        cal.add_component(vevent)
    return cal


# --- feeds, from cached VEVENTs -------------------------------------------------------------------------
#
# Serialising an event costs icalendar ~0.5 ms, nearly all of a feed's
# build. Each VEVENT's text is cached under a digest of everything event()
# reads, so a changed booking, service name, studio name, zone or contact
# address, site host or sender is a new key (never a stale entry), and a
# feed where one booking changed re-renders one event. Feeds of every scope
# show the same staff view of an event, and the key names the studio and the
# booking, so one feed's entry can only ever stand for that same text.
EVENT_CACHE_SECONDS = 7 * 24 * 3600  # longer than any calendar's poll interval
# What a cached entry holds, and the library that wrote it: a new shape or a
# new icalendar (its folding, its escaping) starts afresh.
_EVENT_CACHE_VERSION = f"{FORMAT_VERSION}.1.{icalendar.__version__}"


@functools.lru_cache(maxsize=256)
def _zone_data(tzid: str) -> str:
    """A digest of the zone's compiled rules, found as zoneinfo finds them
    (TZPATH, then the tzdata package): a tzdata update that moves a wall
    time, or makes one ambiguous, changes the events' keys. Read once per
    process, as zoneinfo reads a zone once."""
    zoneinfo.ZoneInfo(tzid)  # refuses keys that are no zone (and paths)
    for root in zoneinfo.TZPATH:
        path = Path(root, tzid)
        if path.is_file():
            return hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    try:
        return hashlib.sha256(resources.files("tzdata.zoneinfo").joinpath(tzid).read_bytes()).hexdigest()[:16]
    except (ModuleNotFoundError, OSError):
        return ""


def _event_keys(bookings: list[Booking]) -> list[str]:
    """Each booking's cache key. What every event of the feed shares (site
    host, sender, the studio's key prefix and zone data) is read once: this
    runs for every event on every build."""
    host = uid_host()
    sender = settings.DEFAULT_FROM_EMAIL
    prefixes: dict[object, str] = {}
    keys = []
    for booking in bookings:
        studio, pk = booking.studio, booking.pk
        if studio.pk not in prefixes:
            zone = _zone_data(studio.timezone)
            prefixes[studio.pk] = studio_cache_key("vevent", _EVENT_CACHE_VERSION, zone, studio=studio)
        # Strings and ints: their repr is unambiguous, and quick to make.
        inputs = (
            host,
            sender,
            str(pk),
            booking.updated_at.isoformat(),
            booking.sequence,
            booking.starts_at.isoformat(),
            booking.ends_at.isoformat(),
            str(booking.status),  # the value, whether read or just set (an enum)
            booking.client_name,
            booking.client_email,
            booking.client_phone,
            booking.notes,
            booking.service.name,
            studio.name,
            studio.timezone,
            studio.contact_email,
        )
        digest = hashlib.sha256(repr(inputs).encode()).hexdigest()[:40]
        keys.append(f"{prefixes[studio.pk]}:{pk}:{digest}")
    return keys


CachedEvent = tuple[bytes, tuple[tuple[str, date], ...]]  # VEVENT text, _zone_days


def _cached_events(keys: list[str]) -> dict[str, CachedEvent] | None:
    """One round trip for every event; None when the cache is unreachable
    (the feed is then built without it, and nothing is stored)."""
    try:
        found = cache.get_many(keys)
    except CACHE_DOWN as exc:
        logger.warning("cache unreachable, %d feed events rendered afresh (%s)", len(keys), exc)
        return None
    return {key: value for key, value in found.items() if isinstance(value, tuple) and len(value) == 2}


def _store_events(rendered: dict[str, CachedEvent]) -> None:
    try:
        cache.set_many(rendered, timeout=EVENT_CACHE_SECONDS)
    except CACHE_DOWN as exc:
        logger.warning("cache unreachable, %d feed events not stored (%s)", len(rendered), exc)


def _render_event(booking: Booking) -> CachedEvent:
    vevent = event(booking)
    return vevent.to_ical(), _zone_days(vevent)


@functools.lru_cache(maxsize=64)
def _vtimezone_ical(tzid: str, first_year: int, last_year: int) -> bytes:
    return vtimezone(tzid, date(first_year, 1, 1), date(last_year, 1, 1)).to_ical()


# What a feed's event reads of a booking (event(), _event_keys): loading
# only these, with the one studio shared, keeps a feed of a thousand
# bookings from building two thousand studio and service objects.
EVENT_FIELDS = (
    "id",
    "studio_id",
    "service_id",
    "service__name",
    "updated_at",
    "sequence",
    "starts_at",
    "ends_at",
    "status",
    "client_name",
    "client_email",
    "client_phone",
    "notes",
)


def feed_rows(bookings: QuerySet[Booking], studio: Studio) -> list[Booking]:
    """The feed's bookings in order, loaded for feed(): all of them are the
    studio's (the queryset is studio-scoped), so each shares ``studio``."""
    rows = list(bookings.select_related("service").only(*EVENT_FIELDS).order_by("starts_at"))
    for booking in rows:
        if booking.studio_id != studio.pk:
            raise ValueError(f"booking {booking.pk} is not {studio}'s")
        Booking.studio.field.set_cached_value(booking, studio)
    return rows


def feed(name: str, bookings: Iterable[Booking], *, use_cache: bool = True) -> bytes:
    """The feed: a VCALENDAR, a VTIMEZONE per zone its events name, the
    events. Byte for byte what icalendar writes for the whole calendar: a
    component's text is its own lines (folded one by one, CRLF-ended), so
    the calendar is its header, its components' texts, and its END line."""
    bookings = list(bookings)
    if not use_cache:
        return _with_timezones(_calendar(name), [event(booking) for booking in bookings]).to_ical()
    keys = _event_keys(bookings)
    cached = _cached_events(keys)
    hits = cached or {}
    rendered = {key: _render_event(booking) for key, booking in zip(keys, bookings, strict=True) if key not in hits}
    if rendered and cached is not None:  # not when the cache is down: one timeout per fetch is enough
        _store_events(rendered)
    texts = [hits.get(key) or rendered[key] for key in keys]
    end = b"END:VCALENDAR\r\n"
    parts = [_calendar(name).to_ical().removesuffix(end)]
    for tzid, first, last in _zone_spans(day for _, zone_days in texts for day in zone_days):
        parts.append(_vtimezone_ical(tzid, first.year, last.year))
    parts += [text for text, _ in texts]
    parts.append(end)
    return b"".join(parts)


def invitation(booking: Booking) -> bytes:
    """The .ics attached to the client's confirmation (METHOD:REQUEST), or
    the cancellation (METHOD:CANCEL)."""
    cal = _calendar(booking.studio.name)
    cal.add("method", "CANCEL" if booking.status == BookingStatus.CANCELLED else "REQUEST")
    vevent = event(booking, for_client=True)
    attendee = vCalAddress(f"mailto:{booking.client_email}")
    attendee.params["cn"] = vText(booking.client_name)
    vevent.add("attendee", attendee)
    return _with_timezones(cal, [vevent]).to_ical()


# --- VTIMEZONE ------------------------------------------------------------------------------------------

# Transitions are looked for a day apart, then pinned to the second: two
# changes less than a day apart that cancel out would be missed (tzdata has
# none in the years feeds cover, as far as we know).
_SCAN_STEP = timedelta(days=1)
# Years of a zone's future read to choose its yearly rules: enough for a rule
# like Israel's (the Friday before the last Sunday of March) to show it is not
# simply the fourth Friday, which it is until 2030.
_EVIDENCE_YEARS = 10
_WEEKDAYS = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")


@dataclass(frozen=True)
class _State:
    offset: timedelta
    name: str
    daylight: bool


@dataclass(frozen=True)
class _Onset:
    """A change of the zone's offset (or name): when, and from what to what."""

    at: datetime  # UTC
    offset_from: timedelta
    to: _State

    @property
    def local(self) -> datetime:
        """The onset as RFC 5545 wants it: local time before the change."""
        return (self.at + self.offset_from).replace(tzinfo=None)

    @property
    def kind(self) -> tuple[object, ...]:
        """Onsets of one kind, a year apart, may share one component."""
        return (self.offset_from, self.to, self.local.month, self.local.time())


def _state(tz: zoneinfo.ZoneInfo, at: datetime) -> _State:
    local = at.astimezone(tz)
    offset = local.utcoffset() or timedelta(0)
    # A negative DST (Europe/Dublin's winter) is standard time to readers.
    return _State(offset, local.tzname() or _offset_name(offset), (local.dst() or timedelta(0)) > timedelta(0))


def _offset_name(offset: timedelta) -> str:
    minutes = int(offset.total_seconds()) // 60
    return f"{'-' if minutes < 0 else '+'}{abs(minutes) // 60:02d}{abs(minutes) % 60:02d}"


def _onsets(tz: zoneinfo.ZoneInfo, start: datetime, end: datetime) -> list[_Onset]:
    found = []
    at, state = start, _state(tz, start)
    while at < end:
        step = min(at + _SCAN_STEP, end)
        if _state(tz, step) == state:
            at = step
            continue
        low, high = int(at.timestamp()), int(step.timestamp())
        while high - low > 1:  # the first second of the new state
            middle = (low + high) // 2
            if _state(tz, datetime.fromtimestamp(middle, UTC)) == state:
                low = middle
            else:
                high = middle
        at = datetime.fromtimestamp(high, UTC)
        new = _state(tz, at)
        found.append(_Onset(at, state.offset, new))
        state = new
    return found


def _patterns(day: date) -> list[tuple[object, ...]]:
    """Yearly rules this date fits, simplest first: the nth or last weekday of
    its month, a weekday in a seven-day window (Israel: the Friday before the
    last Sunday), the same date."""
    weekday = _WEEKDAYS[day.weekday()]
    month_days = calendar.monthrange(day.year, day.month)[1]
    found: list[tuple[object, ...]] = []
    if day.day <= 28:
        found.append(("BYDAY", f"{(day.day - 1) // 7 + 1}{weekday}"))
    if day.day + 7 > month_days:
        found.append(("BYDAY", f"-1{weekday}"))
    windows = range(max(1, day.day - 6), min(day.day, month_days - 6) + 1)
    found += [("WINDOW", weekday, first) for first in windows]
    found.append(("BYMONTHDAY", day.day))
    return found


def _runs(onsets: list[_Onset]) -> list[tuple[list[_Onset], tuple[object, ...] | None]]:
    """Onsets of one kind in consecutive years that one yearly rule names."""
    by_kind: dict[tuple[object, ...], list[_Onset]] = {}
    for onset in onsets:
        by_kind.setdefault(onset.kind, []).append(onset)
    runs: list[tuple[list[_Onset], tuple[object, ...] | None]] = []
    for same_kind in by_kind.values():
        run, shared = [same_kind[0]], _patterns(same_kind[0].local.date())
        for onset in same_kind[1:]:
            fits = [p for p in shared if p in _patterns(onset.local.date())]
            if onset.local.year == run[-1].local.year + 1 and fits:
                run.append(onset)
                shared = fits
            else:
                runs.append((run, shared[0] if len(run) > 1 else None))
                run, shared = [onset], _patterns(onset.local.date())
        runs.append((run, shared[0] if len(run) > 1 else None))
    return runs


def _rrule(month: int, pattern: tuple[object, ...], count: int | None) -> tuple[tuple[str, object], ...]:
    rule: dict[str, object] = {"FREQ": "YEARLY", "BYMONTH": month}
    if pattern[0] == "BYDAY":
        rule["BYDAY"] = pattern[1]
    elif pattern[0] == "WINDOW":
        first = int(str(pattern[2]))
        rule["BYDAY"], rule["BYMONTHDAY"] = pattern[1], tuple(range(first, first + 7))
    else:
        rule["BYMONTHDAY"] = pattern[1]
    if count is not None:
        rule["COUNT"] = count
    return tuple(rule.items())


@dataclass(frozen=True)
class _Rule:
    """One STANDARD or DAYLIGHT sub-component."""

    onset_local: datetime
    offset_from: timedelta
    to: _State
    rrule: tuple[tuple[str, object], ...] = ()

    def component(self) -> TimezoneStandard | TimezoneDaylight:
        sub = TimezoneDaylight() if self.to.daylight else TimezoneStandard()
        sub.add("dtstart", self.onset_local)
        if self.rrule:
            sub.add("rrule", {key: list(value) if isinstance(value, tuple) else value for key, value in self.rrule})
        sub.add("tzoffsetfrom", self.offset_from)
        sub.add("tzoffsetto", self.to.offset)
        sub.add("tzname", self.to.name)
        return sub


@functools.lru_cache(maxsize=64)
def _zone_rules(tzid: str, first_year: int, last_year: int) -> tuple[_Rule, ...]:
    """What the VTIMEZONE says, for events from ``first_year`` to ``last_year``:
    the onset in effect a year before them and every change after it, each
    series in consecutive years as one RRULE, open-ended when it holds for as
    far as the zone is read (so a reader is right about later times too, while
    the zone keeps its rule); changes that follow no yearly rule only until a
    year after the events."""
    tz = zoneinfo.ZoneInfo(tzid)
    look_back = datetime(first_year - 2, 1, 1, tzinfo=UTC)
    cut = datetime(first_year - 1, 1, 1, tzinfo=UTC)
    needed_until = datetime(last_year + 2, 1, 1, tzinfo=UTC)
    horizon = datetime(last_year + _EVIDENCE_YEARS, 1, 1, tzinfo=UTC)
    onsets = _onsets(tz, look_back, horizon)
    before_cut = [o for o in onsets if o.at <= cut]
    onsets = before_cut[-1:] + [o for o in onsets if o.at > cut]
    rules = []
    if not before_cut:  # no change for a year before: the state then, from then
        state = _state(tz, cut)
        rules.append(_Rule((cut + state.offset).replace(tzinfo=None), state.offset, state))
    for run, pattern in _runs(onsets):
        if pattern is None:
            rules += [_Rule(onset.local, onset.offset_from, onset.to) for onset in run if onset.at < needed_until]
            continue
        open_ended = run[-1].local.year == horizon.year - 1
        first = run[0]
        if first.at >= needed_until:
            continue
        rrule = _rrule(first.local.month, pattern, None if open_ended else len(run))
        rules.append(_Rule(first.local, first.offset_from, first.to, rrule))
    return tuple(sorted(rules, key=lambda rule: rule.onset_local))


def vtimezone(tzid: str, first: date, last: date) -> Timezone:
    """The VTIMEZONE of an IANA zone, right for any time from ``first`` to
    ``last`` (and later, while the zone keeps its current rule)."""
    component = Timezone()
    component.add("tzid", tzid)
    for rule in _zone_rules(tzid, first.year, last.year):
        component.add_component(rule.component())
    return component
