"""Hostile input: campaign files (SQL, YAML bombs, names), webhook depth bombs, oversized source files, Unicode.

Each case either loads correctly or fails with a message naming what was wrong, quickly; never a hang, a
traceback from deep inside a library, or garbage loaded.
"""

from __future__ import annotations

import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from bench.events.loadgen import Signer
from kizuna.campaigns.spec import CampaignFileError, load_campaign
from kizuna.core.errors import SourceContractError
from kizuna.core.settings import Settings
from kizuna.email.render import EmailTemplateError, TemplateRenderer
from kizuna.reporting.export import ExportError, export_mart
from kizuna.sources import files
from kizuna.sources.ingest import stage_sources
from kizuna.tracking.app import create_app
from tests.conftest import write_csv
from tests.email.conftest import MakeRenderer, scratch_template
from tests.tracking.conftest import body_of, event, stored_lines

CAMPAIGN = "name: x\ntemplate: renewal_reminder\naudience:\n  where: {where!r}\n"


@pytest.mark.parametrize(
    ("where", "problem"),
    [
        ("EXISTS (SELECT 1 FROM read_text('/proc/self/environ'))", "table function read_text()"),
        ("CAST((SELECT content FROM read_text('/etc/hostname')) AS INTEGER) = 1", "table function read_text()"),
        ("EXISTS (SELECT 1 FROM '/etc/hostname')", "'/etc/hostname' is not one"),
        ("EXISTS (SELECT 1 FROM 'https://example.com/x.csv')", "is not one"),
        ("c.customer_id IN (SELECT customer_id FROM ops.send_ledger)", "'ops.send_ledger' is not one"),
        ("c.customer_id IN (SELECT customer_id FROM raw.customers)", "'raw.customers' is not one"),
        ("EXISTS (SELECT 1 FROM query('SELECT 1'))", "table function query()"),
        ("EXISTS (SELECT 1 FROM glob('/etc/hostname'))", "table function glob()"),
        ("true) UNION ALL SELECT 1 FROM marts.customers WHERE (true", "no UNION"),
        ("true; DROP TABLE marts.customers", "no ';'"),
        ("true -- comment", "no comments"),
        ("c.name = 'x' OR (SELECT count(*) FROM customers) > 0", "'customers' is not one"),
    ],
    ids=[
        "read-environ",
        "file-into-error-message",
        "file-replacement-scan",
        "url-replacement-scan",
        "other-schema-ops",
        "other-schema-raw",
        "query-function",
        "glob",
        "union",
        "second-statement",
        "comment",
        "unqualified-table",
    ],
)
def test_a_campaign_where_may_read_marts_only(tmp_path: Path, where: str, problem: str) -> None:
    path = tmp_path / "x.yml"
    path.write_text(CAMPAIGN.format(where=where), encoding="utf-8")
    with pytest.raises(CampaignFileError, match=r"x\.yml") as info:
        load_campaign(path)
    assert "audience.where" in str(info.value) and problem in str(info.value)


@pytest.mark.parametrize(
    "where",
    [
        "c.employee_count >= 100",
        "c.days_to_renewal <= 60 OR c.plan_usage_ratio >= 0.8",
        "c.customer_id IN (SELECT customer_id FROM marts.customer_signals WHERE signal = 'usage_drop')",
        "c.name ILIKE '%株式会社%'",
    ],
    ids=["comparison", "or", "marts-subquery", "japanese-literal"],
)
def test_ordinary_where_predicates_still_load(tmp_path: Path, where: str) -> None:
    path = tmp_path / "x.yml"
    path.write_text(CAMPAIGN.format(where=where), encoding="utf-8")
    assert load_campaign(path).audience.where == where


BILLION_LAUGHS = "\n".join(
    ["lol0: &lol0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    + [f"lol{i}: &lol{i} [" + ", ".join([f"*lol{i - 1}"] * 10) + "]" for i in range(1, 10)]
)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (f"{BILLION_LAUGHS}\nname: x\ntemplate: t\ndescription: *lol9\n", "x.yml"),
        ("name: x\ntemplate: t\ndescription: !!python/object/apply:os.system ['echo pwned']\n", "not valid YAML"),
        ("name: x\ntemplate: t\n" + "a: " + "[" * 20_000 + "]" * 20_000 + "\n", "x.yml"),
        ("name: ../../etc/passwd\ntemplate: t\n", "lower-case letters"),
        ("\x00\x01\x02 binary", "x.yml"),
    ],
    ids=["billion-laughs", "python-object-tag", "deep-nesting", "path-in-name", "binary"],
)
def test_hostile_campaign_files_fail_fast_with_the_file_named(tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "x.yml"
    path.write_text(text, encoding="utf-8")
    started = time.monotonic()
    with pytest.raises(CampaignFileError) as info:
        load_campaign(path)
    assert time.monotonic() - started < 5
    assert problem in str(info.value) and len(str(info.value)) < 5_000  # no billion-element repr


@pytest.fixture
def webhook(tracking_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(tracking_settings)) as client:
        yield client


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 200_000 + b"]" * 200_000,
        b'{"a":' * 100_000 + b"1" + b"}" * 100_000,
        b"[" + b'{"event":"open","x":' + b"[" * 50_000 + b"]" * 50_000 + b"}]",
    ],
    ids=["array-depth-bomb", "object-depth-bomb", "deep-field-in-an-event"],
)
def test_a_signed_json_depth_bomb_is_refused_and_stores_nothing(
    webhook: TestClient, signer: Signer, tracking_settings: Settings, body: bytes
) -> None:
    response = webhook.post("/sendgrid/events", content=body, headers=signer.headers(body))
    assert response.status_code == 400, response.text
    assert stored_lines(tracking_settings.events_dir) == []
    good = body_of([event("after-the-bomb")])
    assert webhook.post("/sendgrid/events", content=good, headers=signer.headers(good)).status_code == 200


