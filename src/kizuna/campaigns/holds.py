"""Campaign holds: a run that needs a person's approval before anything is sent, and its decision."""

from __future__ import annotations

import getpass
import os
from dataclasses import dataclass
from typing import Literal

from kizuna.core import ops
from kizuna.core.connection import Connection
from kizuna.core.settings import Settings
from kizuna.core.warehouse import column_exists

Decision = Literal["approved", "rejected"]


@dataclass(frozen=True)
class Hold:
    run_id: str
    campaign: str
    reason: str
    selected: int
    previous_selected: int | None
    status: str  # waiting | approved | rejected
    requested_by: str | None = None  # who started the run (None: held before this was recorded)


class HoldError(ValueError):
    """No such hold, or it was already decided."""


def ensure_holds(con: Connection) -> None:
    ops.ensure(con, ops.CAMPAIGN_HOLDS)
    # A warehouse from before four eyes: holds had no requested_by yet.
    if not column_exists(con, ops.CAMPAIGN_HOLDS.schema, ops.CAMPAIGN_HOLDS.table, "requested_by"):
        con.execute(f"ALTER TABLE {ops.CAMPAIGN_HOLDS.name} ADD COLUMN requested_by VARCHAR")


def current_user() -> str:
    """Who runs this process (the OS login), recorded as who started a campaign run."""
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no login name and no passwd entry (some containers)
        return f"uid {os.getuid()}"


def approve_command(run_id: str, campaign: str) -> str:
    """The command that approves this hold, exactly as it can be pasted into a shell."""
    return f'kizuna campaigns approve {run_id} {campaign} --by "$USER"'


def same_person(a: str, b: str) -> bool:
    """Whether two names given for people are one person: case aside, and an address's local part is a login
    ("taro@example.co.jp" is "taro"). Errs towards "same": it only ever refuses a self-approval."""

    def forms(name: str) -> set[str]:
        name = name.strip().casefold()
        return {name, name.split("@", 1)[0]}

    return bool(forms(a) & forms(b))


def hold(
    con: Connection,
    run_id: str,
    campaign: str,
    reason: str,
    selected: int,
    previous: int | None,
    requested_by: str | None = None,
) -> Hold:
    """Record that this run of the campaign, started by `requested_by` (default: this process's login), waits for
    approval (idempotent per run and campaign)."""
    ensure_holds(con)
    con.execute(
        f"""INSERT INTO {ops.CAMPAIGN_HOLDS.name} (run_id, campaign, reason, selected, previous_selected, status, held_at,
                                       requested_by)
            VALUES (?, ?, ?, ?, ?, 'waiting', timezone('UTC', now()), ?)
            ON CONFLICT (run_id, campaign) DO NOTHING""",
        [run_id, campaign, reason, selected, previous, requested_by or current_user()],
    )
    found = get_hold(con, run_id, campaign)
    assert found is not None
    return found


def get_hold(con: Connection, run_id: str, campaign: str) -> Hold | None:
    ensure_holds(con)
    row = con.execute(
        f"SELECT run_id, campaign, reason, selected, previous_selected, status, requested_by FROM {ops.CAMPAIGN_HOLDS.name} "
        "WHERE run_id = ? AND campaign = ?",
        [run_id, campaign],
    ).fetchone()
    return Hold(*row) if row else None


def waiting_holds(con: Connection) -> list[Hold]:
    ensure_holds(con)
    rows = con.execute(
        f"SELECT run_id, campaign, reason, selected, previous_selected, status, requested_by FROM {ops.CAMPAIGN_HOLDS.name} "
        "WHERE status = 'waiting' ORDER BY held_at"
    ).fetchall()
    return [Hold(*r) for r in rows]


def decide(
    con: Connection,
    run_id: str,
    campaign: str,
    decision: Decision,
    by: str,
    *,
    allow_self: bool | None = None,
) -> Hold:
    """Approve or reject a waiting hold; the next send of that run goes ahead (approved) or never does.

    Four eyes: whoever started the run may reject it but not approve it, unless `allow_self` (default: the
    setting KIZUNA_APPROVAL_ALLOW_SELF) allows it.
    """
    if not by.strip():
        raise HoldError("say who decides: --by NAME (recorded with the decision)")
    current = get_hold(con, run_id, campaign)
    if current is None:
        raise HoldError(f"no hold for campaign {campaign!r} in run {run_id!r}: see `kizuna campaigns holds`")
    if current.status != "waiting":
        raise HoldError(f"the hold of {campaign!r} in run {run_id!r} was already {current.status}")
    if allow_self is None:
        allow_self = Settings().approval_allow_self
    if decision == "approved" and not allow_self and current.requested_by and same_person(by, current.requested_by):
        raise HoldError(
            f"{by} started run {run_id!r} of {campaign!r} and may not approve it too (four eyes): someone else "
            "approves, or set KIZUNA_APPROVAL_ALLOW_SELF=true where one person runs campaigns alone"
        )
    con.execute(
        f"UPDATE {ops.CAMPAIGN_HOLDS.name} SET status = ?, decided_at = timezone('UTC', now()), decided_by = ? "
        "WHERE run_id = ? AND campaign = ?",
        [decision, by, run_id, campaign],
    )
    decided = get_hold(con, run_id, campaign)
    assert decided is not None
    return decided
