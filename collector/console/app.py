"""The console's web application: mounted by the collector under `[console] prefix` beside the API.

Every page is rendered on the server and readable without JavaScript; /static/console.js only enhances
(live updates by server-sent events, clocks counting down). Every response carries a strict
Content-Security-Policy: scripts, styles and images from this server only, no inline script.
"""

from __future__ import annotations

import json
import secrets
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote
from zoneinfo import ZoneInfo

import msgspec
from fastapi import FastAPI, Request, Response
from fastapi.responses import HTMLResponse, PlainTextResponse, RedirectResponse, StreamingResponse
from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup

from collector.audit import append_entry
from collector.audit_evidence import Checkpoint
from collector.console import changes, mfa, oidc, pages, reviews, totp
from collector.console.errors import ConsoleError, NotAllowed
from collector.console.live import Hub, stream
from collector.console.queries import live_version
from collector.console.sessions import (
    COOKIE,
    Session,
    csrf_ok,
    end_session,
    locked_out,
    lookup,
    record_failure,
    set_state,
    start_session,
)
from collector.console.shared import Shared
from collector.console.totp_vault import TotpVault
from collector.console.users import User, check_password, upsert_external
from collector.console.windows import cancel_window, covered_assets, vendor_may_cover
from collector.disputes import get_dispute
from collector.maintenance import check_covers, record_window, site_assets
from collector.store.base import DataRejected, Store
from linewarden.book import ContractBook
from linewarden.config.collector import ConsoleConfig
from linewarden.errors import MaintenanceRefused
from linewarden.sla.report import ContractReport
from linewarden.wire import MaintenanceWindowWire

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
PRE_LOGIN = "lw_login"
SSO_STATE = "lw_sso"
MAX_FORM = 64 * 1024
LIVE_SHARE_MS = 1000
"""How long the overview's live parts, once made, serve every console of the same scope (same live version)."""
_STATIC_TYPES = {".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8",
                 ".png": "image/png", ".svg": "image/svg+xml"}


class _Redirect(Exception):
    def __init__(self, to: str) -> None:
        self.to = to


@dataclass(frozen=True)
class Deps:
    store: Store
    book: ContractBook
    clock: Callable[[], int]
    timezone: str
    config: ConsoleConfig
    on_maintenance: Callable[[str], None] | None
    watching_since: int
    missed_heartbeats: int
    evidence_dir: Path
    reports: dict[tuple[str, str, tuple[Any, ...]], ContractReport] = field(default_factory=dict)
    """Reports of whole months for the trend, while the store's data version stays the same."""


