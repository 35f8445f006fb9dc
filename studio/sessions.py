"""Django's database sessions, read through a compiled query.

Every portal request (the photo list included) and every staff request
loads its session: Django's backend builds and compiles the same
``Session.objects.get(session_key=..., expire_date__gt=now)`` each time,
about a fifth of a small portal page's CPU (bench/gallery_list.py). Here
that query runs from a template (studio.sql_templates); writes, expiry and
everything else are Django's.

    SESSION_ENGINE = "studio.sessions"
"""

from __future__ import annotations

import logging
from typing import Any

from django.contrib.sessions.backends import db
from django.contrib.sessions.models import Session
from django.core.exceptions import SuspiciousOperation
from django.utils import timezone

from studio.sql_templates import Templates, instance, instance_columns

_TEMPLATES = Templates(size=4)


def _session_rows(values: dict[str, Any]) -> Any:
    return Session.objects.filter(session_key=values["key"], expire_date__gt=values["now"]).values(
        *instance_columns(Session)
    )[:1]


class SessionStore(db.SessionStore):
    def _get_session_from_db(self) -> Session | None:
        # db.SessionStore's, with the query from a template.
        try:
            rows = _TEMPLATES.rows(_session_rows, {"key": self.session_key, "now": timezone.now()})
        except SuspiciousOperation as exc:
            logging.getLogger(f"django.security.{exc.__class__.__name__}").warning(str(exc))
            rows = []
        if not rows:
            self._session_key = None
            return None
        return instance(Session, rows[0])