def test_an_unsigned_depth_bomb_is_refused_before_parsing(webhook: TestClient, tracking_settings: Settings) -> None:
    body = b"[" * 200_000 + b"]" * 200_000
    assert webhook.post("/sendgrid/events", content=body).status_code in (401, 403)
    assert stored_lines(tracking_settings.events_dir) == []


CUSTOMERS_HEADER = ["customer_id", "name"]
SUBSCRIPTIONS = (["subscription_id", "customer_id", "start_date", "mrr"], [["S1", "C1", "2026-01-01", "1000"]])


def test_a_huge_field_is_refused_naming_the_row_in_bounded_time(settings: Settings) -> None:
    write_csv(settings.source_dir / "subscriptions.csv", *SUBSCRIPTIONS)
    write_csv(settings.source_dir / "customers.csv", CUSTOMERS_HEADER, [["C1", "ok"], ["C2", "x" * 8_000_000]])
    started = time.monotonic()
    with pytest.raises(SourceContractError, match=r"customers\.csv, row 3"):
        stage_sources(settings)
    assert time.monotonic() - started < 20


def test_control_characters_and_formulas_load_as_text_and_export_neutralised(settings: Settings) -> None:
    write_csv(settings.source_dir / "subscriptions.csv", *SUBSCRIPTIONS)
    hostile = '=HYPERLINK("http://evil.example","x")\x07\x1b[31m\u202eevil'
    write_csv(settings.source_dir / "customers.csv", CUSTOMERS_HEADER, [["C1", hostile]])
    stage_sources(settings)
    from kizuna.core.warehouse import connect

    with connect(settings.warehouse) as con:
        con.execute("CREATE SCHEMA marts; CREATE TABLE marts.customers AS SELECT * FROM raw_incoming.customers")
    out, rows = export_mart(settings.warehouse, "customers", "csv", settings.var_dir / "customers.csv")
    text = out.read_text(encoding="utf-8-sig")
    assert rows == 1 and "'=HYPERLINK" in text and ",=HYPERLINK" not in text
    with pytest.raises(ExportError):
        export_mart(settings.warehouse, "../../etc/passwd", "csv", settings.var_dir / "x.csv")


def test_a_zip_bomb_like_workbook_is_refused_before_it_is_expanded(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(files, "MAX_XLSX_UNCOMPRESSED_BYTES", 2_000_000)  # the real limit, scaled down for speed
    write_csv(settings.source_dir / "subscriptions.csv", *SUBSCRIPTIONS)
    path = settings.source_dir / "customers.xlsx"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("[Content_Types].xml", "<Types/>")
        z.writestr("xl/worksheets/sheet1.xml", "<worksheet>" + " " * 5_000_000 + "</worksheet>")
    assert path.stat().st_size < 100_000
    with pytest.raises(SourceContractError, match=r"customers\.xlsx.*expands to"):
        stage_sources(settings)


BIDI = ["\u202e", "\u202d", "\u2066", "\u2067", "\u2068"]


@pytest.mark.parametrize("control", BIDI, ids=["RLO", "LRO", "LRI", "RLI", "FSI"])
def test_a_subject_with_a_bidi_control_from_data_is_refused(make_renderer: MakeRenderer, control: str) -> None:
    renderer = make_renderer(scratch_template())
    with pytest.raises(EmailTemplateError, match="subject"):
        renderer.render("scratch", "ja", {"greeting": f"ご請求書{control}fdp.exe", "contact_id": "P-1"})


@pytest.mark.parametrize(
    "expression",
    [
        "'{0.__class__.__mro__}'.format(greeting)",
        "'%s'.__class__.__mro__",
        "greeting|attr('__class__')",
        "'{0.__init__.__globals__}'.format_map({'0': greeting})",
        "lipsum.__globals__",
        "cycler.__init__.__globals__.os",
        "self._TemplateReference__context",
    ],
    ids=["format-mro", "str-mro", "attr-filter", "format-map", "lipsum-globals", "cycler-os", "self-context"],
)
def test_the_template_sandbox_blocks_format_string_and_global_tricks(
    make_renderer: MakeRenderer, expression: str
) -> None:
    renderer = make_renderer(scratch_template(html_content=f"<p>{{{{ {expression} }}}}</p>"))
    with pytest.raises(EmailTemplateError):
        renderer.render("scratch", "ja", {"greeting": "こんにちは", "contact_id": "P-1"})


@pytest.mark.parametrize("name", ["../../etc", "/etc/passwd", "renewal_reminder/../../.."], ids=str)
def test_template_names_cannot_leave_the_templates_folder(renderer: TemplateRenderer, name: str) -> None:
    with pytest.raises(EmailTemplateError):
        renderer.render(name, "ja", {})
