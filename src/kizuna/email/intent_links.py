"""Links a template marks as buying intent (intent_links.yml next to meta.yml): the file's schema, the match rule, lint.

A person's click on such a link makes the customer a CSQL for its owner or the inside-sales queue (dbt model
engagement_csqls; docs/tracking.md). The file, for marketers:

    intent_links:
      - url: https://example.co.jp/pricing        # the link as written in the template
        intent: pricing                          # pricing, upgrade or contact
        name: 料金ページ                          # optional: how reps will see it
      - url: https://example.co.jp/contact/*     # a trailing * matches every link starting with the rest

The match rule (``IntentLink.matches``, and the same rule in SQL in int_email_clicks_matched_to_intents): a url
without ``*`` matches the clicked link exactly, or with a query string or fragment after it; a url ending in
``*`` matches every link that starts with what comes before the ``*``.
"""

from __future__ import annotations

import os
from html.parser import HTMLParser
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from kizuna.email.paths import is_outside, outside_message

if TYPE_CHECKING:
    from kizuna.email.render import TemplateRenderer

FILE_NAME = "intent_links.yml"
INTENT_KINDS = ("pricing", "upgrade", "contact")
Intent = Literal["pricing", "upgrade", "contact"]


class IntentLinksError(ValueError):
    """An intent_links.yml is invalid; the message names the file, the line, the entry and the key."""


class IntentLink(BaseModel):
    """One link whose click shows buying intent."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str = Field(max_length=2000)
    intent: Intent
    name: str = Field("", max_length=200)

    @field_validator("url")
    @classmethod
    def _trackable(cls, value: str) -> str:
        if value != value.strip() or any(ch.isspace() for ch in value):
            raise ValueError("must not contain spaces or line breaks")
        if not value.lower().startswith(("https://", "http://")):
            raise ValueError(
                "must start with https:// or http://: SendGrid tracks clicks on web links only "
                "(a mailto: or tel: link never reports a click)"
            )
        if "*" in value[:-1]:
            raise ValueError("may contain * only as its last character (to match every link starting with the rest)")
        if value.endswith("*") and value.count("/") < 3:
            raise ValueError("a * needs at least the site and a path before it (e.g. https://example.co.jp/pricing*)")
        return value

    @property
    def is_prefix(self) -> bool:
        return self.url.endswith("*")

    @property
    def prefix(self) -> str:
        """The url without its trailing * (the part compared with clicked links)."""
        return self.url[:-1] if self.is_prefix else self.url

    def matches(self, clicked: str) -> bool:
        if self.is_prefix:
            return clicked.startswith(self.prefix)
        return clicked == self.url or clicked.startswith((self.url + "?", self.url + "#"))


class _File(BaseModel):
    model_config = ConfigDict(extra="forbid")

    intent_links: list[IntentLink] = Field(default_factory=list)


def _line_of(text: str, index: int, key: str | None) -> int | None:
    """The line (1-based) of entry ``index`` of intent_links, or of its ``key``, for error messages."""
    try:
        root = yaml.compose(text)
    except yaml.YAMLError:
        return None
    if not isinstance(root, yaml.MappingNode):
        return None
    for key_node, value_node in root.value:
        if getattr(key_node, "value", None) == "intent_links" and isinstance(value_node, yaml.SequenceNode):
            if index >= len(value_node.value):
                return None
            item = value_node.value[index]
            if key and isinstance(item, yaml.MappingNode):
                for item_key, _ in item.value:
                    if getattr(item_key, "value", None) == key:
                        return int(item_key.start_mark.line) + 1
            return int(item.start_mark.line) + 1
    return None


def parse_intent_links(text: str, where: str) -> list[IntentLink]:
    """The links declared in one file's text; ``where`` (e.g. "upsell/intent_links.yml") starts every error."""
    try:
        doc: Any = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise IntentLinksError(f"{where}: not valid YAML: {exc}") from None
    if doc is None:
        return []
    if not isinstance(doc, dict):
        raise IntentLinksError(f"{where}: expected a mapping with the key intent_links (a list of links)")
    try:
        links = _File.model_validate(doc).intent_links
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            loc = [str(p) for p in error["loc"]]
            if len(loc) >= 2 and loc[0] == "intent_links" and loc[1].isdigit():
                index, key = int(loc[1]), (loc[2] if len(loc) > 2 else None)
                line = _line_of(text, index, key)
                at = f"line {line}, " if line else ""
                what = f"entry {index + 1}" + (f", key {key}" if key else "")
                message = str(error["msg"]).removeprefix("Value error, ")
                if error["type"] == "literal_error":
                    message = f"must be one of {', '.join(INTENT_KINDS)} (got {error.get('input')!r})"
                elif error["type"] == "missing":
                    message = "is missing (an entry needs url and intent)"
                elif error["type"] == "extra_forbidden":
                    message = "is not a known key (an entry has url, intent and, optionally, name)"
                problems.append(f"{where}: {at}{what}: {message}")
            else:
                problems.append(f"{where}: key {'.'.join(loc) or '(top level)'}: {error['msg']}")
        raise IntentLinksError("; ".join(problems)) from None
    seen: dict[str, int] = {}
    for index, link in enumerate(links):
        if link.url in seen:
            line = _line_of(text, index, "url")
            raise IntentLinksError(
                f"{where}: {f'line {line}, ' if line else ''}entry {index + 1}: url {link.url} is already entry "
                f"{seen[link.url] + 1}; a link has one intent"
            )
        seen[link.url] = index
    return links


