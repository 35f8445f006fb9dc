"""The admin's "People" pages and face switches (issue 13): what a member
sees of a gallery's persons, the edits and actions on them (through the
persons service, audited, gated by role scopes), and the gallery actions
that turn faces on and off for a gallery or the whole studio."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import pytest
from django.contrib.messages import get_messages
from django.test import Client
from django.urls import reverse

from audit.models import AuditEvent
from galleries import services
from galleries.models import Asset, Face, FaceScan, Gallery, Person
from studio import context
from studio.auditing import Action
from studio.models import Membership, Studio, User
from studio.roles import ROLE_SCOPES, Role
from studio.tenancy import studio_scope, unscoped
from tests import factories


@dataclass
class World:
    alpha: Studio
    bravo: Studio
    gallery: Gallery
    second: Gallery
    ada: Person  # four faces in three photos, one of them binned later
    bo: Person
    elsewhere: Person  # alpha, second gallery
    foreign: Person  # bravo
    assets: list[Asset]
    members: dict[str, Membership]


@pytest.fixture
def world(db) -> World:
    alpha, bravo = factories.studio("Alpha Studio"), factories.studio("Bravo Studio")
    gallery, second = factories.gallery(alpha, title="Wedding"), factories.gallery(alpha, title="Portraits")
    assets = [factories.ready_asset(alpha, gallery, name=f"p{n}.jpg") for n in range(4)]
    first = factories.face(alpha, assets[0])
    for asset in (assets[0], assets[1], assets[2]):
        factories.face(alpha, asset, person_=first.person)
    bo = factories.face(alpha, assets[3]).person
    elsewhere = factories.face(alpha, factories.ready_asset(alpha, second)).person
    foreign = factories.face(bravo, factories.ready_asset(bravo, factories.gallery(bravo, title="Secret"))).person
    with context.acting_as(factories.TEST_ACTOR), studio_scope(alpha):
        ada = services.person_update(person=Person.objects.get(pk=first.person_id), name="Ada")
    with studio_scope(bravo):
        Person.objects.filter(pk=foreign.pk).update(name="Bravo Bob")
    members = {role: factories.member(alpha, role) for role in (Role.VIEWER, Role.ASSISTANT, Role.PHOTOGRAPHER)}
    members[Role.ADMIN] = factories.member(alpha, Role.ADMIN)
    members[Role.OWNER] = factories.owner_membership(alpha)
    return World(alpha, bravo, gallery, second, ada, bo, elsewhere, foreign, assets, members)


def _client(world: World, role: str) -> Client:
    client = Client()
    client.force_login(world.members[role].user)
    return client


def _url(model: type, view: str = "changelist", *args: object) -> str:
    return reverse(f"admin:galleries_{model._meta.model_name}_{view}", args=args)


def _messages(response) -> str:
    return " ".join(str(m) for m in get_messages(response.wsgi_request))


def _action_names(response) -> set[str]:
    form = response.context["action_form"]
    return set() if form is None else {name for name, _ in form.fields["action"].choices if name}


def _run(client: Client, model: type, action: str, objects: list) -> Any:
    data = {"action": action, "_selected_action": [str(o.pk) for o in objects], "index": 0}
    return client.post(_url(model), data, follow=True)


def _events(studio: Studio, action: str) -> list[AuditEvent]:
    with studio_scope(studio):
        return list(AuditEvent.objects.filter(action=action).order_by("seq"))


def _fresh(studio: Studio, obj: Any) -> Any:
    with studio_scope(studio):
        return type(obj).objects.filter(pk=obj.pk).first()


def _face_thumb(studio: Studio, person: Person) -> str:
    kwargs = {"studio_slug": studio.slug, "gallery_pk": person.gallery_id, "pk": person.cover_id}
    return reverse("api:gallery-face-thumb", kwargs=kwargs)


def _photo_thumb(studio: Studio, asset: Asset) -> str:
    return f"/api/v1/studios/{studio.slug}/galleries/{asset.gallery_id}/assets/{asset.pk}/media/thumb/"


def _bin(studio: Studio, asset: Asset) -> None:
    with context.acting_as(factories.TEST_ACTOR), studio_scope(studio):
        services.asset_delete(asset=asset)


# --- what a member sees ----------------------------------------------------------------------------


def test_changelist_shows_cover_label_and_counts_of_the_studio_only(world):
    _bin(world.alpha, world.assets[2])  # one of Ada's photos goes to the bin: three faces left live
    client = _client(world, Role.VIEWER)
    response = client.get(_url(Person))
    assert response.status_code == 200
    assert {p.pk for p in response.context["cl"].result_list} == {world.ada.pk, world.bo.pk, world.elsewhere.pk}
    page = response.content.decode()
    rows = {
        pk: row for row in re.findall(r"<tr>.*?</tr>", page, re.S) for pk in re.findall(r"person/([^/]+)/change/", row)
    }
    expected = [
        (world.ada, "Ada", 3, 2),
        (world.bo, str(world.bo), 1, 1),
        (world.elsewhere, str(world.elsewhere), 1, 1),
    ]
    for person, label, n_faces, n_photos in expected:
        row = rows[str(person.pk)]
        assert _face_thumb(world.alpha, _fresh(world.alpha, person)) in row
        assert f">{label}<" in row
        assert f'field-faces">{n_faces}<' in row and f'field-photo_count">{n_photos}<' in row
    assert "Bravo Bob" not in page and str(world.foreign.pk) not in page

    by_gallery = client.get(_url(Person) + f"?gallery__id__exact={world.second.pk}")
    assert [p.pk for p in by_gallery.context["cl"].result_list] == [world.elsewhere.pk]
    foreign_gallery = client.get(_url(Person) + f"?gallery__id__exact={world.foreign.gallery_id}")
    assert list(foreign_gallery.context["cl"].result_list) == []
    assert client.get(_url(Person) + "?q=Bravo").context["cl"].result_count == 0


@pytest.mark.parametrize("role", [Role.VIEWER, Role.OWNER])
def test_another_studios_person_is_missing(world, role):
    """The admin's answer for a row out of scope, as for galleries: 404 or
    Django's redirect to the index; never the page."""
    client = _client(world, role)
    for view in ("change", "history"):
        response = client.get(_url(Person, view, world.foreign.pk))
        assert response.status_code in (302, 404)
        if response.status_code == 302:
            assert response["Location"] == reverse("admin:index")
    response = client.post(_url(Person, "change", world.foreign.pk), {"name": "Hacked", "hidden": "on"})
    assert response.status_code in (302, 403, 404)
    assert _fresh(world.bravo, world.foreign).name == "Bravo Bob"


