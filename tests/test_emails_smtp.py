"""The studio's emails as a client or a member receives them: sent through a
real SMTP server on loopback (aiosmtpd) by Django's SMTP backend, parsed
from the bytes that arrived, with every link fetched from the live test
server (SITE_URL points at it).

Each message type: its headers (Reply-To reaching a person, a Message-ID
derived from the email's row), both parts (plain text and HTML), its
attachments, and HTML that loads nothing from elsewhere but the studio's
logo. The tests run on a transactional database, as in production: the
emails go when the change commits, through the eager Celery task."""

from __future__ import annotations

import csv
import io
import re
import zoneinfo
from collections.abc import Iterator
from datetime import timedelta
from email.message import Message
from email.utils import getaddresses
from html.parser import HTMLParser
from typing import Any

import pytest
import requests
from django.core.files.base import ContentFile
from django.utils import timezone

from galleries import notifications, services
from galleries.models import Asset, AssetStatus, Visitor
from galleries.services.sharing import gallery_send
from studio import context
from studio.models import EmailLog, User
from studio.roles import Role
from studio.tenancy import studio_scope
from tests import factories
from tests.gallery_helpers import jpeg, png, upload
from tests.mail_server import MailServer, point_mail_at

pytestmark = pytest.mark.django_db(transaction=True)

URL = re.compile(r"https?://[^\s<>\"')]+")


@pytest.fixture
def smtp(settings, live_server) -> Iterator[MailServer]:
    server = MailServer().start()
    point_mail_at(settings, server.port)
    settings.SITE_URL = live_server.url
    settings.DEFAULT_FROM_EMAIL = "Studio Platform <no-reply@mail.example>"
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def branded(db) -> Any:
    """A studio with a contact address, a colour and a logo."""
    studio = factories.studio(name="Blakely & Daughters")
    studio.contact_email = "hello@blakely.example"
    studio.accent_color = "#aa3355"
    studio.logo.save("logo.png", ContentFile(png(120, 60)), save=False)
    studio.save()
    return studio


# --- reading what arrived -----------------------------------------------------------------------------


class Arrived:
    """One message as the SMTP server received it."""

    def __init__(self, message: Message) -> None:
        self.message = message
        self.text = self.html = ""
        self.attachments: dict[str, bytes] = {}
        self.types: list[str] = []
        for part in message.walk():
            if part.is_multipart():
                continue
            self.types.append(part.get_content_type())
            payload = part.get_payload(decode=True)
            if part.get_filename():
                self.attachments[part.get_filename()] = payload
            elif part.get_content_type() == "text/plain":
                self.text = payload.decode(part.get_content_charset() or "utf-8")
            elif part.get_content_type() == "text/html":
                self.html = payload.decode(part.get_content_charset() or "utf-8")

    def header(self, name: str) -> str:
        return str(self.message[name] or "")

    @property
    def to(self) -> list[str]:
        return [address for _, address in getaddresses([self.header("To")])]

    @property
    def reply_to(self) -> str:
        return getaddresses([self.header("Reply-To")])[0][1]

    def links(self) -> set[str]:
        hrefs = set(re.findall(r'href="(https?://[^"]+)"', self.html))
        return {*URL.findall(self.text), *(h.replace("&amp;", "&") for h in hrefs)}


def arrived(server: MailServer, to: str | None = None) -> list[Arrived]:
    messages = [Arrived(m) for m in server.messages]
    return [m for m in messages if to is None or to in m.to]


class _Assets(HTMLParser):
    """Everything a mail client would fetch to show the HTML."""

    def __init__(self) -> None:
        super().__init__()
        self.fetched: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag in ("img", "script", "iframe", "video", "audio", "source", "embed") and values.get("src"):
            self.fetched.append(values["src"])
        if tag == "link" and values.get("href"):
            self.fetched.append(values["href"])
        if tag in ("table", "td", "body") and values.get("background"):
            self.fetched.append(values["background"])
        self.fetched += re.findall(r"url\(\s*['\"]?([^'\")]+)", values.get("style") or "")


