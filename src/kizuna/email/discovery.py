"""What templates exist: the folders under templates/, their complete locales and their meta.yml."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from kizuna.core.yaml_files import read_yaml
from kizuna.email.errors import OutsideTemplatesError, TemplateSourceError
from kizuna.email.paths import is_outside, outside_message

LAYOUTS_DIR = "_layouts"
_LOCALE_FILE = re.compile(r"^(subject|body)\.([A-Za-z_-]+)\.(txt|html)\.j2$")


class TemplateMeta(BaseModel):
    """meta.yml of one template folder."""

    model_config = ConfigDict(extra="forbid")

    description: str
    default_locale: str = "ja"
    from_name: str | None = None
    from_email: str | None = None
    reply_to: str | None = None
    categories: list[str] = Field(default_factory=list, max_length=10)  # SendGrid: at most 10
    unsubscribe_group: int | None = None
    variables: list[str] = Field(default_factory=list)
    sample_context: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check(self) -> TemplateMeta:
        too_long = [c for c in self.categories if not c or len(c) > 255]
        if too_long:
            raise ValueError(f"categories must be 1-255 characters (SendGrid): {too_long}")
        missing = [v for v in self.variables if v not in self.sample_context]
        if missing:
            raise ValueError(f"sample_context lacks declared variables {missing}")
        return self


class TemplateCatalog:
    """The template folders under ``templates_dir``; meta.yml and locales are read again only when their files
    change, and their files are stat'ed at most every ``reload_seconds``."""

    def __init__(self, templates_dir: Path, reload_seconds: float) -> None:
        self.templates_dir = templates_dir
        self._reload_seconds = reload_seconds
        self._meta_cache: dict[str, tuple[int, TemplateMeta]] = {}
        self._locales_cache: dict[str, tuple[int, tuple[str, ...]]] = {}
        # meta() and locales() answer from here; their files are stat'ed at most every reload_seconds.
        self._fresh: dict[str, tuple[float, Any]] = {}

    def templates(self) -> list[str]:
        """Template folders (those with a meta.yml), excluding _layouts and hidden folders."""
        return sorted(
            p.name
            for p in self.templates_dir.iterdir()
            if p.is_dir() and not p.name.startswith(("_", ".")) and (p / "meta.yml").is_file()
        )

    def locales(self, template: str) -> tuple[str, ...]:
        """Locales with a complete variant (subject, HTML body and text body)."""
        recent = self._recent(f"locales:{template}")
        if recent is not None:
            return recent
        locales = self._locales(template)
        self._fresh[f"locales:{template}"] = (time.monotonic(), locales)
        return locales

    def _locales(self, template: str) -> tuple[str, ...]:
        folder = self.folder(template)
        mtime = folder.stat().st_mtime_ns  # changes when a file is added, removed or renamed
        cached = self._locales_cache.get(template)
        if cached and cached[0] == mtime:
            return cached[1]
        found: dict[str, set[str]] = {}
        for path in folder.iterdir():
            match = _LOCALE_FILE.match(path.name)
            if match:
                found.setdefault(match.group(2), set()).add(f"{match.group(1)}.{match.group(3)}")
        complete = {"subject.txt", "body.html", "body.txt"}
        locales = tuple(sorted(loc for loc, parts in found.items() if complete <= parts))
        self._locales_cache[template] = (mtime, locales)
        return locales

    def _recent(self, key: str) -> Any:
        """A meta/locales value checked against the files less than reload_seconds ago (no file stats then)."""
        hit = self._fresh.get(key)
        if hit is not None and time.monotonic() - hit[0] < self._reload_seconds:
            return hit[1]
        return None

    def meta(self, template: str) -> TemplateMeta:
        recent = self._recent(f"meta:{template}")
        if recent is not None:
            return recent
        meta = self._meta(template)
        self._fresh[f"meta:{template}"] = (time.monotonic(), meta)
        return meta

    def _meta(self, template: str) -> TemplateMeta:
        path = self.folder(template) / "meta.yml"
        try:
            mtime = path.stat().st_mtime_ns
        except FileNotFoundError:
            raise TemplateSourceError(f"{template}/meta.yml is missing: every template folder needs one") from None
        if is_outside(self.templates_dir, path):
            raise OutsideTemplatesError(outside_message(self.templates_dir, f"{template}/meta.yml"))
        cached = self._meta_cache.get(template)
        if cached and cached[0] == mtime:
            return cached[1]
        raw = read_yaml(path, TemplateSourceError, f"{template}/meta.yml") or {}
        try:
            meta = TemplateMeta.model_validate(raw)
        except ValidationError as exc:
            raise TemplateSourceError(f"{template}/meta.yml: {exc}") from None
        self._meta_cache[template] = (mtime, meta)
        return meta

    def folder(self, template: str) -> Path:
        """The template's folder, refused when the name is not a folder name or the folder leads outside."""
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", template) or template.startswith(LAYOUTS_DIR):
            raise TemplateSourceError(f"{template!r} is not a template folder name")
        folder = self.templates_dir / template
        if is_outside(self.templates_dir, folder):
            raise OutsideTemplatesError(outside_message(self.templates_dir, template))
        if not folder.is_dir():
            raise TemplateSourceError(f"template {template!r} does not exist under {self.templates_dir}")
        return folder

    def resolve_locale(self, template: str, locale: str, meta: TemplateMeta) -> str:
        """The locale a message in ``locale`` uses: itself, its language, else the template's default."""
        locales = self.locales(template)
        for candidate in (locale, str(locale).split("-")[0].split("_")[0].lower(), meta.default_locale):
            if candidate in locales:
                return candidate
        raise TemplateSourceError(
            f"{template}: neither locale {locale!r} nor default_locale {meta.default_locale!r} has a "
            f"complete variant (found {list(locales)})"
        )
