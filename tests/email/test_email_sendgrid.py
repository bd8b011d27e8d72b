"""The SendGrid backend against the stand-in: every answer classified, the payload's fields, the key kept secret."""

from __future__ import annotations

import logging
import socket
import time
from typing import Any

import pytest

from kizuna.core.settings import Settings
from kizuna.email.backends import make_backend
from kizuna.email.message import (
    DeferredSendError,
    InvalidMessageError,
    OutgoingMessage,
    PermanentSendError,
    UncertainSendError,
    build_message,
)
from kizuna.email.render import TemplateRenderer
from kizuna.email.sendgrid import InvalidApiKeyError, MissingApiKeyError, SendGridBackend
from tests.standins.sendgrid_server import SendGridStandin, validate

KEY = "SG.secret-key-0123456789.abcdefghijklmnopqrstuvwxyz"
SECRET = "unsubscribe-secret-for-the-sendgrid-tests"
TRANSPORTS = ["official", "pooled"]


def message(renderer: TemplateRenderer, key: str = "k1", to: str = "taro@example.jp") -> OutgoingMessage:
    rendered = renderer.render_sample("renewal_reminder", "ja")
    return build_message(rendered, to, "山田 太郎", key, custom_args={"campaign": "renewal_reminder", "run_id": "r1"})


