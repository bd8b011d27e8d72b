"""The outbox's .eml bytes: the direct writer and the header memo write what the email package's SMTP policy writes."""

from __future__ import annotations

import dataclasses
import datetime as dt
import email.policy
import email.utils
import random
import re
from email.headerregistry import Address
from pathlib import Path

import pytest

from kizuna.email.headers import _address_header, eml_bytes, header_bytes
from kizuna.email.message import OutgoingMessage, build_message
from kizuna.email.outbox import _WRITE_POLICY, OutboxBackend, message_id, to_mime, written_message_id
from kizuna.email.render import TemplateRenderer

NOW = dt.datetime(2026, 11, 23, 9, 30, tzinfo=dt.UTC)
STOCK = email.policy.SMTP
STOCK_WRITE = STOCK.clone(max_line_length=None)

NAMES = [
    "山田 太郎",
    "Taro Yamada",
    'O\'Brien, "Bob" (sales)',
    "株式会社テスト Kizuna K.K. " * 4,  # long and mixed: folded into several encoded words by the stock policy
    "",
    "=?utf-8?q?looks_encoded?=",
]


# email.generator's boundary: 15 "=", a random draw of 19 digits, "==" (".N" added where a part holds it). Both
# writers draw it from the global `random`; seeding it alike before each did not make the draws equal, as another
# thread of the test process (Prefect's client services) may draw in between, so the digits are compared as their
# form only.
_BOUNDARY = re.compile(rb"={15}\d{19}==(?:\.\d+)?")


def _masked(data: bytes) -> bytes:
    return _BOUNDARY.sub(b"=BOUNDARY=", data)


def _bytes(message: OutgoingMessage, *, stock: bool) -> bytes:
    if stock:
        return _masked(to_mime(message, now=NOW, policy=STOCK).as_bytes(policy=STOCK_WRITE))
    return _masked(to_mime(message, now=NOW).as_bytes(policy=_WRITE_POLICY))


@pytest.fixture
def base(renderer: TemplateRenderer) -> OutgoingMessage:
    rendered = renderer.render_sample("renewal_reminder", "ja")
    return build_message(rendered, "taro@mirai.example.jp", "山田 太郎", "k-0", custom_args={"campaign": "c"})


@pytest.mark.parametrize("name", NAMES, ids=[f"name{i}" for i in range(len(NAMES))])
def test_each_header_is_written_as_the_stock_policy_writes_it_first_time_and_remembered(
    base: OutgoingMessage, name: str
) -> None:
    messages = [
        dataclasses.replace(
            base,
            message_key=f"k-{i}",
            to_name=name,
            to_email=f"r{i}@example.jp",
            from_name=name or base.from_name,
            subject=f"{name} 様へ: {base.subject}" if i % 2 else base.subject,
            cc=["cc@example.jp"] if i == 1 else [],
            reply_to="owner@example.jp" if i == 2 else None,
        )
        for i in range(4)
    ]
    for message in messages + messages:  # the second pass finds every header remembered
        assert _bytes(message, stock=False) == _bytes(message, stock=True)


ADDRESSES = ["taro@mirai.example.jp", "first.last+tag@sub.example.co.jp", "o'hara@example.jp", "a..b@example.jp"]
SUBJECTS = ["Plain ASCII subject", "ご契約更新のご案内", "a  double  space", "=?utf-8?q?x?= looks encoded", "x" * 120]
BODIES = [
    "短い行\nです\n",  # short non-ASCII lines: 8bit
    "ASCII only\r\nwith CRLF\rand CR\n\nend",  # 7bit, every line end becomes CRLF
    "長い日本語の行です。" * 20 + "\n" + "二行目\n" * 12,  # base64
    ("a long ASCII line " * 10 + "\n") * 3,  # quoted-printable from the sniff (≤ 10 lines)
    ("é long Latin line " * 6 + "\n") * 14,  # quoted-printable encoded whole (> 10 lines)
    "",
    "--===============0000000000000000000==\nFrom the start of a line\n.\n",
]
HEADERS = [
    {},
    {"List-Unsubscribe": "<https://example.jp/u?c=1>", "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"},
    {"X-Note": "  padded  ", "X-Empty": "", "X-Jp": "日本語の値", "X-Parens": 'a (comment) "quoted" <x>, y; z'},
    {"Subject": "twice"},  # a registered name: the email package's own path (which refuses it)
    {"Content-Language": "ja"},  # moved into the first part by set_content: the email package's own path
]


