"""Next actions and risks per customer and per open deal, from its open signals and the touches it lacks."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import pandas as pd

from kizuna.core.yaml_files import read_yaml

RULES_FILE = Path(__file__).with_name("next_actions.yml")
LANGUAGES = ("en", "ja")
TOUCH_TYPES = ("call", "meeting", "email", "visit")
ACTIONS = {
    "call": ("Call the customer", "電話する"),
    "meeting": ("Book a meeting", "打ち合わせを設定する"),
    "email": ("Send an email", "メールを送る"),
    "visit": ("Visit the customer", "訪問する"),
}
DEAL_TYPE_JA = {"new": "新規", "upsell": "アップセル", "cross_sell": "クロスセル", "renewal": "更新"}
# Touches "before a win" and "on this deal now" are counted over the same window: the days before the win, the
# days before the as-of date.
TOUCH_WINDOW_DAYS = 30
# A rank band's own history is used when it holds this many won deals of the type; else the type's as a whole.
MIN_BAND_WINS = 5
# An open deal this many days without an activity carries "no touch in N days" as a risk (the orange band).
QUIET_DEAL_DAYS = 15
SIGNAL_COLUMNS = ("customer_id", "signal", "signal_value", "signal_threshold", "signal_detail")
CUSTOMER_COLUMNS = ("customer_id", "next_action_en", "next_action_ja", "risk_en", "risk_ja")


class RulesError(ValueError):
    """The rules file is not as documented: the message names the file, the signal and the key."""


@dataclass(frozen=True)
class SignalRule:
    signal: str
    priority: int
    action: dict[str, str]
    risk: dict[str, str]


def _texts(path: Path, signal: str, key: str, value: Any) -> dict[str, str]:
    if (
        not isinstance(value, dict)
        or set(value) != set(LANGUAGES)
        or not all(isinstance(v, str) for v in value.values())
    ):
        raise RulesError(f"{path.name}: signals.{signal}.{key} must give the text in en and ja")
    for language, text in value.items():
        try:
            text.format(value=1.0, threshold=1.0, detail="x")
        except (KeyError, ValueError, IndexError) as exc:
            raise RulesError(
                f"{path.name}: signals.{signal}.{key}.{language}: {exc!r}; use {{value}}, {{threshold}} or {{detail}}"
            ) from None
    return dict(value)


@lru_cache(maxsize=4)
def signal_rules(path: Path = RULES_FILE) -> dict[str, SignalRule]:
    """signal -> its rule, from the rules file (next_actions.yml beside this module)."""
    document = read_yaml(path, RulesError)
    signals = document.get("signals") if isinstance(document, dict) else None
    if not isinstance(signals, dict) or not signals:
        raise RulesError(f"{path.name}: expected a mapping `signals:` of signal name -> priority, action, risk")
    rules = {}
    for signal, body in signals.items():
        if not isinstance(body, dict) or not isinstance(body.get("priority"), int):
            raise RulesError(f"{path.name}: signals.{signal}.priority must be an integer")
        rules[str(signal)] = SignalRule(
            str(signal),
            body["priority"],
            _texts(path, signal, "action", body.get("action")),
            _texts(path, signal, "risk", body.get("risk")),
        )
    return rules


def _fill(template: str, value: Any, threshold: Any, detail: Any) -> str:
    def number(x: Any) -> float:
        return float(x) if x is not None and not (isinstance(x, float) and math.isnan(x)) else 0.0

    text = "" if detail is None or (isinstance(detail, float) and math.isnan(detail)) else str(detail)
    return template.format(value=number(value), threshold=number(threshold), detail=text)


@dataclass(frozen=True)
class CustomerAdvice:
    """A customer's signals in the rules' order: the first one's action, every one's risk."""

    actions: dict[str, str]  # language -> the most urgent signal's action; empty without a known signal
    risks: dict[str, list[str]]  # language -> every signal's risk, most urgent first
    signals: tuple[str, ...]


Fill = Callable[[str, Any, Any, Any], str]


def _filler() -> Fill:
    """_fill remembering its texts: a day's signals repeat their thresholds and most of their values and details
    (≈ 1.1M texts for 110k customers at 1M customers, a small share of them distinct)."""
    texts: dict[tuple[Any, ...], str] = {}

    def fill(template: str, value: Any, threshold: Any, detail: Any) -> str:
        key = (template, type(value), value, type(threshold), threshold, type(detail), detail)
        try:
            return texts[key]
        except KeyError:
            text = texts[key] = _fill(template, value, threshold, detail)
            return text
        except TypeError:  # an unhashable value: not remembered
            return _fill(template, value, threshold, detail)

    return fill


def advise(
    signal_rows: Iterable[tuple[str, Any, Any, Any]], rules: dict[str, SignalRule], fill: Fill = _fill
) -> CustomerAdvice:
    """One customer's (signal, value, threshold, detail) rows -> its advice; signals without a rule are left out."""
    known = sorted((r for r in signal_rows if r[0] in rules), key=lambda r: (rules[r[0]].priority, r[0]))
    actions: dict[str, str] = {}
    risks: dict[str, list[str]] = {language: [] for language in LANGUAGES}
    for signal, value, threshold, detail in known:
        rule = rules[signal]
        for language in LANGUAGES:
            if language not in actions:  # the most urgent signal's action only
                actions[language] = fill(rule.action[language], value, threshold, detail)
            risks[language].append(fill(rule.risk[language], value, threshold, detail))
    return CustomerAdvice(actions, risks, tuple(r[0] for r in known))


