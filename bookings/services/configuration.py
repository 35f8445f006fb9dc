"""The studio's booking settings: services and availability (working hours,
date overrides, time off). One audited write path each."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from bookings.models import Service
from studio.auditing import Action, audit_record, snapshot
from studio.errors import Conflict
from studio.tenancy import current_studio

_SERVICE_FIELDS = [
    "name",
    "duration_minutes",
    "buffer_before_minutes",
    "buffer_after_minutes",
    "price",
    "deposit",
    "min_notice_minutes",
    "max_advance_days",
    "daily_limit",
    "is_active",
]


@transaction.atomic
def service_save(*, service: Service, members: list[Any] | None = None) -> Service:
    creating = service._state.adding
    before = None if creating else snapshot(Service.objects.get(pk=service.pk), _SERVICE_FIELDS)
    service.studio = current_studio()
    service.save()
    if members is not None:
        service.members.set(members)
    after = snapshot(service, _SERVICE_FIELDS)
    action = Action.SERVICE_CREATED if creating else Action.SERVICE_UPDATED
    audit_record(action=action, target=service, before=before, after=after)
    return service


@transaction.atomic
def service_delete(*, service: Service) -> None:
    """Services with bookings are kept (deactivated): bookings point at them."""
    if service.bookings.exists():
        raise Conflict("This service has bookings: deactivate it instead.", code="SERVICE_IN_USE")
    audit_record(action=Action.SERVICE_DELETED, target=service, before=snapshot(service, _SERVICE_FIELDS))
    service.delete()


def _config_snapshot(obj: Any) -> dict[str, Any]:
    fields = [f.name for f in obj._meta.concrete_fields if f.name not in ("id", "studio", "created_at", "updated_at")]
    return snapshot(obj, fields)


@transaction.atomic
def availability_save(*, obj: Any) -> Any:
    """Working hours, date overrides and time off: one audited write path."""
    creating = obj._state.adding
    before = None if creating else _config_snapshot(type(obj).objects.get(pk=obj.pk))
    obj.studio = current_studio()
    obj.save()
    audit_record(action=Action.AVAILABILITY_CHANGED, target=obj, before=before, after=_config_snapshot(obj))
    return obj


@transaction.atomic
def availability_delete(*, obj: Any) -> None:
    audit_record(action=Action.AVAILABILITY_CHANGED, target=obj, before=_config_snapshot(obj), after=None)
    obj.delete()
