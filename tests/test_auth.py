"""Signing in: allauth email sign-in with mandatory verification, TOTP two-factor,
and CSRF on session-authenticated API writes."""

from __future__ import annotations

import json
import os
import random
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from allauth.account.models import EmailAddress
from allauth.mfa.models import Authenticator
from django.conf import settings as django_settings
from django.core import mail
from django.test import Client
from django.urls import reverse
from django.utils.crypto import get_random_string
from rest_framework.test import APIClient

from studio.models import ApiToken, User
from tests import factories

BASE_DIR = Path(__file__).resolve().parent.parent


def _random_ip() -> str:
    # allauth rate-limits by client address in the cache, which on Redis outlives
    # a test: a fresh address per client keeps tests (and runs) apart.
    return f"10.{random.randint(0, 255)}.{random.randint(0, 255)}.{random.randint(1, 254)}"


@pytest.fixture
def web(db) -> Client:
    return Client(REMOTE_ADDR=_random_ip())


def _fresh_email(name: str) -> str:
    # allauth rate-limits verification mails per address (in the cache, which on
    # Redis outlives a run): a fresh address per run.
    return f"{name}.{uuid.uuid4().hex[:10]}@example.com"


def _signed_in_user_id(client: Client) -> str | None:
    return client.session.get("_auth_user_id")


def _confirmation_link(message) -> str:
    match = re.search(r"https?://[^/\s]+(/accounts/confirm-email/[^\s]+/)", message.body)
    assert match, message.body
    return match.group(1)


# --- email sign-in -------------------------------------------------------------------------------


def test_verified_email_signs_in(web):
    user = factories.user(_fresh_email("verified"))
    response = web.post(reverse("account_login"), {"login": user.email.upper(), "password": factories.PASSWORD})
    assert response.status_code == 302
    assert response["Location"] == django_settings.LOGIN_REDIRECT_URL
    assert _signed_in_user_id(web) == str(user.pk)


def test_wrong_password_does_not_sign_in(web):
    user = factories.user(_fresh_email("verified"))
    response = web.post(reverse("account_login"), {"login": user.email, "password": "wrong-password"})
    assert response.status_code == 200
    assert response.context["form"].errors
    assert _signed_in_user_id(web) is None


def test_login_page_asks_for_email_not_username(web):
    response = web.get(reverse("account_login"))
    assert response.status_code == 200
    form = response.context["form"]
    assert form.fields["login"].widget.input_type == "email"


def test_unverified_email_is_sent_to_verification_instead(web, django_capture_on_commit_callbacks):
    user = User.objects.create_user(email=_fresh_email("unverified"), password=factories.PASSWORD)
    EmailAddress.objects.create(user=user, email=user.email, verified=False, primary=True)
    with django_capture_on_commit_callbacks(execute=True):
        response = web.post(reverse("account_login"), {"login": user.email, "password": factories.PASSWORD})
    assert response.status_code == 302
    assert response["Location"] == reverse("account_email_verification_sent")
    assert _signed_in_user_id(web) is None
    assert [m.to for m in mail.outbox] == [[user.email]]
    assert "/accounts/confirm-email/" in mail.outbox[0].body


def test_signup_sends_a_verification_email_and_confirming_signs_in(web, settings, django_capture_on_commit_callbacks):
    settings.SIGNUP_MODE = "open"
    email = _fresh_email("newcomer")
    with django_capture_on_commit_callbacks(execute=True):
        response = web.post(
            reverse("account_signup"),
            {"email": email, "password1": "a-long-unusual-passphrase", "password2": "a-long-unusual-passphrase"},
        )
    assert response.status_code == 302, response.context["form"].errors if response.context else ""
    assert response["Location"] == reverse("account_email_verification_sent")
    user = User.objects.get(email=email)
    assert not EmailAddress.objects.get(user=user).verified
    assert _signed_in_user_id(web) is None
    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == [email]

    link = _confirmation_link(mail.outbox[0])
    assert web.get(link).status_code == 200  # confirmation needs a POST, not just a GET
    assert not EmailAddress.objects.get(user=user).verified
    response = web.post(link)
    assert response.status_code == 302
    assert EmailAddress.objects.get(user=user).verified
    assert _signed_in_user_id(web) == str(user.pk)  # ACCOUNT_LOGIN_ON_EMAIL_CONFIRMATION


def test_signup_refuses_a_taken_address(web):
    taken = factories.user(_fresh_email("taken"))
    response = web.post(
        reverse("account_signup"),
        {
            "email": taken.email.upper(),
            "password1": "a-long-unusual-passphrase",
            "password2": "a-long-unusual-passphrase",
        },
    )
    # allauth answers as if it worked (no account enumeration) but creates nothing.
    assert User.objects.filter(email__iexact=taken.email).count() == 1
    assert _signed_in_user_id(web) is None
    assert response.status_code in (200, 302)


