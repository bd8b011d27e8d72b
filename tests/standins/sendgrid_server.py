"""A SendGrid v3 mail/send stand-in on 127.0.0.1: validates each request, answers as told, records what it accepted.

Answers: "202" (accepted, X-Message-Id), "400", "401", "413", "429" (X-RateLimit-Reset), "500", "hang" (no answer
until the client gives up; the handler waits at most ``hang_seconds``). Choose them with ``default``, a
``script`` consumed one answer per request, or ``by_address`` (a recipient address → answer). ``delay`` adds
seconds to every answer. Run as a script (``python -m tests.standins.sendgrid_server --port 0``) for benchmarks.
"""

from __future__ import annotations

import argparse
import itertools
import json
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.standins.serving import ServedInThread, StandinHandler, StandinServer

MAX_PERSONALIZATIONS = 1000
MAX_CATEGORIES = 10
MAX_CUSTOM_ARGS_BYTES = 10_000
ANSWERS = ("202", "400", "401", "403", "413", "429", "500", "hang")


@dataclass
class Accepted:
    message_id: str
    body: dict[str, Any]
    received_at: float

    @property
    def to_emails(self) -> list[str]:
        return [to["email"] for p in self.body["personalizations"] for to in p["to"]]

    @property
    def custom_args(self) -> dict[str, str]:
        return dict(self.body.get("custom_args") or {})


@dataclass
class StandinState:
    """What the stand-in answers and what it saw; change the answers between (or during) requests."""

    default: str = "202"
    script: deque[str] = field(default_factory=deque)
    by_address: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    hang_seconds: float = 5.0
    rate_limit_reset_in: float = 1.0
    api_key: str | None = None  # when set, Authorization must be "Bearer <api_key>"
    record_bodies: bool = True
    accepted: list[Accepted] = field(default_factory=list)
    requests: int = 0
    answers: dict[str, int] = field(default_factory=dict)
    invalid: list[str] = field(default_factory=list)  # validation messages of requests answered 400
    lock: threading.Lock = field(default_factory=threading.Lock)
    stop: threading.Event = field(default_factory=threading.Event)
    _ids: itertools.count[int] = field(default_factory=itertools.count)

    def next_answer(self, body: dict[str, Any] | None) -> str:
        with self.lock:
            self.requests += 1
            if self.script:
                return self.script.popleft()
        if body and self.by_address:
            for personalization in body.get("personalizations") or []:
                for to in personalization.get("to") or []:
                    answer = self.by_address.get(str(to.get("email")))
                    if answer:
                        return answer
        return self.default

    def wait_for_requests(self, count: int, timeout: float, alive: Callable[[], bool] = lambda: True) -> bool:
        """Whether ``count`` requests arrived within ``timeout`` seconds (False as soon as ``alive()`` is not)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and alive():
            if self.requests >= count:
                return True
            time.sleep(0.005)
        return False


def validate(body: Any) -> list[str]:
    """Problems SendGrid's v3 mail/send would answer 400 for (the rules kizuna relies on)."""
    if not isinstance(body, dict):
        return ["request body must be a JSON object"]
    problems: list[str] = []
    pers = body.get("personalizations")
    if not isinstance(pers, list) or not pers:
        problems.append("personalizations: required, at least one")
        pers = []
    if len(pers) > MAX_PERSONALIZATIONS:
        problems.append(f"personalizations: at most {MAX_PERSONALIZATIONS}")
    seen: set[str] = set()
    recipients = 0
    subject_everywhere = True
    for i, p in enumerate(pers):
        if not isinstance(p, dict) or not isinstance(p.get("to"), list) or not p["to"]:
            problems.append(f"personalizations.{i}.to: required")
            continue
        subject_everywhere &= bool(p.get("subject"))
        for kind in ("to", "cc", "bcc"):
            for address in p.get(kind) or []:
                email = str(address.get("email", "")).lower() if isinstance(address, dict) else ""
                if "@" not in email:
                    problems.append(f"personalizations.{i}.{kind}: invalid email {email!r}")
                if email in seen:
                    problems.append(f"personalizations.{i}.{kind}: {email} appears more than once")
                seen.add(email)
                recipients += 1
        problems += _custom_args_problems(p.get("custom_args"), f"personalizations.{i}.custom_args")
    if recipients > MAX_PERSONALIZATIONS:
        problems.append(f"at most {MAX_PERSONALIZATIONS} recipients per request")
    sender = body.get("from")
    if not isinstance(sender, dict) or "@" not in str(sender.get("email", "")):
        problems.append("from.email: required")
    if not body.get("subject") and not subject_everywhere and not body.get("template_id"):
        problems.append("subject: required")
    content = body.get("content")
    if not body.get("template_id"):
        if not isinstance(content, list) or not content:
            problems.append("content: required")
        else:
            for j, part in enumerate(content):
                if not isinstance(part, dict) or not part.get("type") or not part.get("value"):
                    problems.append(f"content.{j}: type and value required")
    for value in (
        body.get("subject"),
        *(str((body.get("headers") or {}).get(h, "")) for h in body.get("headers") or {}),
    ):
        if isinstance(value, str) and ("\r" in value or "\n" in value):
            problems.append("subject and headers must not contain line breaks")
    categories = body.get("categories", [])
    if not isinstance(categories, list) or len(categories) > MAX_CATEGORIES:
        problems.append(f"categories: at most {MAX_CATEGORIES}")
    elif any(not isinstance(c, str) or not c or len(c) > 255 for c in categories) or len(set(categories)) != len(
        categories
    ):
        problems.append("categories: unique strings of 1-255 characters")
    problems += _custom_args_problems(body.get("custom_args"), "custom_args")
    asm = body.get("asm")
    if asm is not None and (not isinstance(asm, dict) or not isinstance(asm.get("group_id"), int)):
        problems.append("asm.group_id: integer required")
    return problems


