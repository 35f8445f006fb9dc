"""Available slots: working hours, date overrides, time off, buffers, minimum
notice, how far ahead, the daily limit, live bookings and holds.

Times are computed in absolute (UTC) time; wall-clock bounds (09:00-17:00)
are turned into instants through the studio's zone for each date, so a day
with a daylight-saving change has the right length and a start never lands
in the hour that does not exist. Everything for a range is read in a fixed
number of queries, whatever the number of bookings.
"""

from __future__ import annotations

import bisect
import zoneinfo
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from django.db.models import Q
from django.utils import timezone

from bookings.models import (
    LIVE_STATUSES,
    MAX_ADVANCE_DAYS,
    MAX_NOTICE_MINUTES,
    STUDIO_RESOURCE,
    Booking,
    DateOverride,
    Service,
    TimeOff,
    WorkingHours,
)

Interval = tuple[datetime, datetime]


@dataclass(frozen=True)
class Slot:
    start: datetime
    end: datetime
    resources: tuple[str, ...]  # free resources for this slot, best first


def wall_clock(day: date, at: time, tz: zoneinfo.ZoneInfo) -> datetime:
    """The instant (UTC) of a wall-clock time in ``tz``. zoneinfo's rules
    (PEP 495, fold=0) apply: a repeated time is its first occurrence, a time
    in a spring-forward gap is read with the offset before the jump."""
    return datetime.combine(day, at, tzinfo=tz).astimezone(UTC)


def _merge(intervals: list[Interval]) -> list[Interval]:
    merged: list[Interval] = []
    for start, end in sorted(intervals):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def live_filter(now: datetime) -> Q:
    """Bookings that take their resource: live, and for holds not yet expired."""
    return Q(status__in=LIVE_STATUSES) & (Q(hold_expires_at__isnull=True) | Q(hold_expires_at__gt=now))


def resources_of(service: Service) -> list[str]:
    members = [str(pk) for pk in service.members.order_by("created_at").values_list("pk", flat=True)]
    return members or [STUDIO_RESOURCE]


class Calendar:
    """Everything needed to answer "is this resource free then?" for a range,
    loaded once."""

    def __init__(self, service: Service, start: datetime, end: datetime, now: datetime, exclude: Any = None) -> None:
        self.service = service
        self.studio = service.studio
        self.tz = zoneinfo.ZoneInfo(self.studio.timezone)
        self.now = now
        self.resources = resources_of(service)
        member_ids = [r for r in self.resources if r != STUDIO_RESOURCE]
        who = Q(member__isnull=True) | Q(member_id__in=member_ids)
        self.hours: dict[str | None, dict[int, list[tuple[time, time]]]] = defaultdict(lambda: defaultdict(list))
        for row in WorkingHours.objects.filter(who).values("member_id", "weekday", "start_time", "end_time"):
            key = str(row["member_id"]) if row["member_id"] else None
            self.hours[key][row["weekday"]].append((row["start_time"], row["end_time"]))
        first, last = start.astimezone(self.tz).date(), end.astimezone(self.tz).date()
        self.overrides: dict[tuple[str | None, date], list[DateOverride]] = defaultdict(list)
        for override in DateOverride.objects.filter(
            who, date__gte=first - timedelta(days=1), date__lte=last + timedelta(days=1)
        ):
            key = str(override.member_id) if override.member_id else None
            self.overrides[(key, override.date)].append(override)
        margin = timedelta(days=1)
        busy: dict[str, list[Interval]] = defaultdict(list)
        studio_off: list[Interval] = []
        for off in TimeOff.objects.filter(who, starts_at__lt=end + margin, ends_at__gt=start - margin):
            if off.member_id:
                busy[str(off.member_id)].append((off.starts_at, off.ends_at))
            else:
                studio_off.append((off.starts_at, off.ends_at))
        bookings = Booking.objects.filter(
            live_filter(now), blocked_start__lt=end + margin, blocked_end__gt=start - margin
        )
        if exclude is not None:
            bookings = bookings.exclude(pk=exclude)
        self.per_day: dict[date, int] = defaultdict(int)
        for resource, b_start, b_end, service_id, starts_at in bookings.values_list(
            "resource", "blocked_start", "blocked_end", "service_id", "starts_at"
        ):
            busy[resource].append((b_start, b_end))
            if service_id == service.pk:
                self.per_day[starts_at.astimezone(self.tz).date()] += 1
        # Per resource: its own bookings and time off, the studio's time off,
        # merged into disjoint sorted spans for one bisect per check.
        self.spans: dict[str, list[Interval]] = {}
        for resource in self.resources:
            self.spans[resource] = _merge([*busy[resource], *studio_off])
        self._starts = {r: [s for s, _ in spans] for r, spans in self.spans.items()}

    def working_intervals(self, resource: str, day: date) -> list[Interval]:
        """The member's override for the day, else the studio's, else weekly
        hours: the member's own if they have any, else the studio's."""
        member = None if resource == STUDIO_RESOURCE else resource
        overrides = self.overrides.get((member, day)) if member else None
        overrides = overrides or self.overrides.get((None, day))
        if overrides:
            spans = [(o.start_time, o.end_time) for o in overrides if not o.is_closed]
        else:
            spans = self.hours[member if member in self.hours else None][day.weekday()]
        return [(wall_clock(day, a, self.tz), wall_clock(day, b, self.tz)) for a, b in spans]

    def is_free(self, resource: str, start: datetime, end: datetime) -> bool:
        spans = self.spans[resource]
        index = bisect.bisect_right(self._starts[resource], start) - 1
        if index >= 0 and spans[index][1] > start:  # a span that began before us runs into us
            return False
        return index + 1 >= len(spans) or spans[index + 1][0] >= end  # the next one starts after us


