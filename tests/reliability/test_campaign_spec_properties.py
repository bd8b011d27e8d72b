"""Properties of the campaign file parser: any file loads as a valid campaign or fails naming file and key.

Marketers edit campaigns/*.yml by hand. Whatever such a file holds (any bytes, YAML-looking text, a valid
campaign with one value wrong or one key too many, any `where` predicate), `load_campaign` returns a Campaign
or raises CampaignFileError starting with the file's name (and, for a wrong value, naming its key): never
another exception, which the CLI and the studio would show as a traceback, and never a campaign holding a value
the selection SQL would misread (NaN in a range, a `where` that reads more than marts tables).
"""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

import duckdb
import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from kizuna.campaigns.spec import Campaign, CampaignFileError, load_campaign
from tests.reliability.conftest import examples

RELAXED = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow]

BASE: dict[str, Any] = {
    "name": "x",
    "description": "更新のご案内 (renewal)",
    "template": "renewal_reminder",
    "locale": "ja",
    "enabled": True,
    "audience": {
        "status": "active",
        "renewal_within_days": 60,
        "mrr": {"min": 10000, "max": 500000},
        "ranks": ["A", "B"],
        "signals": [{"name": "usage_drop", "within_days": 14}],
        "where": "c.employee_count >= 10",
    },
    "contacts": "primary",
    "owner_policy": "cc_owner",
    "holdout_percent": 10,
    "max_recipients": 2000,
    "frequency": {"max_emails": 2, "days": 30},
}

# Where a wrong value may land: every key of the schema, a level down where there is one.
PATHS: list[tuple[str | int, ...]] = [
    ("name",), ("description",), ("kind",), ("template",), ("locale",), ("enabled",), ("contacts",),
    ("contacts", "roles"), ("owner_policy",), ("holdout_percent",), ("max_recipients",), ("frequency",),
    ("frequency", "max_emails"), ("frequency", "days"), ("hypothesis",), ("next_action",), ("audience",),
    ("audience", "status"), ("audience", "churned_within_days"), ("audience", "contract_term_months"),
    ("audience", "tenure_months", "min"), ("audience", "ranks"), ("audience", "products_held"),
    ("audience", "plans"), ("audience", "renewal_within_days"), ("audience", "signals"),
    ("audience", "signals", 0, "name"), ("audience", "signals", 0, "within_days"), ("audience", "mrr", "min"),
    ("audience", "mrr", "max"), ("audience", "plan_usage_ratio", "max"), ("audience", "days_since_last_touch"),
    ("audience", "where"),
]  # fmt: skip

SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(),  # NaN and the infinities included
    st.text(max_size=20),
    st.sampled_from(["active", "A", "ja", "primary", "email", "call_list", "exclude", "0", "1e3", "", "yes", "~"]),
    st.dates(),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)),
    max_leaves=6,
)


def _set(doc: dict[str, Any], path: tuple[str | int, ...], value: Any) -> None:
    node: Any = doc
    for key in path[:-1]:
        if isinstance(key, str) and not isinstance(node.get(key), dict | list):
            node[key] = {}
        node = node[key]
    node[path[-1]] = value


def _floats(value: Any) -> list[float]:
    if isinstance(value, float):
        return [value]
    if isinstance(value, dict):
        return [f for v in value.values() for f in _floats(v)]
    if isinstance(value, list):
        return [f for v in value for f in _floats(v)]
    return []


def _load(tmp_path: Path, data: bytes) -> Campaign | CampaignFileError:
    path = tmp_path / "x.yml"
    path.write_bytes(data)
    try:
        return load_campaign(path)
    except CampaignFileError as exc:
        assert str(exc).startswith("x.yml: "), str(exc)
        assert len(str(exc)) < 20_000  # a message for a person, not a dump of the input
        return exc


def test_the_base_campaign_loads(tmp_path: Path) -> None:
    loaded = _load(tmp_path, yaml.safe_dump(BASE, allow_unicode=True).encode())
    assert isinstance(loaded, Campaign) and loaded.audience.where == BASE["audience"]["where"]