def load_intent_links(templates_dir: Path, template: str) -> list[IntentLink]:
    """The intent links of one template folder; none when it has no intent_links.yml."""
    path = Path(templates_dir) / template / FILE_NAME
    if os.path.lexists(path) and is_outside(Path(templates_dir), path):
        raise IntentLinksError(outside_message(Path(templates_dir), f"{template}/{FILE_NAME}"))
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    except (OSError, UnicodeDecodeError) as exc:
        raise IntentLinksError(f"{template}/{FILE_NAME}: cannot be read: {exc}") from None
    return parse_intent_links(text, f"{template}/{FILE_NAME}")


def template_folders(templates_dir: Path) -> list[str]:
    """Template folders (those with a meta.yml), as the renderer finds them: not _layouts, not hidden."""
    root = Path(templates_dir)
    if not root.is_dir():
        return []
    return sorted(
        p.name
        for p in root.iterdir()
        if p.is_dir() and not p.name.startswith(("_", ".")) and (p / "meta.yml").is_file()
    )


class _Hrefs(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self.hrefs += [value.strip() for name, value in attrs if name == "href" and value]


def links_in(html: str) -> list[str]:
    """The href of every <a> in an HTML document."""
    parser = _Hrefs()
    parser.feed(html)
    parser.close()
    return parser.hrefs


def lint_intent_links(renderer: TemplateRenderer, template: str) -> list[str]:
    """Problems of one template's intent_links.yml; [] when it has none or every entry is sound.

    Each declared link must match a link of the template's HTML body in at least one locale (rendered with
    meta.yml's sample_context), and none may match the unsubscribe link.
    """
    try:
        links = load_intent_links(renderer.templates_dir, template)
    except IntentLinksError as exc:
        return [str(exc)]
    if not links:
        return []
    from kizuna.email.render import EmailTemplateError

    bodies: dict[str, list[str]] = {}
    unsubscribe: set[str] = set()
    try:
        locales = renderer.locales(template)
    except EmailTemplateError:
        return []  # the template lint reports the folder itself
    for locale in locales:
        try:
            rendered = renderer.render_sample(template, locale)
        except EmailTemplateError:
            continue  # the template lint reports why the sample does not render
        bodies[locale] = links_in(rendered.html)
        unsubscribe.add(rendered.unsubscribe_url)
    if not bodies:
        return []
    problems: list[str] = []
    files = " or ".join(f"body.{locale}.html.j2" for locale in bodies)
    for index, link in enumerate(links):
        where = f"{template}/{FILE_NAME}: entry {index + 1} ({link.url})"
        if any(link.matches(url) for url in unsubscribe):
            problems.append(f"{where}: matches the unsubscribe link; make the url more specific")
        elif not any(link.matches(href) for hrefs in bodies.values() for href in hrefs):
            problems.append(
                f"{where}: matches no link of {files} (rendered with sample_context); "
                "copy the href from the template, or end the url with * to match links that start with it"
            )
    return problems
