"""The template studio has no login: what keeps it safe is loopback, host checks, JSON-only sends and seeds.

docs/reliability.md (security review) relies on each of these; a browser test (tests/studio) covers the page.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from starlette.testclient import TestClient

from kizuna.core.settings import Settings
from kizuna.studio.app import create_app


@pytest.fixture
def studio(settings: Settings) -> TestClient:
    seeded = settings.model_copy(update={"seed_addresses": ["seed@sender.example.jp"]})
    return TestClient(create_app(seeded), base_url="http://127.0.0.1")


@pytest.mark.parametrize("host", ["evil.example", "127.0.0.1.evil.example", "studio.attacker.test:8000"], ids=str)
def test_another_host_name_is_refused_so_a_rebinding_page_reads_nothing(studio: TestClient, host: str) -> None:
    assert studio.get("/api/templates", headers={"Host": host}).status_code == 400
    ok = studio.get("/api/templates")
    assert ok.status_code == 200 and "renewal_reminder" in ok.text


def test_every_answer_forbids_framing_and_sniffing(studio: TestClient) -> None:
    for path in ("/", "/api/templates", "/api/render?template=renewal_reminder&locale=ja"):
        headers = studio.get(path).headers
        assert "frame-ancestors 'none'" in headers["content-security-policy"]
        assert headers["x-content-type-options"] == "nosniff"


@pytest.mark.parametrize(
    ("content_type", "to", "status"),
    [
        ("text/plain", "seed@sender.example.jp", 415),  # what a cross-site form can send without a preflight
        ("application/x-www-form-urlencoded", "seed@sender.example.jp", 415),
        ("application/json", "customer@kunde.example.jp", 403),
        ("application/json", "seed@sender.example.jp\r\nBcc: customer@kunde.example.jp", 403),
    ],
    ids=["text-plain", "form", "not-a-seed", "seed-with-injected-header"],
)
def test_a_test_copy_goes_to_a_seed_address_from_a_json_request_only(
    studio: TestClient, settings: Settings, content_type: str, to: str, status: int
) -> None:
    body = f'{{"template": "renewal_reminder", "locale": "ja", "to": "{to.encode("unicode_escape").decode()}"}}'
    response = studio.post("/api/send-test", content=body, headers={"Content-Type": content_type})
    assert response.status_code == status, response.text
    assert not list(Path(settings.outbox_dir).glob("*.eml"))


def test_a_seed_address_gets_its_test_copy(studio: TestClient, settings: Settings) -> None:
    response = studio.post(
        "/api/send-test", json={"template": "renewal_reminder", "locale": "ja", "to": "seed@sender.example.jp"}
    )
    assert response.status_code == 200, response.text
    [eml] = Path(settings.outbox_dir).glob("*.eml")
    assert b"seed@sender.example.jp" in eml.read_bytes() and b"[TEST]" in eml.read_bytes()
