"""Campaign files: campaigns/<name>.yml parsed and validated with errors naming file and key."""

from __future__ import annotations

import difflib
import functools
import json
import re
from collections.abc import Collection
from pathlib import Path
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from kizuna.core.connection import scratch
from kizuna.core.yaml_files import read_yaml

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
    with scratch() as con:
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


def closest(word: str, choices: Collection[str], n: int = 3) -> list[str]:
    """The valid names nearest a misspelt one (a typo's suggestions), best first; [] when none is close."""
    return difflib.get_close_matches(word, sorted(choices), n=n, cutoff=0.6)


def suggestion(word: str, choices: Collection[str]) -> str:
    """'did you mean x?' for a close name, else every valid name (there are few), for one-line errors."""
    near = closest(word, choices)
    if near:
        return "did you mean " + " or ".join(near) + "?"
    return "valid: " + (", ".join(sorted(choices)) or "none")


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in get_args(annotation) for m in _models_in(arg)]


def _keys_at(loc: tuple[int | str, ...]) -> tuple[str, list[str]]:
    """A pydantic error location as the file's keys (union members' tags left out), and the keys valid at its
    last step: e.g. ('audience', 'tenure_months', 'mn') -> ('audience.tenure_months.mn', ['max', 'min'])."""
    models: list[type[BaseModel]] = [Campaign]
    shown: list[str] = []
    for part in loc:
        if isinstance(part, int):
            shown.append(str(part))
            continue
        tagged = [m for m in models if m.__name__ == part]
        if tagged or part.startswith(("literal[", "list[")):  # a union member's tag, not a key of the file
            models = tagged or models
            continue
        shown.append(part)
        field = next((m.model_fields[part] for m in models if part in m.model_fields), None)
        valid = sorted({k for m in models for k in m.model_fields})
        models = _models_in(field.annotation) if field is not None else []
    return ".".join(shown) or "(top level)", valid


def _problem(error: Any) -> str:
    where, valid = _keys_at(tuple(error["loc"]))
    if error["type"] == "extra_forbidden":  # a misspelt key: say which keys exist there, nearest first
        key = str(error["loc"][-1])
        return f"key {where}: unknown key {key!r} ({suggestion(key, valid)})"
    return f"key {where}: {error['msg']}"


def _read_yaml(path: Path) -> Any:
    return read_yaml(path, CampaignFileError)


def check_template(campaign: Campaign, templates: Collection[str], file: str | None = None) -> None:
    """An email campaign's template must be one of the template folders, or nothing could ever be sent."""
    if campaign.template is None or campaign.kind != "email" or campaign.template in templates:
        return
    raise CampaignFileError(
        f"{file or campaign.name + '.yml'}: key template: no template {campaign.template!r} under templates/ "
        f"({suggestion(campaign.template, templates)})"
    )


def load_campaign(path: Path, templates: Collection[str] | None = None) -> Campaign:
    """One campaign file, validated; given the template folders (`templates`), its template must be one."""
    doc = _read_yaml(path)
    if not isinstance(doc, dict):
        raise CampaignFileError(f"{path.name}: expected a mapping of keys (name, template, audience, ...)")
    try:
        campaign = Campaign.model_validate(doc)
    except ValidationError as exc:
        problems = "; ".join(_problem(e) for e in exc.errors())
        raise CampaignFileError(f"{path.name}: {problems}") from exc
    if campaign.name != path.stem:
        raise CampaignFileError(f"{path.name}: key name: '{campaign.name}' must match the file name '{path.stem}'")
    if templates is not None:
        check_template(campaign, templates, path.name)
    return campaign


def load_campaigns(
    campaigns_dir: Path, *, enabled_only: bool = True, templates: Collection[str] | None = None
) -> list[Campaign]:
    campaigns = [load_campaign(p, templates) for p in sorted(campaigns_dir.glob("*.yml"))]
    return [c for c in campaigns if c.enabled or not enabled_only]


def campaign_path(campaigns_dir: Path, name: str) -> Path:
    """The file of the campaign called `name`: a name, never a path, so nothing outside campaigns_dir runs."""
    known = sorted(p.stem for p in campaigns_dir.glob("*.yml"))
    if not _NAME.match(name):
        raise CampaignFileError(
            f"{name!r} is not a campaign name: give the name of a file in {campaigns_dir} without .yml, "
            f"not a path ({suggestion(Path(name).stem, known)})"
        )
    path = campaigns_dir / f"{name}.yml"
    if not path.is_file():
        raise CampaignFileError(f"no campaign {name!r} in {campaigns_dir} ({suggestion(name, known)})")
    return path


def find_campaign(campaigns_dir: Path, name: str, templates: Collection[str] | None = None) -> Campaign:
    return load_campaign(campaign_path(campaigns_dir, name), templates)
