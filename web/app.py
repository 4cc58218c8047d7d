"""The ChainWatch web app (FastAPI): login, the alerts REST API, the acknowledgement page an alert SMS
links to, the demo's SMS outbox and the waste API.

Layout: ``create_app`` builds one app with one SQLAlchemy engine (``app.state.engine``) and one InfluxDB
client (``app.state.influx``) and includes one router per area (``web.auth``: ``/login``, ``/logout``,
``/api/me``; ``web.api_alerts``: ``/api/alerts``, ``/api/clinics``, ``/api/equipment``,
``/api/deadletters``; ``web.ack``: ``/a/{token}``; ``web.outbox``: ``/outbox``; ``web.api_waste``:
``/api/waste/...``); handlers get what they need through the ``Annotated`` dependencies below
(``SessionDep``, ``ClockDep``, ``SettingsDep``, ``InfluxDep``) and those of ``web.auth`` (``CurrentUser``,
``CsrfUser``, ``require_roles``), so tests hand in a ``ManualClock`` and a SQLite file. Every page and
endpoint needs a login except ``/login``, ``/a/{token}`` (the signed token is the credential),
``/api/health`` and the OpenAPI documents (``/docs``, ``/api/openapi.json``). Pages are server-rendered
Jinja2 (``web/templates``, autoescaped), strings in ``web.i18n``; errors under ``/api`` are JSON
``{"error", "detail"}``; a page asked for without a login redirects to ``/login``.
"""

from __future__ import annotations

import errno
import logging
import re
import socket
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from http import HTTPStatus
from pathlib import Path
from typing import Annotated
from urllib.parse import urlencode

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exception_handlers import http_exception_handler, request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.gzip import GZipMiddleware
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from fastapi.templating import Jinja2Templates
from jinja2 import Environment, FileSystemLoader
from sqlalchemy.orm import Session
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException as StarletteHTTPException

import alerting.exposure  # registers the lot exposure table on Base for init_db
import alerting.store  # noqa: F401  (registers the alert tables on Base for init_db)
import core.stock  # registers the vaccine stock tables on Base for init_db; the catalogue
import web.users  # noqa: F401  (registers the user, session and audit tables on Base for init_db)
from alerting.notify.links import link_key
from core.clock import Clock, SystemClock
from core.db import init_db, make_engine
from core.influx import InfluxClient
from core.settings import Settings, proxy_networks
from web.i18n import pick_lang

