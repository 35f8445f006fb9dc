"""Every studio email is HTML plus plain text, rendered from one context and
laid into the shared templates (templates/emails/base.html and base.txt)
with the studio's name, logo, colour and contact.

A message is a template name without its extension: ``<name>.txt`` is the
plain text; ``<name>.html`` the HTML, or, for messages that only have a
text template (bookings, invitations), the text itself as paragraphs with
its links made clickable. Mail clients ignore stylesheets and refuse
remote content: the HTML is tables with inline styles, and its one remote
asset is the studio's logo, by an absolute URL (SITE_URL)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from django.conf import settings
from django.template import TemplateDoesNotExist
from django.template.loader import get_template, render_to_string
from django.urls import reverse

from studio.emails import studio_reply_to
from studio.tenancy import current_studio


def absolute_url(path: str) -> str:
    """Links in emails are absolute: the reader is in a mail client, not on our site."""
    return settings.SITE_URL.rstrip("/") + path


def logo_url(studio: Any) -> str:
    if not studio.logo:
        return ""
    # ?v= as on the portal pages: the file name changes with every upload.
    return absolute_url(reverse("portal:logo", kwargs={"slug": studio.slug})) + f"?v={quote(studio.logo.name)}"


def branding(studio: Any) -> dict[str, Any]:
    return {
        "studio": studio,
        "accent": studio.accent_color,
        "logo_url": logo_url(studio),
        "contact": studio_reply_to(studio),
    }


def render_email(name: str, context: dict[str, Any], *, studio: Any = None) -> tuple[str, str]:
    """``(text, html)`` of the message ``name`` (e.g. ``"emails/gallery_ready"``)
    for ``studio`` (by default the current one)."""
    studio = studio or context.get("studio") or current_studio()
    context = {**branding(studio), **context}
    text = render_to_string(f"{name}.txt", context).strip()
    try:
        content = get_template(f"{name}.html").render(context)
    except TemplateDoesNotExist:
        paragraphs = [p.strip("\n") for p in text.split("\n\n") if p.strip()]
        content = render_to_string("emails/text_body.html", {**context, "paragraphs": paragraphs})
    text = render_to_string("emails/base.txt", {**context, "content": text})
    html = render_to_string("emails/base.html", {**context, "content": content})
    return text, html
