"""The authorization matrix: every /api endpoint and page × every role, on a resource of the user's own
clinic, of another clinic of the same district, and of another district -> 200 / 401 (a redirect to
/login for pages) / 403 / 404 as designed. Then hostile ids in paths and queries (404/422, never 500),
and a guard that every route of the app is in the matrix.

Rules: clinic_staff sees their clinic; district_officer every clinic of their district; admin all;
outside the scope -> 404; /api/deadletters and /outbox are for admins (403 otherwise); acknowledging
and resolving is for clinic staff and district officers (admins: 403); anonymous -> 401 JSON under /api,
303 to /login for pages; /api/health, /login, /a/{token} and the OpenAPI documents are public.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import SecretStr

import web.users
from alerting import lifecycle
from alerting.notify.links import init_link_tables, issue_link, link_key
from alerting.rules.types import Action, Decision, Rule, Severity
from core.clock import ManualClock
from core.db import DeadLetterRow, make_engine
from core.protocol import Category, Stage, WasteEvent
from core.registry_model import DEMO_REGISTRY, load_registry_file
from core.registry_store import store_registry
from core.settings import Settings
from core.waste_store import Scan, init_waste_tables, store_waste_events
from web.app import create_app

from .auth_helpers import FAR_CLINIC, FAR_FRIDGE, FAST_HASHER, add_far_district, add_test_users, login

T0 = 1_795_633_920.0
OWN, OTHER, FAR = "qingshui-thc", "baihe-thc", FAR_CLINIC
SCOPES = ("own", "other", "far")
CLINIC_OF = {"own": OWN, "other": OTHER, "far": FAR}
EQUIPMENT = {"own": "qingshui-fridge1", "other": "baihe-fridge1", "far": FAR_FRIDGE}
ROLES = ("staff", "officer", "admin", "anonymous")
VISIBLE = {"staff": {"own"}, "officer": {"own", "other"}, "admin": set(SCOPES), "anonymous": set()}


@dataclass
class Matrix:
    app: FastAPI
    clients: dict[str, TestClient]
    ids: dict[str, dict[str, str]]  # kind -> scope -> id
    token: str


class FakeInflux:
    def query(self, q: str, params: Any = None, *, epoch: str = "ms") -> list[dict[str, Any]]:
        return []

    def close(self) -> None:
        pass


def _fire(s: Any, rule: Rule, severity: Severity, subject: str, clinic: str, t: float) -> str:
    decision = Decision(t, rule, severity, Action.fire, subject, "heat", clinic, {"celsius": 9.0})
    (change,) = lifecycle.apply(s, decision, t + 30)
    return change.alert_id


def _bag(clinic: str, bag: str, manifest: str, t: float) -> list[Scan]:
    stages = [(Stage.generated, 0), (Stage.stored, 2), (Stage.handed_over, 5)]
    return [
        Scan(
            clinic,
            f"{clinic}-scan",
            WasteEvent(
                f"{bag}-{st.value}",
                bag,
                st,
                Category.infectious,
                2.0,
                t + h * 3600,
                "op",
                manifest if st is Stage.handed_over else None,
                "demo-transport" if st is Stage.handed_over else None,
            ),
        )
        for st, h in stages
    ]


@pytest.fixture(scope="module")
def matrix(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Matrix]:
    tmp = tmp_path_factory.mktemp("authz")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    settings = Settings(
        _env_file=None,
        data_dir=tmp / "data",
        database_url="",
        ack_link_secret=SecretStr("authz-secret"),
        public_url="http://127.0.0.1:8080",
        influx_url=f"http://127.0.0.1:{port}",
    )
    clock = ManualClock(T0 + 3600)
    engine = make_engine(settings.sql_url)
    store_registry(engine, load_registry_file(DEMO_REGISTRY))
    add_far_district(engine)
    init_link_tables(engine)
    init_waste_tables(engine)
    ids: dict[str, dict[str, str]] = {"alert": {}, "bag": {}, "manifest": {}}
    from sqlalchemy.orm import Session

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(web.users, "HASHER", FAST_HASHER)
        app = create_app(settings, clock)  # creates the user tables
        add_test_users(engine, clock.now())
        with Session(engine) as s, s.begin():
            for i, scope in enumerate(SCOPES):
                sev = Severity.critical if scope == "own" else Severity.warning
                rule = Rule.heat_alarm if scope == "own" else Rule.heat_warning
                ids["alert"][scope] = _fire(s, rule, sev, EQUIPMENT[scope], CLINIC_OF[scope], T0 + i)
            token = issue_link(
                s, link_key(settings), ids["alert"]["own"], "qingshui-nurse1", clock.now(), 3600
            )
            s.add(
                DeadLetterRow(
                    received_at=datetime.fromtimestamp(T0, UTC),
                    topic="t",
                    payload=b"x",
                    reason="r",
                    detail="d",
                )
            )
        scans = []
        for scope in SCOPES:
            bag, manifest = f"{scope}-bag-1", f"MF-{scope}"
            ids["bag"][scope], ids["manifest"][scope] = bag, manifest
            scans += _bag(CLINIC_OF[scope], bag, manifest, T0 - 86400)
        store_waste_events(engine, scans, T0)
        app.state.influx = FakeInflux()
        clients = {role: TestClient(app) for role in ROLES}
        for role in ("staff", "officer", "admin"):
            login(clients[role], role)
        yield Matrix(app, clients, ids, token)
    engine.dispose()


# ---------------------------------------------------------------- the matrix

# method, path template, access: "scoped" (by the {scope}'s clinic), "act" (scoped, not for admins),
# "any" (every logged-in user), "admin", "admin_form" (a form of the admin pages), "public"; kind: "api"
# or "page"
ENDPOINTS: list[tuple[str, str, str]] = [
    ("GET", "/api/alerts/{alert}", "scoped"),
    ("POST", "/api/alerts/{alert}/ack", "act"),
    ("POST", "/api/alerts/{alert}/resolve", "act"),
    ("GET", "/api/alerts?clinic={clinic}", "scoped"),
    ("GET", "/api/clinics/{clinic}/status", "scoped"),
    ("GET", "/api/equipment/{equipment}/temperature", "scoped"),
    ("GET", "/api/waste/bags/{bag}", "scoped"),
    ("GET", "/api/waste/manifests/{manifest}", "scoped"),
    ("GET", "/api/waste/manifests?clinic={clinic}", "scoped"),
    ("GET", "/api/waste/clinics/{clinic}/days", "scoped"),
    ("GET", "/api/alerts", "any"),
    ("GET", "/api/waste/manifests", "any"),
    ("GET", "/api/me", "any"),
    ("GET", "/api/deadletters", "admin"),
    ("GET", "/outbox", "admin"),
    ("GET", "/login", "public"),
    ("GET", "/api/health", "public"),
    ("GET", "/a/{token}", "public"),
    ("GET", "/docs", "public"),
    ("GET", "/api/openapi.json", "public"),
    # the pages (web.pages)
    ("GET", "/clinics/{clinic}", "scoped"),
    ("GET", "/clinics/{clinic}/report/2026-11.pdf", "scoped"),
    ("GET", "/clinics/{clinic}/report/2026-11.csv", "scoped"),
    ("POST", "/alerts/{alert}/ack", "form"),
    ("POST", "/alerts/{alert}/resolve", "form"),
    ("GET", "/district", "district"),
    ("GET", "/", "home"),
    # ---- clinic page: 24 h chart and twice-daily checks
    ("GET", "/api/equipment/{equipment}/checks", "scoped"),
    ("POST", "/api/equipment/{equipment}/checks", "act"),
    ("POST", "/equipment/{equipment}/checks", "form"),
    # ---- district page, compliance and the district report
    ("GET", "/district/report/2026-11.pdf", "district"),
    ("GET", "/district/report/2026-11.csv", "district"),
    # ---- admin pages
    ("GET", "/admin", "admin"),
    ("GET", "/admin/users", "admin"),
    ("GET", "/admin/registry", "admin"),
    ("GET", "/admin/deadletters", "admin"),
    ("POST", "/admin/users", "admin_form"),
    ("POST", "/admin/users/role", "admin_form"),
    ("POST", "/admin/users/password", "admin_form"),
    ("POST", "/admin/users/active", "admin_form"),
    ("POST", "/admin/registry/reload", "admin_form"),
    ("POST", "/admin/registry/upload", "admin_form"),
    # ---- vaccine stock pages and API
    # ("write": a POST whose clinic is in its body, or that has none; the matrix sends no body, so it
    # checks that the login, the CSRF token and the role come before anything (admins 403, else 422);
    # tests/web/test_stock_api.py tries them on own / other / far clinics. "stock_form": the stock page's
    # form posted empty: 422 in scope and nothing stored, 404 outside, admins 403)
    ("GET", "/api/stock/products", "any"),
    ("GET", "/api/stock/lots", "any"),
    ("POST", "/api/stock/lots", "write"),
    ("GET", "/api/stock", "any"),
    ("GET", "/api/stock?clinic={clinic}", "scoped"),
    ("POST", "/api/stock/movements", "write"),
    ("GET", "/api/stock/movements", "any"),
    ("GET", "/api/stock/movements?clinic={clinic}", "scoped"),
    ("GET", "/clinics/{clinic}/stock", "scoped"),
    ("POST", "/clinics/{clinic}/stock", "stock_form"),
    ("GET", "/district/stock", "district"),
    # ---- excursion impact and shake test
    # (the matrix's alerts are heat alerts: the page says there is no shake test, and a form posted to
    # it shows that page and changes nothing: 200; tests/web/test_shake_test.py records real results)
    ("GET", "/alerts/{alert}/shake-test", "scoped"),
    ("POST", "/alerts/{alert}/shake-test", "act"),
    ("POST", "/alerts/{alert}/shake-test/close", "act"),
    # ---- stock reconciliation
    ("GET", "/api/stock/reconciliation?clinic={clinic}", "scoped"),
    ("GET", "/api/stock/reconciliation?clinic={clinic}&month=2026-11", "scoped"),
]
BODIES = {
    "/api/alerts/{alert}/ack": {"note": "matrix"},
    "/api/alerts/{alert}/resolve": {"corrective_action": "moved_vaccines", "detail": "matrix"},
    "/api/equipment/{equipment}/checks": {"celsius": 4.5, "note": "matrix"},
}
FORMS = {  # the page forms post form fields (the clients send the CSRF token in the header)
    "/alerts/{alert}/ack": {"note": "matrix"},
    "/alerts/{alert}/resolve": {"corrective_action": "moved_vaccines", "detail": "matrix"},
    "/equipment/{equipment}/checks": {"celsius": "4.5", "note": "matrix"},
}
# where a 303 goes: pages without a login -> /login?next=..., forms -> back to the clinic page,
# /district for clinic staff -> their clinic, / -> the role's home
HOMES = {
    "staff": f"/clinics/{OWN}",
    "officer": "/district",
    "admin": "/district",
    "anonymous": "/login?next=/",
}


def expected(access: str, role: str, scope: str | None, page: bool) -> int:
    if access == "public":
        return 200
    if access == "home":
        return 303
    if role == "anonymous":
        return 303 if page else 401
    if access == "district":
        return 303 if role == "staff" else 200
    if access == "form":
        if role == "admin":
            return 403
        return 303 if scope in VISIBLE[role] else 404
    if access == "admin":
        return 200 if role == "admin" else 403
    if access == "write":  # vaccine stock writes (web.api_stock); no body sent
        return 403 if role == "admin" else 422
    if access == "stock_form":  # web.stock_pages' form, posted empty
        if role == "admin":
            return 403
        return 422 if scope in VISIBLE[role] else 404
    if access == "admin_form":  # web.admin's forms; the matrix posts no form: 415 and nothing changes
        return 415 if role == "admin" else 403
    if access == "act" and role == "admin":
        return 403
    if access in ("scoped", "act"):
        return 200 if scope in VISIBLE[role] else 404
    return 200


def _cases() -> Iterator[Any]:
    for method, template, access in ENDPOINTS:
        scoped = access in ("scoped", "act", "form", "stock_form")
        scopes: tuple[str | None, ...] = SCOPES if scoped else (None,)
        for scope in scopes:
            for role in ROLES:
                yield pytest.param(
                    method, template, access, scope, role, id=f"{method} {template} {scope} {role}"
                )


def _url(m: Matrix, template: str, scope: str | None) -> str:
    values = {"token": m.token}
    if scope is not None:
        values |= {
            "alert": m.ids["alert"][scope],
            "bag": m.ids["bag"][scope],
            "manifest": m.ids["manifest"][scope],
            "clinic": CLINIC_OF[scope],
            "equipment": EQUIPMENT[scope],
        }
    return template.format(**values)


@pytest.mark.parametrize(("method", "template", "access", "scope", "role"), list(_cases()))
def test_authorization_matrix(
    matrix: Matrix, method: str, template: str, access: str, scope: str | None, role: str
) -> None:
    client = matrix.clients[role]
    url = _url(matrix, template, scope)
    page = not url.startswith("/api/") and access != "public"
    if template in FORMS:
        r = client.request(method, url, data=FORMS[template], follow_redirects=False)
    else:
        r = client.request(method, url, json=BODIES.get(template), follow_redirects=False)
    want = expected(access, role, scope, page)
    assert r.status_code == want, r.text[:300]
    if want == 303:
        location = r.headers["location"]
        if access == "home":
            assert location == HOMES[role]
        elif role == "anonymous":
            assert location.startswith("/login?next=")
        elif access == "form":
            assert location == f"/clinics/{CLINIC_OF[scope or '']}"
        else:
            assert location == HOMES[role]
    if url.startswith("/api/") and want != 200:
        assert set(r.json()) == {"error", "detail"}


@pytest.mark.parametrize("role", ["staff", "officer", "admin"])
def test_lists_hold_only_what_the_role_may_see(matrix: Matrix, role: str) -> None:
    client = matrix.clients[role]
    clinics = {a["clinic"] for a in client.get("/api/alerts").json()["items"]}
    assert clinics == {CLINIC_OF[s] for s in VISIBLE[role]}
    manifests = {m["manifest_id"] for m in client.get("/api/waste/manifests").json()["items"]}
    assert manifests == {matrix.ids["manifest"][s] for s in VISIBLE[role]}


def test_a_far_district_officer_sees_only_their_district(matrix: Matrix) -> None:
    with TestClient(matrix.app) as c:
        login(c, "farofficer")
        assert {a["clinic"] for a in c.get("/api/alerts").json()["items"]} == {FAR}
        assert c.get(f"/api/clinics/{OWN}/status").status_code == 404
        assert c.get(f"/api/clinics/{FAR}/status").status_code == 200


def test_every_route_is_in_the_matrix(matrix: Matrix) -> None:
    """A new endpoint fails this until it is in ``ENDPOINTS`` with its access rule."""
    names = {"{alert}": "{alert_id}", "{clinic}": "{clinic_id}", "{equipment}": "{equipment_id}"}
    names |= {"{bag}": "{bag_id}", "{manifest}": "{manifest_id}", "2026-11": "{month}"}
    covered = set()
    for method, template, _access in ENDPOINTS:
        path = template.split("?")[0]
        for short, long in names.items():
            path = path.replace(short, long)
        covered.add((method, path))
    schema = matrix.app.openapi()["paths"]
    in_schema = {(m.upper(), p) for p, ops in schema.items() for m in ops}
    # POST /a/{token}: the signed link is the credential (test_ack_page); POST /login and /logout are
    # outside the schema (test_auth)
    assert in_schema - covered == {("POST", "/a/{token}")}


# ---------------------------------------------------------------- hostile ids

HOSTILE = [
    "../etc/passwd",
    "..%2F..%2Fetc",
    "' OR 1=1 --",
    '" OR ""="',
    "x" * 5000,
    "清水镇卫生院",
    "\u202e\u0000nul",
    "<script>alert(1)</script>",
    "%00",
    "qingshui-thc/../baihe-thc",
    "/.*/",
]
HOSTILE_PATHS = [
    "/api/alerts/{}",
    "/api/alerts/{}/ack",
    "/api/clinics/{}/status",
    "/api/equipment/{}/temperature",
    "/api/waste/bags/{}",
    "/api/waste/manifests/{}",
    "/api/waste/clinics/{}/days",
]
HOSTILE_QUERIES = [
    ("/api/alerts", "clinic"),
    ("/api/alerts", "state"),
    ("/api/alerts", "rule"),
    ("/api/alerts", "severity"),
    ("/api/alerts", "limit"),
    ("/api/waste/manifests", "clinic"),
    ("/api/deadletters", "reason"),
    ("/api/equipment/qingshui-fridge1/temperature", "start"),
    ("/api/waste/clinics/qingshui-thc/days", "start"),
]


@pytest.mark.parametrize("role", ["staff", "admin"])
@pytest.mark.parametrize("value", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_ids_are_404_or_422_never_500(matrix: Matrix, role: str, value: str) -> None:
    client = matrix.clients[role]
    for template in HOSTILE_PATHS:
        method = "POST" if template.endswith("/ack") else "GET"
        r = client.request(method, template.format(quote(value, safe="")), json={})
        ok = (403, 404, 422) if method == "POST" and role == "admin" else (404, 422)  # admins do not ack
        assert r.status_code in ok, (template, r.status_code, r.text[:200])
        assert r.headers["content-type"].startswith("application/json")
    for path, name in HOSTILE_QUERIES:
        r = client.get(path, params={name: value})
        if path == "/api/deadletters":  # admins only; ``reason`` is free text: an empty page
            ok = {"staff": (403,), "admin": (200, 422)}[role]
        else:
            ok = (404, 422)
        assert r.status_code in ok, (path, name, r.status_code, r.text[:200])
