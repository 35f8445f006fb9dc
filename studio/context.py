"""Who is acting, and from where: the facts every audit event records.

Requests bind the Django request (``RequestContextMiddleware``); the actor is
read from ``request.user`` when an event is written, so DRF token
authentication, which runs inside the view, is seen too. Celery tasks and
management commands bind a system actor with ``acting_as``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, replace
from typing import Any

# C0 controls (NUL among them), DEL and C1 controls. PostgreSQL refuses NUL in
# text and jsonb, so a header or query string carrying one made every audited
# write fail; the others only garble logs and CSV exports.
_CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def printable(value: str) -> str:
    """``value`` without control characters: what we store of what a client sent."""
    return _CONTROL_CHARACTERS.sub("", value)


class ActorType:
    USER = "user"
    VISITOR = "visitor"
    CLIENT = "client"
    SYSTEM = "system"
    ANONYMOUS = "anonymous"  # someone not signed in, e.g. a failed sign-in
    CHOICES = [
        (USER, "Staff user"),
        (VISITOR, "Gallery visitor"),
        (CLIENT, "Booking client"),
        (SYSTEM, "System"),
        (ANONYMOUS, "Not signed in"),
    ]


@dataclass(frozen=True)
class Actor:
    type: str
    label: str
    user: Any = None  # a User for staff actors
    ref: str = ""  # an id for non-user actors (gallery visitor id, task name)

    @classmethod
    def for_user(cls, user: Any, *, via: str = "") -> Actor:
        label = user.email + (f" ({via})" if via else "")
        return cls(type=ActorType.USER, label=label, user=user, ref=str(user.pk))

    @classmethod
    def visitor(cls, visitor: Any) -> Actor:
        label = str(visitor)
        return cls(type=ActorType.VISITOR, label=f"{label} (gallery visitor)", ref=str(visitor.pk))

    @classmethod
    def client(cls, email: str, name: str = "") -> Actor:
        label = f"{name} <{email}>" if name else email
        return cls(type=ActorType.CLIENT, label=f"{label} (booking client)", ref=email[:100])

    @classmethod
    def anonymous(cls, label: str) -> Actor:
        return cls(type=ActorType.ANONYMOUS, label=label, ref="")

    @classmethod
    def system(cls, name: str) -> Actor:
        return cls(type=ActorType.SYSTEM, label=name, ref=name)


@dataclass(frozen=True)
class Context:
    actor: Actor | None = None
    request: Any = None
    ip: str | None = None
    user_agent: str = ""
    request_id: str = ""

    def resolved_actor(self) -> Actor | None:
        if self.actor is not None:
            return self.actor
        user = getattr(self.request, "user", None)
        if user is not None and user.is_authenticated:
            token = getattr(self.request, "api_token", None)
            return Actor.for_user(user, via=f"token {token.name}" if token else "")
        return None


_context: ContextVar[Context] = ContextVar("studio_context", default=Context())  # noqa: B039 - frozen, immutable


def current() -> Context:
    return _context.get()


@contextmanager
def bind(**values: Any) -> Iterator[Context]:
    ctx = replace(_context.get(), **values)
    token = _context.set(ctx)
    try:
        yield ctx
    finally:
        _context.reset(token)


def acting_as(actor: Actor):  # noqa: ANN201 - a context manager
    """Attribute the audit events written inside the block to ``actor``."""
    return bind(actor=actor)
