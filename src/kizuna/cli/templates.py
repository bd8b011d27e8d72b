"""`kizuna templates lint|preview`: check marketer-owned templates and look at them before any customer does."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from kizuna.cli.common import fail
from kizuna.core.settings import Settings

app = typer.Typer(help="Email templates: lint them, preview them, send yourself a test.", no_args_is_help=True)
console = Console()


def _selection_variables(settings: Settings) -> tuple[set[str], set[str] | None] | None:
    """What a campaign can give a template, if known: the columns of ops.campaign_recipients plus those of
    marts.customers (each recipient's customer row travels with it as context); and, for the owner digest,
    the keys of the digest context campaign selection built (None when no digest was ever selected)."""
    from kizuna.campaigns.context import owner_digest_keys
    from kizuna.core.warehouse import connect, table_exists

    if settings.warehouse_missing:
        return None
    try:
        with connect(settings.warehouse_target, read_only=True) as con:
            if not table_exists(con, "ops", "campaign_recipients"):
                return None
            rows = con.execute(
                "SELECT column_name FROM information_schema.columns WHERE (table_schema = 'ops' AND "
                "table_name = 'campaign_recipients') OR (table_schema = 'marts' AND table_name = 'customers')"
            ).fetchall()
            digest = owner_digest_keys(con)
    except Exception:  # a held or damaged warehouse: lint without it, as without a warehouse
        return None
    return {str(r[0]) for r in rows}, (digest or None)


def _unfillable(template: str, variables: list[str], selection: tuple[set[str], set[str] | None]) -> str | None:
    """The problem when declared variables are not what campaign selection gives this template."""
    from kizuna.campaigns.run import OWNER_DIGEST_TEMPLATE

    columns, digest_keys = selection
    if template == OWNER_DIGEST_TEMPLATE:
        # The digest's variables (campaign, accounts, ...) are built by selection, not customer columns:
        # checked against the digests selection wrote, and not at all before the first one.
        if digest_keys is None:
            return None
        columns = columns | digest_keys
    missing = sorted(set(variables) - columns)
    if not missing:
        return None
    where = (
        "in the owner digests of ops.campaign_recipients"
        if template == OWNER_DIGEST_TEMPLATE
        else "columns of ops.campaign_recipients or of marts.customers"
    )
    return f"{template}/meta.yml: variables {missing} are not {where}; a campaign cannot fill them"


@app.command()
def lint(
    name: Annotated[str | None, typer.Argument(help="Template folder; all templates when omitted.")] = None,
    strict: Annotated[bool, typer.Option("--strict", help="Warnings fail the lint too (exit code 1).")] = False,
) -> None:
    """Check templates: declared variables, sample renders in every locale, footer and unsubscribe link;
    warn where a locale's HTML and text versions differ in links or sentences."""
    from kizuna.email.intent_links import lint_intent_links
    from kizuna.email.render import EmailTemplateError, TemplateRenderer

    settings = Settings()
    renderer = TemplateRenderer.from_settings(settings)
    try:
        names = [name] if name else renderer.templates()
    except EmailTemplateError as exc:
        raise fail(str(exc)) from exc
    selection = _selection_variables(settings)
    failed = 0
    for template in names:
        problems = renderer.lint(template) + lint_intent_links(renderer, template)
        if selection is not None and not problems:
            unfillable = _unfillable(template, renderer.meta(template).variables, selection)
            if unfillable:
                problems.append(unfillable)
        warnings = [] if problems else renderer.lint_warnings(template)
        if problems or (strict and warnings):
            failed += 1
            console.print(f"[red]✗[/] {template}", highlight=False)
        else:
            locales = ", ".join(renderer.locales(template))
            console.print(f"[green]✓[/] {template} ({locales})", highlight=False)
        for problem in problems:
            console.print(f"    {problem}", highlight=False, markup=False, soft_wrap=True)  # one grep-able line
        for warning in warnings:
            console.print(f"    warning: {warning}", highlight=False, markup=False, soft_wrap=True)
    if selection is None:
        console.print("(no warehouse selection yet: variables checked against sample_context only)")
    if failed:
        raise typer.Exit(code=1)


def _customer_context(settings: Settings, customer_id: str) -> dict[str, Any]:
    """The per-recipient row of a preview with --customer: what a campaign would give the template."""
    from kizuna.campaigns.context import CONTEXT_MARTS, customer_context
    from kizuna.core.warehouse import connect, table_exists

    if settings.warehouse_missing:
        raise fail(f"--customer needs the warehouse {settings.warehouse_label}; run `kizuna run` first")
    with connect(settings.warehouse_target, read_only=True) as con:
        for mart in CONTEXT_MARTS:
            if not table_exists(con, "marts", mart):
                raise fail(f"--customer needs marts.{mart} in {settings.warehouse_label}; run `kizuna build` first")
        context = customer_context(con, customer_id)
    if context is None:
        raise fail(f"customer {customer_id!r} is not in marts.customers of {settings.warehouse_label}")
    return context


@app.command()
def preview(
    name: Annotated[str, typer.Argument(help="Template folder, e.g. renewal_reminder.")],
    customer: Annotated[str | None, typer.Option(help="Render for this customer_id from the warehouse marts.")] = None,
    locale: Annotated[str | None, typer.Option(help="ja or en (default: the template's default_locale).")] = None,
    send_test: Annotated[
        str | None, typer.Option("--send-test", help="Send one copy to this address through the configured backend.")
    ] = None,
) -> None:
    """Render a template to var/previews/ (HTML and text) and print the paths; optionally send a test copy."""
    from kizuna.email.render import EmailTemplateError, TemplateRenderer

    settings = Settings()
    renderer = TemplateRenderer.from_settings(settings)
    try:
        meta = renderer.meta(name)
        context = dict(meta.sample_context)
        if customer:
            context.update({k: v for k, v in _customer_context(settings, customer).items() if v is not None})
        used_locale = locale or str(context.get("locale") or meta.default_locale)
        email = renderer.render(name, used_locale, context)
    except EmailTemplateError as exc:
        raise fail(str(exc)) from exc
    out = settings.var_dir / "previews"
    out.mkdir(parents=True, exist_ok=True)
    who = re.sub(r"[^A-Za-z0-9_-]+", "_", customer or "sample")
    stem = out / f"{name}.{email.locale}.{who}"
    html_path, text_path = Path(f"{stem}.html"), Path(f"{stem}.txt")
    html_path.write_text(email.html, encoding="utf-8")
    text_path.write_text(f"Subject: {email.subject}\n\n{email.text}", encoding="utf-8")
    typer.echo(f"subject: {email.subject}")
    typer.echo(str(html_path))  # one path per line, unwrapped: scripts and terminals can open them
    typer.echo(str(text_path))
    if send_test:
        _send_test(settings, email, send_test, name)


def _send_test(settings: Settings, email: Any, address: str, template: str) -> None:
    from kizuna.email.backends import make_backend
    from kizuna.email.message import InvalidMessageError, SendError, build_message

    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%f")
    key = f"test-{template}-{stamp}"  # its own key: never a campaign's send_id, never in the ledger
    try:
        message = build_message(
            email, address, "", key, custom_args={"campaign": "template_test"}, extra_categories=["test"]
        )
        backend = make_backend(settings)
    except (InvalidMessageError, ValueError) as exc:
        raise fail(str(exc)) from exc
    try:
        provider_id = backend.send(message)
    except SendError as exc:
        raise fail(f"test send to {address} failed: {exc}") from exc
    finally:
        backend.close()
    typer.echo(f"sent a test copy to {address} via {backend.name} ({provider_id})")