def test_person_page_lists_their_live_photos_and_not_the_binned_one(world):
    _bin(world.alpha, world.assets[2])
    response = _client(world, Role.VIEWER).get(_url(Person, "change", world.ada.pk))
    assert response.status_code == 200
    page = response.content.decode()
    for asset in world.assets[:2]:
        assert page.count(_photo_thumb(world.alpha, asset)) == 1  # two faces in p0: listed once
    assert _photo_thumb(world.alpha, world.assets[2]) not in page  # in the bin
    assert _photo_thumb(world.alpha, world.assets[3]) not in page  # Bo's
    assert 'name="_save"' not in page  # a viewer reads only


# --- edits on a person -----------------------------------------------------------------------------


def test_rename_hide_and_unhide_through_the_form_are_audited(world):
    client = _client(world, Role.ASSISTANT)
    url = _url(Person, "change", world.bo.pk)
    response = client.post(url, {"name": "  Bo Brummell ", "hidden": "on"})
    assert response.status_code == 302
    fresh = _fresh(world.alpha, world.bo)
    assert (fresh.name, fresh.hidden) == ("Bo Brummell", True)
    assert client.post(url, {"name": "Bo Brummell"}).status_code == 302
    assert _fresh(world.alpha, world.bo).hidden is False
    events = [e for e in _events(world.alpha, Action.PERSON_UPDATED) if e.target_id == str(world.bo.pk)]
    assert [(e.before["hidden"], e.after["hidden"]) for e in events] == [(False, True), (True, False)]
    assert events[0].after["name"] == "Bo Brummell"
    assert {e.actor_user_id for e in events} == {world.members[Role.ASSISTANT].user_id}


def test_a_viewer_cannot_save_the_form(world):
    before = len(_events(world.alpha, Action.PERSON_UPDATED))
    response = _client(world, Role.VIEWER).post(_url(Person, "change", world.bo.pk), {"name": "X", "hidden": "on"})
    assert response.status_code == 403
    fresh = _fresh(world.alpha, world.bo)
    assert (fresh.name, fresh.hidden) == ("", False)
    assert len(_events(world.alpha, Action.PERSON_UPDATED)) == before


