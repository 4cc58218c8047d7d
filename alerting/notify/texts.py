"""The SMS texts: one notice, a group of notices of one clinic, or a digest when a phone has reached
its rate limit. zh-CN by default, English for people whose registry language is ``en``.

A single alert's text is the rule's own text (``alerting.messages``: written to fit one 70-character
segment) with a short prefix for escalations and reminders and the signed acknowledgement link. The
link (about 35 characters) usually makes it two segments; a grouped text lists each alert in a few
words with its own link, since a link acknowledges exactly one alert for one person.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from alerting.lifecycle import AlertChange, change_of
from alerting.messages import EN, SMS_SEGMENT_CHARS, Names, normalize_lang, render, render_short
from alerting.notify.planner import Purpose
from alerting.store import AlertRow, AlertState, EventKind

DIGEST_LINKS = 3  # a digest carries the links of the most severe alerts only


@dataclass(frozen=True, slots=True)
class Item:
    """One notice as the texts need it."""

    purpose: Purpose
    alert: AlertRow
    link: str | None  # the signed acknowledgement link, for the purposes that ask for one
    unacked_min: int = 0  # for escalations and reminders: how long nobody acknowledged


def segments(text: str) -> int:
    """SMS segments a text takes: 70 UCS-2 characters in one, 67 each when concatenated (GSM-7 for
    plain ASCII text: 160 / 153)."""
    ascii_only = all(ord(ch) < 128 for ch in text)
    one, many = (160, 153) if ascii_only else (SMS_SEGMENT_CHARS, 67)
    n = len(text)
    return 1 if n <= one else -(-n // many)


def _change(alert: AlertRow, kind: EventKind, by: str) -> AlertChange:
    return change_of(alert, kind, alert.last_change_at, by)


def _ack_part(link: str | None, zh: bool) -> str:
    if not link:
        return ""
    return f" 确认 {link}" if zh else f" Ack: {link}"


def single(item: Item, lang: str, names: Names | None) -> str:
    zh = normalize_lang(lang) != EN
    a = item.alert
    message = a.message if zh else a.message_en
    if item.purpose is Purpose.acknowledged:
        return render(_change(a, EventKind.acknowledged, a.acknowledged_by or ""), lang, names)
    if item.purpose is Purpose.resolved:
        if a.state == AlertState.resolved.value:
            return render(_change(a, EventKind.resolved, a.resolved_by or "system"), lang, names)
        return render(_change(a, EventKind.condition_cleared, "system"), lang, names)
    prefix = ""
    if item.purpose is Purpose.escalated:
        prefix = (
            f"【{item.unacked_min}分钟无人确认，已升级】"
            if zh
            else f"[Escalated: no ack for {item.unacked_min} min] "
        )
    elif item.purpose is Purpose.reminder:
        prefix = (
            f"【提醒：{item.unacked_min}分钟无人确认】"
            if zh
            else f"[Reminder: no ack for {item.unacked_min} min] "
        )
    elif item.purpose is Purpose.severity:
        prefix = "【升级】" if zh else "[Now more severe] "
    return f"{prefix}{message}{_at_risk(a, zh)}{_ack_part(item.link, zh)}"


def _short(item: Item, lang: str, names: Names | None) -> str:
    zh = normalize_lang(lang) != EN
    a = item.alert
    what = render_short(a.rule, a.subject, a.clinic, a.values or {}, lang, names)
    if item.purpose is Purpose.resolved:
        return what + ("已解除" if zh else " cleared")
    if item.purpose is Purpose.acknowledged:
        return what + ("已确认" if zh else " acknowledged")
    if item.purpose is Purpose.reminder:
        what += f"（{item.unacked_min}分钟未确认）" if zh else f" (no ack for {item.unacked_min} min)"
    doses = _doses_at_risk(a)
    if doses:
        what += f"（{doses}剂疫苗受影响）" if zh else f" ({doses} doses at risk)"
    return what + _ack_part(item.link, zh)


def _doses_at_risk(alert: AlertRow) -> int:
    """The doses a heat or freeze alarm puts at risk (``alerting.impact`` stores it on the alert; 0: none
    recorded in the appliance, or not such an alarm)."""
    n = (alert.values or {}).get("doses_at_risk")
    return n if isinstance(n, int) and not isinstance(n, bool) and n > 0 else 0


def _at_risk(alert: AlertRow, zh: bool) -> str:
    """ "涉及疫苗120剂。" / " 120 vaccine doses at risk." after a heat or freeze alarm's text."""
    n = _doses_at_risk(alert)
    if not n:
        return ""
    return f"涉及疫苗{n}剂。" if zh else f" {n} vaccine doses at risk."


def _place(clinic: str | None, lang: str, names: Names | None) -> str:
    lookup: Mapping[str, str] = names.for_lang(lang) if names else {}
    return lookup.get(clinic or "", clinic or "")


def _order(items: Sequence[Item]) -> list[Item]:
    rank = {"critical": 0, "warning": 1, "info": 2}
    return sorted(
        items, key=lambda i: (not i.purpose.asks_for_ack, rank.get(i.alert.severity, 3), i.alert.id)
    )


def group(items: Sequence[Item], lang: str, names: Names | None) -> str:
    """Several notices of one clinic in one SMS."""
    if len(items) == 1:
        return single(items[0], lang, names)
    zh = normalize_lang(lang) != EN
    ordered = _order(items)
    critical = any(i.alert.severity == "critical" and i.purpose.asks_for_ack for i in ordered)
    place = _place(ordered[0].alert.clinic, lang, names)
    parts = [f"{n}.{_short(i, lang, names)}" for n, i in enumerate(ordered, 1)]
    if zh:
        tag = "【冷链警报】" if critical else "【冷链提醒】"
        return f"{tag}{place} {len(items)}条：" + "；".join(parts)
    tag = "[Cold chain ALARM]" if critical else "[Cold chain]"
    return f"{tag} {place}, {len(items)} alerts: " + "; ".join(parts)


def digest(items: Sequence[Item], lang: str, names: Names | None, public_url: str) -> str:
    """Everything held back for one phone by its rate limit, in one SMS: counts per clinic and the links
    of the most severe alerts."""
    zh = normalize_lang(lang) != EN
    ordered = _order(items)
    per_clinic: dict[str, int] = {}
    for i in ordered:
        place = _place(i.alert.clinic, lang, names)
        per_clinic[place] = per_clinic.get(place, 0) + 1
    asks = [i for i in ordered if i.purpose.asks_for_ack and i.link][:DIGEST_LINKS]
    counts = ("，" if zh else ", ").join(f"{p} {n}" for p, n in per_clinic.items())
    links = ("；" if zh else "; ").join(_short(i, lang, names) for i in asks)
    page = public_url.rstrip("/")
    if zh:
        text = f"【冷链汇总】短信已达上限，{len(items)}条合并：{counts}。"
        return text + (f"{links}。" if links else "") + f"详情 {page}"
    text = f"[Cold chain digest] SMS limit reached, {len(items)} notices: {counts}. "
    return text + (f"{links}. " if links else "") + f"Details: {page}"
