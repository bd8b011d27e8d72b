"""The write-back to HubSpot, against the stand-in over HTTP: tasks and fields as planned, nothing twice."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
from collections import Counter

import duckdb
import pytest

from kizuna import pipeline
from kizuna.core.settings import PROJECT_DIR, Settings
from tests.crm.conftest import AS_OF, CUSTOMER_ID_PROPERTY, QUEUE, company_id
from tests.standins.hubspot_api import TOKEN, HubSpotStandin

WRITES = ("/batch/update", "/batch/create")


def expected_counts(settings: Settings, hubspot: HubSpotStandin, as_of: dt.date = AS_OF) -> tuple[int, int]:
    """Accounts and tasks the sync should write, from the warehouse by SQL and the stand-in's companies."""
    in_crm = [o.properties[CUSTOMER_ID_PROPERTY] for o in hubspot.state.live("companies")]
    con = duckdb.connect(str(settings.warehouse), read_only=True)
    con.execute("CREATE TEMP TABLE in_crm (customer_id VARCHAR)")
    con.executemany("INSERT INTO in_crm VALUES (?)", [[c] for c in in_crm])
    accounts = con.execute(
        "SELECT count(*) FROM marts.customers WHERE status = 'active' AND customer_id IN (SELECT * FROM in_crm)"
    ).fetchone()[0]  # type: ignore[index]
    calls = con.execute(
        "SELECT count(DISTINCT (customer_id, campaign)) FROM ops.call_list WHERE as_of = ? "
        "AND customer_id IN (SELECT * FROM in_crm)",
        [as_of],
    ).fetchone()[0]  # type: ignore[index]
    csqls = con.execute(
        "SELECT count(*) FROM marts.engagement_csqls WHERE is_counted AND created_on BETWEEN ? AND ?",
        [as_of - dt.timedelta(days=6), as_of],
    ).fetchone()[0]  # type: ignore[index]
    con.close()
    return accounts, calls + csqls


def tasks(hubspot: HubSpotStandin) -> list[dict[str, str | None]]:
    return [o.properties for o in hubspot.state.live("tasks")]


def writes(hubspot: HubSpotStandin) -> list[str]:
    return [line for line in hubspot.state.request_lines() if line.endswith(WRITES)]


def test_first_sync_writes_the_plan_and_a_second_sends_nothing(crm_settings: Settings, hubspot: HubSpotStandin) -> None:
    accounts, expected_tasks = expected_counts(crm_settings, hubspot)
    summary = pipeline.crm_sync(crm_settings, AS_OF)

    created = tasks(hubspot)
    assert len(created) == expected_tasks == summary.tasks_created
    assert summary.accounts_updated == accounts
    assert summary.errors == []
    assert summary.customers_not_in_crm == {"C0250"} and summary.tasks_skipped == {"customer not in the CRM": 1}
    company = {c.id: c for c in hubspot.state.live("companies")}
    assert sum(1 for c in company.values() if c.properties.get("kizuna_rank")) == accounts
    first = company[company_id(1)].properties
    assert (first["kizuna_rank"], first["kizuna_churn_risk"], first["kizuna_churn_reasons"]) == (
        "A",
        "0.001",
        "利用が減少",
    )
    assert first["kizuna_next_action"] == "電話する"
    assert company[company_id(3)].properties["kizuna_last_touch"] == "2026-11-20"
    assert company[company_id(6)].properties["kizuna_last_touch"] == ""  # a holdout got no email
    assert company[company_id(245)].properties.get("kizuna_rank") is None  # churned: not written

    by_key = {t["kizuna_task_key"]: t for t in created}
    assert len(by_key) == len(created)
    owners = {o["id"]: o["email"] for o in hubspot.state.owners.values()}
    one = by_key["call:call_list:C0001:2026-12-04"]  # rank A, owner ae2: due the next business day (Monday)
    assert (one["hs_timestamp"], owners[one["hubspot_owner_id"]]) == ("2026-12-07T09:00:00Z", "ae2@example.co.jp")
    assert one["hs_task_priority"] == "HIGH" and "https://kizuna.example.co.jp/customers/C0001" in str(
        one["hs_task_body"]
    )
    assert by_key["call:call_list:C0005:2026-12-04"]["hs_timestamp"] == "2026-12-11T09:00:00Z"  # C: 5 days
    assert owners[by_key["call:call_list:C0002:2026-12-04"]["hubspot_owner_id"]] == QUEUE  # no account owner
    assert owners[by_key["call:call_list:C0050:2026-12-04"]["hubspot_owner_id"]] == QUEUE  # owner left HubSpot
    assert owners[by_key["csql:intent:e205"]["hubspot_owner_id"]] == QUEUE  # the CSQL is for the queue
    task_id = next(o.id for o in hubspot.state.live("tasks") if o.properties["kizuna_task_key"] == "csql:intent:e201")
    assert hubspot.state.companies_of("tasks", task_id) == {company_id(201): {192}}

    sent = len(writes(hubspot))
    again = pipeline.crm_sync(crm_settings, AS_OF)
    assert sent == 5 and len(writes(hubspot)) == sent  # 3 batches of accounts, 2 of tasks, then nothing
    assert (again.accounts_updated, again.tasks_created, again.accounts_unchanged) == (0, 0, accounts)
    assert len(tasks(hubspot)) == expected_tasks


