"""The demo studio's services and hours (``manage.py seed_demo``), in the
studio's time zone. Idempotent."""

from __future__ import annotations

import datetime
from typing import Any

from django.conf import settings

from bookings import services
from bookings.models import Service, WorkingHours


def seed(*, studio: Any, members: dict[str, Any]) -> list[str]:
    if not Service.objects.exists():
        services.service_save(
            service=Service(
                name="Portrait session",
                description="One hour in the studio.",
                duration_minutes=60,
                buffer_after_minutes=15,
                price=250,
                deposit=0,
                min_notice_minutes=24 * 60,
            )
        )
        services.service_save(
            service=Service(
                name="Engagement shoot",
                description="Two hours on location.",
                duration_minutes=120,
                buffer_before_minutes=30,
                buffer_after_minutes=30,
                price=600,
                deposit=150,
                daily_limit=2,
            )
        )
    if not WorkingHours.objects.exists():
        for weekday in range(5):
            services.availability_save(
                obj=WorkingHours(weekday=weekday, start_time=datetime.time(9), end_time=datetime.time(18))
            )
        services.availability_save(
            obj=WorkingHours(weekday=5, start_time=datetime.time(10), end_time=datetime.time(16))
        )
    site = settings.SITE_URL.rstrip("/")
    return [f"Booking page {site}/book/{studio.slug}/   (contact: {site}/contact/{studio.slug}/)"]
