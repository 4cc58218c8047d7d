"""The excursion impact on the clinic page and the shake-test page (issue 9, items 4 and 5), for the
nurse who must decide what to do with the vaccines after a heat or freeze alarm: server-rendered, no
JavaScript, zh-CN by default (``?lang=en``), big buttons for a cheap phone.

- ``add_impacts``: the clinic page's alert blocks (``web.pages``) get the lots that were inside, their
  doses, expiry, heat budget left and the recommendation with its reasons (``alerting.impact``), and a
  link to the shake test when there is one.
- ``GET /alerts/{alert_id}/shake-test``: for a freeze alarm, WHO's shake test in plain steps and, per
  freeze-sensitive lot, its result or the form to record it. An alert without a shake test (a heat
  alarm, nothing freeze-sensitive inside) says so.
- ``POST /alerts/{alert_id}/shake-test`` (``lot``, ``result`` = passed / failed, ``csrf``): records the
  result and the stock movements (``alerting.impact.record_shake_test``: quarantined first if need be,
  then released or discarded), then back to the page (303). A result that cannot be recorded shows the
  page again with why (422); on an alert without a shake test it shows that page (200), nothing done.
- ``POST /alerts/{alert_id}/shake-test/close``: once every lot has its result, resolves the alert with
  the shake test as its corrective action (``shake_test_done: HB1 passed, …``), then to the clinic page.

Scope as everywhere (``web.auth``): an alert outside the user's scope is 404; admins look but do not
record (403); every result and closing goes to the audit log.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.orm import Session

from alerting import impact as im
from alerting.impact import AlertImpact, LotImpact, ShakeResult
from alerting.messages import EN
from alerting.store import AlertRow, AlertState
from web.api_alerts import ACT_ROLES, ActUser, AlertId, lock_alert
from web.app import ClockDep, SessionDep, form_field, form_lang
from web.auth import CurrentUser, User, audit, can_see_clinic
from web.i18n import corrective_action_text, local_time, pick_lang, texts
from web.pages import FormDep, Lang, _back, _clinic_url, _people, _render, lang_url

router = APIRouter(tags=["pages"])

STEPS = 5  # shake_step1 … shake_step5


# ---------------------------------------------------------------- the impact on the clinic page


def add_impacts(session: Session, alerts: dict[str, dict[str, Any]], t: dict[str, str], lang: str) -> None:
    """Put each alert's impact (``impact``: a view for the page, None without one) on the clinic page's
    alert views (``web.pages._alert_view``), keyed by alert id."""
    impacts = im.alert_impacts(session, list(alerts))
    for alert_id, view in alerts.items():
        found = impacts.get(alert_id)
        if found is None:  # an alarm whose appliance held no recorded stock still says so
            alert = session.get(AlertRow, alert_id)
            counted = alert is not None and im.DOSES_AT_RISK in (alert.values or {})
            view["impact"] = {"at_risk": t["impact_none"], "lots": [], "shake_url": None} if counted else None
        else:
            view["impact"] = impact_view(found, t, lang)


def impact_view(impact: AlertImpact, t: dict[str, str], lang: str) -> dict[str, Any]:
    return {
        "at_risk": t["impact_at_risk"].format(n=impact.doses_at_risk),
        "lots": [_lot_view(x, t, lang) for x in impact.lots],
        "shake_url": _url(impact.alert_id, lang) if impact.shake_lots else None,
        "shake_done": impact.shake_done,
    }


def _lot_view(x: LotImpact, t: dict[str, str], lang: str) -> dict[str, Any]:
    product = x.product_name_en if lang == EN else x.product_name
    facts = [t["impact_expiry"].format(date=x.expiry)]
    if x.doses_quarantined:
        facts.append(t["impact_quarantined"].format(n=x.doses_quarantined))
    if x.heat_budget_left is not None:
        facts.append(t["impact_budget_left"].format(pct=round(x.heat_budget_left * 100)))
    elif x.vvm_type is None:
        facts.append(t["impact_no_vvm"])
    if x.freeze_minutes:
        facts.append(t["impact_freeze_min"].format(n=round(x.freeze_minutes)))
    return {
        "lot_id": x.lot_id,
        "lot_number": x.lot_number,
        "title": t["impact_lot"].format(product=product, lot=x.lot_number, doses=x.doses),
        "facts": " · ".join(facts),
        "recommendation": x.recommendation.value,
        "recommendation_label": t[f"rec_{x.recommendation.value}"],
        "reasons": _reasons([t[f"reason_{r.value}"] for r in x.reasons], lang),
        "shake_result": x.shake_result.value if x.shake_result else None,
    }


def _reasons(words: list[str], lang: str) -> str:
    """ "（冻结敏感疫苗，可能已冻结）" / " (freeze-sensitive, and it may have frozen)"; "" for none."""
    if not words:
        return ""
    return f" ({'; '.join(words)})" if lang == EN else f"（{'；'.join(words)}）"


# ---------------------------------------------------------------- the shake-test page


@router.get("/alerts/{alert_id}/shake-test", response_class=HTMLResponse)
def shake_test_page(
    alert_id: AlertId,
    request: Request,
    session: SessionDep,
    clock: ClockDep,
    user: CurrentUser,
    lang: Lang = None,
) -> HTMLResponse:
    """WHO's shake test for a freeze alarm's freeze-sensitive lots: the steps and each lot's result."""
    alert = _alert_or_404(session, user, alert_id)
    return _page(request, session, clock.now(), user, alert, pick_lang(lang, user.language))