def external_assets(html: str) -> list[str]:
    parser = _Assets()
    parser.feed(html)
    parser.fetched += re.findall(r"url\(\s*['\"]?([^'\")]+)", html)  # in a <style>, should one appear
    return parser.fetched


def assert_well_formed(mail: Arrived, *, studio: Any, reply_to: str, kind: str) -> EmailLog:
    """Both parts, the Reply-To, the Message-ID of its row, the branding, and
    no asset but the logo; returns the row."""
    assert mail.text.strip() and mail.html.strip(), mail.types
    assert mail.message.get_content_type() in ("multipart/alternative", "multipart/mixed")
    assert mail.reply_to == reply_to
    with studio_scope(studio):
        row = EmailLog.objects.get(kind=kind, recipient=mail.to[0], subject=mail.header("Subject"))
    assert mail.header("Message-ID") == f"<{row.pk}@mail.example>"
    assert studio.name in mail.text and studio.name.replace("&", "&amp;") in mail.html
    assert studio.accent_color in mail.html
    fetched = external_assets(mail.html)
    if studio.logo:  # absolute: a mail client has no base URL
        assert len(fetched) == 1 and re.match(rf"https?://[^/]+/s/{studio.slug}/logo/\?v=", fetched[0]), fetched
    else:
        assert fetched == []
    return row


def assert_links_resolve(mail: Arrived, live_server: Any, *, expect: dict[str, tuple[int, ...]] | None = None) -> None:
    """Every link into the site answers (200, or 302 to the page it opens);
    mailto: links are not fetched. ``expect`` pins some paths' first status."""
    links = [link for link in mail.links() if link.startswith(live_server.url)]
    assert links, (mail.text, mail.html)
    for link in links:
        response = requests.get(link, allow_redirects=False, timeout=10)
        wanted = next((codes for path, codes in (expect or {}).items() if path in link), (200, 302))
        assert response.status_code in wanted, (link, response.status_code)
        if response.status_code == 302:  # and where it leads answers (the portal, the sign-in page)
            assert requests.get(link, timeout=10).status_code == 200, link


# --- gallery ready --------------------------------------------------------------------------------------


def _published(studio: Any, **fields: Any) -> Any:
    fields.setdefault("client_name", "Jo Smith")
    fields.setdefault("client_email", "jo@client.example")
    gallery = factories.gallery(studio, **fields)
    factories.ready_asset(studio, gallery)
    with context.acting_as(factories.TEST_ACTOR), studio_scope(studio):
        return services.gallery_publish(gallery=gallery)


def test_gallery_ready_arrives_with_link_code_expiry_note_and_a_reply_to_the_studio(
    smtp, live_server, branded, client_for
):
    expires = timezone.now() + timedelta(days=30)
    gallery = _published(branded, title="Smith Wedding", expires_at=expires, pin="4321")
    owner = factories.owner_membership(branded)

    response = client_for(owner).post(
        f"/api/v1/studios/{branded.slug}/galleries/{gallery.pk}/send/",
        {"note": "Favourites by Friday, please!"},
        format="json",
    )

    assert response.status_code == 202, response.content
    assert response.json() == {"sent_to": ["jo@client.example"]}
    (mail,) = arrived(smtp)
    assert mail.to == ["jo@client.example"]
    assert mail.header("Subject") == "Your photos are ready: Smith Wedding"
    assert_well_formed(mail, studio=branded, reply_to="hello@blakely.example", kind=notifications.GALLERY_READY)
    link = f"{live_server.url}/s/{branded.slug}/g/{gallery.access_code}/"
    day = expires.astimezone(zoneinfo.ZoneInfo(branded.timezone)).strftime("%-d %B %Y")
    for part in (mail.text, mail.html):
        assert link in part and gallery.access_code in part and day in part
        assert "Favourites by Friday, please!" in part and "PIN" in part
    assert link in mail.links()
    # The portal page, and the logo (the HTML's one remote asset), both answer.
    assert_links_resolve(mail, live_server, expect={f"/g/{gallery.access_code}/": (200, 302)})
    (logo,) = external_assets(mail.html)
    fetched = requests.get(logo.replace("&amp;", "&"), timeout=10)
    assert fetched.status_code == 200 and fetched.content.startswith(b"\x89PNG")


