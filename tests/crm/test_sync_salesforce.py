"""The same write-back through the Salesforce target, against the org stand-in: the plan, once, then nothing."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import pytest
from pydantic import SecretStr

from kizuna import pipeline
from kizuna.core.settings import Settings
from tests.crm.conftest import AS_OF, CUSTOMERS, QUEUE, customer_id
from tests.crm.test_sync_hubspot import expected_counts
from tests.standins.hubspot_api import HubSpotStandin
from tests.standins.salesforce_api import CLIENT_ID, CLIENT_SECRET, SalesforceStandin

FIELD = "Kizuna_Customer_Id__c"


@pytest.fixture
def org() -> Iterator[SalesforceStandin]:
    with SalesforceStandin() as standin:
        for email in ("ae1@example.co.jp", "ae2@example.co.jp", QUEUE):
            standin.state.add_user(email)
        # The customer's own External ID field on Account, holding kizuna's customer id (docs/crm.md).
        standin.state.custom_fields["Account"] = {
            FIELD: {"name": FIELD, "label": "Kizuna customer id", "type": "string", "custom": True,
                    "externalId": True, "unique": True, "length": 20, "picklistValues": []}
        }  # fmt: skip
        for i in range(1, CUSTOMERS):
            standin.state.add("Account", Name=f"株式会社テスト{i}", **{FIELD: customer_id(i)})
        yield standin


def test_salesforce_sync_writes_the_plan_once(
    crm_settings: Settings, hubspot: HubSpotStandin, org: SalesforceStandin
) -> None:
    accounts, expected_tasks = expected_counts(crm_settings, hubspot)  # the same companies as accounts
    settings = crm_settings.model_copy(
        update={
            "crm_target": "salesforce",
            "crm_account_id_property": FIELD,
            "salesforce_login_url": org.url,
            "salesforce_client_id": CLIENT_ID,
            "salesforce_client_secret": SecretStr(CLIENT_SECRET),
        }
    )
    assert {c.action for c in pipeline.crm_setup(settings)} == {"create"}

    summary = pipeline.crm_sync(settings, AS_OF)
    assert summary.accounts_updated == accounts and summary.tasks_created == expected_tasks
    keys = Counter(t["Kizuna_Key__c"] for t in org.state.tasks())
    assert len(keys) == expected_tasks and max(keys.values()) == 1
    ranked = [a for a in org.state.records["Account"].values() if a.get("Kizuna_Rank__c")]
    assert len(ranked) == accounts

    again = pipeline.crm_sync(settings, AS_OF)
    assert (again.accounts_updated, again.tasks_created, again.accounts_unchanged) == (0, 0, accounts)
    assert len(org.state.tasks()) == expected_tasks
