"""Campaign files: campaigns/<name>.yml parsed and validated with errors naming file and key."""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path
from typing import Any, Literal

import duckdb
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from kizuna.yaml_files import read_yaml

_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
# A table a `where` may read: marts.<identifier>. A quoted name with a dot ("x.csv") is a file to DuckDB.
_TABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")

OwnerPolicy = Literal["exclude", "cc_owner", "send_from_owner", "owner_digest", "ignore"]


class CampaignFileError(ValueError):
    """A campaign file is invalid; the message names the file and the key."""


class _Strict(BaseModel):
    # NaN passes every range check (nan > 3 is false) and would select nobody, or everybody, in SQL.
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class Range(_Strict):
    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _ordered(self) -> Range:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min ({self.min}) is greater than max ({self.max})")
        return self


class SignalRule(_Strict):
    """The customer entered this signal (marts.customer_signals) within the last `within_days` days."""

    name: str
    within_days: int = Field(7, ge=0, le=366)


class Audience(_Strict):
    """Who qualifies: filters over the customers, subscription_renewals, customer_signals and customer_scores marts."""

    status: Literal["active", "churned"] | None = "active"
    churned_within_days: Range | None = Field(None, description="Days since the churn month began.")
    contract_term_months: list[int] | None = None
    tenure_months: Range | None = None
    ranks: list[Literal["A", "B", "C"]] | None = None
    products_held: list[str] | None = None
    products_not_held: list[str] | None = None
    plans: list[str] | None = None
    renewal_within_days: int | None = Field(None, ge=0, le=366)
    signals: list[SignalRule] | None = None
    mrr: Range | None = None
    plan_usage_ratio: Range | None = None
    days_since_last_touch: Range | None = None
    churn_risk: Range | None = Field(None, description="marts.customer_scores of the run's as_of, 0..1.")
    expansion_propensity: Range | None = Field(None, description="marts.customer_scores of the run's as_of, 0..1.")
    where: str | None = Field(None, description="Extra SQL predicate over the customers mart (alias c).")

    @field_validator("churn_risk", "expansion_propensity")
    @classmethod
    def _probability(cls, v: Range | None) -> Range | None:
        for bound in ("min", "max"):
            value = getattr(v, bound, None)
            if value is not None and not 0 <= value <= 1:
                raise ValueError(f"{bound} must be between 0 and 1 (a probability, e.g. 0.6), not {value}")
        return v

    @field_validator("where")
    @classmethod
    def _single_predicate(cls, v: str | None) -> str | None:
        if v is not None and (";" in v or "--" in v or "/*" in v):
            raise ValueError("must be a single SQL predicate: no ';' and no comments")
        if v is not None and _CONTROL.search(v):
            raise ValueError("must be plain text: it holds a control character")
        if v is not None:
            _check_predicate_reads_marts_only(v)
        return v


def _check_predicate_reads_marts_only(predicate: str) -> None:
    problem = _predicate_problem(predicate)
    if problem:
        raise ValueError(problem)


@functools.lru_cache(maxsize=256)  # a DuckDB connection per check costs 10-100 ms; files are re-read often
def _predicate_problem(predicate: str) -> str | None:
    """Why a `where` may not run (None if it may): it reads marts tables only, no files, URLs, other schemas or
    table functions, and is one predicate.

    The predicate runs inside the selection query on the writing connection; without this a campaign file could
    read any local file (read_text('/proc/self/environ') holds the API key) into an error message or a
    selection, or make DuckDB fetch extensions from the network. DuckDB's own parser gives the tree.
    """
    with duckdb.connect(":memory:") as con:
        row = con.execute(
            "SELECT json_serialize_sql(?::VARCHAR)", [f"SELECT 1 FROM marts.customers AS c WHERE ({predicate})"]
        ).fetchone()
    try:
        tree = json.loads(row[0]) if row else {"error": True}
    except RecursionError:  # the parse tree of e.g. NOT NOT ... NOT x nests deeper than Python's JSON reader goes
        return "is nested too deeply to be checked; write it more simply"
    if tree.get("error") or len(tree.get("statements", [])) != 1:
        return f"is not a valid SQL predicate ({tree.get('error_message', 'unparsable')})"
    if tree["statements"][0]["node"].get("type") != "SELECT_NODE":
        return "must be a single SQL predicate (no UNION, no second query)"

    pending: list[Any] = [tree]  # a stack, not recursion: the tree may be as deep as the reader allowed
    while pending:
        node = pending.pop()
        if isinstance(node, dict):
            kind = node.get("type")
            if kind == "TABLE_FUNCTION":
                name = node.get("function", {}).get("function_name", "?")
                return f"may read marts tables only: table function {name}() is not allowed"
            if kind == "BASE_TABLE" and (
                node.get("schema_name") != "marts"
                or node.get("catalog_name")
                or not _TABLE_NAME.match(str(node.get("table_name", "")))
            ):
                qualified = ".".join(node.get("qualified_name", {}).get("path") or [str(node.get("table_name"))])
                return f"may read marts tables only (marts.<table>): {qualified!r} is not one"
            pending.extend(node.values())
        elif isinstance(node, list):
            pending.extend(node)
    return None