def test_without_a_contact_address_replies_go_to_the_owner_and_nothing_remote_is_loaded(smtp, live_server):
    studio = factories.studio()  # no contact address, no logo
    owner = factories.owner_membership(studio)
    gallery = _published(studio)

    with context.acting_as(factories.TEST_ACTOR), studio_scope(studio):
        gallery_send(gallery=gallery, actor=owner)

    (mail,) = arrived(smtp)
    assert_well_formed(mail, studio=studio, reply_to=owner.user.email, kind=notifications.GALLERY_READY)
    assert external_assets(mail.html) == []
    assert owner.user.email in mail.text  # the footer says whom to write to


# --- gallery expiring -----------------------------------------------------------------------------------


def test_expiry_notice_arrives_once_and_again_for_a_new_expiry_date(smtp, live_server, branded):
    from galleries.tasks import notify_expiring

    gallery = _published(branded, title="Garden Party", expires_at=timezone.now() + timedelta(days=3, hours=2))

    assert notify_expiring.delay().get() == 1
    assert notify_expiring.delay().get() == 0  # the next hour's run

    (mail,) = arrived(smtp)
    assert mail.header("Subject") == "Garden Party: your gallery closes in 4 days"
    assert_well_formed(mail, studio=branded, reply_to="hello@blakely.example", kind=notifications.GALLERY_EXPIRING)
    assert "closes in 4 days" in mail.text and gallery.access_code in mail.text
    assert_links_resolve(mail, live_server, expect={f"/g/{gallery.access_code}/": (200, 302)})

    with context.acting_as(factories.TEST_ACTOR), studio_scope(branded):
        services.gallery_update(actor=None, gallery=gallery, expires_at=timezone.now() + timedelta(days=2))
    assert notify_expiring.delay().get() == 1
    assert notify_expiring.delay().get() == 0
    assert len(arrived(smtp)) == 2
    assert "closes in 2 days" in arrived(smtp)[1].text


# --- selection finalised --------------------------------------------------------------------------------


def test_selection_finalised_reaches_the_studio_and_assigned_members_with_csv_and_lightroom_list(
    smtp, live_server, branded
):
    gallery = factories.gallery(branded, title="Portraits", client_name="Ann Lee")
    first = factories.ready_asset(branded, gallery, name="DSC_0001.jpg")
    second = factories.ready_asset(branded, gallery, name="=cmd|' /C calc'!A0.jpg")
    factories.ready_asset(branded, gallery, name="DSC_0003.jpg")  # not chosen
    photographer = factories.member(branded, Role.PHOTOGRAPHER)
    gone = factories.member(branded, Role.PHOTOGRAPHER)
    User.objects.filter(pk=gone.user_id).update(is_active=False)
    with context.acting_as(factories.TEST_ACTOR), studio_scope(branded):
        gallery.assigned_members.set([photographer, gone])
        services.gallery_publish(gallery=gallery)
        visitor = Visitor.objects.create(studio=branded, gallery=gallery, name="Ann Lee", email="ann@client.example")
        services.ratings_set(gallery=gallery, visitor=visitor, ratings=[(first, 5), (second, 3)])
        services.selection_finalize(gallery=gallery, visitor=visitor)

    mails = arrived(smtp)
    assert sorted(address for mail in mails for address in mail.to) == sorted(
        ["hello@blakely.example", photographer.user.email]
    )
    for mail in mails:
        assert mail.header("Subject") == "Selection finalised: Portraits (2 photos)"
        # Answering reaches the client who chose.
        assert_well_formed(mail, studio=branded, reply_to="ann@client.example", kind=notifications.SELECTION_FINALISED)
        assert "Ann Lee" in mail.text and "2 photos" in mail.text
        assert set(mail.attachments) == {"selection.csv", "lightroom.txt"}
        assert "text/csv" in mail.types
        rows = list(csv.reader(io.StringIO(mail.attachments["selection.csv"].decode("utf-8-sig"))))
        cells = [cell for row in rows for cell in row]
        assert "DSC_0001.jpg" in cells and "DSC_0003.jpg" not in cells
        # The hostile name arrives neutralised, never as a formula.
        assert not any(cell.startswith("=") for cell in cells)
        lightroom = mail.attachments["lightroom.txt"].decode()
        assert "DSC_0001" in lightroom and "DSC_0003" not in lightroom
        # The admin link: to the sign-in page for whoever is not signed in.
        assert_links_resolve(mail, live_server, expect={"/admin/": (302,)})