def test_merge_and_hide_actions_go_through_the_services(world):
    client = _client(world, Role.ASSISTANT)
    user_id = world.members[Role.ASSISTANT].user_id
    names = _action_names(client.get(_url(Person)))
    assert {"merge_selected", "hide_selected"} <= names and "delete_selected" not in names

    # Across galleries: refused, nothing changes (another studio's row is not even selectable).
    response = _run(client, Person, "merge_selected", [world.bo, world.elsewhere, world.foreign])
    assert "Choose two or more people of one gallery." in _messages(response)
    assert _fresh(world.alpha, world.bo) and _fresh(world.alpha, world.elsewhere)
    response = _run(client, Person, "merge_selected", [world.bo, world.foreign])
    assert "Choose two or more" in _messages(response) and _fresh(world.bravo, world.foreign)
    assert _events(world.alpha, Action.PERSON_MERGED) == []

    response = _run(client, Person, "merge_selected", [world.bo, world.ada])
    assert "Merged 2 people into Ada." in _messages(response)
    assert _fresh(world.alpha, world.bo) is None
    ada = _fresh(world.alpha, world.ada)
    assert ada.face_count == 5 and ada.name == "Ada"
    with studio_scope(world.alpha):
        assert set(Face.objects.filter(gallery=world.gallery).values_list("person", flat=True)) == {ada.pk}
    [event] = _events(world.alpha, Action.PERSON_MERGED)
    assert event.target_id == str(ada.pk) and event.after["merged"] == str(world.bo.pk)
    assert event.after["faces"] == 1 and event.actor_user_id == user_id

    response = _run(client, Person, "hide_selected", [world.elsewhere, world.foreign])
    assert "Hidden" in _messages(response)
    assert _fresh(world.alpha, world.elsewhere).hidden and not _fresh(world.bravo, world.foreign).hidden
    [event] = [e for e in _events(world.alpha, Action.PERSON_UPDATED) if e.target_id == str(world.elsewhere.pk)]
    assert (event.before["hidden"], event.after["hidden"], event.actor_user_id) == (False, True, user_id)


def _person_actions_refused(world: World, client: Client) -> None:
    assert _action_names(client.get(_url(Person))) & {"merge_selected", "hide_selected"} == set()
    _run(client, Person, "merge_selected", [world.ada, world.bo])
    _run(client, Person, "hide_selected", [world.bo])
    assert _fresh(world.alpha, world.bo).hidden is False
    assert _events(world.alpha, Action.PERSON_MERGED) == []
    assert [e for e in _events(world.alpha, Action.PERSON_UPDATED) if e.target_id == str(world.bo.pk)] == []


def test_person_actions_are_refused_to_a_viewer(world):
    _person_actions_refused(world, _client(world, Role.VIEWER))


def test_person_actions_follow_the_role_table(world, monkeypatch):
    """Roles are data: take gallery:write from assistants and they lose the actions."""
    monkeypatch.setitem(ROLE_SCOPES, Role.ASSISTANT, ROLE_SCOPES[Role.ASSISTANT] - {"gallery:write"})
    _person_actions_refused(world, _client(world, Role.ASSISTANT))


# --- the gallery's face actions --------------------------------------------------------------------

FACE_ACTIONS = {"faces_on", "faces_off", "find_me_on", "faces_off_studio"}


@pytest.mark.parametrize("role", [Role.VIEWER, Role.ASSISTANT])
def test_gallery_face_actions_need_gallery_admin(world, role):
    client = _client(world, role)
    assert _action_names(client.get(_url(Gallery))) & FACE_ACTIONS == set()
    for action in FACE_ACTIONS:
        _run(client, Gallery, action, [world.gallery])
    assert _fresh(world.alpha, world.gallery).faces_enabled and not _fresh(world.alpha, world.gallery).find_me_enabled
    with studio_scope(world.alpha):
        assert Person.objects.filter(gallery=world.gallery).count() == 2
    assert _events(world.alpha, Action.GALLERY_FACES_CHANGED) == []


def test_a_photographer_switches_galleries_while_the_studio_is_on(world):
    client = _client(world, Role.PHOTOGRAPHER)
    user_id = world.members[Role.PHOTOGRAPHER].user_id
    assert _action_names(client.get(_url(Gallery))) >= FACE_ACTIONS
    fresh = factories.gallery(world.alpha, title="New")
    photo = factories.ready_asset(world.alpha, fresh)

    response = _run(client, Gallery, "faces_on", [fresh])
    assert "is on for 1 galleries" in _messages(response)
    assert _fresh(world.alpha, fresh).faces_enabled
    with studio_scope(world.alpha):
        assert FaceScan.objects.filter(asset=photo, studio=world.alpha).exists()
    _run(client, Gallery, "find_me_on", [fresh])
    assert _fresh(world.alpha, fresh).find_me_enabled

    response = _run(client, Gallery, "faces_off", [world.gallery])
    assert "their faces are deleted" in _messages(response)
    with studio_scope(world.alpha):
        assert not Face.objects.filter(gallery=world.gallery).exists()
        assert not Person.objects.filter(gallery=world.gallery).exists()
        assert Person.objects.filter(pk=world.elsewhere.pk).exists()  # another gallery keeps its people
    events = _events(world.alpha, Action.GALLERY_FACES_CHANGED)
    assert [e.target_id for e in events] == [str(fresh.pk), str(fresh.pk), str(world.gallery.pk)]
    assert events[0].after["queued"] == 1 and events[1].after["find_me_enabled"] is True
    assert (events[2].after["faces"], events[2].after["persons"]) == (5, 2)
    assert {e.actor_user_id for e in events} == {user_id}