def _stock(message: OutgoingMessage) -> tuple[bytes, str] | Exception:
    try:
        mime = to_mime(message, now=NOW, policy=STOCK)
        return _masked(mime.as_bytes(policy=STOCK_WRITE)), str(mime["Message-ID"])
    except Exception as exc:  # the direct writer must fail (or step aside) where the stock path fails
        return exc


@pytest.mark.parametrize("body", BODIES, ids=[f"body{i}" for i in range(len(BODIES))])
def test_the_direct_writer_writes_what_the_email_package_writes(base: OutgoingMessage, body: str) -> None:
    rng = random.Random(body)
    for i in range(40):
        message = dataclasses.replace(
            base,
            message_key=f"k-{i}",
            to_name=rng.choice(NAMES),
            to_email=rng.choice(ADDRESSES),
            from_name=rng.choice(NAMES),
            subject=rng.choice(SUBJECTS),
            reply_to=rng.choice([None, "owner@example.jp"]),
            cc=[["cc@example.jp"], [], ["a@example.jp", "o'hara@example.jp"], ["a..b@example.jp"]][i % 4],
            text=body if i % 2 else base.text,
            html=base.html if i % 2 else body,
            headers=rng.choice(HEADERS),
            categories=rng.choice([[], ["renewal", "ja"]]),
        )
        expected = _stock(message)
        try:
            written = eml_bytes(message, message_id(message), NOW)
        except Exception as exc:
            assert isinstance(expected, Exception), f"{message}: {exc!r}"
            continue
        if written is None:  # stepped aside: the outbox builds it with the email package
            assert "a..b@example.jp" in message.cc or message.headers.keys() & {"Subject", "Content-Language"}
            continue
        assert not isinstance(expected, Exception), f"written where the email package refuses: {expected!r}"
        assert (_masked(written), message_id(message)) == expected


def test_the_outbox_file_is_the_direct_writers_and_keeps_its_key(base: OutgoingMessage, tmp_path: Path) -> None:
    backend = OutboxBackend(tmp_path)
    returned = backend.send(base)
    data = backend.path_for(base).read_bytes()
    stock = to_mime(base, policy=STOCK).as_bytes(policy=STOCK_WRITE)
    blank_date = re.compile(rb"(?m)^Date: .*$")
    assert _masked(blank_date.sub(b"Date: -", data)) == _masked(blank_date.sub(b"Date: -", stock))
    assert returned == written_message_id(backend.path_for(base)) == message_id(base)


def test_names_in_any_script_are_encoded_as_the_stock_fold_encodes_them() -> None:
    rng = random.Random(5)
    pool = "山田太郎花子渡辺髙﨑ひらがなカタカナｶﾀｶﾅ한국어éèüßñ€😀　・ー々"
    for _ in range(300):
        words = ["".join(rng.choice(pool) for _ in range(rng.randint(1, 12))) for _ in range(rng.randint(1, 4))]
        name = rng.choice([" ", "  ", " \u3000"]).join(words) if rng.random() < 0.2 else " ".join(words)
        for address in ("taro@mirai.example.jp", "o'hara@example.jp"):
            stock = STOCK_WRITE.fold_binary("To", STOCK.header_store_parse("To", Address(name, addr_spec=address))[1])
            assert _address_header("To", name, address) == stock, name


def test_message_ids_and_dates_are_written_as_the_stock_fold_writes_them() -> None:
    rng = random.Random(9)
    for _ in range(300):
        when = dt.datetime(2000, 1, 1, tzinfo=dt.UTC) + dt.timedelta(seconds=rng.randrange(2_000_000_000))
        domain = rng.choice(["example.co.jp", "sender-1.example.jp", "x.y.z.example"])
        message_id_ = f"<{rng.getrandbits(128):032x}.kizuna@{domain}>"
        for name, value, written in (
            ("Date", when, email.utils.format_datetime(when)),
            ("Message-ID", message_id_, message_id_),
        ):
            stock = STOCK_WRITE.fold_binary(name, STOCK.header_store_parse(name, value)[1])
            assert header_bytes(name, written) == stock
