"""django-allauth, the platform's way: its mail (address verification,
password reset, sign-in codes, security notices) is logged and sent by a
worker like every other email (studio.emails), so a dead SMTP server never
fails a sign-up or a password reset."""

from __future__ import annotations

import uuid
from typing import Any

from allauth.account.adapter import DefaultAccountAdapter
from allauth.core import context as allauth_context
from django.contrib.sites.shortcuts import get_current_site

from studio.emails import email_queue


class AccountAdapter(DefaultAccountAdapter):
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
