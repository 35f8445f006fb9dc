"""Studio scoping that fails closed.

Every studio-owned model uses :class:`StudioScopedManager`. Its querysets are
filtered to the studio of the active scope, and querying with no scope at all
raises :class:`NoStudioScope` instead of silently returning every studio's rows.

A scope is entered exactly once per unit of work:

- API requests: the studio base view (``studio.api.base``) after resolving the
  studio from the URL;
- the admin: ``StudioAdminSite.admin_view`` from the studio chosen in the session;
- Celery tasks: ``studio.tasks.studio_task`` from the ``studio_id`` argument;
- management commands: explicitly, per studio.

The only way around it is ``unscoped()``, which is meant to be grepped for.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from django.db import models

if TYPE_CHECKING:
    from studio.models import Studio


class NoStudioScope(RuntimeError):
    """A studio-owned model was queried outside studio_scope() or unscoped()."""


class CrossStudioWrite(RuntimeError):
    """A row of one studio was saved while another studio's scope was active."""


class _Unscoped:
    def __repr__(self) -> str:
        return "<unscoped>"


UNSCOPED = _Unscoped()
_scope: ContextVar[Studio | _Unscoped | None] = ContextVar("studio_scope", default=None)


@contextmanager
def studio_scope(studio: Studio) -> Iterator[Studio]:
    if studio is None or studio._state.adding:
        raise ValueError("studio_scope() needs a saved Studio")
    token = _scope.set(studio)
    try:
        yield studio
    finally:
        _scope.reset(token)


@contextmanager
def unscoped() -> Iterator[None]:
    """Lift the studio filter. Use only where crossing studios is the point
    (superuser admin, platform-wide commands, migrations of data)."""
    token = _scope.set(UNSCOPED)
    try:
        yield
    finally:
        _scope.reset(token)


def current_studio() -> Studio:
    scope = _scope.get()
    if scope is None or scope is UNSCOPED:
        raise NoStudioScope("No studio scope is active.")
    return scope  # type: ignore[return-value]


def current_studio_or_none() -> Studio | None:
    scope = _scope.get()
    return None if scope is None or scope is UNSCOPED else scope  # type: ignore[return-value]


def is_unscoped() -> bool:
    return _scope.get() is UNSCOPED


class StudioScopedQuerySet(models.QuerySet):
    pass


class StudioScopedManager(models.Manager.from_queryset(StudioScopedQuerySet)):  # type: ignore[misc]
    """Default manager of every model with a ``studio`` foreign key."""

    def get_queryset(self) -> models.QuerySet:
        queryset = super().get_queryset()
        scope = _scope.get()
        if scope is UNSCOPED:
            return queryset
        if scope is None:
            raise NoStudioScope(
                f"{self.model._meta.label} was queried outside a studio scope. "
                "Enter studio_scope(studio) (or, deliberately, unscoped())."
            )
        return queryset.filter(studio_id=scope.pk)


class StudioOwnedModel(models.Model):
    """Base for rows that belong to one studio.

    Subclasses declare ``studio = models.ForeignKey("studio.Studio", ...)``.
    Saving refuses a row of another studio than the active scope. Django's own
    internals (forward foreign keys, cascades) use the automatic base manager,
    which is unfiltered, so following a relation never needs a scope.
    """

    objects = StudioScopedManager()

    class Meta:
        abstract = True

    def save(self, *args: Any, **kwargs: Any) -> None:
        scope = _scope.get()
        if scope is None:
            raise NoStudioScope(f"{self._meta.label} saved outside a studio scope.")
        if scope is not UNSCOPED and self.studio_id != scope.pk:  # type: ignore[attr-defined]
            raise CrossStudioWrite(
                f"{self._meta.label} of studio {self.studio_id} saved in the scope of studio {scope.pk}."  # type: ignore[attr-defined]
            )
        super().save(*args, **kwargs)
