"""The Salesforce target over HTTP against the org stand-in: auth, setup, updates, tasks, limits, secrets."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import date
from typing import Any

import pytest
from pydantic import SecretStr

from kizuna import pipeline
from kizuna.core.settings import Settings
from kizuna.crm.salesforce import SalesforceTarget, api_name
from kizuna.crm.salesforce_auth import soql_in_lists
from kizuna.crm.target import AccountUpdate, CrmError, CrmTarget, FieldSpec, TaskSpec, WriteResult
from tests.standins.salesforce_api import CLIENT_ID, CLIENT_SECRET, INTEGRATION_USER, SalesforceStandin

TOKEN = "POST /services/oauth2/token"
TASK_UPSERT = "PATCH /services/data/v62.0/composite/sobjects/Task/Kizuna_Key__c"
ACCOUNT_UPDATE = "PATCH /services/data/v62.0/composite/sobjects"
FIELDS = [
    FieldSpec("kizuna_rank", "Kizuna rank", "enumeration", ("A", "B", "C")),
    FieldSpec("kizuna_churn_risk", "Churn risk", "number"),
    FieldSpec("kizuna_reasons", "Reasons", "text"),
    FieldSpec("kizuna_next_action", "Next action", "string"),
    FieldSpec("kizuna_last_touch_on", "Last kizuna touch", "date"),
]


@pytest.fixture
def org() -> Iterator[SalesforceStandin]:
    with SalesforceStandin() as standin:
        standin.state.query_page = 3  # several pages in every query the tests make
        yield standin


class Waits(list[float]):
    """Stands in for time.sleep: records each wait instead of sleeping."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def target(org: SalesforceStandin, waits: Waits | None = None, **options: Any) -> SalesforceTarget:
    options.setdefault("poll_interval", 0.5)
    return SalesforceTarget(org.url, CLIENT_ID, CLIENT_SECRET, sleep=waits if waits is not None else Waits(), **options)


def set_up(org: SalesforceStandin, accounts: int) -> tuple[SalesforceTarget, list[str]]:
    sf = target(org)
    sf.setup(FIELDS, dry_run=False)
    return sf, [org.state.add_account(f"株式会社テスト{n:04d}") for n in range(accounts)]


def task(n: int, account: str, owner: str = "rep.one@example.co.jp", **overrides: Any) -> TaskSpec:
    values: dict[str, Any] = {
        "key": f"call_list:2026-12-07:C{n:05d}",
        "customer_id": f"C{n:05d}",
        "crm_account_id": account,
        "owner_email": owner,
        "subject": f"電話: 株式会社テスト{n:04d}",
        "body": "利用上限の90%に到達",
        "due_date": date(2026, 12, 9),
        "priority": "high",
    }
    return TaskSpec(**{**values, **overrides})


def test_field_names_follow_salesforce_custom_field_rules() -> None:
    assert api_name("kizuna_rank") == "Kizuna_Rank__c"
    assert api_name("kizuna_last_touch_on") == "Kizuna_Last_Touch_On__c"
    with pytest.raises(ValueError, match="kizuna__x"):
        api_name("kizuna__x ")


def test_soql_in_lists_stay_short_whatever_the_values() -> None:
    values = [f"key:{n:05d}:" + "x" * 90 + "'" for n in range(500)]
    lists = list(soql_in_lists(values))
    assert all(len(listed) <= 4000 for listed in lists) and len(lists) == 14  # 37 of 106 characters
    assert sum(listed.count("\\'") for listed in lists) == 500  # every quote escaped, every value once


def test_a_token_is_asked_once_and_renewed_once_when_the_session_expires(org: SalesforceStandin) -> None:
    org.state.add_user("rep.one@example.co.jp")
    sf: CrmTarget = target(org)  # the protocol the sync speaks
    assert list(sf.owner_ids(["rep.one@example.co.jp"])) == ["rep.one@example.co.jp"]
    assert org.state.count(TOKEN) == 1
    org.state.fail("expire", "GET /services/data/v62.0/query")  # the org revokes every token
    assert list(sf.owner_ids(["rep.one@example.co.jp"])) == ["rep.one@example.co.jp"]
    assert org.state.count(TOKEN) == 2
    org.state.fail("expire", "GET /services/data/v62.0/query", times=None)  # renewed, and refused again
    with pytest.raises(CrmError, match=r"User by email.*401.*INVALID_SESSION_ID"):
        sf.owner_ids(["rep.one@example.co.jp"])
    assert org.state.count(TOKEN) == 3  # one renewal per call, not a loop


