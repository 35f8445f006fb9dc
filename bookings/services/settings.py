"""The studio's booking settings: services and availability (working hours,
date overrides, time off). One audited write path each."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from bookings.models import Service
from studio.auditing import Action, audit_record, snapshot
from studio.errors import Conflict
from studio.tenancy import current_studio
from studio.validation import validate


@transaction.atomic
def service_save(*, service: Service, members: list[Any] | None = None) -> Service:
    creating = service._state.adding
    before = None if creating else snapshot(Service.objects.get(pk=service.pk), Service.EDITABLE_FIELDS)
    service.studio = current_studio()
    validate(service)
    service.save()
    if members is not None:
        service.members.set(members)
    after = snapshot(service, Service.EDITABLE_FIELDS)
    action = Action.SERVICE_CREATED if creating else Action.SERVICE_UPDATED
    audit_record(action=action, target=service, before=before, after=after)
    return service


@transaction.atomic
def service_delete(*, service: Service) -> None:
    """Services with bookings are kept (deactivated): bookings point at them."""
    if service.bookings.exists():
        raise Conflict("This service has bookings: deactivate it instead.", code="SERVICE_IN_USE")
    audit_record(action=Action.SERVICE_DELETED, target=service, before=snapshot(service, Service.EDITABLE_FIELDS))
    service.delete()


def _config_snapshot(obj: Any) -> dict[str, Any]:
    return snapshot(obj, type(obj).EDITABLE_FIELDS)


@transaction.atomic
def availability_save(*, obj: Any) -> Any:
    """Working hours, date overrides and time off: one audited write path."""
    creating = obj._state.adding
    before = None if creating else _config_snapshot(type(obj).objects.get(pk=obj.pk))
    obj.studio = current_studio()
    validate(obj)
    obj.save()
    audit_record(action=Action.AVAILABILITY_CHANGED, target=obj, before=before, after=_config_snapshot(obj))
    return obj


@transaction.atomic
def availability_delete(*, obj: Any) -> None:
    audit_record(action=Action.AVAILABILITY_CHANGED, target=obj, before=_config_snapshot(obj), after=None)
    obj.delete()
