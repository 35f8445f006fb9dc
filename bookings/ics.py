"""iCalendar output (icalendar library): feeds and the invitation attached to
confirmation emails. UIDs are stable (the booking id), SEQUENCE follows
Booking.sequence, cancelled bookings stay in feeds as STATUS:CANCELLED so
calendars remove them, and every zone used gets its VTIMEZONE."""

from __future__ import annotations

import zoneinfo
from collections.abc import Iterable
from email.utils import parseaddr
from urllib.parse import urlsplit

from django.conf import settings
from icalendar import Calendar, Event, vCalAddress, vText

from bookings.models import Booking, BookingStatus

PRODID = "-//Studio Platform//Bookings//EN"
_STATUS = {
    BookingStatus.CONFIRMED: "CONFIRMED",
    BookingStatus.COMPLETED: "CONFIRMED",
    BookingStatus.AWAITING_PAYMENT: "TENTATIVE",
    BookingStatus.HELD: "TENTATIVE",
    BookingStatus.CANCELLED: "CANCELLED",
}


def uid(booking: Booking) -> str:
    host = urlsplit(settings.SITE_URL).hostname or "localhost"
    return f"booking-{booking.pk}@{host}"


def event(booking: Booking, *, for_client: bool = False) -> Event:
    tz = zoneinfo.ZoneInfo(booking.studio.timezone)
    vevent = Event()
    vevent.add("uid", uid(booking))
    vevent.add("dtstamp", booking.updated_at)
    vevent.add("last-modified", booking.updated_at)
    vevent.add("sequence", booking.sequence)
    vevent.add("dtstart", booking.starts_at.astimezone(tz))
    vevent.add("dtend", booking.ends_at.astimezone(tz))
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


def feed(name: str, bookings: Iterable[Booking]) -> bytes:
    cal = _calendar(name)
    for booking in bookings:
        cal.add_component(event(booking))
    cal.add_missing_timezones()
    return cal.to_ical()


def invitation(booking: Booking) -> bytes:
    """The .ics attached to the client's confirmation (METHOD:REQUEST), or
    the cancellation (METHOD:CANCEL)."""
    cal = _calendar(booking.studio.name)
    cal.add("method", "CANCEL" if booking.status == BookingStatus.CANCELLED else "REQUEST")
    vevent = event(booking, for_client=True)
    attendee = vCalAddress(f"mailto:{booking.client_email}")
    attendee.params["cn"] = vText(booking.client_name)
    vevent.add("attendee", attendee)
    cal.add_component(vevent)
    cal.add_missing_timezones()
    return cal.to_ical()
