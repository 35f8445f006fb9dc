"""Studios made by a platform operator (SIGNUP_MODE "invite")."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core import mail
from django.core.management import CommandError, call_command

from studio.models import Membership, Studio
from studio.roles import Role
from studio.tenancy import studio_scope
from teams.models import Invitation
from tests import factories

pytestmark = pytest.mark.django_db


def test_an_owner_with_an_account_owns_the_new_studio_at_once():
    owner = factories.user("existing-owner@example.com")
    out = StringIO()
    call_command(
        "create_studio", "Rivera Photo", "--owner", "Existing-Owner@example.com", "--slug", "rivera", stdout=out
    )
    studio = Studio.objects.get(slug="rivera")
    with studio_scope(studio):
        assert Membership.objects.get().user == owner
        assert Membership.objects.get().role == Role.OWNER
    assert "owner" in out.getvalue()


def test_someone_without_an_account_is_invited_as_owner(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        call_command(
            "create_studio",
            "Nord Studio",
            "--owner",
            "new-owner@example.com",
            "--timezone",
            "Europe/Oslo",
            stdout=StringIO(),
        )
    studio = Studio.objects.get(slug="nord-studio")
    assert studio.timezone == "Europe/Oslo"
    with studio_scope(studio):
        assert not Membership.objects.exists()
        invitation = Invitation.objects.get()
    assert (invitation.email, invitation.role) == ("new-owner@example.com", Role.OWNER)
    assert [m.to for m in mail.outbox] == [["new-owner@example.com"]]


@pytest.mark.parametrize(
    ("args", "words"),
    [(["--timezone", "Mars/Olympus"], "time zone"), (["--slug", "taken"], "taken")],
)
def test_bad_input_is_a_clear_command_error(args, words):
    factories.studio(slug="taken")
    with pytest.raises(CommandError, match=words):
        call_command("create_studio", "Bad", "--owner", "x@example.com", *args, stdout=StringIO())