@settings(max_examples=examples(100), suppress_health_check=RELAXED)
@given(path=st.sampled_from(PATHS), value=VALUES)
@example(path=("audience", "mrr", "min"), value=math.nan)  # once loaded: nan > max is false, so "ordered"
@example(path=("holdout_percent",), value=math.inf)
@example(path=("audience", "where"), value="NOT " * 500 + "true")  # once a RecursionError from the JSON reader
@example(path=("audience", "where"), value='EXISTS (SELECT 1 FROM marts."x.csv")')  # once read ./marts.x.csv
@example(path=("audience", "where"), value="c.name = 'a'\x00")
def test_a_wrong_value_is_refused_naming_its_key_or_loads_as_a_usable_campaign(
    tmp_path: Path, path: tuple[str | int, ...], value: Any
) -> None:
    doc = yaml.safe_load(yaml.safe_dump(BASE))
    _set(doc, path, value)
    loaded = _load(tmp_path, yaml.safe_dump(doc, allow_unicode=True).encode())
    if isinstance(loaded, CampaignFileError):
        message = str(loaded)
        top = path[0]
        assert f"key {top}" in message or (top == "name" and "key name" in message), message
        return
    assert all(math.isfinite(f) for f in _floats(loaded.model_dump())), loaded
    assert loaded.name == "x"


@settings(max_examples=examples(30), suppress_health_check=RELAXED)
@given(
    where=st.sampled_from(["audience", "frequency", "", "audience.mrr", "audience.signals.0"]),
    key=st.text(min_size=1, max_size=10).filter(lambda k: k not in Campaign.model_fields),
)
def test_an_unknown_key_is_refused_by_name(tmp_path: Path, where: str, key: str) -> None:
    """A typo ("audiance", "max_recipient") must not silently drop the rule the marketer meant."""
    doc = yaml.safe_load(yaml.safe_dump(BASE))
    node: Any = doc
    for part in [p for p in where.split(".") if p]:
        node = node[int(part)] if part.isdigit() else node[part]
    if key in node:
        return
    node[key] = 1
    loaded = _load(tmp_path, yaml.safe_dump(doc, allow_unicode=True).encode())
    assert isinstance(loaded, CampaignFileError)
    assert f"unknown key {key!r}" in str(loaded)


YAMLISH = st.lists(
    st.one_of(
        st.sampled_from(
            ["name: x\n", "template: t\n", "audience:\n", "  where: ", "  mrr: {min: ", ".nan", ".inf", "1e400",
             "- ", "[", "]", "{", "}", ": ", ", ", "&a ", "*a", "!!binary ", "!!python/object/apply:os.system ",
             "!!set ", "!!omap ", "? ", "---\n", "...\n", "'", '"', "\t", "# c\n", "|\n", ">-\n", "  ", "\n",
             "<<: ", "%YAML 1.1\n", "%TAG ! x\n", "name: x\n", "enabled: yes\n", "2026-11-23", "0x1F", "0o17",
             "~", "null", "\ufeff", "\x85", "\u2028", "é"]
        ),
        st.text(max_size=5),
    ),
    max_size=25,
).map("".join)  # fmt: skip


@settings(max_examples=examples(100), suppress_health_check=RELAXED)
@given(data=st.one_of(st.binary(max_size=200), YAMLISH.map(lambda t: t.encode("utf-8", "surrogatepass"))))
@example(data=b"name: x\ntemplate: t\nmax_recipients: " + b"1" * 5000 + b"\n")  # once a bare ValueError
@example(data=b"name: x\ntemplate: t\ndescription: \xff\xfe\n")  # once a UnicodeDecodeError
@example(data=b"name: x\ntemplate: t\naudience: {where: 'c.a = 1', where: 'true'}\n")  # once: the last won
@example(data=b"name: x\ntemplate: t\nname: y\n")
def test_any_bytes_load_as_a_campaign_or_fail_naming_the_file(tmp_path: Path, data: bytes) -> None:
    loaded = _load(tmp_path, data)
    if isinstance(loaded, Campaign):
        assert loaded.name == "x"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("name: x\ntemplate: t\nmax_recipients: " + "1" * 5000 + "\n", "not valid YAML"),
        ("name: x\ntemplate: t\naudience: {where: 'c.a = 1', where: 'true'}\n", "'where' appears twice"),
        ("name: x\ntemplate: t\nname: x\n", "'name' appears twice"),
        ("name: x\ntemplate: t\naudience: {mrr: {min: .nan}}\n", "key audience.mrr.min"),
        ("name: x\ntemplate: t\nholdout_percent: .inf\n", "key holdout_percent"),
        ("name: x\ntemplate: t\naudience: {where: 'EXISTS (SELECT 1 FROM marts.\"x.csv\")'}\n", "'marts.x.csv' is not one"),
        ("name: x\ntemplate: t\naudience: {where: 'EXISTS (SELECT 1 FROM marts.\"*.csv\")'}\n", "is not one"),
        ('name: x\ntemplate: t\naudience: {where: "c.name = \'a\'\\x01"}\n', "control character"),
        ("name: x\ntemplate: null\n", "key template: Value error, an email campaign needs a template"),
    ],
    ids=["huge-integer", "duplicate-nested-key", "duplicate-top-key", "nan-range", "infinite-percent",
         "file-through-marts-prefix", "glob-through-marts-prefix", "control-character", "template-named-not-top-level"],
)  # fmt: skip
def test_found_by_the_properties(tmp_path: Path, text: str, problem: str) -> None:
    loaded = _load(tmp_path, text.encode("utf-8"))
    assert isinstance(loaded, CampaignFileError) and problem in str(loaded), loaded


