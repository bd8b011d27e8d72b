"""The template studio and the KPI report in headless Chromium (Debian's package, driven by Playwright).

Screenshots are kept under the test's tmp dir and, when KIZUNA_TEST_ARTIFACTS is set, copied there.
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from kizuna.core.settings import PROJECT_DIR, Settings
from kizuna.core.warehouse import connect
from kizuna.reporting.report import build_report
from kizuna.studio.app import create_app
from tests.reporting.demo_warehouse import AS_OF

CHROMIUM = Path("/usr/bin/chromium")
# From the machine notes: without the background-networking flags Chromium hammers a closed network.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SEED = "marketer@kizuna.example.jp"

sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (never `playwright install`)")
if not CHROMIUM.exists():
    pytest.skip("Debian's chromium is not installed (apt-get install chromium)", allow_module_level=True)


def screenshot(page: Any, path: Path) -> Path:
    """A full-page screenshot kept as a test artifact (copied to KIZUNA_TEST_ARTIFACTS when set)."""
    page.screenshot(path=path, full_page=True)
    target = os.environ.get("KIZUNA_TEST_ARTIFACTS")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, Path(target) / path.name)
    return path


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as p:
        instance = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield instance
        instance.close()


@pytest.fixture
def studio(tmp_path: Path, demo_warehouse_path: Path) -> Iterator[tuple[str, Settings]]:
    """The studio on a free loopback port, over a copy of the shipped templates and campaigns."""
    project = tmp_path / "project"
    for folder in ("templates", "campaigns"):
        shutil.copytree(PROJECT_DIR / folder, project / folder)
    settings = Settings(
        project_dir=project,
        warehouse=demo_warehouse_path,
        var_dir=tmp_path / "var",
        outbox_dir=tmp_path / "outbox",
        email_backend="outbox",
        seed_addresses=[SEED],
    )
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "the studio did not start"
    yield f"http://127.0.0.1:{port}", settings
    server.should_exit = True
    thread.join(timeout=10)


def test_studio_renders_lints_on_save_and_sends_only_to_seeds(
    browser: Any, studio: tuple[str, Settings], tmp_path: Path
) -> None:
    url, settings = studio
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(url)
    expect = sync_api.expect
    page.select_option("#template", "renewal_reminder")
    expect(page.locator("#subject")).to_contain_text("契約更新")
    expect(page.locator("#lint li.ok")).to_have_count(1)

    # A customer from the campaign's current audience (the demo selection), rendered as the campaign would.
    first_recipient = page.locator('#sample option[value^="recipient/renewal_reminder/"]').first
    expect(first_recipient).to_be_attached()
    recipient = str(first_recipient.get_attribute("value"))
    contact_id = recipient.rsplit("/", 1)[1]
    with connect(settings.warehouse, read_only=True) as con:
        (customer_name,) = con.execute(
            "SELECT customer_name FROM ops.campaign_recipients WHERE contact_id = ? LIMIT 1", [contact_id]
        ).fetchone()
    page.select_option("#sample", recipient)
    expect(page.locator("#text")).to_contain_text(customer_name)
    expect(page.frame_locator("#html").locator("body")).to_contain_text(customer_name)
    assert page.locator("#html").get_attribute("sandbox") == ""  # no scripts in the preview
    screenshot(page, tmp_path / "studio-rendered.png")

    page.select_option("#locale", "en")
    expect(page.locator("#subject")).to_contain_text("renew", ignore_case=True)

    # Reload on save: a broken template shows its lint error, the fix clears it, a new subject shows at once.
    body = settings.templates_dir / "renewal_reminder" / "body.en.html.j2"
    original = body.read_text(encoding="utf-8")
    body.write_text(original.replace("{% block content %}", "{% block content %}{% if %}", 1), encoding="utf-8")
    expect(page.locator("#lint li").first).to_contain_text("body.en.html.j2", timeout=5000)
    expect(page.locator("#lint li").first).to_contain_text("syntax error")
    screenshot(page, tmp_path / "studio-lint-error.png")
    body.write_text(original, encoding="utf-8")
    subject = settings.templates_dir / "renewal_reminder" / "subject.en.txt.j2"
    subject.write_text("Studio check: " + subject.read_text(encoding="utf-8"), encoding="utf-8")
    expect(page.locator("#lint li.ok")).to_have_count(1, timeout=5000)
    expect(page.locator("#subject")).to_contain_text("Studio check:", timeout=5000)

    # A test copy goes to the seed address, and nowhere else.
    assert page.locator("#seed option").all_text_contents() == [SEED]
    page.click("#send")
    expect(page.locator("#send-result")).to_contain_text(f"sent to {SEED}")
    [eml] = list(settings.outbox_dir.glob("*.eml"))
    message = eml.read_text(encoding="utf-8", errors="replace")
    assert f"To: {SEED}" in message and "[TEST]" in message
    screenshot(page, tmp_path / "studio-sent.png")

    refused = page.request.post(
        f"{url}/api/send-test",
        data={"template": "renewal_reminder", "locale": "en", "sample": recipient, "to": "someone@else.example"},
    )
    assert refused.status == 403 and "not one of the seed addresses" in refused.json()["error"]
    form = page.request.post(f"{url}/api/send-test", form={"to": SEED})
    assert form.status == 415  # only JSON: another site's form post cannot trigger a send
    assert len(list(settings.outbox_dir.glob("*.eml"))) == 1
    page.close()


def test_a_broken_template_shows_its_own_error_never_another_email(
    browser: Any, studio: tuple[str, Settings], tmp_path: Path
) -> None:
    """A typo in a filter: a fresh page picking that template shows its error and an empty preview, not the
    previously shown template's email under its name with "no problems"."""
    url, settings = studio
    body = settings.templates_dir / "renewal_reminder" / "body.ja.html.j2"
    body.write_text(body.read_text(encoding="utf-8").replace("customer_name|company", "customer_name|compnay"))
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(url)
    expect = sync_api.expect
    expect(page.locator("#lint li.ok")).to_have_count(1)  # the first template, shown and clean
    page.select_option("#template", "renewal_reminder")
    expect(page.locator("#lint")).to_have_attribute("data-template", "renewal_reminder")
    expect(page.locator("#lint li").first).to_contain_text("renewal_reminder/body.ja.html.j2, line 17")
    expect(page.locator("#lint li").first).to_contain_text("No filter named 'compnay'")
    expect(page.locator("#lint li.ok")).to_have_count(0)
    assert page.locator("#subject").inner_text() == "" and page.locator("#text").inner_text() == ""
    assert page.locator("#html").get_attribute("srcdoc") == ""
    screenshot(page, tmp_path / "studio-broken-template.png")
    page.close()