def test_the_client_secret_never_appears_in_errors_logs_or_repr(
    org: SalesforceStandin, caplog: pytest.LogCaptureFixture
) -> None:
    org.state.echo_secret_in_errors = True  # the worst case: the token endpoint repeats the secret
    caplog.set_level(logging.DEBUG)
    sf = SalesforceTarget(org.url, CLIENT_ID, CLIENT_SECRET + "-wrong", sleep=Waits())
    with pytest.raises(CrmError) as refused:
        sf.owner_ids(["a@example.co.jp"])
    text = str(refused.value)
    assert "invalid_client" in text and "KIZUNA_SALESFORCE_CLIENT_SECRET" in text
    for shown in (text, repr(sf), repr(sf.session), caplog.text):
        assert CLIENT_SECRET not in shown
    configured = SalesforceTarget(org.url, CLIENT_ID, CLIENT_SECRET)
    assert CLIENT_SECRET not in repr(configured) and CLIENT_SECRET not in repr(vars(configured))


def test_settings_name_what_is_missing(org: SalesforceStandin, settings: Settings) -> None:
    """`KIZUNA_CRM_TARGET=salesforce` without its variables: the error names the variables left unset only."""
    salesforce = settings.model_copy(update={"crm_target": "salesforce", "salesforce_client_id": CLIENT_ID})
    with pytest.raises(CrmError, match="KIZUNA_SALESFORCE_LOGIN_URL") as unset:
        pipeline.crm_target(salesforce)
    assert "CLIENT_ID" not in str(unset.value)
    salesforce = salesforce.model_copy(update={"salesforce_login_url": org.url})
    with pytest.raises(CrmError, match="KIZUNA_SALESFORCE_CLIENT_SECRET"):
        pipeline.crm_target(salesforce)
    configured = salesforce.model_copy(update={"salesforce_client_secret": SecretStr(CLIENT_SECRET)})
    assert pipeline.crm_target(configured).owner_ids(["nobody@example.co.jp"]) == {}


def test_setup_creates_missing_fields_once_and_reports_conflicts(org: SalesforceStandin) -> None:
    sf = target(org)
    planned = sf.setup(FIELDS, dry_run=True)
    assert [(c.field, c.action) for c in planned][-1] == ("Task.Kizuna_Key__c", "create")
    assert {c.action for c in planned} == {"create"} and not org.state.custom_fields  # a dry run changes nothing
    created = sf.setup(FIELDS, dry_run=False)
    assert [c.action for c in created] == ["create"] * 6
    assert org.state.count("POST /services/data/v62.0/tooling/sobjects/CustomField") == 6
    key = org.state.fields("Task")["Kizuna_Key__c"]
    assert key["externalId"] and key["unique"]
    assert [v["value"] for v in org.state.fields("Account")["Kizuna_Rank__c"]["picklistValues"]] == ["A", "B", "C"]
    again = sf.setup(FIELDS, dry_run=False)
    assert [c.action for c in again] == ["ok"] * 6
    assert org.state.count("POST /services/data/v62.0/tooling/sobjects/CustomField") == 6
    changed = [FieldSpec("kizuna_rank", "Kizuna rank", "enumeration", ("A", "B", "C", "D")), FIELDS[1]]
    changed[1] = FieldSpec("kizuna_churn_risk", "Churn risk", "string")
    report = {c.field: (c.action, c.detail) for c in sf.setup(changed, dry_run=False)}
    assert report["Account.Kizuna_Rank__c"] == ("conflict", "picklist lacks D")
    assert report["Account.Kizuna_Churn_Risk__c"] == ("conflict", "is double, kizuna writes string")


