"""The studio's web app (Starlette): one page, a small JSON API, test copies to seed addresses only.

Every render builds a fresh TemplateRenderer, so a saved template file shows at the next poll (the page asks
/api/version every second), never a cached older version. Rendered HTML is shown in a sandboxed iframe.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import logging
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from kizuna.core.settings import Settings
from kizuna.email.backends import make_backend
from kizuna.email.intent_links import lint_intent_links
from kizuna.email.message import InvalidMessageError, SendError, build_message
from kizuna.email.render import EmailTemplateError, TemplateRenderer
from kizuna.studio.samples import UnknownSampleError, list_samples, sample_context

log = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"
# Links in previews and test copies carry this contact token: clicking one unsubscribes nobody real.
PREVIEW_CONTACT = "studio-preview"
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data: https:; style-src 'self' 'unsafe-inline'; "
    "frame-src 'self' about:; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


class NotASeedAddressError(PermissionError):
    """Test copies go to the configured seed addresses (KIZUNA_SEED_ADDRESSES) and nowhere else."""


def templates_version(templates_dir: Path) -> str:
    """A fingerprint of every file under templates/: changes when any template, layout or meta.yml is saved."""
    digest = hashlib.sha256()
    for path in sorted(templates_dir.rglob("*")):
        if path.name.startswith("."):
            continue
        try:  # lstat: a link counts as itself (its target may be outside templates/, never read)
            stat = path.lstat()
        except OSError:  # saved by rename, or deleted, while we looked: the next poll sees it
            continue
        if not path.is_dir():
            digest.update(f"{path.relative_to(templates_dir)}\0{stat.st_mtime_ns}\0{stat.st_size}\n".encode())
    return digest.hexdigest()[:16]


def render_for_studio(settings: Settings, template: str, locale: str, sample: str) -> dict[str, Any]:
    """Subject, HTML and text for one template, locale and sample, with the template's lint problems."""
    renderer = TemplateRenderer.from_settings(settings)
    result: dict[str, Any] = {
        "template": template,
        "subject": "",
        "html": "",
        "text": "",
        "error": None,
        "warnings": [],
    }
    result["version"] = templates_version(settings.templates_dir)
    try:
        result["lint"] = renderer.lint(template) + lint_intent_links(renderer, template)
        context = _context(settings, renderer, template, sample)
        email = renderer.render(template, locale or str(context.get("locale") or ""), context)
    except (EmailTemplateError, UnknownSampleError) as exc:
        result["lint"] = result.get("lint", [])
        result["error"] = str(exc)
        return result
    except Exception as exc:  # whatever breaks, the page must show it for this template, never an older render
        log.exception("studio: rendering %s failed", template)
        result["lint"] = result.get("lint", [])
        result["error"] = f"{template}: could not be rendered ({type(exc).__name__}: {exc})"
        return result
    result.update(subject=email.subject, html=email.html, text=email.text, locale=email.locale)
    if not result["lint"]:
        result["warnings"] = renderer.lint_warnings(template)  # HTML and text saying different things
    return result


def _context(settings: Settings, renderer: TemplateRenderer, template: str, sample: str) -> dict[str, Any]:
    context = sample_context(settings, renderer.meta(template).sample_context, sample)
    context["unsubscribe_url"] = renderer.unsubscribe_url_for({"contact_id": PREVIEW_CONTACT})
    return context


def send_test_copy(settings: Settings, template: str, locale: str, sample: str, to: str) -> tuple[str, str]:
    """Render and send one test copy to a seed address; returns (backend name, provider message id)."""
    seeds = {a.lower() for a in settings.seed_addresses}
    if not seeds:
        raise NotASeedAddressError("no seed addresses configured: set KIZUNA_SEED_ADDRESSES (comma-separated)")
    if to.strip().lower() not in seeds:
        raise NotASeedAddressError(f"{to!r} is not one of the seed addresses (KIZUNA_SEED_ADDRESSES)")
    renderer = TemplateRenderer.from_settings(settings)
    context = _context(settings, renderer, template, sample)
    email = renderer.render(template, locale or str(context.get("locale") or ""), context)
    email = dataclasses.replace(email, subject=f"[TEST] {email.subject}")
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%f")
    key = f"test-{template}-{stamp}"  # its own key: never a campaign's send_id, never in the ledger
    message = build_message(
        email, to.strip(), "", key, custom_args={"campaign": "template_test"}, extra_categories=["test"]
    )
    backend = make_backend(settings)
    try:
        return backend.name, backend.send(message)
    finally:
        backend.close()


