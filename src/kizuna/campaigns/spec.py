"""Campaign files: campaigns/<name>.yml parsed and validated with errors naming file and key."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


class CampaignFileError(ValueError):
    """A campaign file is invalid; the message names the file and the key."""


class Range(BaseModel):
    model_config = ConfigDict(extra="forbid")
    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _ordered(self) -> Range:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min ({self.min}) is greater than max ({self.max})")
        return self


class Audience(BaseModel):
    """Who qualifies, as filters over the customers and subscription_renewals marts."""

    model_config = ConfigDict(extra="forbid")
    status: Literal["active", "churned"] | None = "active"
    contract_term_months: list[int] | None = None
    tenure_months: Range | None = None
    renewal_within_days: int | None = Field(None, ge=0, le=366)
    mrr: Range | None = None
    where: str | None = Field(None, description="Extra SQL predicate over the customers mart (alias c).")

    @field_validator("where")
    @classmethod
    def _single_predicate(cls, v: str | None) -> str | None:
        if v is not None and (";" in v or "--" in v or "/*" in v):
            raise ValueError("must be a single SQL predicate: no ';' and no comments")
        return v


class Campaign(BaseModel):
    """One campaign file."""

    model_config = ConfigDict(extra="forbid")
    name: str
    description: str = ""
    template: str
    locale: Literal["ja", "en"] = "ja"
    enabled: bool = True
    audience: Audience = Audience()
    contacts: Literal["primary", "all_opted_in"] = "primary"
    max_recipients: int = Field(10_000, ge=1)

    @field_validator("name")
    @classmethod
    def _valid_name(cls, v: str) -> str:
        if not _NAME.match(v):
            raise ValueError("use lower-case letters, digits and _ (it becomes part of keys and tags)")
        return v


def _location(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(p) for p in loc) or "(top level)"


def load_campaign(path: Path) -> Campaign:
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise CampaignFileError(f"{path.name}: not valid YAML: {exc}") from exc
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
