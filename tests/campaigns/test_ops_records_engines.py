"""The records a send is gated on, on DuckDB and on PostgreSQL (issue 24): dbt builds and campaign holds.

Nothing is sent unless the latest dbt build passed, and a held campaign waits for someone else's approval: the same
calls on a warehouse of each engine, with the same outcome expected of both.
"""

from __future__ import annotations

import re
from datetime import date

import pytest

from kizuna.campaigns import holds
from kizuna.core.connection import Connection
from kizuna.transform import builds


def test_sends_wait_for_a_passed_build_on_each_engine(engine_con: Connection) -> None:
    con = engine_con
    builds.ensure_builds(con)
    with pytest.raises(builds.BuildNotPassedError, match="no dbt build is recorded"):
        builds.assert_latest_build_passed(con)
    first = builds.start(con, date(2026, 12, 7), rebuild_from_month=date(2026, 11, 1), rebuilt="from 2026-11")
    with pytest.raises(builds.BuildNotPassedError) as running:
        builds.assert_latest_build_passed(con)
    assert re.search(r"started \d{4}-\d\d-\d\d \d\d:\d\d UTC, as of 2026-12-07\) never finished", str(running.value))
    builds.finish(con, first, passed=False, detail="1 of 251 tests failed:\n  unique customers.customer_id")
    with pytest.raises(builds.BuildNotPassedError, match=r"failed at \d{4}-.* UTC \(as of 2026-12-07\): 1 of 251"):
        builds.assert_latest_build_passed(con)
    builds.finish(con, builds.start(con, date(2026, 12, 7)), passed=True)
    builds.assert_latest_build_passed(con)


def test_a_held_campaign_waits_for_someone_elses_approval_on_each_engine(engine_con: Connection) -> None:
    con = engine_con
    held = holds.hold(con, "r1", "renewal_reminder", "selected 3x the last run", 120, 40, requested_by="alice")
    assert (held.status, held.selected, held.previous_selected, held.requested_by) == ("waiting", 120, 40, "alice")
    assert holds.hold(con, "r1", "renewal_reminder", "again", 999, None, requested_by="carol") == held  # idempotent
    holds.hold(con, "r1", "winback", "first run", 10, None, requested_by="alice")
    assert [(h.campaign, h.status) for h in holds.waiting_holds(con)] == [
        ("renewal_reminder", "waiting"),
        ("winback", "waiting"),
    ]
    with pytest.raises(holds.HoldError, match="four eyes"):
        holds.decide(con, "r1", "renewal_reminder", "approved", "Alice", allow_self=False)
    assert holds.decide(con, "r1", "renewal_reminder", "approved", "bob", allow_self=False).status == "approved"
    assert holds.decide(con, "r1", "winback", "rejected", "alice", allow_self=False).status == "rejected"
    with pytest.raises(holds.HoldError, match="already approved"):
        holds.decide(con, "r1", "renewal_reminder", "rejected", "bob", allow_self=False)
    assert holds.waiting_holds(con) == []
    decided = con.execute(
        "SELECT campaign, decided_by, decided_at IS NOT NULL FROM ops.campaign_holds ORDER BY campaign"
    ).fetchall()
    assert decided == [("renewal_reminder", "bob", True), ("winback", "alice", True)]


def test_sends_wait_for_a_passed_gate_and_say_when_it_failed_on_each_engine(engine_con: Connection) -> None:
    # Before: the failed gate's time was formatted with DuckDB's strftime, an error on PostgreSQL.
    from kizuna.campaigns.run import assert_marts_usable
    from kizuna.quality.gate import GateNotPassedError, record_verdict
    from kizuna.quality.validate import CheckResult
    from kizuna.quality.verdict import GateVerdict

    failed = CheckResult(
        "raw_customers", "customers", "expect_column_values_to_be_unique", "customer_id", "duplicate value",
        "critical", False, 1,
    )  # fmt: skip
    record_verdict(engine_con, GateVerdict("20261207T010000000000Z-bad", [failed]))
    with pytest.raises(
        GateNotPassedError, match=r"failed the quality gate.* \(checked at \d{4}-\d\d-\d\d \d\d:\d\d UTC\)$"
    ):
        assert_marts_usable(engine_con)
