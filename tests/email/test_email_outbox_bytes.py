"""The outbox's header memo: every .eml byte is what the email package's own SMTP policy writes."""

from __future__ import annotations

import dataclasses
import datetime as dt
import email.policy
import random

import pytest

from kizuna.email.message import OutgoingMessage, build_message
from kizuna.email.outbox import _WRITE_POLICY, to_mime
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


def _bytes(message: OutgoingMessage, *, stock: bool) -> bytes:
    random.seed(7)  # the MIME boundary is random: the same one for both
    if stock:
        return to_mime(message, now=NOW, policy=STOCK).as_bytes(policy=STOCK_WRITE)
    return to_mime(message, now=NOW).as_bytes(policy=_WRITE_POLICY)


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
