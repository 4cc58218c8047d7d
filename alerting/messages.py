"""Short alert texts for SMS, pages and the clinic display: zh-CN by default, English second.

``render(item, lang, names)`` takes a rule ``Decision`` or a lifecycle ``AlertChange`` and a mapping
id -> human name (clinics, equipment, devices, people; ``Names`` holds one per language). An id that is
not in the mapping is shown as it is. The numbers come from the decision's values: ``celsius``,
``minutes``, ``threshold_c``, ``forecast_min``, ``battery_pct``, ``reason``, ``silent_min`` and a few
more; a value that is missing leaves its part of the sentence out rather than printing "None".

One SMS segment holds 70 Chinese characters (UCS-2): the texts are written to stay within it for the
names of the demo district (tested), so the notifier's signed link is the only thing that may need a
second segment.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from alerting.rules.types import Action, Decision, Severity

if TYPE_CHECKING:
    from alerting.lifecycle import AlertChange
    from core.registry_model import RegistryFile

ZH = "zh-CN"
EN = "en"
SMS_SEGMENT_CHARS = 70  # one UCS-2 SMS segment


@dataclass(frozen=True)
class Names:
    """Human names by id, one mapping per language (the registry's names are Chinese)."""

    zh: Mapping[str, str] = field(default_factory=dict)
    en: Mapping[str, str] = field(default_factory=dict)

    def for_lang(self, lang: str) -> Mapping[str, str]:
        return self.en if normalize_lang(lang) == EN else self.zh


NameSource = Names | Mapping[str, str] | None


def normalize_lang(lang: str) -> str:
    """``en``, ``en-GB`` ... -> ``en``; anything else (``zh``, ``zh-CN``, unknown) -> ``zh-CN``."""
    return EN if lang.lower().split("-")[0] == "en" else ZH


def registry_names(reg: RegistryFile) -> Names:
    """The names the registry knows (district, bureau, townships, clinics, equipment, people)."""
    d = reg.district
    zh: dict[str, str] = {d.id: d.name, d.bureau.id: d.bureau.name}
    for t in d.townships:
        zh[t.id] = t.name
        for c in t.clinics:
            zh[c.id] = c.name
            zh.update({e.id: e.name for e in c.equipment})
    zh.update({p.id: p.name for p in reg.people()})
    return Names(zh=zh)


# ---------------------------------------------------------------- formatting


def _num(values: Mapping[str, Any], key: str) -> float | None:
    v = values.get(key)
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        return None
    return float(v)


def _celsius(v: float) -> str:
    text = f"{v:.1f}"
    return "0.0" if text == "-0.0" else text


def _signed(v: float) -> str:
    """A threshold as the cold chain writes it: +8, +2, -0.5."""
    return f"{v:+g}"


def _duration(minutes: float, zh: bool) -> str:
    m = round(minutes)
    if m < 120:
        return f"{m} 分钟" if zh else f"{m} min"
    hours = f"{m / 60:.1f}".removesuffix(".0")
    return f"{hours} 小时" if zh else f"{hours} h"


@dataclass(frozen=True)
class _Ctx:
    zh: bool
    rule: str
    severity: str
    subject: str
    clinic: str | None
    values: Mapping[str, Any]
    names: Mapping[str, str]
    alert_id: str | None = None
    by: str | None = None

    def name(self, ident: str) -> str:
        return self.names.get(ident) or ident

    @property
    def place(self) -> str:
        """Clinic and subject: "清水镇卫生院 疫苗冷藏冰箱 1" / "Qingshui THC, Vaccine fridge 1"."""
        if self.clinic is None or self.clinic == self.subject:
            return self.name(self.subject)
        sep = " " if self.zh else ", "
        return f"{self.name(self.clinic)}{sep}{self.name(self.subject)}"

    @property
    def clinic_place(self) -> str:
        return self.name(self.clinic or self.subject)

    def num(self, key: str) -> float | None:
        return _num(self.values, key)

    def deg(self, v: float) -> str:
        return f"{v}°C" if self.zh else f"{v} °C"

    def temp(self) -> str:
        """ "9.2°C，" / "9.2 °C, " (or nothing)."""
        c = self.num("celsius")
        if c is None:
            return ""
        return f"{self.deg(_celsius(c))}，" if self.zh else f"{self.deg(_celsius(c))}, "

    def threshold(self, default: float) -> str:
        th = self.num("threshold_c")
        return self.deg(_signed(default if th is None else th))

    def dur(self, key: str) -> str | None:
        m = self.num(key)
        return None if m is None else _duration(m, self.zh)

    def lasting(self, key: str = "minutes") -> str:
        """ " 35 分钟" / " for 35 min" (or nothing)."""
        d = self.dur(key)
        if d is None:
            return ""
        return f" {d}" if self.zh else f" for {d}"

    def cold_chain_tag(self) -> str:
        critical = self.severity == Severity.critical
        if self.zh:
            return "【冷链警报】" if critical else "【冷链预警】"
        return "[Cold chain ALARM]" if critical else "[Cold chain warning]"


# ---------------------------------------------------------------- texts per rule


def _heat_warning(x: _Ctx) -> str:
    if x.zh:
        head = f"{x.cold_chain_tag()}{x.place}："
        return f"{head}{x.temp()}已高于 {x.threshold(8)}{x.lasting()}。请检查冰箱门和电源。"
    return (
        f"{x.cold_chain_tag()} {x.place}: {x.temp()}above {x.threshold(8)}{x.lasting()}. "
        "Check the door and the power."
    )


def _heat_alarm(x: _Ctx) -> str:
    cumulative = x.dur("cumulative_minutes")
    if x.zh:
        how = (
            f"高于 {x.threshold(8)} 累计 {cumulative}"
            if cumulative
            else f"已高于 {x.threshold(8)}{x.lasting()}"
        )
        return f"{x.cold_chain_tag()}{x.place}：{x.temp()}{how}。请立即转移疫苗，暂停使用并记录处理措施。"
    how = (
        f"above {x.threshold(8)} for {cumulative} in total"
        if cumulative
        else f"above {x.threshold(8)}{x.lasting()}"
    )
    return (
        f"{x.cold_chain_tag()} {x.place}: {x.temp()}{how}. "
        "Move the vaccines now, do not use them and record the action."
    )


def _freeze_alarm(x: _Ctx) -> str:
    sensitive = bool(x.values.get("freeze_sensitive"))
    if x.zh:
        advice = "疫苗可能已冻结，振荡试验前请勿使用。" if sensitive else "请检查温控器设置。"
        return f"{x.cold_chain_tag()}{x.place}：{x.temp()}已低于 {x.threshold(-0.5)}{x.lasting()}。{advice}"
    advice = (
        "Vaccines may be frozen: do not use until a shake test." if sensitive else "Check the thermostat."
    )
    return f"{x.cold_chain_tag()} {x.place}: {x.temp()}at or below {x.threshold(-0.5)}{x.lasting()}. {advice}"


def _cold_warning(x: _Ctx) -> str:
    if x.zh:
        head = f"{x.cold_chain_tag()}{x.place}："
        return f"{head}{x.temp()}已低于 {x.threshold(2)}{x.lasting()}。请检查温控器，防止疫苗冻结。"
    return (
        f"{x.cold_chain_tag()} {x.place}: {x.temp()}below {x.threshold(2)}{x.lasting()}. "
        "Check the thermostat; do not let the vaccines freeze."
    )


def _early_warning(x: _Ctx) -> str:
    freeze = x.values.get("direction") == "freeze"
    th = x.threshold(-0.5 if freeze else 8)
    f = x.num("forecast_min")
    if x.zh:
        trend = "正在降温" if freeze else "正在升温"
        when = f"预计 {_duration(f, True)}后" if f is not None else "将"
        reach = f"降至 {th}" if freeze else f"高于 {th}"
        advice = "请检查温控器。" if freeze else "请检查冰箱门和电源。"
        return f"【冷链预警】{x.place}：{x.temp()}{trend}，{when}{reach}。{advice}"
    trend = "falling" if freeze else "rising"
    reach = f"at {th}" if freeze else f"above {th}"
    when = f" in about {_duration(f, False)}" if f is not None else " soon"
    advice = "Check the thermostat." if freeze else "Check the door and the power."
    return f"[Cold chain early warning] {x.place}: {x.temp()}{trend}, {reach}{when}. {advice}"


def _power_outage(x: _Ctx) -> str:
    d = x.dur("minutes")
    f = x.num("forecast_min")
    if x.zh:
        off = f"已停电 {d}。" if d else "已停电。"
        if f is None:
            hold = ""
        elif f <= 0:
            hold = "冰箱已超温。"
        else:
            hold = f"预计 {_duration(f, True)}后冰箱超温。"
        return f"【停电】{x.place}：{off}{hold}请恢复供电或准备冰排。"
    off = f"no mains power for {d}." if d else "no mains power."
    if f is None:
        hold = ""
    elif f <= 0:
        hold = " A fridge is out of range."
    else:
        hold = f" A fridge goes out of range in about {_duration(f, False)}."
    return f"[Power cut] {x.place}: {off}{hold} Restore the power or prepare ice packs."


def _battery_low(x: _Ctx) -> str:
    pct = x.num("battery_pct")
    if x.zh:
        level = f"电池电量 {round(pct)}%。" if pct is not None else "电池电量低。"
        return f"【电量低】{x.place}：{level}请尽快充电或更换电池。"
    level = f"battery at {round(pct)} %." if pct is not None else "battery low."
    return f"[Battery low] {x.place}: {level} Charge or replace it soon."


_PROBE_REASONS_ZH = {
    "ds18b20_85": "读数 85°C（探头上电错误）",
    "ds18b20_minus127": "读数 -127°C（探头断开）",
}
_PROBE_REASONS_EN = {
    "ds18b20_85": "reading 85 °C (probe power-on error)",
    "ds18b20_minus127": "reading -127 °C (probe disconnected)",
}


def _probe_reason(x: _Ctx) -> str:
    reason = str(x.values.get("reason") or "")
    table = _PROBE_REASONS_ZH if x.zh else _PROBE_REASONS_EN
    if reason in table:
        return table[reason]
    if reason == "stuck":
        d = x.dur("minutes")
        if x.zh:
            return f"读数 {d}无变化" if d else "读数长时间无变化"
        return f"reading unchanged for {d}" if d else "reading unchanged for hours"
    if reason == "out_of_range":
        raw = x.num("raw")
        raw = x.num("celsius") if raw is None else raw
        if x.zh:
            return f"读数 {x.deg(_celsius(raw))} 超出量程" if raw is not None else "读数超出量程"
        return f"reading {x.deg(_celsius(raw))} out of range" if raw is not None else "reading out of range"
    return "读数异常" if x.zh else "faulty readings"


def _probe_fault(x: _Ctx) -> str:
    if x.zh:
        return f"【探头故障】{x.place}：{_probe_reason(x)}，温度无法监测。请检查探头和接线。"
    return (
        f"[Probe fault] {x.place}: {_probe_reason(x)}; temperature not monitored. "
        "Check the probe and its cable."
    )


def _device_offline(x: _Ctx) -> str:
    d = x.dur("silent_min")
    whole_clinic = x.clinic is not None and x.subject == x.clinic
    n = x.num("devices")
    if x.zh:
        silent = f"已 {d}无数据" if d else "无数据"
        if whole_clinic:
            who = f"全部 {round(n)} 台设备" if n is not None else "全部设备"
            return f"【设备离线】{x.clinic_place}：{who}{silent}。请检查电源和网络。"
        return f"【设备离线】{x.place}：{silent}。请检查网关电源和网络。"
    silent = f"no data for {d}" if d else "no data"
    if whole_clinic:
        who = f"all {round(n)} devices" if n is not None else "all devices"
        return f"[Device offline] {x.clinic_place}: {who}, {silent}. Check the power and the network."
    return f"[Device offline] {x.place}: {silent}. Check the gateway's power and network."


_SLOTS_ZH = {"morning": "上午", "afternoon": "下午"}


def _twice_daily_check(x: _Ctx) -> str:
    slot = str(x.values.get("slot") or "")
    if x.zh:
        return f"【温度记录提醒】{x.place}：{_SLOTS_ZH.get(slot, '')}温度检查未按时完成。请查看并记录温度。"
    which = f"the {slot} " if slot in _SLOTS_ZH else "the "
    return (
        f"[Temperature check] {x.place}: {which}temperature check is overdue. "
        "Read and record the temperature."
    )


# ---------------------------------------------------------------- medical waste


def _waste_tag(x: _Ctx) -> str:
    critical = x.severity == Severity.critical
    if x.zh:
        return "【医废警报】" if critical else "【医废预警】"
    return "[Medical waste ALARM]" if critical else "[Medical waste]"


def _bag(x: _Ctx) -> str:
    """ "清水镇卫生院 qingshui-thc-20261123-0001" / "Qingshui THC, bag ..." """
    sep = " " if x.zh else ", "
    word = "" if x.zh else "bag "  # zh: the tag already says 医废
    return f"{x.clinic_place}{sep}{word}{x.subject}" if x.clinic else f"{word}{x.subject}"


def _hours(x: _Ctx, default: float) -> str:
    """The threshold the alert was judged by (``limit_h``), else the national default."""
    h = x.num("limit_h")
    return f"{default if h is None else h:g}"


def _not_collected(x: _Ctx) -> str:
    if x.zh:
        return f"{_waste_tag(x)}{_bag(x)}：产生后 {_hours(x, 24)} 小时仍未从科室收集。请安排收集。"
    return (
        f"{_waste_tag(x)} {_bag(x)}: not collected from the ward {_hours(x, 24)} h after it was filled. "
        "Collect it."
    )


def _storage_overdue(x: _Ctx) -> str:
    h = _hours(x, 48 if x.severity == Severity.critical else 36)
    if x.zh:
        return f"{_waste_tag(x)}{_bag(x)}：暂存已超 {h} 小时未交转运。请联系转运单位。"
    return f"{_waste_tag(x)} {_bag(x)}: in the store over {h} h without handover. Call the transporter."


def _lost_in_transport(x: _Ctx) -> str:
    if x.zh:
        return f"{_waste_tag(x)}{_bag(x)}：交转运 {_hours(x, 24)} 小时后处置中心仍未接收。请核查去向。"
    return (
        f"{_waste_tag(x)} {_bag(x)}: handed over {_hours(x, 24)} h ago, not received at the plant. Trace it."
    )


_STAGE_ZH = {
    "generated": "产生",
    "collected": "收集",
    "stored": "暂存",
    "handed_over": "交接",
    "received": "接收",
    "disposed": "处置",
}


_STAGE_EN = {
    "collected": "at collection",
    "stored": "in the store",
    "handed_over": "at handover",
    "received": "at the plant",
    "disposed": "at disposal",
}


def _kg(v: float | None) -> str:
    return "" if v is None else f"{v:g} kg"


def _weight_discrepancy(x: _Ctx) -> str:
    stage = str(x.values.get("stage") or "")
    kg, gen, pct = x.num("weight_kg"), x.num("generated_kg"), x.num("diff_pct")
    if x.zh:
        what = f"{_STAGE_ZH.get(stage, stage)} {_kg(kg)}，产生 {_kg(gen)}" if kg and gen else "重量不符"
        apart = f"，差 {pct:g}%" if pct is not None else ""
        return f"{_waste_tag(x)}{_bag(x)}：{what}{apart}。请核查。"
    where = _STAGE_EN.get(stage, stage.replace("_", " "))
    what = f"{_kg(kg)} {where}, {_kg(gen)} when filled" if kg and gen else "weight differs"
    apart = f", {pct:g} % apart" if pct is not None else ""
    return f"{_waste_tag(x)} {_bag(x)}: {what}{apart}. Check it."


def _out_of_sequence(x: _Ctx) -> str:
    if x.zh:
        return f"【医废提醒】{_bag(x)}：扫描记录异常，请核查。"
    reason = str(x.values.get("reason") or "")
    return f"[Medical waste] {_bag(x)}: scans out of sequence ({reason[:60]}). Check it."


def _late_pickup(x: _Ctx) -> str:
    n = x.num("bags")
    due = str(x.values.get("due") or "")[11:16]
    if x.zh:
        bags = f"，暂存 {round(n)} 袋" if n is not None else ""
        return f"{_waste_tag(x)}{x.clinic_place}：转运单位未按计划在 {due} 前收运{bags}。请联系转运单位。"
    bags = f", {round(n)} bag(s) waiting" if n is not None else ""
    return f"{_waste_tag(x)} {x.clinic_place}: the transporter did not come by {due}{bags}. Call them."


def _manifest_mismatch(x: _Ctx) -> str:
    n = x.num("extra_bags")
    if x.zh:
        extra = f"多出 {round(n)} 袋" if n else "不符"
        return f"{_waste_tag(x)}转移联单 {x.subject}：处置中心接收与交接{extra}。请核查。"
    extra = f"{round(n)} bag(s) not on it" if n else "does not match"
    return f"{_waste_tag(x)} Manifest {x.subject}: received {extra}. Check it."


def _refused_at_plant(x: _Ctx) -> str:
    kg = _kg(x.num("refused_kg"))
    reason = str(x.values.get("reason") or "")
    if x.zh:
        why = f"（{reason}）" if reason else ""
        return f"{_waste_tag(x)}{_bag(x)}：处置中心拒收{' ' + kg if kg else ''}{why}。请处理。"
    why = f" ({reason})" if reason else ""
    what = f" {kg}" if kg else " it"
    return f"{_waste_tag(x)} {_bag(x)}: the plant refused{what}{why}. Deal with the returned waste."


def _generic(x: _Ctx) -> str:
    label = _label(x)
    critical = x.severity == Severity.critical
    if x.zh:
        return f"{'【警报】' if critical else '【提醒】'}{x.place}：{label}。"
    return f"{'[ALARM]' if critical else '[Alert]'} {x.place}: {label}."


_TEXTS: dict[str, Callable[[_Ctx], str]] = {
    "heat_warning": _heat_warning,
    "heat_alarm": _heat_alarm,
    "freeze_alarm": _freeze_alarm,
    "cold_warning": _cold_warning,
    "early_warning": _early_warning,
    "power_outage": _power_outage,
    "battery_low": _battery_low,
    "probe_fault": _probe_fault,
    "device_offline": _device_offline,
    "twice_daily_check": _twice_daily_check,
    "not_collected": _not_collected,
    "storage_overdue": _storage_overdue,
    "lost_in_transport": _lost_in_transport,
    "weight_discrepancy": _weight_discrepancy,
    "out_of_sequence": _out_of_sequence,
    "late_pickup": _late_pickup,
    "manifest_mismatch": _manifest_mismatch,
    "refused_at_plant": _refused_at_plant,
}

_LABELS: dict[str, tuple[str, str]] = {
    "heat_warning": ("高温预警", "heat warning"),
    "heat_alarm": ("高温警报", "heat alarm"),
    "cold_warning": ("低温预警", "cold warning"),
    "freeze_alarm": ("冻结警报", "freeze alarm"),
    "early_warning": ("温度趋势预警", "early warning"),
    "probe_fault": ("探头故障", "probe fault"),
    "device_offline": ("设备离线", "device offline"),
    "power_outage": ("停电", "power cut"),
    "battery_low": ("电量低", "low battery"),
    "twice_daily_check": ("温度检查提醒", "temperature check reminder"),
    "not_collected": ("医废未收集", "waste not collected"),
    "storage_overdue": ("医废暂存超时", "waste stored too long"),
    "lost_in_transport": ("医废转运未达", "waste lost in transport"),
    "weight_discrepancy": ("医废重量不符", "waste weight differs"),
    "out_of_sequence": ("医废扫描异常", "waste scans out of sequence"),
    "late_pickup": ("医废未按时收运", "waste pickup late"),
    "manifest_mismatch": ("转移联单不符", "manifest mismatch"),
    "refused_at_plant": ("医废被拒收", "waste refused at plant"),
}


def _label(x: _Ctx) -> str:
    zh, en = _LABELS.get(x.rule, (x.rule, x.rule.replace("_", " ")))
    return zh if x.zh else en


# ---------------------------------------------------------------- state texts


def _cleared(x: _Ctx) -> str:
    """A critical cold-chain alert whose condition is over: it waits for a corrective action."""
    ref = f" {x.alert_id}" if x.alert_id else ""
    if x.zh:
        return f"【冷链恢复】{x.place}：温度已恢复正常。请记录处理措施后关闭警报{ref}。"
    return (
        f"[Back in range] {x.place}: temperature back in range. "
        f"Record the corrective action to close alert{ref}."
    )


def _resolved(x: _Ctx) -> str:
    person = x.by is not None and x.by != "system"
    if x.zh:
        if person:
            return f"【已关闭】{x.place}：{_label(x)}已由 {x.name(x.by or '')} 关闭。"
        return f"【已恢复】{x.place}：{_label(x)}已解除。"
    if person:
        return f"[Closed] {x.place}: {_label(x)} closed by {x.name(x.by or '')}."
    return f"[Cleared] {x.place}: {_label(x)} cleared."


def _acknowledged(x: _Ctx) -> str:
    who = x.name(x.by or "")
    if x.zh:
        return f"【已确认】{x.place}：{_label(x)}已由 {who} 确认。"
    return f"[Acknowledged] {x.place}: {_label(x)} acknowledged by {who}."


def render(item: Decision | AlertChange, lang: str = ZH, names: NameSource = None) -> str:
    """The text of a decision (what the rule found) or of an alert change (fired, escalated, updated,
    reopened: the rule's text; condition_cleared, resolved, acknowledged: a short state text)."""
    lang = normalize_lang(lang)
    lookup: Mapping[str, str] = names.for_lang(lang) if isinstance(names, Names) else (names or {})
    if isinstance(item, Decision):
        ctx = _Ctx(
            lang == ZH, item.rule.value, item.severity.value, item.subject, item.clinic, item.values, lookup
        )
        return _resolved(ctx) if item.action is Action.clear else _rule_text(ctx)
    ctx = _Ctx(
        lang == ZH,
        str(item.rule),
        str(item.severity),
        item.subject,
        item.clinic,
        item.values,
        lookup,
        alert_id=item.alert_id,
        by=item.by,
    )
    kind = str(item.kind)
    if kind == "condition_cleared":
        return _cleared(ctx)
    if kind == "resolved":
        return _resolved(ctx)
    if kind == "acknowledged":
        return _acknowledged(ctx)
    return _rule_text(ctx)


def _lang_names(lang: str, names: NameSource) -> tuple[bool, Mapping[str, str]]:
    """(Chinese?, the names in that language) for a language and a name source."""
    lang = normalize_lang(lang)
    return lang == ZH, names.for_lang(lang) if isinstance(names, Names) else (names or {})


def _rule_text(x: _Ctx) -> str:
    return _TEXTS.get(x.rule, _generic)(x)


def render_alert(
    rule: str,
    severity: str,
    subject: str,
    clinic: str | None,
    values: Mapping[str, Any],
    lang: str = ZH,
    names: NameSource = None,
) -> str:
    """The rule's text for an alert's current rule and numbers (what the store keeps as its message)."""
    zh, lookup = _lang_names(lang, names)
    return _rule_text(_Ctx(zh, rule, severity, subject, clinic, values, lookup))


def render_short(
    rule: str,
    subject: str,
    clinic: str | None,
    values: Mapping[str, Any],
    lang: str = ZH,
    names: NameSource = None,
) -> str:
    """A few words for one alert in a grouped SMS of its clinic: "疫苗冷藏冰箱 1 高温警报 9.2°C" /
    "Vaccine fridge 1 heat alarm 9.2 °C" (the clinic is said once, before the list)."""
    zh, lookup = _lang_names(lang, names)
    x = _Ctx(zh, rule, "", subject, clinic, values, lookup)
    what = x.name(subject) if subject != clinic else ""
    c = x.num("celsius")
    temp = x.deg(_celsius(c)) if c is not None else ""
    return " ".join(part for part in (what, _label(x), temp) if part)
