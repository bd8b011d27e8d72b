"""The send gate: a campaign run's recipients checked by their own suite just before anything is sent."""

from __future__ import annotations

import json
import threading

import pandas as pd

from kizuna.core import ops
from kizuna.core.connection import Connection
from kizuna.core.contract import SOURCE_FILE_COLUMN, SOURCE_ROW_COLUMN
from kizuna.core.settings import Settings
from kizuna.core.warehouse import OPS_SCHEMA
from kizuna.email.consent import relationship_allows_sql, suppressed_sql
from kizuna.quality.suites import SuiteFile, load_suites
from kizuna.quality.validate import CheckResult, Validator

# One Great Expectations validator per suite content, built on first use and kept for the process: building
# one (context, suite, asset) costs as much as running it, and a run's campaigns all check the same suite.
_VALIDATORS: dict[str, tuple[Validator, threading.Lock]] = {}
_VALIDATORS_LOCK = threading.Lock()


class RecipientsCheckError(RuntimeError):
    """A campaign's recipients failed a critical check: nothing of that campaign is sent."""

    def __init__(self, campaign: str, failures: list[CheckResult]) -> None:
        self.failures = failures
        lines = [f"{f.rule} on {f.column}: {f.unexpected_count} recipients" for f in failures]
        lines += [f"    {finding}" for f in failures for finding in f.findings]
        super().__init__(
            f"campaign {campaign}: recipients failed the send check; nothing was sent:\n" + "\n".join(lines)
        )


def check_recipients(con: Connection, settings: Settings, run_id: str, campaign: str) -> list[CheckResult]:
    """Run the campaign_recipients suite on the treatment rows of one run; raise on any critical failure."""
    results: list[CheckResult] = []
    # The same rules selection applied (kizuna.email.consent), checked again on what is about to be sent. The
    # relationship basis is checked per contact only: the customer's status was selection's to check.
    suppressed = suppressed_sql(con, "r.email")
    relationship_allows = relationship_allows_sql(con, settings.lawful_basis, "ct")
    for suite in load_suites(settings.expectations_dir, OPS_SCHEMA):
        if suite.table != "campaign_recipients":
            continue
        derived = ", ".join(
            f'({sql.format(schema=OPS_SCHEMA, suppressed=suppressed, relationship_allows=relationship_allows)}) AS "{name}"'
            for name, sql in suite.derived_columns.items()
        )
        frame = con.execute(
            f"""SELECT r.contact_id, r.email, r.message_key, {derived},
                       'campaign_recipients' AS {SOURCE_FILE_COLUMN},
                       row_number() OVER (ORDER BY r.message_key) AS {SOURCE_ROW_COLUMN}
                FROM {ops.CAMPAIGN_RECIPIENTS} r
                WHERE r.run_id = ? AND r.campaign = ? AND r.is_selected""",
            [run_id, campaign],
        ).df()
        if frame.empty:
            continue
        results += _validate(suite, frame, f"campaign_recipients[{campaign}]")
    failures = [r for r in results if not r.success and r.severity == "critical"]
    if failures:
        raise RecipientsCheckError(campaign, failures)
    return results


def _validate(suite: SuiteFile, frame: pd.DataFrame, file: str) -> list[CheckResult]:
    """The suite's verdict on the frame, from the validator built for this exact suite (rebuilt if it changed)."""
    key = json.dumps([suite.name, suite.schema, suite.table, suite.expectations], sort_keys=True, default=str)
    with _VALIDATORS_LOCK:
        entry = _VALIDATORS.get(key)
        if entry is None:
            if len(_VALIDATORS) >= 8:  # suites edited while a long-lived worker runs: keep only recent ones
                _VALIDATORS.clear()
            entry = _VALIDATORS[key] = (Validator(suite, suite.expectations), threading.Lock())
    validator, lock = entry
    with lock:  # a GX validation definition is not made for two frames at once
        return validator.run(frame, {}, file)