TEMPLATES = Jinja2Templates(
    env=Environment(
        loader=FileSystemLoader(Path(__file__).with_name("templates")),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
)


def lang_href(request: Request, lang: str) -> str:
    """The link to this page in ``lang``: the same query (``?district=``, ``?page=``…) with ``lang``
    replaced, so switching language never loses what the page shows."""
    params = [(k, v) for k, v in request.query_params.multi_items() if k != "lang"]
    return "?" + urlencode([*params, ("lang", lang)])


TEMPLATES.env.globals["lang_href"] = lang_href


# ---------------------------------------------------------------- dependencies


def _settings(request: Request) -> Settings:
    return request.app.state.settings


def _clock(request: Request) -> Clock:
    return request.app.state.clock


def _link_key(request: Request) -> bytes:
    return request.app.state.link_key


def _influx(request: Request) -> InfluxClient:
    return request.app.state.influx


def _session(request: Request) -> Iterator[Session]:
    with Session(request.app.state.engine) as session:
        yield session


SettingsDep = Annotated[Settings, Depends(_settings)]
ClockDep = Annotated[Clock, Depends(_clock)]
LinkKeyDep = Annotated[bytes, Depends(_link_key)]
SessionDep = Annotated[Session, Depends(_session)]
InfluxDep = Annotated[InfluxClient, Depends(_influx)]

INFLUX_TIMEOUT_S = 5.0  # a page waits at most this long for InfluxDB before answering without it


def form_field(form: FormData, name: str, limit: int | None = None) -> str:
    """A text field of a posted form ("" when absent or a file), cut at ``limit`` characters when given
    (a page that reports a too-long value itself passes none)."""
    value = form.get(name)
    if not isinstance(value, str):
        return ""
    return value if limit is None else value[:limit]


def form_lang(form: FormData, preferred: str | None) -> str:
    """The language a form was posted from (its ``lang`` field), else the person's, else zh-CN."""
    return pick_lang(form_field(form, "lang", 16) or None, preferred)


async def read_form(request: Request, max_bytes: int, max_fields: int) -> FormData:
    """A small form as our own pages send it: ``application/x-www-form-urlencoded`` with a
    Content-Length of at most ``max_bytes`` (no JSON, no multipart, no uploads)."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "application/x-www-form-urlencoded":
        raise HTTPException(415, "the form is sent as application/x-www-form-urlencoded")
    length = request.headers.get("content-length", "")
    if not length.isdigit():
        raise HTTPException(411, "Content-Length required")
    if int(length) > max_bytes:
        raise HTTPException(413, f"form larger than {max_bytes} bytes")
    return await request.form(max_files=0, max_fields=max_fields)


# ---------------------------------------------------------------- the app


def create_app(settings: Settings, clock: Clock | None = None) -> FastAPI:
    """The app for ``settings`` (its database, created if need be); ``clock`` defaults to the system's."""
    # here, not at the top: the routers import the dependencies above
    from web import ack, admin, api_alerts, api_checks, api_waste, auth, district_page, outbox, pages

    engine = make_engine(settings.sql_url)
    init_db(engine)  # registry, alert, ack_link, user, session, audit and stock tables
    core.stock.ensure_products(engine)  # the vaccine catalogue, when the database lacks it
    influx = InfluxClient(
        settings.influx_url,
        settings.influx_db,
        username=settings.influx_username,
        password=settings.influx_password,
        timeout_s=INFLUX_TIMEOUT_S,
    )

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        influx.close()
        engine.dispose()

    app = FastAPI(
        title="ChainWatch",
        lifespan=lifespan,
        docs_url="/docs",
        redoc_url=None,
        openapi_url="/api/openapi.json",
    )
    app.state.settings = settings
    app.state.trusted_proxies = proxy_networks(settings.web_trusted_proxies)
    # a phone on a slow link: the district page of 200 clinics is ~330 KB of HTML, ~30 KB gzipped
    app.add_middleware(GZipMiddleware, minimum_size=1000)
    app.state.clock = clock or SystemClock()
    app.state.engine = engine
    app.state.influx = influx
    app.state.link_key = link_key(settings)

    @app.get("/api/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    app.include_router(pages.router)  # first: its GET / (the user's home) replaces web.auth's
    app.include_router(auth.router)
    app.include_router(auth.api_router)
    app.include_router(api_alerts.router)
    app.include_router(api_checks.router)
    app.include_router(ack.router)
    app.include_router(outbox.router)
    app.include_router(api_waste.router)
    app.include_router(district_page.router)
    app.include_router(admin.router)
    from web import api_reconcile  # the stock reconciliation for the bureau (issue 9)

    app.include_router(api_reconcile.router)  # before api_stock: /api/stock/reconciliation is fixed
    from web import api_stock, stock_pages  # the vaccine stock API and pages (issue 9)

    app.include_router(api_stock.router)
    app.include_router(stock_pages.router)
    from web import shake_test  # the excursion impact's shake-test pages (issue 9)

    app.include_router(shake_test.router)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Exception, _server_error)
    return app


# ---------------------------------------------------------------- errors under /api

# Under /api every error is JSON ``{"error": "<code>", "detail": "<words>"}``; the pages keep FastAPI's
# and Starlette's own error responses.

ERROR_CODES = {422: "invalid_request", 500: "internal_error"}
_LOCATIONS = {"query": "query parameter", "path": "path parameter", "header": "header", "body": "body"}


def _is_api(request: Request) -> bool:
    path = request.url.path
    return path == "/api" or path.startswith("/api/")


def api_error(status: int, detail: str, headers: dict[str, str] | None = None) -> JSONResponse:
    code = ERROR_CODES.get(status)
    if code is None:
        try:
            code = HTTPStatus(status).phrase.lower().replace(" ", "_").replace("-", "_")
        except ValueError:
            code = "error"
    return JSONResponse({"error": code, "detail": detail}, status_code=status, headers=headers)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    if not _is_api(request):
        if exc.status_code == 401:
            from web.auth import login_redirect

            return login_redirect(request)
        return await http_exception_handler(request, exc)
    detail = exc.detail if isinstance(exc.detail, str) else str(jsonable_encoder(exc.detail))
    return api_error(exc.status_code, detail, exc.headers)


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    if not _is_api(request):
        return await request_validation_exception_handler(request, exc)
    parts = []
    for err in exc.errors():
        loc = [str(p) for p in err.get("loc", ())]
        where = f"{_LOCATIONS.get(loc[0], loc[0])} {'.'.join(loc[1:])}".strip() if loc else "request"
        parts.append(f"{where}: {err.get('msg', 'invalid')}")
    return api_error(422, "; ".join(parts) or "invalid request")


async def _server_error(request: Request, exc: Exception) -> Response:
    """Starlette still logs the exception and re-raises it; this only shapes the 500 response."""
    if not _is_api(request):
        return PlainTextResponse("Internal Server Error", status_code=500)  # Starlette's own
    return api_error(500, "internal error: see the server log")


# ---------------------------------------------------------------- serving


class RedactTokens(logging.Filter):
    """Access-log lines show ``/a/…`` instead of the token: a token in a log is a usable link."""

    _TOKEN = re.compile(r"(/a/)[^\s?\"]+")

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(self._TOKEN.sub(r"\1…", a) if isinstance(a, str) else a for a in record.args)
        return True


def bind(host: str, port: int) -> socket.socket:
    """A listening socket, or ``OSError`` with a one-line message when the port is taken."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # not a live listener's port, on Linux
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise OSError(
                f"port {port} on {host} is in use by another program: set CHAINWATCH_WEB_PORT to a free port"
            ) from None
        raise OSError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.listen(128)
    return sock


def serve(settings: Settings) -> None:
    """``chainwatch web``: the app on ``host:settings.web_port`` until Ctrl-C."""
    import uvicorn

    from core.registry_store import ensure_registry
    from web.users import demo_logins, ensure_demo_users

    host = settings.web_host
    sock = bind(host, settings.web_port)
    logging.getLogger("uvicorn.access").addFilter(RedactTokens())
    app = create_app(settings)
    log = logging.getLogger(__name__)
    ensure_registry(app.state.engine, settings.registry_file)  # as the other services do
    ensure_demo_users(app.state.engine)
    for username, password, role, scope in demo_logins(app.state.engine):
        log.info("demo login: %s / %s (%s%s)", username, password, role, f" of {scope}" if scope else "")
    # X-Forwarded-For is read by web.auth.client_ip from web_trusted_proxies only, not by uvicorn
    config = uvicorn.Config(app, log_config=None, proxy_headers=False)
    log.info("ChainWatch web on http://%s:%d", host, settings.web_port)
    uvicorn.Server(config).run(sockets=[sock])