def test_report_charts_show_in_the_browser(browser: Any, tmp_path: Path, demo_warehouse_path: Path) -> None:
    settings = Settings(warehouse=demo_warehouse_path, var_dir=tmp_path / "var")
    result = build_report(settings, AS_OF, "ja")
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(result.path.as_uri())
    images = page.locator("figure img")
    assert images.count() == len(result.png_paths) >= 12
    sizes = page.evaluate(
        """() => [...document.querySelectorAll('figure img')].map(
               img => [img.complete, img.naturalWidth, img.getBoundingClientRect().width,
                       img.getBoundingClientRect().height])"""
    )
    assert all(complete and natural > 0 and width > 0 and height > 0 for complete, natural, width, height in sizes)
    for key in ("bridge", "trend", "retention", "churn", "cohorts", "ranks", "existing", "reasons", "inside_sales"):
        assert page.locator(f"section#{key} figure img").count() >= 1, key
    screenshot(page, tmp_path / "report-ja.png")
    page.close()


def test_quality_gate_report_opens_and_lists_every_failed_expectation(browser: Any, tmp_path: Path) -> None:
    """The gate's HTML report, opened in Chromium: every failed expectation is a row, with its example rows."""
    from kizuna.quality.gate import GateFailedError, gate_and_publish
    from kizuna.sources.ingest import stage_sources
    from tests.quality.test_gate import AS_OF as GATE_AS_OF
    from tests.quality.test_gate import append, base_rows, cell, write_sources

    (tmp_path / "src").mkdir()
    settings = Settings(source_dir=tmp_path / "src", warehouse=tmp_path / "w.duckdb", var_dir=tmp_path / "var")
    rows = base_rows()
    append("customers", ["C1", "重複株式会社", "1", "", ""])(rows, settings.source_dir)
    cell("subscriptions", 0, "mrr", "-5")(rows, settings.source_dir)
    cell("contacts", 0, "email", "ichi@@example")(rows, settings.source_dir)
    write_sources(settings.source_dir, rows)
    stage_sources(settings)
    with pytest.raises(GateFailedError) as info:
        gate_and_publish(settings, GATE_AS_OF)
    verdict = info.value.verdict
    failed = [r for r in verdict.results if not r.success]
    assert len(failed) == 3

    page = browser.new_page()
    page.goto(Path(verdict.report or "").as_uri())
    assert "FAILED" in page.inner_text("p.status")
    failing_rows = page.locator("tr.fail")
    assert failing_rows.count() == len(failed)
    text = page.inner_text("table")
    for result in failed:
        assert result.rule in text
        for finding in result.findings:
            assert str(finding) in text  # the example rows, file, row and column included
    screenshot(page, tmp_path / "gate-report.png")
    page.close()
