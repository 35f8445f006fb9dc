"""A real SMTP server on loopback (aiosmtpd) whose answers a test chooses,
and the settings that point Django's SMTP backend at it, or at a closed port."""

from __future__ import annotations

import email
import logging
import socket
from email.message import Message
from typing import Any

from aiosmtpd.controller import Controller

# aiosmtpd narrates every connection at INFO.
logging.getLogger("mail.log").setLevel(logging.WARNING)

# What the server answers to each recipient.
ACCEPT = "accept"
TEMPORARY = "temporary"  # 451: try again later
PERMANENT = "permanent"  # 550: no such user


class _Handler:
    def __init__(self) -> None:
        self.mode = ACCEPT
        self.messages: list[Message] = []

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: Any) -> str:  # noqa: N802 - aiosmtpd's hook name
        if self.mode == TEMPORARY:
            return "451 4.3.0 Mailbox busy, try again later"
        if self.mode == PERMANENT:
            return "550 5.1.1 No such user here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd's hook name
        self.messages.append(email.message_from_bytes(envelope.content))
        return "250 Message accepted for delivery"


class MailServer:
    def __init__(self) -> None:
        self.handler = _Handler()
        self.port = free_port()
        self.controller = Controller(self.handler, hostname="127.0.0.1", port=self.port)

    @property
    def messages(self) -> list[Message]:
        return self.handler.messages

    def answer(self, mode: str) -> None:
        self.handler.mode = mode

    def start(self) -> MailServer:
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()


def free_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def point_mail_at(settings: Any, port: int) -> None:
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = "127.0.0.1"
    settings.EMAIL_PORT = port
    settings.EMAIL_USE_TLS = False
    settings.EMAIL_USE_SSL = False
    settings.EMAIL_HOST_USER = ""
    settings.EMAIL_HOST_PASSWORD = ""
    settings.EMAIL_TIMEOUT = 5
