"""Subscription history from a current-state API: one contract period per subscription item and revenue state.

Stripe knows each subscription only as it is now. The contract wants periods: a change of MRR ends one
row and starts another. So the connector remembers, in its cursor, each live item's open period (its start,
what its revenue was made of, and the row it last wrote). When a pull sees the item with another price,
quantity or discount, it closes the remembered period on the day of the change (key `<item id>@<start>`)
and the item's own key (`<item id>`) carries the new period from that day. docs/sources.md tells what
history a first pull can and cannot show.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

from kizuna.connectors.stripe_mapping import ITEM_REMOVED, PLAN_CHANGE, ItemValues, SubscriptionValues

Entry = dict[str, Any]  # one item's remembered period (JSON in the cursor)


@dataclass
class Changes:
    """Rows to upsert (with the Stripe record they came from) and keys to delete."""

    upserts: list[tuple[dict[str, Any], str]] = field(default_factory=list)
    deletes: list[str] = field(default_factory=list)


def _cell(value: object) -> object:
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return value


def period_key(item_id: str, since: date) -> str:
    return f"{item_id}@{since.isoformat()}"


def _row(item: ItemValues, sv: SubscriptionValues, since: date) -> dict[str, Any]:
    whole_trial = sv.trial is not None and sv.end_date is not None and sv.end_date <= sv.trial[1]
    return {
        **item.values,
        "subscription_id": item.item_id,
        "start_date": since,
        "end_date": sv.end_date,
        # a subscription that ended inside its trial never billed: its row stays trialing (0 MRR in dbt)
        "status": "trialing" if whole_trial else sv.status,
        "cancel_reason": sv.cancel_reason,
    }


def _emit(changes: Changes, row: dict[str, Any], ref: str) -> None:
    start, end = row["start_date"], row["end_date"]
    if isinstance(start, str):
        start = date.fromisoformat(start)
    if isinstance(end, str):
        end = date.fromisoformat(end)
    if end is not None and end <= start:
        # live for no day at all (created and ended the same day): no row, and none left from earlier pulls
        changes.deletes.append(str(row["subscription_id"]))
        return
    changes.upserts.append((row, ref))


def advance(
    sv: SubscriptionValues | None, prior: dict[str, Entry], changed_on: date, sub_id: str
) -> tuple[Changes, dict[str, Entry]]:
    """The rows one subscription adds or changes, given what earlier pulls remembered of its items.

    `sv` None means the subscription is gone from Stripe: every row it made is deleted. `changed_on` is the
    day its latest revenue change happened (from its events; the pull's day when there was no event).
    Returns the changes and the new memory of its items.
    """
    changes = Changes()
    memory: dict[str, Entry] = {}
    ref = f"subscription {sub_id}"
    if sv is None or sv.status is None:
        for item_id, gone in prior.items():
            changes.deletes += [item_id, *gone.get("closed", [])]
        return changes, memory
    for item in sv.items:
        entry = prior.get(item.item_id)
        closed: list[str] = list(entry.get("closed", [])) if entry else []
        if entry is None:
            since = _first_sight(item, sv, changes, ref, closed)
        else:
            since = _close_changed(item, sv, entry, changed_on, changes, ref, closed)
        row = _row(item, sv, since)
        _emit(changes, row, ref)
        if not sv.ended:
            memory[item.item_id] = {
                "sub": sv.subscription_id,
                "since": since.isoformat(),
                "revenue": item.revenue,
                "trial": sv.in_trial,
                "stripe_status": sv.stripe_status,
                "row": {k: _cell(v) for k, v in row.items()},
                "closed": closed,
            }
        elif entry is not None:
            # ended after kizuna saw it live: its start and closed periods came from observed changes
            memory[item.item_id] = {"sub": sv.subscription_id, "since": since.isoformat(), "closed": closed}
    _end_removed(sv, prior, changed_on, changes, memory, ref)
    return changes, memory


def _first_sight(item: ItemValues, sv: SubscriptionValues, changes: Changes, ref: str, closed: list[str]) -> date:
    """An item no earlier pull saw: the start of its current period, after a trial period of its own if the
    subscription is already past its trial."""
    since = item.started_on
    trial_over = sv.trial is not None and not sv.in_trial and since < sv.trial[1]
    if trial_over and sv.trial is not None and (sv.end_date is None or sv.end_date > sv.trial[1]):
        # first sight of a subscription past its trial: the trial is a period of its own (0 MRR in dbt)
        key = period_key(item.item_id, since)
        trial_row = {**_row(item, sv, since), "subscription_id": key, "end_date": sv.trial[1]}
        trial_row.update(status="trialing", cancel_reason=None)
        _emit(changes, trial_row, ref)
        closed.append(key)
        since = sv.trial[1]
    return since


def _close_changed(
    item: ItemValues,
    sv: SubscriptionValues,
    entry: Entry,
    changed_on: date,
    changes: Changes,
    ref: str,
    closed: list[str],
) -> date:
    """A remembered item: when its revenue or trial changed, close the remembered period on the day of the
    change (a trial on its last day) and return that day as the new period's start."""
    since = date.fromisoformat(entry["since"])
    live = "row" in entry
    if not (live and (entry["revenue"] != item.revenue or entry["trial"] != sv.in_trial)):
        return since
    boundary = changed_on
    if (
        entry["trial"]
        and entry.get("stripe_status") == "trialing"
        and sv.trial is not None
        and since <= sv.trial[1] <= changed_on
    ):
        boundary = sv.trial[1]  # a trial converts on its last day, whenever we notice
    trial_end = sv.trial[1] if sv.trial is not None else None
    if entry["trial"] and sv.ended and trial_end and sv.end_date and sv.end_date <= trial_end:
        boundary = since  # ended inside its trial: one trial period, nothing to close
    if boundary > since:
        key = period_key(item.item_id, since)
        old = {**entry["row"], "subscription_id": key, "end_date": boundary.isoformat()}
        if entry["trial"]:
            old.update(status="trialing", cancel_reason=None)
        else:
            old.update(status="canceled", cancel_reason=PLAN_CHANGE)
        _emit(changes, old, ref)
        closed.append(key)
        since = boundary
    return since


def _end_removed(
    sv: SubscriptionValues,
    prior: dict[str, Entry],
    changed_on: date,
    changes: Changes,
    memory: dict[str, Entry],
    ref: str,
) -> None:
    """Items remembered but no longer on the subscription: their live period ends (canceled)."""
    current = {item.item_id for item in sv.items}
    for item_id, removed in prior.items():
        if item_id in current:
            continue
        if "row" not in removed:
            memory[item_id] = removed  # an ended item kizuna remembers; nothing changes
            continue
        end = sv.end_date if sv.ended and sv.end_date is not None else changed_on
        final = {**removed["row"], "end_date": end.isoformat(), "status": "canceled"}
        final["cancel_reason"] = sv.cancel_reason if sv.ended else ITEM_REMOVED
        _emit(changes, final, ref)
