"""The outbox backend: standards-compliant .eml files, one per message_key, written atomically."""

from __future__ import annotations

import os
from email import policy
from email.header import decode_header, make_header
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any

import pytest

from kizuna.email.message import EmailBackend, InvalidMessageError, OutgoingMessage, build_message
from kizuna.email.outbox import OutboxBackend, safe_filename
from kizuna.email.render import TemplateRenderer

KEY = "renewal_reminder-2026-11-23-P-004567"


@pytest.fixture
def message(renderer: TemplateRenderer) -> OutgoingMessage:
    rendered = renderer.render_sample("renewal_reminder", "ja")
    return build_message(
        rendered,
        recipient_email="taro.yamada@mirai-bussan.example.jp",
        recipient_name="山田 太郎",
        message_key=KEY,
        custom_args={"campaign": "renewal_reminder"},
    )


def parse(path: Path) -> EmailMessage:
    with path.open("rb") as handle:
        parsed = BytesParser(policy=policy.default).parse(handle)
    assert isinstance(parsed, EmailMessage)
    return parsed


def test_build_message_carries_render_and_unsubscribe_headers(message: OutgoingMessage) -> None:
    assert message.subject.startswith("【Kizuna Analytics】契約更新のご案内")
    assert message.headers == {
        "List-Unsubscribe": "<https://sender.example.jp/optout?t=P-004567>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }
    assert message.categories == ["renewal_reminder"]
    assert message.custom_args == {"send_id": KEY, "template": "renewal_reminder", "campaign": "renewal_reminder"}


def test_outbox_writes_a_parseable_eml(tmp_path: Path, message: OutgoingMessage) -> None:
    backend: EmailBackend = OutboxBackend(tmp_path / "outbox")
    message_id = backend.send(message)

    path = tmp_path / "outbox" / f"{KEY}.eml"
    raw = path.read_bytes()
    header_block = raw.split(b"\r\n\r\n", 1)[0]
    assert header_block.isascii()  # Japanese only through RFC 2047 encoded words
    assert b"=?utf-8?" in header_block
    assert b"\r\n" in raw

    parsed = parse(path)
    assert parsed["Message-ID"] == message_id
    assert message_id.startswith("<") and message_id.endswith("@sender.example.jp>")
    assert parsed["Date"] is not None
    assert parsed["Subject"] == message.subject  # decoded back to Japanese
    assert parsed["To"].addresses[0].display_name == "山田 太郎"
    assert parsed["To"].addresses[0].addr_spec == "taro.yamada@mirai-bussan.example.jp"
    # RFC 2047 decoding of the raw header; email.headerregistry adds a space where the encoder split
    # the phrase at ")" into two encoded words (a CPython parser quirk, the header itself is valid).
    raw_from = BytesParser(policy=policy.compat32).parsebytes(raw)["From"]
    assert str(make_header(decode_header(raw_from))) == f"{message.from_name} <{message.from_email}>"
    assert parsed["List-Unsubscribe"] == "<https://sender.example.jp/optout?t=P-004567>"
    assert parsed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert parsed.get_content_type() == "multipart/alternative"
    parts = list(parsed.iter_parts())
    assert [p.get_content_type() for p in parts] == ["text/plain", "text/html"]
    assert all(p.get_content_charset() == "utf-8" for p in parts)
    text, html = (p.get_content() for p in parts)
    assert text.replace("\r\n", "\n") == message.text
    assert "¥80,000" in html and "山田 太郎 様" in html


def test_same_key_is_written_once(tmp_path: Path, message: OutgoingMessage) -> None:
    backend = OutboxBackend(tmp_path)
    first = backend.send(message)
    again = backend.send(OutgoingMessage(**{**message.__dict__, "subject": "changed"}))

    assert again == first
    assert [p.name for p in tmp_path.iterdir()] == [f"{KEY}.eml"]
    assert parse(tmp_path / f"{KEY}.eml")["Subject"] == message.subject


def test_no_temporary_files_are_left(tmp_path: Path, message: OutgoingMessage) -> None:
    backend = OutboxBackend(tmp_path)
    for n in range(3):
        backend.send(OutgoingMessage(**{**message.__dict__, "message_key": f"k{n}"}))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["k0.eml", "k1.eml", "k2.eml"]


def test_failed_write_leaves_nothing(tmp_path: Path, message: OutgoingMessage, monkeypatch: Any) -> None:
    def crash(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        OutboxBackend(tmp_path).send(message)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("camp-1.P-9", "camp-1.P-9.eml"),
        ("camp/2026:P 9", "camp_2026_P_9-"),
        ("../../etc/passwd", "etc_passwd-"),
        ("配信", ""),
    ],
    ids=["safe", "slashes-and-colons", "traversal", "non-ascii"],
)
def test_safe_filename(key: str, expected: str) -> None:
    name = safe_filename(key)
    assert name.startswith(expected) and name.endswith(".eml")
    assert "/" not in name and not name.startswith(".")


def test_distinct_keys_never_share_a_file() -> None:
    assert safe_filename("a/b") != safe_filename("a_b") != safe_filename("a:b")


@pytest.mark.parametrize(
    "change",
    [
        {"to_name": "山田\r\nBcc: victim@example.com"},
        {"subject": "ok\nBcc: x@example.com"},
        {"headers": {"X-Test": "a\r\nb"}},
        {"to_email": "a@example.com, b@example.com"},
        {"message_key": " "},
        {"custom_args": {"n": 1}},
        {"headers": {"X-Test\r\nBcc": "victim@example.com"}},
        {"reply_to": "a@example.com\nBcc: victim@example.com"},
        {"cc": ["ok@example.com", "b@example.com\r\nBcc: victim@example.com"]},
        {"to_email": "a@example.com\u3000b@example.com"},
        {"from_email": "Kizuna <cs@example.com>"},
    ],
    ids=[
        "to-name-injection", "subject-injection", "header-injection", "two-addresses", "blank-key", "non-string-arg",
        "header-name-injection", "reply-to-injection", "cc-injection", "full-width-space", "display-name-in-address",
    ],
)  # fmt: skip
def test_invalid_messages_are_refused(message: OutgoingMessage, change: dict[str, Any]) -> None:
    with pytest.raises(InvalidMessageError):
        OutgoingMessage(**{**message.__dict__, **change})