def _advice_by_customer(signals: pd.DataFrame, rules: dict[str, SignalRule]) -> dict[str, CustomerAdvice]:
    rows: dict[str, list[tuple[str, Any, Any, Any]]] = {}
    customers, names, values, thresholds, details = (signals[c].tolist() for c in SIGNAL_COLUMNS)
    signal_rows = zip(map(str, names), values, thresholds, details, strict=True)
    for customer, row in zip(map(str, customers), signal_rows, strict=True):
        found = rows.get(customer)
        if found is None:
            rows[customer] = [row]
        else:
            found.append(row)
    fill = _filler()
    # Customers with the same signal rows get the same advice (a third of them are distinct at 1M customers);
    # an unhashable value is advised on its own.
    known: dict[tuple[tuple[str, Any, Any, Any], ...], CustomerAdvice] = {}
    advice = {}
    for customer, found in rows.items():
        key = tuple(found)
        try:
            advice[customer] = known[key]
        except KeyError:
            advice[customer] = known[key] = advise(found, rules, fill)
        except TypeError:
            advice[customer] = advise(found, rules, fill)
    return advice


def customer_next_actions(signals: pd.DataFrame, rules: dict[str, SignalRule] | None = None) -> pd.DataFrame:
    """One row per customer with at least one signal that has a rule: its next action (the most urgent signal's)
    and its risks ("; "-joined, most urgent first), in English and Japanese. `signals` has the columns of
    marts.customer_signals (SIGNAL_COLUMNS)."""
    advice = _advice_by_customer(signals, rules or signal_rules())
    rows = [
        (customer, a.actions["en"], a.actions["ja"], "; ".join(a.risks["en"]), "、".join(a.risks["ja"]))
        for customer, a in sorted(advice.items())
        if a.signals
    ]
    return pd.DataFrame(rows, columns=list(CUSTOMER_COLUMNS))


@dataclass(frozen=True)
class TouchHistory:
    """Per (deal type, rank band) and per deal type: won deals and the share of them with each touch type in the
    TOUCH_WINDOW_DAYS before winning, most common first."""

    shares: dict[tuple[str, str | None], list[tuple[str, float]]]
    wins: dict[tuple[str, str | None], int]

    @classmethod
    def from_frame(cls, preceding: pd.DataFrame) -> TouchHistory:
        """`preceding`: deal_type, rank (None for the type as a whole), activity_type, share, won_deals."""
        shares: dict[tuple[str, str | None], list[tuple[str, float]]] = {}
        wins: dict[tuple[str, str | None], int] = {}
        for r in preceding.itertuples(index=False):
            key = (str(r.deal_type), None if pd.isna(r.rank) else str(r.rank))
            shares.setdefault(key, []).append((str(r.activity_type), float(r.share)))
            wins[key] = int(r.won_deals)
        for touches in shares.values():
            touches.sort(key=lambda t: (-t[1], t[0]))
        return cls(shares, wins)

    def scope(self, deal_type: str, rank: str | None) -> tuple[str | None, list[tuple[str, float]]]:
        """The rank band's history when it is large enough, else the deal type's: (rank or None, touches)."""
        if rank is not None and self.wins.get((deal_type, rank), 0) >= MIN_BAND_WINS:
            return rank, self.shares[(deal_type, rank)]
        return None, self.shares.get((deal_type, None), [])


def _touch_reason(touch: str, share: float, deal_type: str, rank: str | None, missing: bool) -> tuple[str, str]:
    en, ja = ACTIONS[touch]
    label_en = deal_type.replace("_", "-") + (f" deals of rank {rank}" if rank else " deals")
    label_ja = (f"ランク{rank}の" if rank else "") + f"受注した{DEAL_TYPE_JA.get(deal_type, deal_type)}商談"
    if not missing:
        return f"{en} (before {share:.0%} of won {label_en})", f"{ja}（{label_ja}の{share:.0%}で実施）"
    return (
        f"{en} ({share:.0%} of won {label_en} had one in their last {TOUCH_WINDOW_DAYS} days; this deal has none)",
        f"{ja}（{label_ja}の{share:.0%}が受注前{TOUCH_WINDOW_DAYS}日以内に実施、この商談では未実施）",
    )