# --- upload batch processed -----------------------------------------------------------------------------


def test_batch_processed_tells_the_uploader_once_with_the_failures_and_their_reasons(
    smtp, live_server, branded, client_for
):
    uploader = factories.member(branded, Role.PHOTOGRAPHER)
    gallery = factories.gallery(branded, title="Studio Day")
    whole = jpeg(320, 240)

    result = upload(
        client_for(uploader),
        branded,
        gallery,
        [
            ("good.jpg", whole, "image/jpeg"),
            ("cut.jpg", whole[: len(whole) // 2], "image/jpeg"),  # passes complete, fails processing
            ("notes.jpg", b"just some text, honestly" * 10, "image/jpeg"),  # fails complete
        ],
    )

    with studio_scope(branded):
        statuses = dict(Asset.objects.filter(gallery=gallery).values_list("original_filename", "status"))
        reasons = dict(Asset.objects.filter(gallery=gallery).values_list("original_filename", "failure_reason"))
    assert statuses == {"good.jpg": AssetStatus.READY, "cut.jpg": AssetStatus.FAILED, "notes.jpg": AssetStatus.FAILED}
    (mail,) = arrived(smtp)
    assert mail.to == [uploader.user.email]
    assert mail.header("Subject") == "Upload to Studio Day: 1 ready, 2 failed"
    assert_well_formed(mail, studio=branded, reply_to="hello@blakely.example", kind=notifications.BATCH_PROCESSED)
    for name in ("cut.jpg", "notes.jpg"):
        assert f"{name}: {reasons[name]}" in mail.text
        assert name in mail.html
    assert "good.jpg" not in mail.text
    assert_links_resolve(mail, live_server, expect={"/admin/": (302,)})

    # Processing a photo of the batch again (regenerate) is no news.
    with context.acting_as(factories.TEST_ACTOR), studio_scope(branded):
        services.assets_regenerate(gallery=gallery)
        services.asset_process(asset_id=result["processing"][0], force=True)
    assert len(arrived(smtp)) == 1


# --- export ready ---------------------------------------------------------------------------------------


def test_export_ready_to_the_staff_member_links_to_the_download(smtp, live_server, branded, client_for):
    gallery = factories.ready_asset(branded).gallery

    export = factories.export(branded, gallery)

    owner = factories.owner_membership(branded)
    (mail,) = arrived(smtp, to=owner.user.email)
    assert_well_formed(mail, studio=branded, reply_to="hello@blakely.example", kind=notifications.EXPORT_READY)
    download = f"/api/v1/studios/{branded.slug}/galleries/{gallery.pk}/exports/{export.pk}/download/"
    assert f"{live_server.url}{download}" in mail.text and export.filename in mail.text
    # The link is the API's download: the file for a signed-in member, 401/403 for anyone else.
    assert_links_resolve(mail, live_server, expect={download: (401, 403)})
    assert client_for(owner).get(download).status_code in (200, 302)


def test_export_ready_to_a_visitor_links_to_their_gallery_and_an_anonymous_one_gets_nothing(smtp, live_server, branded):
    from galleries.services.exports import export_request, export_run

    gallery = _published(branded, download_permission="web")
    with context.acting_as(factories.TEST_ACTOR), studio_scope(branded):
        known = Visitor.objects.create(studio=branded, gallery=gallery, name="Jo", email="jo.visitor@client.example")
        anonymous = Visitor.objects.create(studio=branded, gallery=gallery)
        for visitor in (known, anonymous):
            made, _ = export_request(gallery=gallery, visitor=visitor, kind="zip")
            export_run(export_id=made.pk)

    (mail,) = arrived(smtp)
    assert mail.to == ["jo.visitor@client.example"]
    assert_well_formed(mail, studio=branded, reply_to="hello@blakely.example", kind=notifications.EXPORT_READY)
    assert f"{live_server.url}/s/{branded.slug}/g/{gallery.access_code}/" in mail.text
    assert "/download/" not in mail.text
    assert_links_resolve(mail, live_server, expect={f"/g/{gallery.access_code}/": (200, 302)})


# --- the messages that moved onto the templates -----------------------------------------------------------


def test_invitation_arrives_as_html_and_text_with_a_link_that_opens(smtp, live_server, branded, client_for):
    owner = factories.owner_membership(branded)

    response = client_for(owner).post(
        f"/api/v1/studios/{branded.slug}/invitations/", {"email": "new@example.com", "role": "viewer"}, format="json"
    )

    assert response.status_code == 201, response.content
    (mail,) = arrived(smtp)
    assert_well_formed(mail, studio=branded, reply_to="hello@blakely.example", kind="member.invitation")
    assert "/invitations/" in mail.text and "/invitations/" in mail.html
    assert "You have been invited to join Blakely & Daughters as Viewer." in mail.text
    assert_links_resolve(mail, live_server, expect={"/invitations/": (200, 302)})


def test_contact_enquiry_replies_go_to_the_client(smtp, live_server, branded):
    from bookings.models import ContactSubmission
    from bookings.notifications import queue_contact

    with studio_scope(branded):
        submission = ContactSubmission.objects.create(
            studio=branded, name="Sam Client", email="sam@client.example", message="A shoot in May?"
        )
        queue_contact(submission)

    (mail,) = arrived(smtp)
    assert mail.to == ["hello@blakely.example"]
    assert_well_formed(mail, studio=branded, reply_to="sam@client.example", kind="contact.received")
    assert "A shoot in May?" in mail.text and "A shoot in May?" in mail.html


def test_booking_confirmation_keeps_its_text_invite_and_link_in_both_parts(smtp, live_server, branded):
    from bookings import notifications as booking_notifications
    from bookings.links import booking_manage_url, manage_token
    from bookings.models import Booking
    from studio.models import hash_token

    booking = factories.booking(branded)
    with studio_scope(branded):
        # The factory's token is random: give the booking the derived one, as booking does.
        Booking.objects.filter(pk=booking.pk).update(token_hash=hash_token(manage_token(booking)))
        booking.refresh_from_db()
        booking_notifications.queue_confirmation(booking)

    (mail,) = arrived(smtp, to=booking.client_email)
    assert_well_formed(mail, studio=branded, reply_to="hello@blakely.example", kind="booking.confirmation")
    assert "Your session is confirmed." in mail.text and "Your session is confirmed." in mail.html
    assert "invite.ics" in mail.attachments
    manage = booking_manage_url(booking)
    assert manage in mail.text and manage in mail.html
    assert_links_resolve(mail, live_server, expect={"/book/manage/": (200,)})
