"""The reps' daily call list as an XLSX: grouped by owner, coloured by days since the last touch.

Reads ops.call_list (run_id, as_of, owner_email, customer_id, customer_name, rank, signals,
days_since_last_touch, hypothesis, next_action, priority), which the campaign engine writes.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, Literal

from openpyxl import Workbook
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter

from kizuna.core import ops
from kizuna.core.connection import Connection
from kizuna.reporting.export import xlsx_value
from kizuna.reporting.files import atomic_output

CALL_LIST_TABLE = ops.CALL_LIST.name


@dataclass(frozen=True)
class Band:
    """Rows whose days since the last touch reach min_days (or that were never touched) get this colour."""

    min_days: int | None  # None: never touched
    colour: str  # ARGB-less hex, e.g. F8CBAD
    label_ja: str
    label_en: str


# Most urgent first; a row takes the first band it reaches.
BANDS: tuple[Band, ...] = (
    Band(None, "F4B6B6", "接触なし", "never touched"),
    Band(90, "F4B6B6", "90日以上", "90+ days"),
    Band(60, "F8CBAD", "60〜89日", "60-89 days"),
    Band(30, "FFE699", "30〜59日", "30-59 days"),
    Band(0, "C6EFCE", "30日未満", "under 30 days"),
)

COLUMNS = (
    ("priority", "優先度", "Priority", 9),
    ("customer_id", "顧客ID", "Customer", 14),
    ("customer_name", "顧客名", "Company", 30),
    ("rank", "ランク", "Rank", 7),
    ("days_since_last_touch", "最終接触からの日数", "Days since last touch", 12),
    ("signals", "シグナル", "Signals", 32),
    ("hypothesis", "理由（仮説）", "Why (hypothesis)", 44),
    ("next_action", "次のアクション", "Suggested next action", 44),
)
UNASSIGNED = {"ja": "担当者なし", "en": "(no owner)"}


def band_for(days: Any) -> Band:
    if days is None or (isinstance(days, float) and days != days):
        return BANDS[0]
    for band in BANDS[1:]:
        if band.min_days is not None and int(days) >= band.min_days:
            return band
    return BANDS[-1]


def _signals(value: Any) -> str:
    """signals as the engine stores them (a list, JSON text or plain text) → one readable line."""
    if value is None:
        return ""
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value)
    if isinstance(value, str) and value.startswith("["):
        try:
            return ", ".join(str(v) for v in json.loads(value))
        except ValueError:
            return value
    return str(value)


def latest_run(con: Connection, campaign: str | None = None) -> tuple[str, date] | None:
    where, params = ("WHERE campaign = ?", [campaign]) if campaign else ("", [])
    row = con.execute(
        f"SELECT run_id, as_of FROM {CALL_LIST_TABLE} {where} ORDER BY as_of DESC, run_id DESC LIMIT 1", params
    ).fetchone()
    return (str(row[0]), row[1]) if row else None


def _sheet_order(row: dict[str, Any]) -> tuple[Any, ...]:
    """The query's ORDER BY, for rows merged in Python: owner (unassigned last), priority, longest untouched."""
    owner, priority, days = row.get("owner_email"), row.get("priority"), row.get("days_since_last_touch")
    return (
        owner is None,
        owner or "",
        priority is None,
        priority or 0,
        days is not None,
        -(days or 0),
        row["customer_id"],
    )