def test_changed_values_only_are_sent(crm_settings: Settings, hubspot: HubSpotStandin) -> None:
    pipeline.crm_sync(crm_settings, AS_OF)
    con = duckdb.connect(str(crm_settings.warehouse))
    con.execute("UPDATE marts.customers SET rank = 'B' WHERE customer_id = 'C0011'")
    con.close()
    hubspot.state.requests.clear()
    summary = pipeline.crm_sync(crm_settings, AS_OF)
    assert summary.accounts_updated == 1
    updates = [r.body for r in hubspot.state.requests if r.path.endswith("/companies/batch/update")]
    assert updates == [{"inputs": [{"id": company_id(11), "properties": {"kizuna_rank": "B"}}]}]


def test_a_lost_answer_mid_way_and_a_rerun_leave_no_duplicate(crm_settings: Settings, hubspot: HubSpotStandin) -> None:
    _, expected_tasks = expected_counts(crm_settings, hubspot)
    # The second batch of tasks is created, but its answer never arrives: the run ends with it pending.
    hubspot.state.fail("drop-after", "POST /crm/v3/objects/tasks/batch/create", skip=1)
    first = pipeline.crm_sync(crm_settings, AS_OF)
    assert first.tasks_created == 100 and len(tasks(hubspot)) > 100 and first.errors[-1].startswith("hubspot")
    con = duckdb.connect(str(crm_settings.warehouse), read_only=True)
    pending = con.execute("SELECT count(*) FROM ops.crm_sync WHERE state = 'pending'").fetchone()[0]  # type: ignore[index]
    con.close()
    assert pending > 0

    second = pipeline.crm_sync(crm_settings, AS_OF)
    keys = Counter(t["kizuna_task_key"] for t in tasks(hubspot))
    assert len(keys) == expected_tasks and max(keys.values()) == 1
    assert second.tasks_recovered == pending


def test_completed_and_deleted_tasks_are_not_recreated_the_next_day(
    crm_settings: Settings, hubspot: HubSpotStandin
) -> None:
    from tests.crm.conftest import add_call_list

    pipeline.crm_sync(crm_settings, AS_OF)
    live = {o.properties["kizuna_task_key"]: o.id for o in hubspot.state.live("tasks")}
    hubspot.state.update("tasks", live["call:call_list:C0001:2026-12-04"], hs_task_status="COMPLETED")
    hubspot.state.archive("tasks", live["call:call_list:C0002:2026-12-04"])
    monday = dt.date(2026, 12, 7)
    con = duckdb.connect(str(crm_settings.warehouse))
    add_call_list(con, monday, [1, 2, 3, 131], run_id="r2")  # 1-3 recur; 131 is new
    con.close()

    summary = pipeline.crm_sync(crm_settings, monday)
    new = [o.properties["kizuna_task_key"] for o in hubspot.state.live("tasks") if o.id not in live.values()]
    assert new == ["call:call_list:C0131:2026-12-07"]
    assert summary.tasks_closed == 2
    assert summary.tasks_skipped == {"already sent": 5, "done recently": 2, "open in the CRM": 1}  # 5 CSQLs