def test_setup_grants_the_run_as_user_access_to_the_fields_it_creates(org: SalesforceStandin) -> None:
    sf = target(org)
    org.state.fail("drop-after", "tooling/sobjects/CustomField")  # made, the answer lost: the retry is refused
    report = {c.field: (c.action, c.detail) for c in sf.setup(FIELDS, dry_run=False)}
    assert report["Account.Kizuna_Rank__c"] == ("create", "created (its first answer was lost)")
    assert len(org.state.custom_fields["Account"]) == 5
    assert org.state.granted() == set(report)  # through one permission set assigned to the run-as user
    assert [a["AssigneeId"] for a in org.state.records["PermissionSetAssignment"].values()] == [INTEGRATION_USER]
    org.state.fls_enforced = True  # as in Salesforce: a field made through the Tooling API is nobody's to see
    assert [c.action for c in sf.setup(FIELDS, dry_run=False)] == ["ok"] * 6  # ... unless granted
    reasons = next(g for g in org.state.records["FieldPermissions"].values() if g["Field"].endswith("Reasons__c"))
    org.state.delete("FieldPermissions", reasons["Id"], purge=True)  # an admin takes the access away
    report = {c.field: (c.action, c.detail) for c in sf.setup(FIELDS, dry_run=False)}
    assert report["Account.Kizuna_Reasons__c"] == (
        "create",
        "existed without access for the run-as user: granted by Kizuna_Integration",
    )
    assert [c.action for c in sf.setup(FIELDS, dry_run=False)] == ["ok"] * 6
    assert len(org.state.records["PermissionSet"]) == len(org.state.records["PermissionSetAssignment"]) == 1


def updates_for(accounts: list[str]) -> list[AccountUpdate]:
    """Each account a different subset of fields, some cleared, as a diff-based sync sends them."""
    result = []
    for n, account in enumerate(accounts):
        values: dict[str, Any] = {"kizuna_rank": "ABC"[n % 3], "kizuna_churn_risk": round(n / 1000, 3)}
        if n % 2:
            values["kizuna_last_touch_on"] = date(2026, 12, 1 + n % 28)
        if n % 5 == 0:
            values["kizuna_next_action"] = None  # cleared
        result.append(AccountUpdate(f"C{n:05d}", account, values))
    return result


def final_records(org: SalesforceStandin) -> dict[str, tuple[Any, ...]]:
    names = ["Kizuna_Rank__c", "Kizuna_Churn_Risk__c", "Kizuna_Last_Touch_On__c", "Kizuna_Next_Action__c"]
    return {i: tuple(str(r.get(n)) for n in names) for i, r in org.state.records["Account"].items()}


def test_updates_go_in_collections_of_200_and_through_bulk_jobs_to_the_same_records() -> None:
    outcomes = {}
    for path, threshold in (("collections", 10_000), ("bulk", 100)):
        with SalesforceStandin() as org:
            sf, accounts = set_up(org, 450)
            for account in accounts[::5]:  # a value to clear
                org.state.records["Account"][account]["Kizuna_Next_Action__c"] = "電話する"
            sf.bulk_threshold = threshold
            results = sf.update_accounts(updates_for(accounts))
            assert sorted(r.key for r in results) == [f"C{n:05d}" for n in range(450)]
            assert all(r.error is None and r.crm_id for r in results)
            outcomes[path] = (final_records(org), org.state.requests)
    records, requests = outcomes["collections"]
    assert records == outcomes["bulk"][0]
    assert records[accounts[0]] == ("A", "0.0", "None", "None")
    assert records[accounts[1]] == ("B", "0.001", "2026-12-02", "None")
    assert requests.count(ACCOUNT_UPDATE) == 3  # 200 + 200 + 50
    bulk_requests = outcomes["bulk"][1]
    assert ACCOUNT_UPDATE not in bulk_requests
    assert sum(r.startswith("PUT ") and r.endswith("/batches") for r in bulk_requests) == 1


def test_a_bulk_job_whose_close_answer_was_lost_is_not_run_twice(org: SalesforceStandin) -> None:
    sf, accounts = set_up(org, 5)
    sf.bulk_threshold = 1
    org.state.fail("drop-after", "PATCH /services/data/v62.0/jobs/ingest/")  # closed, the answer lost
    results = sf.update_accounts(updates_for(accounts))
    assert all(r.error is None for r in results)
    (job,) = org.state.jobs.values()
    assert (job.state, len(job.successful), len(job.failed)) == ("JobComplete", 5, 0)
    assert org.state.records["Account"][accounts[4]]["Kizuna_Rank__c"] == "B"