@pytest.mark.parametrize("depth", [300, 600, 990])
def test_a_deeply_nested_where_is_checked_or_refused_never_a_crash(tmp_path: Path, depth: int) -> None:
    """Python's JSON reader once hit its recursion limit on DuckDB's parse tree of NOT NOT ... (a traceback)."""
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(400)  # the reader's limit on a plain interpreter, whatever this test runner set
    try:
        loaded = _load(tmp_path, f"name: x\ntemplate: t\naudience: {{where: '{'NOT ' * depth}true'}}\n".encode())
    finally:
        sys.setrecursionlimit(limit)
    assert isinstance(loaded, CampaignFileError) and "nested too deeply" in str(loaded)


def test_a_file_that_is_not_utf8_names_the_line(tmp_path: Path) -> None:
    loaded = _load(tmp_path, "name: x\ntemplate: t\ndescription: 更新\n".encode("cp932"))
    assert isinstance(loaded, CampaignFileError) and "not UTF-8 text" in str(loaded) and "line 3" in str(loaded)


def test_merge_keys_still_work(tmp_path: Path) -> None:
    """Refusing duplicate keys must not refuse YAML's merge key, which marketers copy from examples."""
    text = "name: x\ntemplate: t\naudience:\n  <<: {status: churned}\n  churned_within_days: {max: 30}\n"
    loaded = _load(tmp_path, text.encode())
    assert isinstance(loaded, Campaign) and loaded.audience.status == "churned"


# --- `where`: read-only, marts tables only -----------------------------------------------------------------

SAFE_ATOMS = [
    "c.employee_count >= 100",
    "c.name ILIKE '%株式会社%'",
    "coalesce(c.current_mrr, 0) > 0",
    "c.rank = 'A'",
    "c.customer_id IN (SELECT customer_id FROM marts.customer_signals WHERE signal = 'usage_drop')",
    "EXISTS (SELECT 1 FROM marts.subscription_renewals r WHERE r.customer_id = c.customer_id)",
    "(SELECT count(*) FROM marts.customers) > 1",
    "length(c.name) BETWEEN 1 AND 80",
]
# What a hostile or careless predicate might read instead: files, URLs, other schemas and catalogs, table
# functions, and names DuckDB turns into file scans.
FORBIDDEN_SOURCES = [
    "read_text('/etc/hostname')", "read_csv_auto('x.csv')", "read_parquet('s3://bucket/x.parquet')",
    "glob('/etc/host*')", "query('SELECT 1')", "query_table('ops.send_ledger')", "duckdb_settings()", "range(3)",
    "sniff_csv('x.csv')", "raw.customers", "ops.send_ledger", "raw_incoming.customers", "main.anything",
    "information_schema.tables", "'/etc/hostname'", "'x.csv'", "'https://example.com/x.csv'", 'marts."x.csv"',
    'marts."*.parquet"', "memory.marts.customers", "customers", "system.main.duckdb_tables",
]  # fmt: skip
FORBIDDEN_CONTEXTS = [
    "EXISTS (SELECT 1 FROM {src})",
    "c.customer_id IN (SELECT 1 FROM {src})",
    "(SELECT count(*) FROM {src}) > 0",
    "EXISTS (SELECT 1 FROM marts.customers m JOIN {src} ON true)",
    "EXISTS (SELECT 1 FROM marts.customers m, LATERAL (SELECT 1 FROM {src}) l)",
    "c.name = (SELECT max(x) FROM (SELECT 1 AS x FROM {src}) s)",
]