def test_a_429_storm_is_waited_out(crm_settings: Settings, hubspot: HubSpotStandin) -> None:
    accounts, _ = expected_counts(crm_settings, hubspot)
    hubspot.state.fail("429", "/companies/batch/update", times=4, retry_after="0")
    hubspot.state.fail("429", "/tasks/batch/create", times=2, retry_after="0")
    summary = pipeline.crm_sync(crm_settings, AS_OF)
    assert summary.accounts_updated == accounts
    assert summary.retries_after_429 == 6
    assert sum(1 for r in hubspot.state.requests if r.status == 429) == 6


@pytest.mark.parametrize("retries", [1], ids=["retries-spent"])
def test_429_past_the_retries_fails_with_a_message(
    crm_settings: Settings, hubspot: HubSpotStandin, retries: int
) -> None:
    settings = crm_settings.model_copy(update={"connector_max_retries": retries})
    hubspot.state.fail("429", "/companies/batch/update", times=None, retry_after="0")
    summary = pipeline.crm_sync(settings, AS_OF)
    assert summary.accounts_updated == 0
    assert "429" in summary.errors[0] and "pat-" not in " ".join(summary.errors)


def test_a_merged_away_company_is_looked_up_again(crm_settings: Settings, hubspot: HubSpotStandin) -> None:
    pipeline.crm_sync(crm_settings, AS_OF)
    # Company of C0012 merged into a new record: the old id is gone, the new one carries the customer id.
    hubspot.state.objects["companies"].pop(company_id(12))
    hubspot.state.create("companies", {CUSTOMER_ID_PROPERTY: "C0012"}, id="777")
    con = duckdb.connect(str(crm_settings.warehouse))
    con.execute("UPDATE marts.customers SET health_score = 1 WHERE customer_id = 'C0012'")
    con.close()
    first = pipeline.crm_sync(crm_settings, AS_OF)
    assert first.errors[:1] == ["account C0012: OBJECT_NOT_FOUND: Could not update some records"]
    second = pipeline.crm_sync(crm_settings, AS_OF)
    assert second.accounts_updated == 1 and not second.errors and second.customers_not_in_crm == {"C0250"}
    assert hubspot.state.objects["companies"]["777"].properties["kizuna_rank"] == "B"


def test_a_sync_killed_mid_batch_and_rerun_leaves_no_duplicate(crm_settings: Settings, hubspot: HubSpotStandin) -> None:
    """`kizuna crm sync` SIGKILLed while HubSpot creates its second batch of tasks; the rerun finds them by key."""
    _, expected_tasks = expected_counts(crm_settings, hubspot)
    running: list[subprocess.Popen[bytes]] = []

    def kill(state: object) -> None:
        running[0].send_signal(signal.SIGKILL)
        running[0].wait()  # dead before HubSpot goes on to create the batch it was sent

    hubspot.state.fail("call", "POST /crm/v3/objects/tasks/batch/create", skip=1, action=kill)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(PROJECT_DIR / "src"), str(PROJECT_DIR)]),
        "KIZUNA_WAREHOUSE": str(crm_settings.warehouse),
        "KIZUNA_VAR_DIR": str(crm_settings.var_dir),
        "KIZUNA_CRM_TARGET": "hubspot",
        "KIZUNA_CRM_QUEUE_EMAIL": QUEUE,
        "KIZUNA_CRM_ACCOUNT_ID_PROPERTY": CUSTOMER_ID_PROPERTY,
        "KIZUNA_HUBSPOT_TOKEN": TOKEN,
        "KIZUNA_HUBSPOT_BASE_URL": hubspot.url,
    }
    command = [sys.executable, "-m", "kizuna.cli.main", "crm", "sync", "--as-of", AS_OF.isoformat()]
    running.append(subprocess.Popen(command, env=env, cwd=crm_settings.var_dir.parent))
    assert running[0].wait(timeout=120) == -signal.SIGKILL
    assert len(tasks(hubspot)) == expected_tasks  # HubSpot finished the batch after the client died

    rerun = pipeline.crm_sync(crm_settings, AS_OF)
    keys = Counter(t["kizuna_task_key"] for t in tasks(hubspot))
    assert len(keys) == expected_tasks and max(keys.values()) == 1
    assert (rerun.tasks_recovered, rerun.tasks_created) == (expected_tasks - 100, 0)
