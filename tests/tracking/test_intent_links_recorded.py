"""ops.template_intent_links follows the templates' intent_links.yml, keeping when each declaration began and ended."""

from __future__ import annotations

from pathlib import Path

from kizuna.core import ops
from kizuna.core.connection import Connection
from kizuna.tracking.intent import record_intent_links
from kizuna.tracking.loader import ensure_tracking_tables


def _template(root: Path, name: str, intent_links: str | None) -> None:
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "meta.yml").write_text("description: x\n", encoding="utf-8")
    path = folder / "intent_links.yml"
    if intent_links is None:
        path.unlink(missing_ok=True)
    else:
        path.write_text(intent_links, encoding="utf-8")


def _rows(con: Connection) -> list[tuple[object, ...]]:
    return con.execute(
        f"SELECT template, url, url_prefix, is_prefix, intent, link_name, retired_at IS NULL FROM {ops.TEMPLATE_INTENT_LINKS.name} "
        "ORDER BY template, url, intent, declared_at"
    ).fetchall()


def test_declarations_start_end_and_survive_a_broken_file(tmp_path: Path, engine_con: Connection) -> None:
    # On a DuckDB file and on PostgreSQL (issue 24): the same calls, the same declarations.
    templates = tmp_path / "templates"
    _template(templates, "upsell", "intent_links:\n  - {url: 'https://x.jp/pricing', intent: pricing, name: 料金}\n")
    _template(templates, "winback", "intent_links:\n  - {url: 'https://x.jp/plans/*', intent: upgrade}\n")
    (templates / "_layouts").mkdir()
    con = engine_con
    ensure_tracking_tables(con, templates)
    assert _rows(con) == [
        ("upsell", "https://x.jp/pricing", "https://x.jp/pricing", False, "pricing", "料金", True),
        ("winback", "https://x.jp/plans/*", "https://x.jp/plans/", True, "upgrade", "", True),
    ]
    first = con.execute(f"SELECT min(declared_at) FROM {ops.TEMPLATE_INTENT_LINKS.name}").fetchone()

    # A rename keeps the declaration; a new intent for the same url is a new declaration; a broken file
    # leaves its template's links as they were; a template without the file ends its declarations.
    _template(templates, "upsell", "intent_links:\n  - {url: 'https://x.jp/pricing', intent: contact, name: 相談}\n")
    _template(templates, "winback", "intent_links:\n  - {url: 'https://x.jp/plans/*', intent: upgrade, name: P}\n")
    result = record_intent_links(con, templates)
    assert (result.added, result.retired, result.active, result.problems) == (1, 1, 2, [])
    assert _rows(con) == [
        ("upsell", "https://x.jp/pricing", "https://x.jp/pricing", False, "contact", "相談", True),
        ("upsell", "https://x.jp/pricing", "https://x.jp/pricing", False, "pricing", "料金", False),
        ("winback", "https://x.jp/plans/*", "https://x.jp/plans/", True, "upgrade", "P", True),
    ]
    winback_start = con.execute(f"SELECT declared_at FROM {ops.TEMPLATE_INTENT_LINKS.name} WHERE template = 'winback'")
    assert winback_start.fetchone() == first

    _template(templates, "winback", "intent_links:\n  - {url: 'mailto:x@x.jp', intent: upgrade}\n")
    _template(templates, "upsell", None)
    result = record_intent_links(con, templates)
    assert result.retired == 1 and result.active == 1
    assert len(result.problems) == 1 and result.problems[0].startswith("winback/intent_links.yml: line 2")
    assert [r[0] for r in _rows(con) if r[-1]] == ["winback"]