def create_app(settings: Settings, allowed_hosts: list[str] | None = None) -> Starlette:
    """The studio for one project checkout (settings.templates_dir, campaigns_dir, warehouse)."""

    def respond(payload: Any, status: int = 200) -> JSONResponse:
        return JSONResponse(payload, status_code=status, headers=SECURITY_HEADERS)

    async def index(request: Request) -> Response:
        return HTMLResponse((STATIC / "index.html").read_text(encoding="utf-8"), headers=SECURITY_HEADERS)

    async def script(request: Request) -> Response:
        body = (STATIC / "studio.js").read_text(encoding="utf-8")
        return Response(body, media_type="text/javascript", headers=SECURITY_HEADERS)

    def templates(request: Request) -> JSONResponse:  # sync: Starlette runs it in a thread
        renderer = TemplateRenderer.from_settings(settings)
        items = []
        for name in renderer.templates():
            try:
                items.append(
                    {
                        "name": name,
                        "locales": list(renderer.locales(name)),
                        "default_locale": renderer.meta(name).default_locale,
                    }
                )
            except EmailTemplateError as exc:
                items.append({"name": name, "locales": [], "default_locale": "", "error": str(exc)})
        return respond(
            {"templates": items, "seed_addresses": settings.seed_addresses, "backend": settings.email_backend}
        )

    def samples(request: Request) -> JSONResponse:  # sync: Starlette runs it in a thread
        template = request.query_params.get("template", "")
        found, note = list_samples(settings, template)
        return respond({"samples": [dataclasses.asdict(s) for s in found], "note": note})

    def render(request: Request) -> JSONResponse:  # sync: Starlette runs it in a thread
        q = request.query_params
        return respond(
            render_for_studio(settings, q.get("template", ""), q.get("locale", ""), q.get("sample", "sample"))
        )

    def version(request: Request) -> JSONResponse:  # sync: Starlette runs it in a thread
        return respond({"version": templates_version(settings.templates_dir)})

    async def send_test(request: Request) -> JSONResponse:
        # JSON only: a form post from another site cannot send it without a CORS preflight, which we never allow.
        if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
            return respond({"error": "send a JSON body (Content-Type: application/json)"}, 415)
        try:
            body = await request.json()
            backend, provider_id = await run_in_threadpool(
                send_test_copy,
                settings,
                str(body.get("template", "")),
                str(body.get("locale", "")),
                str(body.get("sample", "sample")),
                str(body.get("to", "")),
            )
        except NotASeedAddressError as exc:
            return respond({"error": str(exc)}, 403)
        except (EmailTemplateError, UnknownSampleError, InvalidMessageError, ValueError) as exc:
            return respond({"error": str(exc)}, 400)
        except SendError as exc:
            return respond({"error": f"the test send failed: {exc}"}, 502)
        return respond({"sent_to": body.get("to"), "backend": backend, "provider_id": provider_id})

    routes = [
        Route("/", index),
        Route("/studio.js", script),
        Route("/api/templates", templates),
        Route("/api/samples", samples),
        Route("/api/render", render),
        Route("/api/version", version),
        Route("/api/send-test", send_test, methods=["POST"]),
    ]
    # A DNS-rebinding page cannot reach the studio under another host name.
    hosts = allowed_hosts or ["127.0.0.1", "localhost", settings.studio_host]
    return Starlette(routes=routes, middleware=[Middleware(TrustedHostMiddleware, allowed_hosts=hosts)])


def serve(settings: Settings, host: str, port: int) -> None:
    """Run the studio until interrupted."""
    import uvicorn

    uvicorn.run(create_app(settings, ["127.0.0.1", "localhost", host]), host=host, port=port, log_level="warning")
