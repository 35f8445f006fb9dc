"""django-allauth, the platform's way:

- its mail (address verification, password reset, sign-in codes, security
  notices) is logged and sent by a worker like every other email
  (studio.emails), so a dead SMTP server never fails a sign-up or a reset;
- with SIGNUP_MODE "invite", only a browser that opened a valid invitation
  link may sign up (the teams app marks the session with
  :data:`INVITED_SESSION_KEY`);
- sign-ins, failed sign-ins, sign-outs, password changes and two-factor
  changes and failures are audit events on the platform chain.
"""

from __future__ import annotations

import uuid
from typing import Any

from allauth.account.adapter import DefaultAccountAdapter
from allauth.core import context as allauth_context
from django.conf import settings
from django.contrib.sites.shortcuts import get_current_site
from django.http import HttpRequest

from studio.auditing import Action, audit_record
from studio.context import Actor, acting_as
from studio.emails import email_queue

# Set by the invitation page for a visitor who is not signed in: the path
# back to the invitation, and the address it was sent to.
INVITED_SESSION_KEY = "invited"


class AccountAdapter(DefaultAccountAdapter):
    def is_open_for_signup(self, request: HttpRequest) -> bool:
        if settings.SIGNUP_MODE == "open":
            return True
        return bool(request.session.get(INVITED_SESSION_KEY))

    def send_mail(self, template_prefix: str, email: str, context: dict[str, Any]) -> None:
        request = allauth_context.request
        ctx = {"request": request, "email": email, "current_site": get_current_site(request), **context}
        message = self.render_mail(template_prefix, email, ctx)
        html = next(
            (content for content, mimetype in getattr(message, "alternatives", []) if mimetype == "text/html"), ""
        )
        if message.content_subtype == "html":  # only an HTML template exists
            html, text = message.body, ""
        else:
            text = message.body
        email_queue(
            kind=f"account.{template_prefix.rsplit('/', 1)[-1]}",
            to=message.to,
            subject=message.subject,
            body=text,
            html_body=html,
            key=f"account:{template_prefix}:{uuid.uuid4()}",  # each is a new message
            sensitive=True,  # verification links, reset keys, sign-in codes
            platform=True,
        )


# --- sign-in and account security events, on the platform chain ------------------------------------------


def _record(action: Action, *, actor: Actor, user: Any = None, **after: Any) -> None:
    with acting_as(actor):
        audit_record(action=action, target=user, platform=True, after=after or None)


def signed_in(sender: Any, request: HttpRequest, user: Any, **kwargs: Any) -> None:
    _record(Action.USER_SIGNED_IN, actor=Actor.for_user(user), user=user)


def signed_out(sender: Any, request: HttpRequest, user: Any, **kwargs: Any) -> None:
    if user is not None:
        _record(Action.USER_SIGNED_OUT, actor=Actor.for_user(user), user=user)


def sign_in_failed(sender: Any, credentials: dict[str, Any], request: HttpRequest | None = None, **kwargs: Any) -> None:
    """The address tried, never the password (Django masks it already). The
    sign-in rate limits (ACCOUNT_RATE_LIMITS) bound how many a robot adds."""
    attempted = str(credentials.get("email") or credentials.get("username") or credentials.get("login") or "")[:254]
    _record(
        Action.USER_SIGN_IN_FAILED, actor=Actor.anonymous(f"sign-in as {attempted or '(no address)'}"), email=attempted
    )


def password_changed(sender: Any, request: HttpRequest, user: Any, how: str, **kwargs: Any) -> None:
    _record(Action.USER_PASSWORD_CHANGED, actor=Actor.for_user(user), user=user, how=how)


def mfa_event(action: Action) -> Any:
    def receive(sender: Any, request: HttpRequest, user: Any, authenticator: Any = None, **kwargs: Any) -> None:
        kind = getattr(authenticator, "type", "")
        _record(action, actor=Actor.for_user(user), user=user, authenticator=str(kind))

    return receive


def connect_signals() -> None:
    """Called once from StudioConfig.ready()."""
    from allauth.account import signals as account
    from allauth.mfa import signals as mfa
    from django.contrib.auth import signals as auth

    auth.user_logged_in.connect(signed_in, dispatch_uid="studio.audit.signed_in")
    auth.user_logged_out.connect(signed_out, dispatch_uid="studio.audit.signed_out")
    auth.user_login_failed.connect(sign_in_failed, dispatch_uid="studio.audit.sign_in_failed")
    for signal, how in (
        (account.password_changed, "changed"),
        (account.password_set, "set"),
        (account.password_reset, "reset"),
    ):
        signal.connect(
            lambda sender, request, user, _how=how, **kw: password_changed(sender, request, user, _how, **kw),
            dispatch_uid=f"studio.audit.password_{how}",
            weak=False,
        )
    mfa.authenticator_added.connect(mfa_event(Action.USER_MFA_ADDED), dispatch_uid="studio.audit.mfa_added", weak=False)
    mfa.authenticator_removed.connect(
        mfa_event(Action.USER_MFA_REMOVED), dispatch_uid="studio.audit.mfa_removed", weak=False
    )
    mfa.authentication_failed.connect(
        mfa_event(Action.USER_MFA_FAILED), dispatch_uid="studio.audit.mfa_failed", weak=False
    )
