"""The outbox's .eml bytes: the email package's SMTP policy, remembered per header, and a direct writer.

`eml_bytes` writes a campaign message's file without building an EmailMessage: each header's bytes come from
the stock policy (remembered, or for plain ASCII text the same bytes written at once), each part's body from
the email package's own text encoder, and the boundary as its generator picks it. Where it cannot be sure of
writing what `to_mime(...).as_bytes()` writes, it returns None and the caller takes the stock path
(tests/email/test_email_outbox_bytes.py compares both byte for byte).
"""

from __future__ import annotations

import binascii
import datetime as dt
import email.policy
import json
import random
import re
import sys
from email import _encoded_words as _ew  # type: ignore[attr-defined]  # the stock RFC 2047 encoder
from email import quoprimime, utils
from email.headerregistry import Address, HeaderRegistry, UnstructuredHeader
from typing import Any

from kizuna.email.message import OutgoingMessage

_MEMO_SIZE = 4096  # distinct header values remembered; a campaign repeats a few dozen (From, Subject, parts)
_PARSED: dict[tuple[str, Any], Any] = {}
_FOLDED: dict[tuple[Any, ...], bytes] = {}


class _MemoPolicy(email.policy.EmailPolicy):
    """email.policy.SMTP remembering the header values it parsed and folded before.

    Parsing and folding a header are pure functions of its name, its text and the policy, and the email
    package never changes a header object once made (it replaces it), so a value seen before is handed out
    again, byte for byte what a fresh parse and fold would give (tests/email/test_email_outbox_bytes.py). Half of
    what a message costs was these two steps for headers every message of a campaign shares.
    """

    def header_store_parse(self, name: str, value: Any) -> tuple[str, Any]:
        if type(value) is Address:  # From (the same on every message) and To: what str() of it says is all it is
            key: tuple[str, Any] = (name, ("address", value.display_name, value.username, value.domain))
        elif type(value) is str:
            key = (name, value)
        else:
            return super().header_store_parse(name, value)
        header = _PARSED.get(key)
        if header is None:
            _, header = super().header_store_parse(name, value)
            header._kizuna_memo_key = key  # read by fold_binary: the text this header was parsed from
            if len(_PARSED) >= _MEMO_SIZE:
                _PARSED.clear()
                _FOLDED.clear()
            _PARSED[key] = header
        return name, header

    def fold_binary(self, name: str, value: Any) -> bytes:
        memo_key = getattr(value, "_kizuna_memo_key", None)
        if memo_key is None:
            return super().fold_binary(name, value)
        key = (name, memo_key, self.linesep, self.max_line_length, self.utf8, self.cte_type, self.refold_source)
        folded = _FOLDED.get(key)
        if folded is None:
            folded = _FOLDED[key] = super().fold_binary(name, value)
        return folded


class _HeaderClasses(HeaderRegistry):
    """The standard registry, making each header name's class once instead of on every header (≈ 25 µs each)."""

    def __init__(self) -> None:
        super().__init__()
        self._made: dict[str, type] = {}

    def __getitem__(self, name: str) -> type:
        made = self._made.get(name.lower())
        if made is None:
            made = self._made[name.lower()] = super().__getitem__(name)
        return made


# CRLF line ends, RFC 2047 for non-ASCII headers, as a provider would send (email.policy.SMTP's settings)
POLICY = _MemoPolicy(linesep="\r\n", header_factory=_HeaderClasses())
# Written without folding: Python 3.11 folds a long ASCII display name without its quotes and a long reply-to
# onto a line that does not start with a space, which changes what the header says (tests/reliability).
WRITE_POLICY = POLICY.clone(max_line_length=None)


