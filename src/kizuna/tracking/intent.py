"""The intent links templates declare, kept in ops.template_intent_links with the time each took effect.

A declaration counts for clicks from the moment it was first recorded (declared_at) until it was removed from
the template (retired_at): marking a link today does not turn last month's clicks into CSQLs, and unmarking it
does not erase the CSQLs it made. The dbt model int_email_clicks_matched_to_intents reads the table.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from kizuna.core import ops
from kizuna.core.connection import Connection
from kizuna.email.intent_links import IntentLinksError, load_intent_links, template_folders

log = logging.getLogger(__name__)


@dataclass
class IntentLinksRecorded:
    """What one refresh changed; ``problems`` names templates whose file was invalid (their links kept as they were)."""

    active: int = 0
    added: int = 0
    retired: int = 0
    problems: list[str] = field(default_factory=list)


def ensure_intent_links_table(con: Connection) -> None:
    ops.ensure(con, ops.TEMPLATE_INTENT_LINKS)


def record_intent_links(con: Connection, templates_dir: Path) -> IntentLinksRecorded:
    """Bring ops.template_intent_links in line with the templates' intent_links.yml files, in one transaction.

    New declarations start now; declarations gone from their file (or whose template is gone) end now; a
    renamed link keeps its start. A template whose file is invalid keeps its recorded links untouched: the
    error is logged here and shown by `kizuna templates lint`.
    """
    ensure_intent_links_table(con)
    result = IntentLinksRecorded()
    rows: list[tuple[str, str, str, bool, str, str]] = []
    invalid: list[str] = []
    for template in template_folders(templates_dir):
        try:
            links = load_intent_links(templates_dir, template)
        except IntentLinksError as exc:
            invalid.append(template)
            result.problems.append(str(exc))
            log.warning("intent links of %s not updated (the recorded ones stay): %s", template, exc)
            continue
        rows += [(template, k.url, k.prefix, k.is_prefix, k.intent, k.name) for k in links]
    columns = [list(c) for c in zip(*rows, strict=True)] if rows else [[], [], [], [], [], []]
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute("DROP TABLE IF EXISTS _declared")
        con.execute(
            """CREATE TEMPORARY TABLE _declared AS
               SELECT unnest(?::VARCHAR[]) AS template, unnest(?::VARCHAR[]) AS url,
                      unnest(?::VARCHAR[]) AS url_prefix, unnest(?::BOOLEAN[]) AS is_prefix,
                      unnest(?::VARCHAR[]) AS intent, unnest(?::VARCHAR[]) AS link_name""",
            columns,
        )
        same = "d.template = t.template AND d.url = t.url AND d.intent = t.intent"
        retired = con.execute(
            f"""UPDATE {ops.TEMPLATE_INTENT_LINKS.name} AS t SET retired_at = timezone('UTC', now())
                WHERE t.retired_at IS NULL AND t.template NOT IN (SELECT unnest(?::VARCHAR[]))
                  AND NOT EXISTS (SELECT 1 FROM _declared AS d WHERE {same})
                RETURNING 1""",
            [invalid],
        ).fetchall()
        con.execute(
            f"""UPDATE {ops.TEMPLATE_INTENT_LINKS.name} AS t SET link_name = d.link_name FROM _declared AS d
                WHERE t.retired_at IS NULL AND {same} AND t.link_name IS DISTINCT FROM d.link_name"""
        )
        added = con.execute(
            f"""INSERT INTO {ops.TEMPLATE_INTENT_LINKS.name}
                SELECT d.*, timezone('UTC', now()), NULL FROM _declared AS d
                WHERE NOT EXISTS (SELECT 1 FROM {ops.TEMPLATE_INTENT_LINKS.name} AS t WHERE t.retired_at IS NULL AND {same})
                RETURNING 1"""
        ).fetchall()
        con.execute("DROP TABLE _declared")
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    active = con.execute(f"SELECT count(*) FROM {ops.TEMPLATE_INTENT_LINKS.name} WHERE retired_at IS NULL").fetchone()
    result.active = int(active[0]) if active else 0
    result.added, result.retired = len(added), len(retired)
    if result.added or result.retired:
        log.info("intent links: %d added, %d retired, %d active", result.added, result.retired, result.active)
    return result