def backend(standin: SendGridStandin, transport: str = "official", **options: Any) -> SendGridBackend:
    # Generous by default, so a loaded machine does not turn a slow answer into 'unknown'; the timeout test
    # sets its own.
    options = {"timeout": 10.0, **options}
    return SendGridBackend(KEY, standin.host, transport=transport, **options)  # type: ignore[arg-type]


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_202_is_accepted_with_the_message_id_and_every_field(
    sendgrid_standin: SendGridStandin, renderer: TemplateRenderer, transport: str
) -> None:
    sendgrid_standin.state.api_key = KEY
    sg = backend(sendgrid_standin, transport, sandbox_mode=True, click_tracking=False)
    msg = message(renderer)
    msg = OutgoingMessage(**{**msg.__dict__, "unsubscribe_group": 4242})
    assert sg.send(msg).startswith("standin-")
    [accepted] = sendgrid_standin.state.accepted
    body = accepted.body
    assert accepted.custom_args == {
        "send_id": "k1",
        "campaign": "renewal_reminder",
        "run_id": "r1",
        "template": "renewal_reminder",
    }
    assert body["categories"] == ["renewal_reminder"] and body["asm"] == {"group_id": 4242}
    assert body["tracking_settings"]["open_tracking"] == {"enable": True}
    assert body["tracking_settings"]["click_tracking"]["enable"] is False
    assert body["mail_settings"] == {"sandbox_mode": {"enable": True}}
    assert body["subject"] == msg.subject and "契約更新" in body["subject"]  # UTF-8 survives the client
    assert [c["type"] for c in body["content"]] == ["text/plain", "text/html"]
    assert body["headers"]["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert validate(body) == []
    sg.close()


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("status", ["400", "413"])
def test_refusals_are_permanent_with_sendgrids_message(
    sendgrid_standin: SendGridStandin, renderer: TemplateRenderer, transport: str, status: str
) -> None:
    sendgrid_standin.state.default = status
    with pytest.raises(PermanentSendError, match=f"SendGrid {status}: stand-in told to answer {status}") as info:
        backend(sendgrid_standin, transport).send(message(renderer))
    assert KEY not in str(info.value)


def test_an_invalid_request_is_refused_with_the_field(
    sendgrid_standin: SendGridStandin, renderer: TemplateRenderer
) -> None:
    msg = message(renderer)
    bad = OutgoingMessage(**{**msg.__dict__, "categories": [f"c{i}" for i in range(11)]})
    with pytest.raises(PermanentSendError, match="categories: at most 10"):
        backend(sendgrid_standin).send(bad)


@pytest.mark.parametrize("status", ["401", "403"])
def test_a_refused_key_halts_the_backend(
    sendgrid_standin: SendGridStandin, renderer: TemplateRenderer, status: str
) -> None:
    sendgrid_standin.state.default = status
    sg = backend(sendgrid_standin)
    with pytest.raises(PermanentSendError, match=status):
        sg.send(message(renderer))
    with pytest.raises(DeferredSendError, match="KIZUNA_SENDGRID_API_KEY"):
        sg.send(message(renderer, "k2"))
    assert sendgrid_standin.state.requests == 1  # the rest of the run is not sent into a wall


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_429_waits_for_the_reset_then_goes_on(
    sendgrid_standin: SendGridStandin, renderer: TemplateRenderer, transport: str
) -> None:
    sendgrid_standin.state.script.extend(["429", "202"])
    sendgrid_standin.state.rate_limit_reset_in = 0  # X-RateLimit-Reset: the next whole second
    started = time.time()
    assert backend(sendgrid_standin, transport).send(message(renderer)).startswith("standin-")
    assert time.time() >= int(started) + 1 - 0.05  # waited until the reset second
    assert sendgrid_standin.state.answers == {"429": 1, "202": 1}


def test_429_longer_than_the_allowed_wait_defers(sendgrid_standin: SendGridStandin, renderer: TemplateRenderer) -> None:
    sendgrid_standin.state.default = "429"
    sendgrid_standin.state.rate_limit_reset_in = 600
    with pytest.raises(DeferredSendError, match="rate limited"):
        backend(sendgrid_standin, max_rate_limit_wait=5).send(message(renderer))


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("answer", ["500", "hang"])
def test_5xx_and_timeouts_are_unknown(
    sendgrid_standin: SendGridStandin, renderer: TemplateRenderer, transport: str, answer: str
) -> None:
    sendgrid_standin.state.default = answer
    started = time.monotonic()
    with pytest.raises(UncertainSendError, match="may have been queued") as info:
        backend(sendgrid_standin, transport, timeout=0.5).send(message(renderer))
    assert time.monotonic() - started < 2  # the 0.5 s timeout, not the stand-in's 5 s hang
    assert KEY not in str(info.value)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_connection_refused_is_not_sent_so_stays_pending(renderer: TemplateRenderer, transport: str) -> None:
    """A refused TCP connection carried no request: nothing can be queued, so the key stays pending (not
    unknown, which would need a person to release it), and the run stops trying a host that is not there."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again: nothing listens there
    sg = SendGridBackend(KEY, f"http://127.0.0.1:{port}", timeout=0.5, transport=transport)  # type: ignore[arg-type]
    with pytest.raises(DeferredSendError, match="not sent: could not connect") as info:
        sg.send(message(renderer))
    with pytest.raises(DeferredSendError, match="not sent"):
        sg.send(message(renderer, "k2"))
    assert KEY not in str(info.value)


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("pasted", [KEY + "\n", KEY + "\r\n", f"  {KEY}\t"], ids=["newline", "crlf", "spaces"])
def test_a_key_pasted_with_surrounding_whitespace_is_stripped(
    sendgrid_standin: SendGridStandin, renderer: TemplateRenderer, transport: str, pasted: str
) -> None:
    sendgrid_standin.state.api_key = KEY  # the stand-in checks Authorization: Bearer <KEY> exactly
    sg = SendGridBackend(pasted, sendgrid_standin.host, transport=transport)  # type: ignore[arg-type]
    assert sg.send(message(renderer)).startswith("standin-")


@pytest.mark.parametrize(
    "key",
    [
        "SG.abcdefghij\nklmnopqrst.uvwxyz0123456789",
        "SG.abcdefghij klmnopqrst.uvwxyz0123456789",
        "SG.abcdefghij\x00klmnopqrst.uvwxyz0123456789",
        "SG.abcdefghijキーklmnopqrst.uvwxyz0123456789",
    ],
    ids=["inner-newline", "inner-space", "nul", "non-ascii"],
)
def test_a_malformed_key_is_refused_at_start_without_showing_it(key: str) -> None:
    with pytest.raises(InvalidApiKeyError, match="KIZUNA_SENDGRID_API_KEY") as info:
        SendGridBackend(key, "http://127.0.0.1:9")
    for part in key.split():
        assert part[3:13] not in str(info.value)


def test_the_key_is_never_logged(
    sendgrid_standin: SendGridStandin, renderer: TemplateRenderer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    sendgrid_standin.state.script.extend(["429", "202", "400"])
    sendgrid_standin.state.rate_limit_reset_in = 0
    sg = backend(sendgrid_standin)
    sg.send(message(renderer))
    with pytest.raises(PermanentSendError):
        sg.send(message(renderer, "k2"))
    assert KEY not in caplog.text and KEY not in repr(sg)
    assert "taro@example.jp" not in caplog.text  # nor the payload


def test_rate_limit_spaces_requests(sendgrid_standin: SendGridStandin, renderer: TemplateRenderer) -> None:
    sg = backend(sendgrid_standin, "pooled", rate_per_second=50)
    started = time.monotonic()
    for i in range(6):
        sg.send(message(renderer, f"k{i}"))
    assert time.monotonic() - started >= 5 / 50 - 0.01


@pytest.mark.parametrize(
    ("field", "value"),
    [("subject", "件名\r\nBcc: victim@example.com"), ("to_name", "山田\nBcc: victim@example.com")],
    ids=["subject", "to-name"],
)
def test_a_line_break_cannot_reach_the_headers(renderer: TemplateRenderer, field: str, value: str) -> None:
    with pytest.raises(InvalidMessageError, match="header injection"):
        OutgoingMessage(**{**message(renderer).__dict__, field: value})


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ({"personalizations": [{"to": [{"email": f"a{i}@x.jp"}]} for i in range(1001)]}, "at most 1000"),
        ({"personalizations": [{"to": [{"email": "a@x.jp"}, {"email": "A@x.jp"}]}]}, "more than once"),
        ({"custom_args": {"n": 1}}, "values must be strings"),
        ({"categories": [str(i) for i in range(11)]}, "at most 10"),
        ({"from": None}, "from.email"),
        ({"subject": None}, "subject: required"),
        ({"content": []}, "content: required"),
        ({"personalizations": []}, "personalizations: required"),
    ],
    ids=["1001-personalizations", "duplicate-address", "custom-args-int", "11-categories", "no-from", "no-subject",
         "no-content", "no-personalizations"],
)  # fmt: skip
def test_the_standin_enforces_the_v3_rules(body: dict[str, Any], problem: str) -> None:
    good = {
        "personalizations": [{"to": [{"email": "a@x.jp"}]}],
        "from": {"email": "f@x.jp"},
        "subject": "s",
        "content": [{"type": "text/plain", "value": "t"}],
    }
    assert validate(good) == []
    assert any(problem in p for p in validate({**good, **body}))


def test_make_backend_needs_a_key_and_names_the_setting(tmp_path: Any) -> None:
    assert make_backend(Settings(outbox_dir=tmp_path)).name == "outbox"
    with pytest.raises(MissingApiKeyError, match="KIZUNA_SENDGRID_API_KEY"):
        make_backend(Settings(email_backend="sendgrid", unsubscribe_secret=SECRET))  # type: ignore[arg-type]
    sg = make_backend(Settings(email_backend="sendgrid", sendgrid_api_key=KEY, unsubscribe_secret=SECRET))  # type: ignore[arg-type]
    assert isinstance(sg, SendGridBackend) and sg.host == "https://api.sendgrid.com"


def test_settings_strip_a_pasted_key_so_every_reader_gets_the_same_one() -> None:
    settings = Settings(sendgrid_api_key=f"{KEY}\n")  # type: ignore[arg-type]
    assert settings.sendgrid_api_key is not None and settings.sendgrid_api_key.get_secret_value() == KEY


@pytest.mark.parametrize("secret", [None, "", "short-secret"], ids=["demo-default", "empty", "too-short"])
def test_sendgrid_refuses_to_start_with_a_forgeable_unsubscribe_secret(tmp_path: Any, secret: str | None) -> None:
    """Anyone can sign unsubscribe tokens with the public demo secret: real mail must not carry such links.
    The outbox (the demo) keeps working with it."""
    options: dict[str, Any] = {} if secret is None else {"unsubscribe_secret": secret}
    assert make_backend(Settings(outbox_dir=tmp_path, **options)).name == "outbox"
    with pytest.raises(ValueError, match="KIZUNA_UNSUBSCRIBE_SECRET") as info:
        make_backend(Settings(email_backend="sendgrid", sendgrid_api_key=KEY, **options))  # type: ignore[arg-type]
    assert "kizuna-demo-only-secret" not in str(info.value) and KEY not in str(info.value)