def test_an_unknown_account_is_a_per_record_error_not_a_crash(org: SalesforceStandin) -> None:
    sf, accounts = set_up(org, 3)
    org.state.delete("Account", accounts[2])
    ghost = "0015g9999999999AAA"
    for threshold in (10_000, 1):
        sf.bulk_threshold = threshold
        batch = [
            AccountUpdate("C1", accounts[0], {"kizuna_rank": "A"}),
            AccountUpdate("C2", ghost, {"kizuna_rank": "B"}),
        ]
        batch.append(AccountUpdate("C3", accounts[2], {"kizuna_rank": "C"}))
        results = {r.key: r for r in sf.update_accounts(batch)}
        assert results["C1"].error is None and results["C1"].crm_id == accounts[0]
        assert results["C2"].crm_id is None and "INVALID_CROSS_REFERENCE_KEY" in str(results["C2"].error)
        assert "ENTITY_IS_DELETED" in str(results["C3"].error)
    sent = org.state.count(ACCOUNT_UPDATE)
    assert sf.update_accounts([AccountUpdate("C1", accounts[0], {})]) == [WriteResult("C1", accounts[0])]
    assert org.state.count(ACCOUNT_UPDATE) == sent  # nothing changed, nothing sent
    owner = org.state.add_user("rep.one@example.co.jp")
    owners = sf.owner_ids(["rep.one@example.co.jp"])
    written = {r.key: r for r in sf.upsert_tasks([task(1, accounts[0]), task(2, ghost)], owners)}
    assert written[task(1, "").key].error is None
    assert "INVALID_CROSS_REFERENCE_KEY" in str(written[task(2, "").key].error)
    assert "(WhatId)" in str(written[task(2, "").key].error)
    assert [t["OwnerId"] for t in org.state.tasks()] == [owner]