# --- two-factor ----------------------------------------------------------------------------------


def _sign_in_with_form(client: Client, user: User) -> None:
    response = client.post(reverse("account_login"), {"login": user.email, "password": factories.PASSWORD})
    assert response.status_code == 302, response.content
    assert _signed_in_user_id(client) == str(user.pk)


def _reauthenticate(client: Client) -> None:
    """Security pages (adding an authenticator) want a fresh password entry."""
    response = client.post(reverse("account_reauthenticate"), {"password": factories.PASSWORD})
    assert response.status_code == 302, response.content


def _totp_code(secret: str) -> str:
    from allauth.mfa import app_settings
    from allauth.mfa.totp.internal.auth import format_hotp_value, hotp_value

    period = app_settings.TOTP_PERIOD
    if period - time.time() % period < 2:  # don't compute a code about to expire
        time.sleep(period - time.time() % period + 0.1)
    return format_hotp_value(hotp_value(secret, int(time.time()) // period))


def test_mfa_pages_need_a_signed_in_user(web):
    response = web.get(reverse("mfa_index"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("account_login"))


def test_mfa_index_and_totp_activation_page_render(web):
    user = factories.user(_fresh_email("mfa"))
    _sign_in_with_form(web, user)
    assert web.get(reverse("mfa_index")).status_code == 200
    # Adding a second factor first asks for the password again.
    response = web.get(reverse("mfa_activate_totp"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("account_reauthenticate"))
    _reauthenticate(web)
    response = web.get(reverse("mfa_activate_totp"))
    assert response.status_code == 200
    assert response.context["totp_url"].startswith("otpauth://totp/")
    assert "Studio%20Platform" in response.context["totp_url"] or "Studio Platform" in response.context["totp_url"]


def test_activating_totp_makes_login_ask_for_the_code(web, django_capture_on_commit_callbacks):
    user = factories.user(_fresh_email("two.factor"))
    _sign_in_with_form(web, user)
    _reauthenticate(web)
    assert web.get(reverse("mfa_activate_totp")).status_code == 200
    secret = web.session["mfa.totp.secret"]

    wrong = web.post(reverse("mfa_activate_totp"), {"code": "12345x"})
    assert wrong.status_code == 200
    assert not Authenticator.objects.filter(user=user).exists()

    # allauth sends authenticator_added once the activation commits.
    with django_capture_on_commit_callbacks(execute=True):
        response = web.post(reverse("mfa_activate_totp"), {"code": _totp_code(secret)})
    assert response.status_code == 302
    assert Authenticator.objects.filter(user=user, type=Authenticator.Type.TOTP).exists()

    web.post(reverse("account_logout"))
    assert _signed_in_user_id(web) is None

    # The password alone now leads to the code step, not into the platform.
    response = web.post(reverse("account_login"), {"login": user.email, "password": factories.PASSWORD})
    assert response.status_code == 302
    assert response["Location"] == reverse("mfa_authenticate")
    assert _signed_in_user_id(web) is None
    assert web.get(reverse("admin:index")).status_code == 302
    assert web.get("/api/v1/me/").status_code in (401, 403)

    code = _totp_code(secret)
    wrong_code = f"{(int(code) + 1) % 10**6:06d}"
    response = web.post(reverse("mfa_authenticate"), {"code": wrong_code})
    assert response.status_code == 200
    assert _signed_in_user_id(web) is None

    response = web.post(reverse("mfa_authenticate"), {"code": code})
    assert response.status_code == 302
    assert response["Location"] == django_settings.LOGIN_REDIRECT_URL
    assert _signed_in_user_id(web) == str(user.pk)
    assert web.get("/api/v1/me/").json()["email"] == user.email

    # Each step is on the platform chain, attributed to the user.
    # Activating TOTP also issues recovery codes: two authenticators, two events.
    assert _platform_actions(user) == [
        "user.signed_in",
        "user.mfa_added",
        "user.mfa_added",
        "user.signed_out",
        "user.mfa_failed",
        "user.signed_in",
    ]
    from audit.models import AuditEvent
    from studio.tenancy import unscoped

    with unscoped():
        kinds = sorted(e.after["authenticator"] for e in AuditEvent.objects.filter(action="user.mfa_added"))
    assert kinds == ["recovery_codes", "totp"]


def test_allauth_sees_the_same_client_address_as_the_audit_log(tmp_path):
    """Behind TRUSTED_PROXY_COUNT proxies, allauth's rate limits must key on the
    client's address like studio.middleware.client_ip does, not on the proxy's."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "REDIS_URL"))}
    env.update(
        {
            "TRUSTED_PROXY_COUNT": "1",
            "DJANGO_SETTINGS_MODULE": "studio.settings",
            "DATABASE_URL": f"sqlite:///{tmp_path / 'x.sqlite3'}",
        }
    )
    script = (
        "import json, django\n"
        "django.setup()\n"
        "from django.test import RequestFactory\n"
        "from allauth.core.internal.httpkit import get_client_ip\n"
        "from studio.middleware import client_ip\n"
        "r = RequestFactory().get('/', REMOTE_ADDR='10.0.0.1', HTTP_X_FORWARDED_FOR='198.51.100.7')\n"
        "print(json.dumps({'studio': client_ip(r), 'allauth': get_client_ip(r)}))\n"
    )
    result = subprocess.run(  # noqa: S603
        [sys.executable, "-c", script], cwd=BASE_DIR, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert seen["studio"] == "198.51.100.7"
    assert seen["allauth"] == seen["studio"]


# --- CSRF on session-authenticated API calls ------------------------------------------------------


@pytest.fixture
def session_api(db) -> tuple[APIClient, User]:
    user = factories.user()
    client = APIClient(enforce_csrf_checks=True, REMOTE_ADDR=_random_ip())
    client.force_login(user)
    return client, user


def test_session_api_write_without_csrf_token_is_refused(session_api):
    client, user = session_api
    assert client.get("/api/v1/me/").status_code == 200  # reads need no token
    response = client.post("/api/v1/me/tokens/", {"name": "laptop"}, format="json")
    assert response.status_code == 403
    body = response.json()
    assert body["error"]["code"] == "PERMISSION_DENIED"
    assert "CSRF" in body["error"]["message"]
    assert not ApiToken.objects.filter(user=user).exists()


def test_session_api_write_with_csrf_token_works(session_api):
    client, user = session_api
    secret = get_random_string(32)
    client.cookies[django_settings.CSRF_COOKIE_NAME] = secret
    # A wrong token is refused ...
    bad = client.post("/api/v1/me/tokens/", {"name": "laptop"}, format="json", HTTP_X_CSRFTOKEN=get_random_string(32))
    assert bad.status_code == 403
    # ... the right one accepted.
    response = client.post("/api/v1/me/tokens/", {"name": "laptop"}, format="json", HTTP_X_CSRFTOKEN=secret)
    assert response.status_code == 201, response.content
    assert ApiToken.objects.filter(user=user, name="laptop").exists()


def test_token_authenticated_writes_need_no_csrf_token(db):
    from studio import context, services

    user = factories.user()
    with context.acting_as(factories.TEST_ACTOR):
        _, raw = services.api_token_create(user=user, name="ci")
    client = APIClient(enforce_csrf_checks=True)
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    response = client.post("/api/v1/me/tokens/", {"name": "another"}, format="json")
    assert response.status_code == 201


def test_admin_and_login_forms_enforce_csrf(db):
    user = factories.user(_fresh_email("csrf"))
    factories.member(factories.studio(), user_=user)
    client = Client(enforce_csrf_checks=True, REMOTE_ADDR=_random_ip())
    response = client.post(reverse("account_login"), {"login": user.email, "password": factories.PASSWORD})
    assert response.status_code == 403
    assert _signed_in_user_id(client) is None
    client.force_login(user)
    assert client.post(reverse("admin:switch-studio"), {"studio": "x"}).status_code == 403


def _platform_actions(user: Any) -> list[str]:
    from audit.models import AuditEvent
    from studio.tenancy import unscoped

    with unscoped():
        return list(
            AuditEvent.objects.filter(chain="platform", target_id=str(user.pk), action__startswith="user.")
            .order_by("seq")
            .values_list("action", flat=True)
        )


def test_sign_ins_failures_and_password_changes_are_audit_events(web):
    from audit.models import AuditEvent
    from studio.tenancy import unscoped

    user = factories.user(_fresh_email("audited"))
    wrong = web.post(reverse("account_login"), {"login": user.email, "password": "not-the-password"})
    assert wrong.status_code == 200
    with unscoped():
        failed = AuditEvent.objects.filter(action="user.sign_in_failed").order_by("-seq").first()
    assert (failed.actor_type, failed.after) == ("anonymous", {"email": user.email})
    assert failed.ip is not None and "not-the-password" not in json.dumps(failed.after)

    assert web.post(reverse("account_login"), {"login": user.email, "password": factories.PASSWORD}).status_code == 302
    changed = web.post(
        reverse("account_change_password"),
        {"oldpassword": factories.PASSWORD, "password1": "a-new-long-passphrase", "password2": "a-new-long-passphrase"},
    )
    assert changed.status_code == 302
    assert _platform_actions(user) == ["user.signed_in", "user.password_changed"]
    with unscoped():
        event = AuditEvent.objects.get(action="user.password_changed", target_id=str(user.pk))
    assert (event.actor_user_id, event.after) == (user.pk, {"how": "changed"})
