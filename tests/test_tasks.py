"""Celery, in one place: every task declares its time limits, tasks are
routed to their queues by one table, and beat jobs queue work only for the
studios that have some (one query), not one task per studio every minute."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.conf import settings
from django.utils import timezone

from bookings import tasks as booking_tasks
from bookings.models import BookingStatus
from studio import tasks as core_tasks
from studio.celery import app
from tests import factories

QUEUES = {"default", "email", "derivatives", "exports", "faces"}
OURS = ("studio.", "galleries.", "bookings.", "teams.", "audit.", "exports.")


def our_tasks() -> dict[str, Any]:
    app.loader.import_default_modules()
    return {name: task for name, task in app.tasks.items() if name.startswith(OURS)}


def test_the_enumeration_sees_our_tasks():
    assert {"studio.send_email", "galleries.make_derivatives", "bookings.send_reminders"} <= set(our_tasks())


@pytest.mark.parametrize("name", sorted(our_tasks()))
def test_every_task_declares_its_time_limits(name):
    task = our_tasks()[name]
    assert task.soft_time_limit and task.time_limit, f"{name} has no time limits"
    assert task.soft_time_limit < task.time_limit  # the soft one lets it clean up first


@pytest.mark.parametrize("name", sorted(our_tasks()))
def test_every_task_is_routed_to_one_of_the_queues(name):
    route = app.amqp.router.route({}, name)
    assert route["queue"].name in QUEUES


def test_the_routes_send_heavy_and_mail_work_to_their_own_queues():
    def queue(name: str) -> str:
        return app.amqp.router.route({}, name)["queue"].name

    assert queue("galleries.make_derivatives") == "derivatives"
    assert queue("studio.send_email") == "email"
    assert queue("exports.build_zip") == "exports"
    assert queue("bookings.release_expired_holds") == "default"
    assert settings.CELERY_TASK_DEFAULT_QUEUE == "default"


def test_every_beat_entry_names_a_registered_task():
    names = our_tasks()
    for entry in settings.CELERY_BEAT_SCHEDULE.values():
        assert entry["task"] in names, entry


@pytest.fixture
def queued(monkeypatch) -> list[tuple[str, tuple]]:
    """What the beat jobs hand to the broker (recorded, not run)."""
    calls: list[tuple[str, tuple]] = []

    def enqueue(task: Any, *args: Any, **kwargs: Any) -> bool:
        calls.append((task.name, args))
        return True

    monkeypatch.setattr(core_tasks, "enqueue", enqueue)
    return calls


@pytest.mark.django_db
def test_release_expired_holds_queues_only_the_studios_with_expired_holds(queued, django_assert_max_num_queries):
    now = timezone.now()
    busy = factories.studio()
    factories.booking(busy, status=BookingStatus.HELD, hold_expires_at=now - timedelta(minutes=1))
    factories.booking(busy, status=BookingStatus.HELD, hold_expires_at=now - timedelta(minutes=2))
    waiting = factories.studio()
    factories.booking(waiting, status=BookingStatus.HELD, hold_expires_at=now + timedelta(minutes=5))
    idle = [factories.studio() for _ in range(5)]
    assert idle

    with django_assert_max_num_queries(1):
        assert booking_tasks.release_expired_holds() == 1
    assert queued == [("bookings.release_expired_holds_for", (str(busy.pk),))]


@pytest.mark.django_db
def test_send_reminders_queues_only_the_studios_with_reminders_due(queued, django_assert_max_num_queries):
    now = timezone.now()
    due = factories.studio()
    factories.booking(due, start=now + timedelta(hours=3), status=BookingStatus.CONFIRMED)
    later = factories.studio()
    factories.booking(later, start=now + timedelta(days=4), status=BookingStatus.CONFIRMED)
    asleep = factories.studio()
    factories.booking(asleep, start=now + timedelta(hours=2), status=BookingStatus.CONFIRMED)
    from studio.models import Studio

    Studio.objects.filter(pk=asleep.pk).update(is_active=False)

    with django_assert_max_num_queries(1):
        assert booking_tasks.send_reminders() == 1
    assert queued == [("bookings.send_reminders_for", (str(due.pk),))]