def test_owner_ids_page_through_active_users_by_email_ignoring_case(
    org: SalesforceStandin, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    users = {f"rep{n}@example.co.jp": org.state.add_user(f"Rep{n}@Example.co.jp") for n in range(7)}
    org.state.add_user("gone@example.co.jp", active=False)
    found = target(org).owner_ids([*users, "gone@example.co.jp", "nobody@example.co.jp", "o'brien@example.co.jp"])
    assert found == users
    assert org.state.count("GET /services/data/v62.0/query") == 1
    assert sum("/query/01g" in r for r in org.state.requests) == 2  # 7 users in pages of 3
    assert "/services/data/v62.0/query?" in caplog.text and "example.co.jp" not in caplog.text  # no SOQL logged


def test_tasks_upserted_twice_are_one_task_per_key(org: SalesforceStandin) -> None:
    sf, accounts = set_up(org, 5)
    owner = org.state.add_user("rep.one@example.co.jp")
    owners = sf.owner_ids(["rep.one@example.co.jp"])
    tasks = [task(n, accounts[n], priority=("high", "medium", "low")[n % 3]) for n in range(5)]
    tasks.append(task(9, accounts[0], owner="nobody@example.co.jp"))
    first = {r.key: r for r in sf.upsert_tasks([*tasks, task(0, accounts[1], subject="twice")], owners)}
    second = {r.key: r for r in sf.upsert_tasks(tasks, owners)}
    assert first == second
    assert "no active Salesforce user" in str(first[tasks[5].key].error)
    made = {t["Kizuna_Key__c"]: t for t in org.state.tasks()}
    assert sorted(made) == sorted(t.key for t in tasks[:5])
    assert {first[k].crm_id for k in made} == {t["Id"] for t in made.values()}
    assert made[tasks[1].key]["Priority"] == "Normal" and made[tasks[2].key]["Priority"] == "Low"
    one = made[tasks[0].key]
    assert one["Subject"] == tasks[0].subject  # a key given twice: sent once, the first one's values
    assert (one["WhatId"], one["OwnerId"], one["ActivityDate"], one["Status"]) == (
        accounts[0],
        owner,
        "2026-12-09",
        "Not Started",
    )
    assert org.state.count(TASK_UPSERT) == 1  # the second run found every key and sent nothing


def test_a_dropped_connection_mid_way_and_a_rerun_leave_no_duplicate(org: SalesforceStandin) -> None:
    sf, accounts = set_up(org, 450)
    org.state.add_user("rep.one@example.co.jp")
    owners = sf.owner_ids(["rep.one@example.co.jp"])
    tasks = [task(n, accounts[n]) for n in range(450)]
    org.state.fail("drop-after", TASK_UPSERT, skip=1)  # the second collection is made, its answer lost
    killed = SalesforceTarget(org.url, CLIENT_ID, CLIENT_SECRET, max_retries=0, sleep=Waits())
    with pytest.raises(CrmError, match="Task upsert: no answer"):
        killed.upsert_tasks(tasks, owners)
    assert len(org.state.tasks()) == 400
    rerun = {r.key: r.crm_id for r in sf.upsert_tasks(tasks, owners)}
    assert len(org.state.tasks()) == 450
    assert {t["Kizuna_Key__c"]: t["Id"] for t in org.state.tasks()} == rerun
    org.state.fail("drop-after", TASK_UPSERT)  # with retries: the retry finds the made tasks by key
    more = [task(n, accounts[n - 450]) for n in range(450, 460)]
    retried = sf.upsert_tasks(more, owners)
    assert all(r.error is None for r in retried) and len(org.state.tasks()) == 460


def test_closed_tasks_read_as_completed_and_deleted_ones_as_deleted(org: SalesforceStandin) -> None:
    sf, accounts = set_up(org, 4)
    org.state.add_user("rep.one@example.co.jp")
    owners = sf.owner_ids(["rep.one@example.co.jp"])
    ids = [r.crm_id or "" for r in sf.upsert_tasks([task(n, accounts[n]) for n in range(4)], owners)]
    org.state.close_task(ids[1])
    org.state.delete("Task", ids[2])
    org.state.delete("Task", ids[3], purge=True)
    states = sf.task_states([*ids, "00T5g0000000000ZZZ"])
    assert states == {
        ids[0]: "open",
        ids[1]: "completed",
        ids[2]: "deleted",
        ids[3]: "deleted",
        "00T5g0000000000ZZZ": "deleted",
    }
    # Found by key, even in the recycle bin (queryAll), so not made again; only a purged one is gone for good.
    rerun = {r.key: r.crm_id for r in sf.upsert_tasks([task(n, accounts[n]) for n in range(4)], owners)}
    assert [rerun[task(n, "").key] for n in range(3)] == ids[:3]
    assert rerun[task(3, "").key] not in ids
    assert org.state.tasks()[0]["Status"] == "Not Started" and org.state.records["Task"][ids[1]]["IsClosed"]


@pytest.mark.parametrize("kind", ["429", "503", "limit"], ids=["429", "503", "request-limit-exceeded"])
def test_a_rate_limit_storm_is_waited_out_with_retry_after(org: SalesforceStandin, kind: str) -> None:
    waits = Waits()
    sf = target(org, waits)
    sf.setup(FIELDS, dry_run=False)
    account = org.state.add_account("株式会社嵐")
    org.state.fail(kind, ACCOUNT_UPDATE, times=4, retry_after="3")
    results = sf.update_accounts([AccountUpdate("C1", account, {"kizuna_rank": "B"})])
    assert results[0].error is None and org.state.records["Account"][account]["Kizuna_Rank__c"] == "B"
    assert waits == [3.0] * 4
    assert (sf.stats.retries_after_429, sf.stats.waited_seconds) == (4, 12.0)
    assert sf.stats.by_endpoint["PATCH /composite/sobjects"] == 5
    org.state.fail(kind, ACCOUNT_UPDATE, times=None)
    with pytest.raises(CrmError, match="Account update: still rate limited"):
        sf.update_accounts([AccountUpdate("C1", account, {"kizuna_rank": "C"})])
    assert len(waits) == 4 + 5  # bounded by max_retries


def test_other_errors_name_the_object_and_the_call(org: SalesforceStandin) -> None:
    sf = target(org)
    org.state.fail("500", "describe", times=None)
    with pytest.raises(CrmError, match=r"Account describe: GET .*/sobjects/Account/describe answered 500"):
        sf.setup(FIELDS, dry_run=True)
    assert sf.stats.by_endpoint["GET /sobjects/describe"] == 6  # five retries with backoff