class Roles(_Strict):
    roles: list[str] = Field(min_length=1)


class Frequency(_Strict):
    """At most `max_emails` marketing emails per contact in `days` days, across all campaigns."""

    max_emails: int = Field(ge=1)
    days: int = Field(ge=1, le=366)


class Campaign(_Strict):
    """One campaign file."""

    name: str
    description: str = ""
    kind: Literal["email", "call_list"] = "email"
    template: str | None = Field(None, validate_default=True)
    locale: Literal["ja", "en"] = "ja"
    enabled: bool = True
    audience: Audience = Audience()
    contacts: Literal["primary", "all_opted_in"] | Roles = "primary"
    owner_policy: OwnerPolicy = Field(
        "exclude", description="What happens to customers with a dedicated account executive."
    )
    holdout_percent: float = Field(0.0, ge=0, le=50)
    max_recipients: int = Field(10_000, ge=1)
    frequency: Frequency | None = Field(None, description="Stricter than the global cap (KIZUNA_FREQUENCY_*).")
    hypothesis: str = Field("", description="Why these customers, in a rep's words (call lists, reasons).")
    next_action: str = Field("", description="What a rep should do (call lists).")

    @field_validator("name")
    @classmethod
    def _valid_name(cls, v: str) -> str:
        if not _NAME.match(v):
            raise ValueError("use lower-case letters, digits and _ (it becomes part of keys and tags)")
        return v

    @field_validator("template")
    @classmethod
    def _template_for_email(cls, v: str | None, info: ValidationInfo) -> str | None:
        # A field validator, not a model one, so the error names the key `template` (a model's names no key).
        if info.data.get("kind") == "email" and not v:  # no kind in data: it was itself invalid
            raise ValueError("an email campaign needs a template (a folder under templates/)")
        return v


def _location(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(p) for p in loc) or "(top level)"


def _read_yaml(path: Path) -> Any:
    return read_yaml(path, CampaignFileError)


def load_campaign(path: Path) -> Campaign:
    doc = _read_yaml(path)
    if not isinstance(doc, dict):
        raise CampaignFileError(f"{path.name}: expected a mapping of keys (name, template, audience, ...)")
    try:
        campaign = Campaign.model_validate(doc)
    except ValidationError as exc:
        problems = "; ".join(f"key {_location(e['loc'])}: {e['msg']}" for e in exc.errors())
        raise CampaignFileError(f"{path.name}: {problems}") from exc
    if campaign.name != path.stem:
        raise CampaignFileError(f"{path.name}: key name: '{campaign.name}' must match the file name '{path.stem}'")
    return campaign


def load_campaigns(campaigns_dir: Path, *, enabled_only: bool = True) -> list[Campaign]:
    campaigns = [load_campaign(p) for p in sorted(campaigns_dir.glob("*.yml"))]
    return [c for c in campaigns if c.enabled or not enabled_only]


def find_campaign(campaigns_dir: Path, name: str) -> Campaign:
    path = campaigns_dir / f"{name}.yml"
    if not path.exists():
        known = ", ".join(p.stem for p in sorted(campaigns_dir.glob("*.yml"))) or "none"
        raise CampaignFileError(f"no campaign {name!r} in {campaigns_dir} (known: {known})")
    return load_campaign(path)