def create_console(
    store: Store, book: ContractBook, clock: Callable[[], int], config: ConsoleConfig, timezone: str = "UTC",
    on_maintenance: Callable[[str], None] | None = None, missed_heartbeats: int = 3, live_every_s: float = 0.5,
    evidence_dir: Path = Path("evidence"), audit_checkpoint: Callable[[], Checkpoint | None] | None = None,
    totp_vault: TotpVault | None = None,
) -> FastAPI:
    """The console app, to mount at `config.prefix`. `on_maintenance(site)` is called after a window of
    `site` is recorded or cancelled (to publish the site's windows). `app.state.hub.stop()` ends the live
    streams; `app.state.warm(stop_event)` computes the contracts' trend months ahead (blocking: run it in a
    thread). `evidence_dir` is the disputes' evidence directory (the API's, under the data directory);
    `audit_checkpoint` gives the audit log's latest signed checkpoint for the exports (as the API's);
    `totp_vault` encrypts the users' TOTP secrets (`totp_vault.open_vault`; none: a key for this process
    alone, as tests and the demo use)."""
    app = FastAPI(title="linewarden console", docs_url=None, redoc_url=None, openapi_url=None)
    vault = totp_vault if totp_vault is not None else TotpVault.ephemeral()
    deps = Deps(store, book, clock, timezone, config, on_maintenance, clock(), missed_heartbeats, evidence_dir)
    hub = Hub(store, live_every_s)
    app.state.hub = hub
    app.state.warm = lambda stop: pages.warm_reports(deps, stop)
    env = Environment(loader=PackageLoader("collector.console", "templates"), autoescape=select_autoescape())
    zone = ZoneInfo(timezone)
    env.filters["t"] = lambda ms: "" if ms is None else datetime.fromtimestamp(ms / 1000, zone).strftime(
        "%Y-%m-%d %H:%M:%S")
    env.filters["dur"] = pages.duration
    env.globals["tz"] = timezone
    static_dir = Path(str(resources.files("collector.console").joinpath("static")))

    def base(request: Request) -> str:
        return str(request.scope.get("root_path", ""))

    def render(request: Request, name: str, ctx: dict[str, Any], status: int = 200) -> HTMLResponse:
        html = env.get_template(name).render(base=base(request), **ctx)
        return HTMLResponse(html, status_code=status)

    def secure(request: Request) -> bool:
        if config.secure_cookies == "auto":
            return request.url.scheme == "https"
        return config.secure_cookies == "always"

    def origin(request: Request) -> str:
        return request.client.host if request.client else "unknown"

    idle_ms = int(config.session_idle.total_seconds() * 1000)
    steps = (mfa.login_step(store, config.mfa_required_roles),)

    def who(request: Request, state: str = "full") -> tuple[Session, User]:
        found = lookup(store, request.cookies.get(COOKIE, ""), clock(), idle_ms)
        if found is None or found[0].state != state:
            raise _Redirect(f"{base(request)}/login?next={quote(request.url.path)}")
        return found

    def locked(username: str, request: Request) -> bool:
        return locked_out(store, username, origin(request), clock(), config.lockout_failures,
                          config.lockout_failures_per_address, int(config.lockout_period.total_seconds() * 1000))

    def target_of(request: Request, wanted: str) -> str:
        prefix = base(request)
        return wanted if wanted.startswith(prefix + "/") and not wanted.startswith("//") else prefix + "/"

    async def form(request: Request) -> dict[str, str]:
        body = await request.body()
        if len(body) > MAX_FORM:
            raise ConsoleError("form too large")
        return {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True).items()}

    async def checked_form(request: Request) -> tuple[Session, User, dict[str, str]]:
        session, user = who(request)
        data = await form(request)
        if not csrf_ok(session, data.get("csrf", "")):
            raise NotAllowed("the form's CSRF token does not match your session: reload the page and try again")
        return session, user, data

    @app.middleware("http")
    async def headers(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        response = await call_next(request)
        response.headers["Content-Security-Policy"] = CSP
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers["X-Frame-Options"] = "DENY"
        if not request.url.path.endswith((".css", ".js", ".png")):
            response.headers["Cache-Control"] = "no-store"
        return response

    @app.exception_handler(_Redirect)
    async def redirect(request: Request, exc: _Redirect) -> Response:
        return RedirectResponse(exc.to, status_code=303)

    @app.exception_handler(NotAllowed)
    async def not_allowed(request: Request, exc: NotAllowed) -> Response:
        return render(request, "error.html", {"user": None, "title": "Not allowed", "message": str(exc)}, 403)

    @app.exception_handler(ConsoleError)
    async def refused(request: Request, exc: ConsoleError) -> Response:
        return render(request, "error.html", {"user": None, "title": "Not done", "message": str(exc)}, 400)

    @app.exception_handler(DataRejected)
    async def cannot_hold(request: Request, exc: DataRejected) -> Response:
        message = f"a value of this request cannot be stored or looked up: {exc}"
        return render(request, "error.html", {"user": None, "title": "Not done", "message": message}, 422)

    @app.exception_handler(pages.NotFound)
    async def not_found(request: Request, exc: pages.NotFound) -> Response:
        return render(request, "error.html", {"user": None, "title": "Not found", "message": str(exc)}, 404)

    @app.get("/static/{name}")
    def static(name: str) -> Response:
        path = static_dir / name
        if "/" in name or path.suffix not in _STATIC_TYPES or not path.is_file():
            return PlainTextResponse("not found", 404)
        return Response(path.read_bytes(), media_type=_STATIC_TYPES[path.suffix],
                        headers={"Cache-Control": "max-age=300"})

    # ------------------------------------------------------------ login

    @app.get("/login")
    def login_page(request: Request, next: str = "") -> Response:
        token = secrets.token_urlsafe(24)
        response = render(request, "login.html", {"user": None, "pre": token, "next": next, "error": "",
                                                  "sso": provider is not None})
        response.set_cookie(PRE_LOGIN, token, httponly=True, samesite="strict", secure=secure(request),
                            path=base(request) or "/")
        return response

    @app.post("/login")
    async def login(request: Request) -> Response:
        data = await form(request)
        pre = request.cookies.get(PRE_LOGIN, "")
        if not pre or not secrets.compare_digest(pre, data.get("pre", "")):
            raise NotAllowed("the login form expired: open the login page again")
        username = data.get("username", "").strip().lower()
        if locked(username, request):
            return _login_again(request, data, "Too many failed logins: try again later.", 429)
        user = check_password(store, username, data.get("password", ""))
        if user is None:
            record_failure(store, username, origin(request), clock())
            return _login_again(request, data, "Unknown user or wrong password.", 401)
        ttl = int(config.session_ttl.total_seconds() * 1000)
        session_id, session = start_session(store, user, "password", origin(request), clock(), ttl, steps)
        target = target_of(request, data.get("next", ""))
        prefix = base(request)
        after = {"full": target, "mfa_pending": f"{prefix}/login/code?next={quote(target)}",
                 "password_ok": f"{prefix}/mfa/enrol?next={quote(target)}"}[session.state]
        response = RedirectResponse(after, status_code=303)
        response.set_cookie(COOKIE, session_id, max_age=ttl // 1000, httponly=True, samesite="strict",
                            secure=secure(request), path=prefix or "/")
        response.delete_cookie(PRE_LOGIN, path=prefix or "/")
        return response

    def _login_again(request: Request, data: dict[str, str], error: str, status: int) -> Response:
        token = secrets.token_urlsafe(24)
        again = {"user": None, "pre": token, "next": data.get("next", ""), "error": error, "sso": provider is not None}
        response: Response = render(request, "login.html", again, status)
        response.set_cookie(PRE_LOGIN, token, httponly=True, samesite="strict", secure=secure(request),
                            path=base(request) or "/")
        return response

    # ------------------------------------------------------------ single sign-on

    provider = oidc.Provider(config.oidc) if config.oidc is not None else None

    def redirect_uri(request: Request) -> str:
        assert config.oidc is not None
        return f"{request.url.scheme}://{request.url.netloc}{base(request)}{config.oidc.redirect_path}"

    def sso_failed(request: Request, reason: str, subject: str = "") -> None:
        with store.transaction() as tx:
            append_entry(tx.sql, f"sso:{subject or 'unknown'}", origin(request), "console.sso_failed", "console",
                         {"reason": reason}, clock())

    if provider is not None and config.oidc is not None:
        @app.get("/login/oidc")
        def sso_start(request: Request, next: str = "") -> Response:
            assert provider is not None
            url, state = provider.start(redirect_uri(request), target_of(request, next), clock())
            response = RedirectResponse(url, status_code=303)
            # Lax: the provider's redirect back is a top-level navigation from another site.
            response.set_cookie(SSO_STATE, state, max_age=oidc.PENDING_MS // 1000, httponly=True, samesite="lax",
                                secure=secure(request), path=base(request) or "/")
            return response

        @app.get(config.oidc.redirect_path)
        def sso_callback(request: Request, state: str = "", code: str = "", error: str = "") -> Response:
            assert provider is not None
            now = clock()
            try:
                pending = provider.take(state, request.cookies.get(SSO_STATE, ""), now)
                if error or not code:
                    raise oidc.SsoFailed(f"the identity provider did not log you in ({error[:80] or 'no code'})")
                claims = provider.finish(code, redirect_uri(request), pending, now)
                who_ = provider.identity(claims)
                user = upsert_external(store, who_.username, provider.config.issuer, who_.subject, who_.role,
                                       who_.vendor, who_.sites, now, origin(request))
            except ConsoleError as exc:
                sso_failed(request, str(exc))
                raise
            ttl = int(config.session_ttl.total_seconds() * 1000)
            # The identity provider enforces the second factor for SSO users (docs/console.md): no console TOTP.
            session_id, _ = start_session(store, user, "oidc", origin(request), now, ttl, ())
            response = render(request, "sso_done.html", {"next": pending.next, "username": user.username})
            prefix = base(request)
            response.set_cookie(COOKIE, session_id, max_age=ttl // 1000, httponly=True, samesite="strict",
                                secure=secure(request), path=prefix or "/")
            response.delete_cookie(SSO_STATE, path=prefix or "/")
            return response

    @app.get("/login/code")
    def code_page(request: Request, next: str = "") -> Response:
        session, _ = who(request, "mfa_pending")
        return render(request, "login_code.html", {"user": None, "csrf": session.csrf, "next": next, "error": ""})

    @app.post("/login/code")
    async def code(request: Request) -> Response:
        session, user = who(request, "mfa_pending")
        data = await form(request)
        if not csrf_ok(session, data.get("csrf", "")):
            raise NotAllowed("the form's CSRF token does not match your session: reload the page and try again")
        ctx = {"user": None, "csrf": session.csrf, "next": data.get("next", "")}
        if locked(user.username, request):
            return render(request, "login_code.html", {**ctx, "error": "Too many failed logins: try again later."},
                          429)
        if not mfa.check_code(store, vault, session, data.get("code", ""), clock(), origin(request)):
            record_failure(store, user.username, origin(request), clock(), "totp")
            return render(request, "login_code.html", {**ctx, "error": "Wrong or used code."}, 401)
        set_state(store, session, "full")
        return RedirectResponse(target_of(request, data.get("next", "")), status_code=303)

    def _enrolling(request: Request) -> tuple[Session, User]:
        found = lookup(store, request.cookies.get(COOKIE, ""), clock(), idle_ms)
        if found is None or found[0].state not in ("password_ok", "full"):
            raise _Redirect(f"{base(request)}/login?next={quote(request.url.path)}")
        return found

    def _enrol_page(request: Request, session: Session, user: User, next_: str, error: str, status: int) -> Response:
        secret = mfa.offer_secret(store, vault, session)
        return render(request, "enrol.html", {"user": None, "csrf": session.csrf, "next": next_, "error": error,
                                              "secret": secret, "uri": totp.otpauth_uri(secret, user.username)},
                      status)

    @app.get("/mfa/enrol")
    def enrol_page(request: Request, next: str = "") -> Response:
        session, user = _enrolling(request)
        return _enrol_page(request, session, user, next, "", 200)

    @app.post("/mfa/enrol")
    async def enrol(request: Request) -> Response:
        session, user = _enrolling(request)
        data = await form(request)
        if not csrf_ok(session, data.get("csrf", "")):
            raise NotAllowed("the form's CSRF token does not match your session: reload the page and try again")
        codes = mfa.finish_enrolment(store, vault, session, data.get("code", ""), clock(), origin(request))
        if codes is None:
            return _enrol_page(request, session, user, data.get("next", ""),
                               "That code does not match: check the app's clock and try the next code.", 400)
        set_state(store, session, "full")
        return render(request, "recovery.html", {"user": None, "codes": codes,
                                                 "next": target_of(request, data.get("next", ""))})

    @app.post("/logout")
    async def logout(request: Request) -> Response:
        session, _, _ = await checked_form(request)
        end_session(store, session, origin(request), clock())
        response = RedirectResponse(f"{base(request)}/login", status_code=303)
        response.delete_cookie(COOKIE, path=base(request) or "/")
        return response

    # ------------------------------------------------------------ pages

    # Consoles of one scope fetch the overview again together after each change: its live parts are made once.
    overview_parts: Shared[Markup] = Shared(clock, LIVE_SHARE_MS)

    @app.get("/")
    def overview(request: Request) -> Response:
        session, user = who(request)
        key = (base(request), user.viewer, live_version(store))
        live = overview_parts.get(key, lambda: Markup(env.get_template("_overview_live.html").render(
            base=base(request), **pages.overview_live(deps, user))))
        return render(request, "overview.html", {**pages.common(deps, user, session, "overview"), "live": live})

    @app.get("/assets/{site}/{asset}")
    def asset(request: Request, site: str, asset: str, days: int = 7) -> Response:
        session, user = who(request)
        return render(request, "asset.html", pages.asset(deps, user, session, site, asset, days))

    @app.get("/contracts")
    def contracts(request: Request) -> Response:
        session, user = who(request)
        return render(request, "contracts.html", pages.contracts(deps, user, session))

    @app.get("/contracts/{contract_id}")
    def contract(request: Request, contract_id: str, period: str = "") -> Response:
        session, user = who(request)
        return render(request, "contract.html", pages.contract(deps, user, session, contract_id, period))

    @app.get("/contracts/{contract_id}/reports/{period}.pdf")
    def review_pdf(request: Request, contract_id: str, period: str) -> Response:
        _, user = who(request)
        name = f"review-{contract_id}-{period}.pdf"
        checkpoint = audit_checkpoint() if audit_checkpoint is not None else None
        return Response(reviews.review_pdf(deps, user, contract_id, period, checkpoint), media_type="application/pdf",
                        headers={"Content-Disposition": f'attachment; filename="{name}"'})

    @app.get("/contracts/{contract_id}/reports/{period}.json")
    def report_json(request: Request, contract_id: str, period: str) -> Response:
        _, user = who(request)
        checkpoint = audit_checkpoint() if audit_checkpoint is not None else None
        body = json.dumps(reviews.report_json(deps, user, contract_id, period, checkpoint), indent=1)
        return Response(body, media_type="application/json", headers={
            "Content-Disposition": f'attachment; filename="report-{contract_id}-{period}.json"'})

    @app.get("/contracts/{contract_id}/reports/{period}/{table}.csv")
    def table_csv(request: Request, contract_id: str, period: str, table: str) -> Response:
        _, user = who(request)
        name = f"{contract_id}-{period}-{table}.csv"
        checkpoint = audit_checkpoint() if audit_checkpoint is not None else None
        return Response(reviews.table_csv(deps, user, contract_id, period, table, checkpoint),
                        media_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition": f'attachment; filename="{name}"'})

    @app.get("/renewals")
    def renewals(request: Request, days: int = 90) -> Response:
        session, user = who(request)
        return render(request, "renewals.html", pages.renewals(deps, user, session, days))

    @app.get("/incidents/{incident_id}")
    def incident(request: Request, incident_id: str) -> Response:
        session, user = who(request)
        return render(request, "incident.html", pages.incident(deps, user, session, incident_id))

    @app.get("/maintenance")
    def maintenance(request: Request) -> Response:
        session, user = who(request)
        return render(request, "maintenance.html", pages.maintenance(deps, user, session))

    @app.get("/changes")
    def changes_page(request: Request) -> Response:
        session, user = who(request)
        common = pages.common(deps, user, session, "changes")
        return render(request, "changes.html", changes.page(deps, user, session, common))

    @app.post("/changes/{window_id}/approve")
    async def change_approve(request: Request, window_id: str) -> Response:
        _, user, data = await checked_form(request)
        changes.approve(deps, user, window_id, data, origin(request))
        return RedirectResponse(f"{base(request)}/changes?approved={window_id}", status_code=303)

    @app.post("/changes/{window_id}/revoke")
    async def change_revoke(request: Request, window_id: str) -> Response:
        _, user, _ = await checked_form(request)
        changes.revoke(deps, user, window_id, origin(request))
        return RedirectResponse(f"{base(request)}/changes?revoked={window_id}", status_code=303)

    @app.get("/audit")
    def audit(request: Request, actor: str = "", action: str = "", object: str = "", limit: int = 200) -> Response:
        session, user = who(request)
        return render(request, "audit.html", pages.audit(deps, user, session, actor, action, object, limit))

    @app.get("/agents")
    def agents(request: Request) -> Response:
        session, user = who(request)
        return render(request, "agents.html", pages.agents(deps, user, session))

    @app.get("/events")
    async def events(request: Request) -> Response:
        _, user = who(request)
        return StreamingResponse(stream(hub, pages.live_filter(deps, user), request.is_disconnected),
                                 media_type="text/event-stream", headers={"X-Accel-Buffering": "no"})

    # ------------------------------------------------------------ maintenance changes

    def _window(user: User, data: dict[str, str]) -> tuple[str, MaintenanceWindowWire]:
        pages.require_maintenance(user)
        draft = pages.parse_window(deps, data)
        site = data.get("site", "")
        if user.viewer.sites and site not in user.viewer.sites:
            raise NotAllowed(f"you may not announce windows at site {site!r}")
        try:
            with store.reader() as sql:
                check_covers(draft, site, site_assets(sql, site), book)
        except MaintenanceRefused as exc:
            raise ConsoleError(str(exc)) from None
        covers = covered_assets(store, site, draft)
        if not vendor_may_cover(user.viewer, book, covers, tuple(draft.services), pages.criticality(deps)):
            raise NotAllowed("a vendor may announce windows only for the assets and services of its own contracts")
        return site, draft

    @app.post("/maintenance/preview")
    async def maintenance_preview(request: Request) -> Response:
        session, user, data = await checked_form(request)
        site, draft = _window(user, data)
        return render(request, "maintenance.html", pages.maintenance(deps, user, session, preview=(site, draft),
                                                                     form=data))

    @app.post("/maintenance/add")
    async def maintenance_add(request: Request) -> Response:
        _, user, data = await checked_form(request)
        site, draft = _window(user, data)
        now = clock()
        wire = msgspec.structs.replace(draft, id=f"w-{uuid.uuid4().hex[:12]}", announced_at=now,
                                       announced_by=f"console:{user.username}")
        try:
            record_window(store, book, site, wire, now, "", f"console:{user.username}", origin(request))
        except MaintenanceRefused as exc:
            raise ConsoleError(str(exc)) from None
        if on_maintenance is not None:
            on_maintenance(site)
        return RedirectResponse(f"{base(request)}/maintenance?added={wire.id}", status_code=303)

    @app.post("/maintenance/{window_id}/cancel")
    async def maintenance_cancel(request: Request, window_id: str) -> Response:
        _, user, _ = await checked_form(request)
        pages.require_maintenance(user)
        window = pages.window_for(deps, user, window_id)
        if not cancel_window(store, window_id, clock(), f"console:{user.username}", origin(request)):
            raise ConsoleError(f"window {window_id} is cancelled already")
        if on_maintenance is not None:
            on_maintenance(window.site)
        return RedirectResponse(f"{base(request)}/maintenance?cancelled={window_id}", status_code=303)

    # ------------------------------------------------------------ disputes

    @app.post("/incidents/{incident_id}/disputes")
    async def dispute_open(request: Request, incident_id: str) -> Response:
        session, user, data = await checked_form(request)
        shown = pages.incident(deps, user, session, incident_id)  # NotFound unless the user may see it
        contracts = {cc.contract_id for cc, _ in shown["clocks"]}
        record = reviews.open_from_form(deps, user, incident_id, contracts, data, origin(request))
        return RedirectResponse(f"{base(request)}/incidents/{incident_id}?disputed={record.id}#disputes",
                                status_code=303)

    @app.post("/disputes/{dispute_id}/settle")
    async def dispute_settle(request: Request, dispute_id: str) -> Response:
        session, user, data = await checked_form(request)
        found = None if "\x00" in dispute_id else get_dispute(store, dispute_id)
        shown = None if found is None else pages.incident(deps, user, session, found.incident_id)
        if found is None or shown is None or found.id not in {d.id for d in shown["disputes"]}:
            raise pages.NotFound(f"no dispute {dispute_id} that you may see")
        record = reviews.settle_from_form(deps, user, found, data, origin(request))
        return RedirectResponse(f"{base(request)}/incidents/{record.incident_id}?settled={record.id}#disputes",
                                status_code=303)

    return app
