"""Lint of one template folder: problems that stop it rendering, and warnings where HTML and text disagree."""

from __future__ import annotations

from collections.abc import Callable

import jinja2
import jinja2.meta

from kizuna.email.consistency import compare
from kizuna.email.discovery import TemplateCatalog
from kizuna.email.errors import EmailTemplateError
from kizuna.email.model import RenderedEmail
from kizuna.email.paths import links_leaving, outside_message
from kizuna.email.sandbox import Sandboxes

INJECTED = frozenset({"sender", "unsubscribe_url", "locale"})  # what the renderer gives every template


def lint(
    template: str,
    catalog: TemplateCatalog,
    sandboxes: Sandboxes,
    render_sample: Callable[[str, str], RenderedEmail],
) -> list[str]:
    """Problems of one template folder; an empty list means every locale renders its sample_context."""
    try:
        leaving = links_leaving(catalog.templates_dir, catalog.folder(template))
    except EmailTemplateError as exc:
        return [str(exc)]
    if leaving:  # reported whether used or not: the next edit could include it
        return [outside_message(catalog.templates_dir, link) for link in leaving]
    try:
        meta = catalog.meta(template)
        locales = catalog.locales(template)
    except EmailTemplateError as exc:
        return [str(exc)]
    if not locales:
        return [f"{template}: no complete locale (needs subject.<l>.txt.j2, body.<l>.html.j2, body.<l>.txt.j2)"]
    problems: list[str] = []
    if meta.default_locale not in locales:
        problems.append(f"{template}: default_locale {meta.default_locale!r} has no variant (has {locales})")
    declared = set(meta.variables) | INJECTED
    for locale in locales:
        for kind in ("subject.{}.txt.j2", "body.{}.html.j2", "body.{}.txt.j2"):
            name = f"{template}/{kind.format(locale)}"
            try:
                used = _variables_used(sandboxes, name)
            except EmailTemplateError as exc:
                problems.append(str(exc))
                continue
            undeclared = sorted(used - declared)
            if undeclared:
                problems.append(f"{name} uses {undeclared}, not declared in meta.yml variables")
        try:
            render_sample(template, locale)
        except EmailTemplateError as exc:
            problems.append(str(exc))
    # A broken file is found both by reading it (variables used) and by rendering it: say it once.
    return list(dict.fromkeys(problems))


def lint_warnings(
    template: str, catalog: TemplateCatalog, sample_contents: Callable[[str, str], tuple[str, str]]
) -> list[str]:
    """Where a locale's HTML and text versions differ in links or sentences (kizuna.email.consistency);
    warnings, not problems: the email still renders and sends. ``sample_contents`` gives a locale's HTML and
    text ``content`` blocks rendered with the sample_context."""
    try:
        locales = catalog.locales(template)
    except EmailTemplateError:
        return []  # lint reports the folder itself
    warnings: list[str] = []
    for locale in locales:
        try:
            html, text = sample_contents(template, locale)
        except EmailTemplateError:
            continue  # lint reports why the sample does not render
        where = f"{template}/body.{locale}.html.j2 and body.{locale}.txt.j2"
        warnings += [f"{where}: {difference}" for difference in compare(html, text)]
    return warnings


def _variables_used(sandboxes: Sandboxes, name: str) -> set[str]:
    used: set[str] = set()
    for file in sandboxes.files(name):
        try:  # compiling for introspection finds what parsing does not, e.g. a misspelt filter name
            used |= jinja2.meta.find_undeclared_variables(sandboxes.html.parse(sandboxes.source(file)))
        except jinja2.TemplateSyntaxError as exc:
            raise sandboxes.translate(exc, file) from None
    return used