_CRLF = b"\r\n"
_ASCII = bytes(range(128))
_BODY_LINE_LENGTH = 78  # email.policy.SMTP's, which set_content encodes bodies with
_REGISTERED = frozenset(HeaderRegistry().registry)  # names with a class and count rules of their own
_LINE_END = re.compile(rb"\r\n|\r|\n")  # what the generator turns into CRLF (email.generator.NLCRE)
_NAME = re.compile(r"[!-9;-~]+")  # a header name the generator writes as it is
# Text the stock policy writes back unchanged: printable ASCII words, single spaces, nothing like an encoded word.
_PLAIN = re.compile(r"[!-~]+(?: [!-~]+)*")
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_DOT_ATOM_ADDRESS = re.compile(rf"{_ATOM}(?:\.{_ATOM})*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*")
_NON_ASCII_WORDS = re.compile(r"[^\x00-\x7f\s\ud800-\udfff]+(?: [^\x00-\x7f\s\ud800-\udfff]+)*")
# Structured headers whose stock fold writes these shapes back as they are (tests/email/test_email_outbox_bytes.py).
_WRITTEN_AS_IS = {
    "Message-ID": re.compile(r"<[A-Za-z0-9]+(?:\.[A-Za-z0-9]+)*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*>"),
    "Date": re.compile(r"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d\d (?:[A-Z][a-z]{2}) \d{4} \d\d:\d\d:\d\d [+-]\d{4}"),
}
_NOTHING = re.compile(r"(?!)")
_PLACEHOLDER = "kizuna-placeholder@placeholder.invalid"
_ADDRESS_PARTS: dict[tuple[str, str], tuple[bytes, bytes]] = {}
_BOUNDARY_WIDTH = len(repr(sys.maxsize - 1))  # as email.generator makes a boundary


def header_bytes(name: str, value: Any) -> bytes:
    """One header line as the generator writes it with WRITE_POLICY (parsed and folded by the stock policy)."""
    plain = type(value) is str and _NAME.fullmatch(name) and _PLAIN.fullmatch(value) and "=?" not in value
    if plain and issubclass(POLICY.header_factory[name], UnstructuredHeader):  # type: ignore[index]
        return f"{name}: {value}\r\n".encode("ascii")
    if plain and _WRITTEN_AS_IS.get(name, _NOTHING).fullmatch(value):
        return f"{name}: {value}\r\n".encode("ascii")
    return WRITE_POLICY.fold_binary(name, POLICY.header_store_parse(name, value)[1])


def _address_header(name: str, display_name: str, addr_spec: str) -> bytes:
    """From or To with one address: the display name's part folded once per name, the address put in after."""
    if not _DOT_ATOM_ADDRESS.fullmatch(addr_spec):
        return header_bytes(name, Address(display_name=display_name, addr_spec=addr_spec))
    if _NON_ASCII_WORDS.fullmatch(display_name):  # e.g. 山田 太郎: one encoded word, as the stock fold makes it
        return f"{name}: {_ew.encode(display_name, charset='utf-8')} <{addr_spec}>\r\n".encode("ascii")
    parts = _ADDRESS_PARTS.get((name, display_name))
    if parts is None:
        folded = header_bytes(name, Address(display_name=display_name, addr_spec=_PLACEHOLDER))
        before, found, after = folded.partition(_PLACEHOLDER.encode("ascii"))
        if not found or _PLACEHOLDER.encode("ascii") in after:
            return header_bytes(name, Address(display_name=display_name, addr_spec=addr_spec))
        if len(_ADDRESS_PARTS) >= _MEMO_SIZE:
            _ADDRESS_PARTS.clear()
        parts = _ADDRESS_PARTS[(name, display_name)] = (before, after)
    return parts[0] + addr_spec.encode("ascii") + parts[1]