def _one_row_per_customer(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """A run's lists of several campaigns as one: each customer once, on the row of its most urgent listing
    (lowest priority), with every campaign that listed it and each different hypothesis and next action."""
    merged: dict[str, dict[str, Any]] = {}
    for row in sorted(rows, key=lambda r: (r.get("priority") is None, r.get("priority") or 0, r["campaign"])):
        first = merged.get(row["customer_id"])
        if first is None:
            merged[row["customer_id"]] = {**row}
            continue
        for key in ("campaign", "hypothesis", "next_action"):
            values = str(first.get(key) or "").split("\n")
            if row.get(key) and row[key] not in values:
                first[key] = "\n".join([*filter(None, values), str(row[key])])
    return list(merged.values())


def write_call_list(
    con: Connection,
    path: Path,
    run_id: str | None = None,
    lang: Literal["ja", "en"] = "ja",
    campaign: str | None = None,
) -> tuple[Path, int]:
    """Write one run's call list (default: the latest) to path; returns the path and the number of rows.

    With `campaign`, that campaign's list only (the engine writes one workbook per call-list campaign). Without
    it, every call-list campaign of the run in one workbook with a campaign column, each customer once: every
    campaign of a daily run shares its run id, so a customer on two lists would otherwise be called twice.
    """
    chosen = (run_id, None) if run_id else latest_run(con, campaign)
    if chosen is None:
        raise ValueError(f"{CALL_LIST_TABLE} is empty: no call list to write yet")
    where, params = ("AND campaign = ?", [campaign]) if campaign else ("", [])
    cur = con.execute(
        f"""SELECT * FROM {CALL_LIST_TABLE} WHERE run_id = ? {where}
            ORDER BY owner_email NULLS LAST, priority NULLS LAST, days_since_last_touch DESC NULLS FIRST, customer_id""",
        [chosen[0], *params],
    )
    names = [d[0] for d in cur.description]
    rows = [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
    if not rows:
        of = f" and campaign {campaign!r}" if campaign else ""
        raise ValueError(f"{CALL_LIST_TABLE} has no rows for run {chosen[0]!r}{of}")
    several = campaign is None and len({r.get("campaign") for r in rows}) > 1
    if several:
        rows = sorted(_one_row_per_customer(rows), key=_sheet_order)
    workbook = _workbook(rows, lang, str(chosen[0]), campaign, with_campaigns=several)
    with atomic_output(path) as tmp:  # the one file-mode rule of docs/reporting.md, like reports and exports
        workbook.save(tmp)
    return path, len(rows)


CAMPAIGN_COLUMN = ("campaign", "キャンペーン", "Campaign", 22)


def _workbook(
    rows: Sequence[dict[str, Any]], lang: str, run_id: str, campaign: str | None, *, with_campaigns: bool
) -> Workbook:
    ja = lang == "ja"
    columns = (*COLUMNS, CAMPAIGN_COLUMN) if with_campaigns else COLUMNS
    wb = Workbook()
    ws = wb.active
    assert ws is not None
    ws.title = "コールリスト" if ja else "Call list"
    as_of = rows[0].get("as_of")
    title = f"{'コールリスト' if ja else 'Call list'} {campaign or ''} {as_of or ''} ({run_id})".replace("  ", " ")
    ws.append([title])
    ws["A1"].font = Font(bold=True, size=14)
    # Legend: what each colour means.
    legend = ["凡例（最終接触からの日数）" if ja else "Legend (days since last touch)"]
    ws.append(
        legend
        + [b.label_ja if ja else b.label_en for b in BANDS[1:]]
        + [BANDS[0].label_ja if ja else BANDS[0].label_en]
    )
    for offset, band in enumerate([*BANDS[1:], BANDS[0]], start=2):
        ws.cell(row=2, column=offset).fill = PatternFill("solid", fgColor=band.colour)
    ws.append([])
    header_row = 4
    ws.append([ja_label if ja else en_label for _, ja_label, en_label, _ in columns])
    for col, (_, _, _, width) in enumerate(columns, start=1):
        cell = ws.cell(row=header_row, column=col)
        cell.font = Font(bold=True, color="FFFFFF")
        cell.fill = PatternFill("solid", fgColor="1F3A5F")
        ws.column_dimensions[get_column_letter(col)].width = width
    owner_fill = PatternFill("solid", fgColor="D9E1F2")
    wrap = Alignment(wrap_text=True, vertical="top")
    current_owner: object = object()
    for row in rows:
        owner = row.get("owner_email")
        if owner != current_owner:
            current_owner = owner
            count = sum(1 for r in rows if r.get("owner_email") == owner)
            label = owner or UNASSIGNED["ja" if ja else "en"]
            ws.append([xlsx_value(f"{label}（{count}件）" if ja else f"{label} ({count})")])
            r = ws.max_row
            ws.merge_cells(start_row=r, start_column=1, end_row=r, end_column=len(columns))
            ws.cell(row=r, column=1).font = Font(bold=True)
            ws.cell(row=r, column=1).fill = owner_fill
        values = [_signals(row.get(k)) if k == "signals" else row.get(k) for k, _, _, _ in columns]
        ws.append([xlsx_value(v) for v in values])
        r = ws.max_row
        ws.row_dimensions[r].outlineLevel = 1  # Excel's grouping: each owner's rows fold under the owner line
        fill = PatternFill("solid", fgColor=band_for(row.get("days_since_last_touch")).colour)
        for col in range(1, len(columns) + 1):
            cell = ws.cell(row=r, column=col)
            cell.alignment = wrap
            if columns[col - 1][0] in ("days_since_last_touch", "customer_name"):
                cell.fill = fill
    ws.sheet_properties.outlinePr.summaryBelow = False
    ws.freeze_panes = f"A{header_row + 1}"  # set last: touching a cell earlier would move where rows append
    ws.print_title_rows = f"{header_row}:{header_row}"
    return wb