@st.composite
def predicates(draw: st.DrawFn, depth: int = 0) -> tuple[str, bool]:
    """(a predicate, whether it reads something other than marts tables)."""
    if depth >= 3 or draw(st.integers(0, 2)) == 0:
        if draw(st.integers(0, 3)) == 0:
            src = draw(st.sampled_from(FORBIDDEN_SOURCES))
            return draw(st.sampled_from(FORBIDDEN_CONTEXTS)).format(src=src), True
        return draw(st.sampled_from(SAFE_ATOMS)), False
    left, bad_left = draw(predicates(depth + 1))
    right, bad_right = draw(predicates(depth + 1))
    shape = draw(st.sampled_from(["({} AND {})", "({} OR {})", "NOT ({})", "CASE WHEN {} THEN true ELSE {} END"]))
    if shape == "NOT ({})":
        return shape.format(left), bad_left
    return shape.format(left, right), bad_left or bad_right


@settings(max_examples=examples(40), suppress_health_check=RELAXED)
@given(case=predicates())
def test_a_where_is_accepted_exactly_when_it_reads_marts_tables_only(tmp_path: Path, case: tuple[str, bool]) -> None:
    where, reads_elsewhere = case
    doc = yaml.safe_load(yaml.safe_dump(BASE))
    doc["audience"]["where"] = where
    loaded = _load(tmp_path, yaml.safe_dump(doc, allow_unicode=True).encode())
    if reads_elsewhere:
        assert isinstance(loaded, CampaignFileError), f"accepted a where reading outside marts: {where}"
        assert "key audience.where" in str(loaded) and "may read marts tables only" in str(loaded)
    else:
        assert isinstance(loaded, Campaign), str(loaded)
        assert loaded.audience.where == where


@pytest.mark.parametrize(
    "where",
    [
        "true); ATTACH '/tmp/kizuna-attack.duckdb' AS x; SELECT (1",
        "true) ; COPY marts.customers TO '/tmp/kizuna-attack.csv' (HEADER",
        "EXISTS (INSERT INTO marts.customers VALUES (1) RETURNING 1)",
        "c.customer_id IN (DELETE FROM marts.customers RETURNING customer_id)",
        "EXISTS (SELECT 1 FROM marts.customers) AND (ATTACH '/tmp/kizuna-attack.duckdb')",
        "EXISTS (FROM read_blob('/etc/hostname'))",
        "EXISTS (SELECT * FROM marts.customers c2 JOIN (PIVOT ops.send_ledger ON state) p ON true)",
        "c.customer_id IN (WITH w AS (SELECT * FROM raw.customers) SELECT customer_id FROM w)",
    ],
    ids=["attach", "copy-out", "insert", "delete", "attach-as-expression", "read-blob", "pivot-other-schema",
         "cte-over-raw"],
)  # fmt: skip
def test_a_where_cannot_write_attach_copy_or_read_elsewhere(tmp_path: Path, where: str) -> None:
    """Refused when the file is read; the one the parser takes (ATTACH 'x' is a literal of a type named
    ATTACH) fails when the selection binds it, on a real warehouse, and attaches nothing."""
    doc = yaml.safe_load(yaml.safe_dump(BASE))
    doc["audience"]["where"] = where
    loaded = _load(tmp_path, yaml.safe_dump(doc, allow_unicode=True).encode())
    if isinstance(loaded, Campaign):
        with duckdb.connect(str(tmp_path / "w.duckdb")) as con:
            con.execute("CREATE SCHEMA marts; CREATE TABLE marts.customers AS SELECT 'C1' AS customer_id")
            with pytest.raises(duckdb.Error):
                con.execute(f"SELECT count(*) FROM marts.customers c WHERE ({loaded.audience.where})")
            attached = {r[0] for r in con.execute("SELECT database_name FROM duckdb_databases()").fetchall()}
            assert attached == {"system", "temp", "w"}
    else:
        assert "key audience.where" in str(loaded), loaded
    assert not Path("/tmp/kizuna-attack.duckdb").exists() and not Path("/tmp/kizuna-attack.csv").exists()