def available_slots(
    service: Service, start_day: date, end_day: date, *, now: datetime | None = None, exclude: Any = None
) -> list[Slot]:
    """Slots for ``service`` from ``start_day`` to ``end_day`` (inclusive,
    studio-local dates). ``exclude`` ignores one booking (rescheduling it)."""
    now = now or timezone.now()
    tz = zoneinfo.ZoneInfo(service.studio.timezone)
    # Settings stored before the model bounded them are read within the bounds.
    earliest = now + timedelta(minutes=min(service.min_notice_minutes, MAX_NOTICE_MINUTES))
    latest = now + timedelta(days=min(service.max_advance_days, MAX_ADVANCE_DAYS))
    # Only the days between earliest and latest can hold a slot (a day either
    # side covers any zone's offset). Clipping first keeps every conversion
    # below near today, where datetime can represent it (year 1 in UTC+14 is
    # year 0 in UTC), and the loop no longer than the horizon.
    start_day = max(start_day, earliest.astimezone(tz).date() - timedelta(days=1))
    end_day = min(end_day, latest.astimezone(tz).date() + timedelta(days=1))
    if start_day > end_day:
        return []
    range_start = wall_clock(start_day, time(0), tz)
    range_end = wall_clock(end_day + timedelta(days=1), time(0), tz)
    if range_end <= earliest or range_start > latest:
        return []
    calendar = Calendar(service, range_start, range_end, now, exclude=exclude)
    duration = timedelta(minutes=service.duration_minutes)
    before = timedelta(minutes=service.buffer_before_minutes)
    after = timedelta(minutes=service.buffer_after_minutes)
    step = timedelta(minutes=service.slot_step_minutes)
    found: dict[datetime, list[str]] = {}
    day = start_day
    while day <= end_day:
        if service.daily_limit is None or calendar.per_day[day] < service.daily_limit:
            for resource in calendar.resources:
                for open_at, close_at in calendar.working_intervals(resource, day):
                    start = open_at + before
                    while start + duration + after <= close_at:
                        if earliest <= start <= latest and calendar.is_free(
                            resource, start - before, start + duration + after
                        ):
                            found.setdefault(start, []).append(resource)
                        start += step
        day += timedelta(days=1)
    return [Slot(s, s + duration, tuple(rs)) for s, rs in sorted(found.items())]


def slot_for(service: Service, start: datetime, *, now: datetime | None = None, exclude: Any = None) -> Slot | None:
    try:
        day = start.astimezone(zoneinfo.ZoneInfo(service.studio.timezone)).date()
    except OverflowError:
        return None  # beyond the calendar datetime can represent: never a slot
    return next((s for s in available_slots(service, day, day, now=now, exclude=exclude) if s.start == start), None)