def _deal_action(
    deal_type: str,
    rank: str | None,
    recent_touches: frozenset[str],
    advice: CustomerAdvice | None,
    history: TouchHistory,
) -> tuple[str, str]:
    """deal_next_action's next action (en, ja)."""
    scoped_rank, touches = history.scope(deal_type, rank)
    missing = next(((t, s) for t, s in touches if t not in recent_touches and s > 0), None)
    parts: dict[str, list[str]] = {language: [] for language in LANGUAGES}
    if advice is not None and advice.actions:
        for language in LANGUAGES:
            parts[language].append(advice.actions[language])
    if missing is not None:
        en, ja = _touch_reason(missing[0], missing[1], deal_type, scoped_rank, missing=True)
        parts["en"].append(en)
        parts["ja"].append(ja)
    if not parts["en"]:
        en, ja = (
            _touch_reason(touches[0][0], touches[0][1], deal_type, scoped_rank, False) if touches else ACTIONS["call"]
        )
        parts["en"].append(en)
        parts["ja"].append(ja)
    return "; ".join(parts["en"]), "。".join(parts["ja"])


def _deal_risk(days_quiet: int, advice: CustomerAdvice | None) -> tuple[str | None, str | None]:
    """deal_next_action's risk (en, ja; None when there is none)."""
    risks: dict[str, list[str]] = {language: [] for language in LANGUAGES}
    if days_quiet >= QUIET_DEAL_DAYS:
        risks["en"].append(f"no activity on this deal in {days_quiet} days")
        risks["ja"].append(f"この商談で{days_quiet}日間活動なし")
    if advice is not None:
        for language in LANGUAGES:
            risks[language].extend(advice.risks[language])
    return "; ".join(risks["en"]) or None, "、".join(risks["ja"]) or None


def deal_next_action(
    deal_type: str,
    rank: str | None,
    recent_touches: frozenset[str],
    days_quiet: int,
    advice: CustomerAdvice | None,
    history: TouchHistory,
) -> dict[str, str | None]:
    """One open deal's next action and risk (en, ja): its customer's most urgent signal's action, then the touch
    most common before similar wins (same type, same rank band) that it lacks in the last TOUCH_WINDOW_DAYS; with
    neither, the touch most common before wins of its type. Risk: its days without an activity from
    QUIET_DEAL_DAYS on, then its customer's signal risks (None when there is none)."""
    action_en, action_ja = _deal_action(deal_type, rank, recent_touches, advice, history)
    risk_en, risk_ja = _deal_risk(days_quiet, advice)
    return {"next_action_en": action_en, "next_action_ja": action_ja, "risk_en": risk_en, "risk_ja": risk_ja}


def deal_next_actions(deals: pd.DataFrame, signals: pd.DataFrame, preceding: pd.DataFrame) -> pd.DataFrame:
    """Per row of `deals` (deal_type, customer_id, rank, recent_touch_types: comma-separated touch types of the
    customer in the last TOUCH_WINDOW_DAYS, days_since_last_activity), in its order: next_action_en/ja and
    risk_en/ja (deal_next_action). `signals`: the customers' rows of marts.customer_signals; `preceding`: the
    touch history (TouchHistory.from_frame).

    Deals alike get the same texts, so each is made once: the action per (type, rank, recent touch types, the
    customer's most urgent signal's action), the risk per (quiet days, or none under QUIET_DEAL_DAYS; customer
    advice: customers with the same signal rows share one advice object, _advice_by_customer)."""
    advice = _advice_by_customer(signals, signal_rules())
    history = TouchHistory.from_frame(preceding)
    actions: dict[tuple[Any, ...], tuple[str, str]] = {}
    risks: dict[tuple[Any, ...], tuple[str | None, str | None]] = {}
    rows = []
    recents: dict[str, frozenset[str]] = {}  # a few distinct touch-type lists
    columns = ("deal_type", "customer_id", "rank", "recent_touch_types", "days_since_last_activity")
    missing = (deals["rank"].isna().tolist(), deals["recent_touch_types"].isna().tolist())
    for deal_type, customer_id, rank, recent_types, days, no_rank, no_recent in zip(
        *(deals[c].tolist() for c in columns), *missing, strict=True
    ):
        deal_type, days = str(deal_type), int(days)
        rank = None if no_rank else str(rank)
        recent = frozenset() if no_recent else recents.get(str(recent_types))
        if recent is None:
            recent = recents[str(recent_types)] = frozenset(str(recent_types).split(","))
        found = advice.get(str(customer_id))
        # the action reads only the advice's actions, the risk its risks
        key = (deal_type, rank, recent, tuple(found.actions.items()) if found is not None and found.actions else None)
        action = actions.get(key)
        if action is None:
            action = actions[key] = _deal_action(deal_type, rank, recent, found, history)
        quiet = (days if days >= QUIET_DEAL_DAYS else None, id(found))
        risk = risks.get(quiet)
        if risk is None:
            risk = risks[quiet] = _deal_risk(days, found)
        rows.append((*action, *risk))
    return pd.DataFrame(rows, columns=["next_action_en", "next_action_ja", "risk_en", "risk_ja"], index=deals.index)