def test_rescan_is_the_regenerate_action_for_gallery_writers(world, monkeypatch, django_capture_on_commit_callbacks):
    """No action of its own: new previews queue the photos' face detection again
    (processing.faces_after_derivatives). Detection is stubbed: the queueing is the point."""
    from galleries.services import faces as face_services

    queued: list[str] = []
    monkeypatch.setattr(face_services, "enqueue", lambda task, studio_id, asset_id: queued.append(asset_id) or True)
    _bin(world.alpha, world.assets[3])
    assert "regenerate_derivatives" not in _action_names(_client(world, Role.VIEWER).get(_url(Gallery)))
    _run(_client(world, Role.VIEWER), Gallery, "regenerate_derivatives", [world.gallery])
    assert _events(world.alpha, Action.ASSET_REGENERATE_REQUESTED) == []
    client = _client(world, Role.ASSISTANT)
    with django_capture_on_commit_callbacks(execute=True):
        response = _run(client, Gallery, "regenerate_derivatives", [world.gallery])
    assert "Queued 3 photos" in _messages(response)
    assert sorted(queued) == sorted(str(a.pk) for a in world.assets[:3])  # not the binned one, once each
    with studio_scope(world.alpha):
        assert set(FaceScan.objects.filter(asset__in=world.assets[:3]).values_list("status", flat=True)) == {"pending"}


@pytest.mark.parametrize("role", [Role.PHOTOGRAPHER, Role.ADMIN])
def test_only_an_owner_switches_the_studio(world, role):
    client = _client(world, role)
    response = _run(client, Gallery, "faces_off_studio", [world.gallery])
    assert "Only an owner" in _messages(response)
    assert _fresh(world.alpha, world.alpha).faces_enabled
    with studio_scope(world.alpha):
        assert Face.objects.count() == 6
    with context.acting_as(factories.TEST_ACTOR), studio_scope(world.alpha):
        services.studio_faces_disable(studio=world.alpha)
    off = len(_events(world.alpha, Action.FACES_DISABLED))
    response = _run(client, Gallery, "faces_on", [world.gallery])
    assert "Only an owner" in _messages(response)
    response = _run(client, Gallery, "find_me_on", [world.gallery])
    assert "Turn on people in photos for the studio first." in _messages(response)
    assert not _fresh(world.alpha, world.alpha).faces_enabled and not _fresh(world.alpha, world.gallery).faces_enabled
    assert _events(world.alpha, Action.FACES_ENABLED) == [] and len(_events(world.alpha, Action.FACES_DISABLED)) == off


def test_the_owner_switches_the_studio_off_and_on(world):
    client = _client(world, Role.OWNER)
    user_id = world.members[Role.OWNER].user_id
    response = _run(client, Gallery, "faces_off_studio", [world.gallery])
    assert "6 faces and 3 people deleted" in _messages(response)
    with studio_scope(world.alpha):
        assert not Face.objects.exists() and not Person.objects.exists()
    with studio_scope(world.bravo):
        assert Person.objects.filter(pk=world.foreign.pk).exists()  # another studio is not touched
    [off] = _events(world.alpha, Action.FACES_DISABLED)
    assert off.actor_user_id == user_id

    _run(client, Gallery, "faces_on", [world.second])
    studio = _fresh(world.alpha, world.alpha)
    assert studio.faces_enabled and "never stored" in studio.faces_consent_text
    assert _fresh(world.alpha, world.second).faces_enabled and not _fresh(world.alpha, world.gallery).faces_enabled
    [on] = _events(world.alpha, Action.FACES_ENABLED)
    assert on.actor_user_id == user_id and on.after["faces_enabled"] is True


def test_superuser_faces_on_keeps_each_gallery_in_its_own_studio(world):
    with context.acting_as(factories.TEST_ACTOR), studio_scope(world.bravo):
        services.studio_faces_disable(studio=world.bravo)
    plain = factories.gallery(world.bravo, title="Bravo plain")
    late = factories.gallery(world.alpha, title="Alpha late")  # newest first: the action reads alpha's switch
    client = Client()
    client.force_login(User.objects.create_superuser("root@example.com", "x-very-long-password"))
    _run(client, Gallery, "faces_on", [late, plain])
    with unscoped():
        for gallery in Gallery.objects.filter(pk__in=[late.pk, plain.pk]).select_related("studio"):
            assert not gallery.faces_enabled or gallery.studio.faces_enabled, gallery.title
        for event in AuditEvent.objects.filter(action=Action.GALLERY_FACES_CHANGED):
            assert event.studio_id == Gallery.objects.get(pk=event.target_id).studio_id