def _custom_args_problems(args: Any, where: str) -> list[str]:
    if args is None:
        return []
    if not isinstance(args, dict):
        return [f"{where}: must be an object"]
    problems = [f"{where}.{k}: values must be strings" for k, v in args.items() if not isinstance(v, str)]
    if len(json.dumps(args).encode()) >= MAX_CUSTOM_ARGS_BYTES:
        problems.append(f"{where}: must be under {MAX_CUSTOM_ARGS_BYTES} bytes")
    return problems


class _Handler(StandinHandler):
    server: _Server

    def do_POST(self) -> None:
        state = self.server.state
        raw = self.read_body()
        if self.path.rstrip("/") != "/v3/mail/send":
            self._answer(404, {"errors": [{"message": f"no route {self.path}"}]})
            return
        if state.api_key is not None and self.headers.get("Authorization") != f"Bearer {state.api_key}":
            self._count("401")
            self._answer(
                401, {"errors": [{"message": "The provided authorization grant is invalid, expired, or revoked"}]}
            )
            return
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        answer = state.next_answer(body if isinstance(body, dict) else None)
        problems = validate(body)
        if problems:
            answer = "400"
            with state.lock:
                state.invalid += problems
        self._count(answer)
        if state.delay:
            time.sleep(state.delay)
        if answer == "hang":
            state.stop.wait(state.hang_seconds)
            self.close_connection = True
            return
        if answer == "202":
            message_id = f"standin-{next(state._ids)}"
            if state.record_bodies:
                with state.lock:
                    state.accepted.append(Accepted(message_id, body, time.time()))
            self._answer(202, None, {"X-Message-Id": message_id})
        elif answer == "429":
            reset = int(time.time() + state.rate_limit_reset_in + 0.999)
            self._answer(
                429,
                {"errors": [{"message": "too many requests", "field": None}]},
                {"X-RateLimit-Limit": "600", "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(reset)},
            )
        elif answer == "500":
            self._answer(500, {"errors": [{"message": "internal error", "field": None}]})
        else:
            message = "; ".join(problems) or f"stand-in told to answer {answer}"
            self._answer(int(answer), {"errors": [{"message": message, "field": None, "help": None}]})

    def _count(self, answer: str) -> None:
        with self.server.state.lock:
            self.server.state.answers[answer] = self.server.state.answers.get(answer, 0) + 1

    def _answer(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        data = b"" if payload is None else json.dumps(payload).encode()
        self.send_body(status, data, "application/json" if data else None, headers)


class _Server(StandinServer):
    state: StandinState
    request_queue_size = 256


class SendGridStandin(ServedInThread):
    """Start with ``with SendGridStandin() as standin:``; ``standin.host`` is the base URL for the client."""

    def __init__(self, port: int = 0, state: StandinState | None = None) -> None:
        self.state = state or StandinState()
        super().__init__(_Server(port, _Handler, self.state), "sendgrid-standin", stop=self.state.stop)

    @property
    def host(self) -> str:
        return self.url


@pytest.fixture
def sendgrid_standin() -> Iterator[SendGridStandin]:
    """The stand-in for one test, answering 202 until told otherwise (import this fixture into a conftest)."""
    with SendGridStandin() as standin:
        yield standin


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--delay", type=float, default=0.0, help="seconds added to every answer")
    args = parser.parse_args()
    state = StandinState(delay=args.delay, record_bodies=False)
    with SendGridStandin(args.port, state) as standin:
        print(standin.host, flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