def _encode_text(text: str) -> tuple[str, bytes]:
    """email.contentmanager's choice of transfer encoding for UTF-8 text, and the body in CRLF lines.

    The same decisions as the stock `_encode_text` with the SMTP policy (78-character lines, 8bit allowed),
    made cheaper: base64 in one call instead of one per line, and quoted-printable's trial encoding skipped
    when its length provably exceeds base64's (every byte above 0x7F takes three characters).
    """
    lines = text.encode("utf-8").splitlines()
    if max(map(len, lines), default=0) <= _BODY_LINE_LENGTH:
        body = b"\n".join(lines) + b"\n"
        return ("7bit" if body.isascii() else "8bit"), body.replace(b"\n", _CRLF)
    sniff = _CRLF.join(lines[:10]) + _CRLF
    breaks = min(len(lines), 10)
    high = len(sniff.translate(None, _ASCII))  # the bytes above 0x7F
    base64_length = len(binascii.b2a_base64(b"")) + (len(sniff) + 2) // 3 * 4
    qp_at_least = len(sniff) - breaks + 2 * high  # each line break CRLF → LF; each high byte "=XX"
    if qp_at_least <= base64_length:  # close: encode it to know, as the stock encoder does
        sniff_qp = quoprimime.body_encode(sniff.decode("latin-1"), _BODY_LINE_LENGTH)
        if len(sniff_qp) <= base64_length:
            body_qp = (
                sniff_qp
                if len(lines) <= 10
                else quoprimime.body_encode((b"\n".join(lines) + b"\n").decode("latin-1"), _BODY_LINE_LENGTH)
            )
            return "quoted-printable", _LINE_END.sub(_CRLF, body_qp.encode("ascii", "surrogateescape"))
    encoded = binascii.b2a_base64(_CRLF.join(lines) + _CRLF, newline=False)
    width = _BODY_LINE_LENGTH // 4 * 4  # 57 bytes a line, 76 characters, as email.contentmanager cuts them
    return "base64", _CRLF.join([encoded[i : i + width] for i in range(0, len(encoded), width)]) + _CRLF


def _part(text: str, subtype: str, last_headers: bytes) -> bytes:
    """One text part as the generator writes it: set_content's headers, then its encoded body in CRLF lines."""
    cte, body = _encode_text(text)
    head = f'Content-Type: text/{subtype}; charset="utf-8"\r\nContent-Transfer-Encoding: {cte}\r\n'
    return head.encode("ascii") + last_headers + _CRLF + body


def _boundary(text: bytes) -> str:
    """email.generator's boundary for a multipart whose parts are ``text`` (the same random draw)."""
    boundary = ("=" * 15) + f"{random.randrange(sys.maxsize):0{_BOUNDARY_WIDTH}d}" + "=="
    chosen, counter = boundary, 0
    while f"--{chosen}".encode("ascii") in text and re.search(
        b"^--" + re.escape(chosen.encode("ascii")) + b"(--)?$", text, re.MULTILINE
    ):
        chosen, counter = f"{boundary}.{counter}", counter + 1
    return chosen


def eml_bytes(message: OutgoingMessage, message_id: str, now: dt.datetime) -> bytes | None:
    """The bytes `to_mime(message).as_bytes(policy=WRITE_POLICY)` writes, or None where this writer is not sure.

    Not sure: extra headers the email package treats specially (a registered name such as Subject, or a
    Content-* header that set_content would move into a part), or a Cc address that is not a plain dot-atom.
    """
    extra = [name.lower() for name in message.headers]
    if any(n in _REGISTERED or n.startswith("content-") for n in extra):
        return None
    if not all(_DOT_ATOM_ADDRESS.fullmatch(cc) for cc in message.cc):
        return None
    lines = [
        header_bytes("Message-ID", message_id),
        header_bytes("Date", utils.format_datetime(now.astimezone(dt.UTC))),
        _address_header("From", message.from_name, message.from_email),
        _address_header("To", message.to_name, message.to_email),
    ]
    if message.cc:  # plain addresses (owner_policy cc_owner), as the stock fold lists them
        lines.append(f"Cc: {', '.join(message.cc)}\r\n".encode("ascii"))
    if message.reply_to:
        lines.append(header_bytes("Reply-To", message.reply_to))
    lines.append(header_bytes("Subject", message.subject))
    lines += [header_bytes(name, value) for name, value in message.headers.items()]
    lines.append(header_bytes("X-Kizuna-Message-Key", message.message_key))
    if message.categories:
        lines.append(header_bytes("X-Kizuna-Categories", ", ".join(message.categories)))
    if message.custom_args:
        args = json.dumps(message.custom_args, ensure_ascii=True, sort_keys=True)
        lines.append(header_bytes("X-Kizuna-Custom-Args", args))
    parts = [_part(message.text, "plain", b""), _part(message.html, "html", b"MIME-Version: 1.0\r\n")]
    boundary = _boundary(_CRLF.join(parts)).encode("ascii")
    lines.append(b'MIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary="' + boundary + b'"\r\n\r\n')
    lines += [b"--", boundary, _CRLF, parts[0], b"\r\n--", boundary, _CRLF, parts[1], b"\r\n--", boundary, b"--\r\n"]
    return b"".join(lines)