@router.post("/alerts/{alert_id}/shake-test", response_class=RedirectResponse, status_code=303)
def shake_test_result(
    alert_id: AlertId,
    request: Request,
    session: SessionDep,
    clock: ClockDep,
    user: ActUser,
    form: FormDep,
) -> Response:
    """Record one lot's shake-test result and move its doses (released or discarded)."""
    now = clock.now()
    lang = form_lang(form, user.language)
    t = texts(lang)
    lock_alert(session, alert_id)
    alert = _alert_or_404(session, user, alert_id)
    impact = im.alert_impact(session, alert.id)
    if impact is None or not impact.shake_lots:
        session.rollback()
        return _page(request, session, now, user, alert, lang)  # nothing to test: the page says so
    lot_text, result_text = form_field(form, "lot", 20).strip(), form_field(form, "result", 16).strip()
    if not (lot_text.isdigit() and len(lot_text) <= 9) or result_text not in {r.value for r in ShakeResult}:
        session.rollback()
        return _page(request, session, now, user, alert, lang, status=422, error=t["shake_bad_form"])
    lot_id, result = int(lot_text), ShakeResult(result_text)
    try:
        out = im.record_shake_test(session, alert.id, lot_id, result, user.actor, now)
    except im.ImpactError as exc:
        session.rollback()
        return _page(request, session, now, user, alert, lang, status=422, error=str(exc))
    lot = next((x for x in impact.lots if x.lot_id == lot_id), None)
    detail = {
        "lot_id": lot_id,
        "lot_number": lot.lot_number if lot else None,
        "result": result.value,
        "changed": out.changed,
        "quarantined": out.quarantined,
        "released" if result is ShakeResult.passed else "discarded": out.doses,
        "by": user.actor,
    }
    audit(session, request, user, now, "shake_test_result", "alert", alert.id, detail)
    session.commit()
    return RedirectResponse(_url(alert.id, lang), status_code=303, headers={"Cache-Control": "no-store"})


@router.post("/alerts/{alert_id}/shake-test/close", response_class=RedirectResponse, status_code=303)
def shake_test_close(
    alert_id: AlertId,
    request: Request,
    session: SessionDep,
    clock: ClockDep,
    user: ActUser,
    form: FormDep,
) -> Response:
    """Close the alert with the shake test's results as its corrective action."""
    now = clock.now()
    lang = form_lang(form, user.language)
    t = texts(lang)
    lock_alert(session, alert_id)
    alert = _alert_or_404(session, user, alert_id)
    impact = im.alert_impact(session, alert.id)
    if impact is None or not impact.shake_lots:
        session.rollback()
        return _page(request, session, now, user, alert, lang)  # nothing to test: the page says so
    try:
        changes = im.close_after_shake_test(session, alert.id, user.actor, now, lang)
    except im.ImpactError:
        session.rollback()
        return _page(request, session, now, user, alert, lang, status=422, error=t["shake_not_all"])
    info = {
        "changed": bool(changes),
        "by": user.actor,
        "corrective_action": im.shake_test_action(impact, lang),
        "via": "shake_test",
    }
    audit(session, request, user, now, "alert_resolve", "alert", alert.id, info)
    session.commit()
    return _back(alert.clinic, lang)


# ---------------------------------------------------------------- helpers


def _page(
    request: Request,
    session: Session,
    now: float,
    user: User,
    alert: AlertRow,
    lang: str,
    *,
    status: int = 200,
    error: str | None = None,
) -> HTMLResponse:
    t = texts(lang)
    impact = im.alert_impact(session, alert.id)
    people = _people(session)
    lots = []
    for x in impact.shake_lots if impact is not None else []:
        view = _lot_view(x, t, lang)
        if x.shake_result is not None:
            key = f"shake_result_{x.shake_result.value}"
            view["result_text"] = t[key].format(
                n=x.shake_doses or 0,
                name=people.get(x.shake_by or "", x.shake_by or ""),
                time=local_time(x.shake_at or now, lang),
            )
        lots.append(view)
    is_open = alert.state != AlertState.resolved.value
    done = impact is not None and impact.shake_done
    return _render(
        request,
        "shake_test.html",
        lang,
        user,
        status=status,
        title=t["shake_title"],
        alert_id=alert.id,
        message=alert.message_en if lang == EN else alert.message,
        since=local_time(alert.started_at, lang),
        steps=[t[f"shake_step{i}"] for i in range(1, STEPS + 1)],
        lots=lots,
        can_act=user.role in ACT_ROLES,
        done=done,
        can_close=done and is_open,
        action=corrective_action_text(im.shake_test_action(impact, lang), lang) if impact else None,
        closed=None if is_open else corrective_action_text(alert.corrective_action, lang),
        error=error,
        action_url=_url(alert.id, None),
        back_url=_clinic_url(alert.clinic or "", lang),
    )


def _alert_or_404(session: Session, user: User, alert_id: str) -> AlertRow:
    alert = session.get(AlertRow, alert_id)
    if alert is None or not can_see_clinic(session, user, alert.clinic):
        raise HTTPException(404, f"no alert {alert_id!r}")
    return alert


def _url(alert_id: str, lang: str | None) -> str:
    return lang_url(f"/alerts/{quote(alert_id, safe='')}/shake-test", lang)
