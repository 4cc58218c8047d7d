"""Alert texts: zh-CN first and English second, names looked up (ids when unknown), the shake-test
instruction for frozen vaccines, and one SMS segment (70 characters) for every demo clinic and
appliance."""

from __future__ import annotations

from typing import Any

import pytest

from alerting.lifecycle import AlertChange
from alerting.messages import SMS_SEGMENT_CHARS, Names, normalize_lang, registry_names, render
from alerting.rules.types import Action, Decision, Rule, Severity
from alerting.store import AlertState, EventKind
from core.registry_model import DEMO_REGISTRY, load_registry_file

REG = load_registry_file(DEMO_REGISTRY)
ZH_NAMES = registry_names(REG)
NAMES = Names(
    zh=ZH_NAMES.zh,
    en={"qingshui-thc": "Qingshui THC", "qingshui-fridge1": "Vaccine fridge 1", "qingshui-gw1": "Gateway 1"},
)
T = 1_795_000_000.0


def dec(
    rule: Rule,
    severity: Severity = Severity.warning,
    subject: str = "qingshui-fridge1",
    clinic: str | None = "qingshui-thc",
    action: Action = Action.fire,
    **values: Any,
) -> Decision:
    return Decision(T, rule, severity, action, subject, rule.value.split("_")[0], clinic, values)


# (rule, severity, subject, values, zh text, en text) for Qingshui's fridge 1 and gateway
CASES: list[tuple[Rule, Severity, str, dict[str, Any], str, str]] = [
    (
        Rule.heat_warning,
        Severity.warning,
        "qingshui-fridge1",
        {"celsius": 9.2, "minutes": 35, "threshold_c": 8.0, "peak_c": 9.4},
        "【冷链预警】清水镇卫生院 疫苗冷藏冰箱 1：9.2°C，已高于 +8°C 35 分钟。请检查冰箱门和电源。",
        "[Cold chain warning] Qingshui THC, Vaccine fridge 1: 9.2 °C, above +8 °C for 35 min. "
        "Check the door and the power.",
    ),
    (
        Rule.heat_alarm,
        Severity.critical,
        "qingshui-fridge1",
        {"celsius": 11.04, "minutes": 600, "threshold_c": 8.0},
        "【冷链警报】清水镇卫生院 疫苗冷藏冰箱 1：11.0°C，"
        "已高于 +8°C 10 小时。请立即转移疫苗，暂停使用并记录处理措施。",
        "[Cold chain ALARM] Qingshui THC, Vaccine fridge 1: 11.0 °C, above +8 °C for 10 h. "
        "Move the vaccines now, do not use them and record the action.",
    ),
    (
        Rule.heat_alarm,
        Severity.critical,
        "qingshui-fridge1",
        {"celsius": 9.0, "minutes": 50, "cumulative_minutes": 630, "threshold_c": 8.0},
        "【冷链警报】清水镇卫生院 疫苗冷藏冰箱 1：9.0°C，"
        "高于 +8°C 累计 10.5 小时。请立即转移疫苗，暂停使用并记录处理措施。",
        "[Cold chain ALARM] Qingshui THC, Vaccine fridge 1: 9.0 °C, above +8 °C for 10.5 h in total. "
        "Move the vaccines now, do not use them and record the action.",
    ),
    (
        Rule.freeze_alarm,
        Severity.critical,
        "qingshui-fridge1",
        {"celsius": -1.2, "minutes": 60, "threshold_c": -0.5, "freeze_sensitive": True},
        "【冷链警报】清水镇卫生院 疫苗冷藏冰箱 1：-1.2°C，"
        "已低于 -0.5°C 60 分钟。疫苗可能已冻结，振荡试验前请勿使用。",
        "[Cold chain ALARM] Qingshui THC, Vaccine fridge 1: -1.2 °C, at or below -0.5 °C for 60 min. "
        "Vaccines may be frozen: do not use until a shake test.",
    ),
    (
        Rule.freeze_alarm,
        Severity.warning,
        "qingshui-fridge1",
        {"celsius": -0.8, "minutes": 60, "threshold_c": -0.5, "freeze_sensitive": False},
        "【冷链预警】清水镇卫生院 疫苗冷藏冰箱 1：-0.8°C，已低于 -0.5°C 60 分钟。请检查温控器设置。",
        "[Cold chain warning] Qingshui THC, Vaccine fridge 1: -0.8 °C, at or below -0.5 °C for 60 min. "
        "Check the thermostat.",
    ),
    (
        Rule.cold_warning,
        Severity.warning,
        "qingshui-fridge1",
        {"celsius": 1.4, "minutes": 35, "threshold_c": 2.0},
        "【冷链预警】清水镇卫生院 疫苗冷藏冰箱 1：1.4°C，已低于 +2°C 35 分钟。请检查温控器，防止疫苗冻结。",
        "[Cold chain warning] Qingshui THC, Vaccine fridge 1: 1.4 °C, below +2 °C for 35 min. "
        "Check the thermostat; do not let the vaccines freeze.",
    ),
    (
        Rule.early_warning,
        Severity.warning,
        "qingshui-fridge1",
        {"celsius": 7.1, "direction": "heat", "threshold_c": 8.0, "forecast_min": 25},
        "【冷链预警】清水镇卫生院 疫苗冷藏冰箱 1：7.1°C，"
        "正在升温，预计 25 分钟后高于 +8°C。请检查冰箱门和电源。",
        "[Cold chain early warning] Qingshui THC, Vaccine fridge 1: "
        "7.1 °C, rising, above +8 °C in about 25 min. Check the door and the power.",
    ),
    (
        Rule.early_warning,
        Severity.warning,
        "qingshui-fridge1",
        {"celsius": 0.1, "direction": "freeze", "threshold_c": -0.5, "forecast_min": 40},
        "【冷链预警】清水镇卫生院 疫苗冷藏冰箱 1：0.1°C，正在降温，预计 40 分钟后降至 -0.5°C。请检查温控器。",
        "[Cold chain early warning] Qingshui THC, Vaccine fridge 1: "
        "0.1 °C, falling, at -0.5 °C in about 40 min. Check the thermostat.",
    ),
    (
        Rule.power_outage,
        Severity.warning,
        "qingshui-gw1",
        {"minutes": 12, "forecast_min": 95},
        "【停电】清水镇卫生院 qingshui-gw1：已停电 12 分钟。预计 95 分钟后冰箱超温。请恢复供电或准备冰排。",
        "[Power cut] Qingshui THC, Gateway 1: no mains power for 12 min. A fridge goes out of range in about "
        "95 min. Restore the power or prepare ice packs.",
    ),
    (
        Rule.power_outage,
        Severity.warning,
        "qingshui-gw1",
        {"minutes": 5, "forecast_min": None},
        "【停电】清水镇卫生院 qingshui-gw1：已停电 5 分钟。请恢复供电或准备冰排。",
        "[Power cut] Qingshui THC, Gateway 1: no mains power for 5 min. "
        "Restore the power or prepare ice packs.",
    ),
    (
        Rule.battery_low,
        Severity.warning,
        "qingshui-gw1",
        {"battery_pct": 18.4},
        "【电量低】清水镇卫生院 qingshui-gw1：电池电量 18%。请尽快充电或更换电池。",
        "[Battery low] Qingshui THC, Gateway 1: battery at 18 %. Charge or replace it soon.",
    ),
    (
        Rule.probe_fault,
        Severity.warning,
        "qingshui-fridge1",
        {"reason": "ds18b20_85", "raw": 85.0},
        "【探头故障】清水镇卫生院 疫苗冷藏冰箱 1：读数 85°C（探头上电错误），"
        "温度无法监测。请检查探头和接线。",
        "[Probe fault] Qingshui THC, Vaccine fridge 1: reading 85 °C (probe power-on error); temperature not "
        "monitored. Check the probe and its cable.",
    ),
    (
        Rule.probe_fault,
        Severity.warning,
        "qingshui-fridge1",
        {"reason": "ds18b20_minus127", "raw": -127.0},
        "【探头故障】清水镇卫生院 疫苗冷藏冰箱 1：读数 -127°C（探头断开），温度无法监测。请检查探头和接线。",
        "[Probe fault] Qingshui THC, Vaccine fridge 1: reading -127 °C (probe disconnected); temperature not "
        "monitored. Check the probe and its cable.",
    ),
    (
        Rule.probe_fault,
        Severity.warning,
        "qingshui-fridge1",
        {"reason": "out_of_range", "raw": 71.5},
        "【探头故障】清水镇卫生院 疫苗冷藏冰箱 1：读数 71.5°C 超出量程，温度无法监测。请检查探头和接线。",
        "[Probe fault] Qingshui THC, Vaccine fridge 1: reading 71.5 °C out of range; temperature not "
        "monitored. Check the probe and its cable.",
    ),
    (
        Rule.probe_fault,
        Severity.warning,
        "qingshui-fridge1",
        {"reason": "stuck", "celsius": 4.5, "minutes": 360},
        "【探头故障】清水镇卫生院 疫苗冷藏冰箱 1：读数 6 小时无变化，温度无法监测。请检查探头和接线。",
        "[Probe fault] Qingshui THC, Vaccine fridge 1: reading unchanged for 6 h; temperature not monitored. "
        "Check the probe and its cable.",
    ),
    (
        Rule.device_offline,
        Severity.warning,
        "qingshui-gw1",
        {"silent_min": 25},
        "【设备离线】清水镇卫生院 qingshui-gw1：已 25 分钟无数据。请检查网关电源和网络。",
        "[Device offline] Qingshui THC, Gateway 1: no data for 25 min. "
        "Check the gateway's power and network.",
    ),
    (
        Rule.device_offline,
        Severity.warning,
        "qingshui-thc",
        {"silent_min": 25, "devices": 2},
        "【设备离线】清水镇卫生院：全部 2 台设备已 25 分钟无数据。请检查电源和网络。",
        "[Device offline] Qingshui THC: all 2 devices, no data for 25 min. Check the power and the network.",
    ),
    (
        Rule.twice_daily_check,
        Severity.warning,
        "qingshui-fridge1",
        {"slot": "afternoon"},
        "【温度记录提醒】清水镇卫生院 疫苗冷藏冰箱 1：下午温度检查未按时完成。请查看并记录温度。",
        "[Temperature check] Qingshui THC, Vaccine fridge 1: the afternoon temperature check is overdue. "
        "Read and record the temperature.",
    ),
    (
        Rule.not_collected,
        Severity.warning,
        "qingshui-thc-20261123-0001",
        {"limit_h": 24.0},
        "【医废预警】清水镇卫生院 qingshui-thc-20261123-0001：产生后 24 小时仍未从科室收集。请安排收集。",
        "[Medical waste] Qingshui THC, bag qingshui-thc-20261123-0001: not collected from the "
        "ward 24 h after it was filled. Collect it.",
    ),
    (
        Rule.storage_overdue,
        Severity.critical,
        "qingshui-thc-20261123-0001",
        {"limit_h": 48.0},
        "【医废警报】清水镇卫生院 qingshui-thc-20261123-0001：暂存已超 48 小时未交转运。请联系转运单位。",
        "[Medical waste ALARM] Qingshui THC, bag qingshui-thc-20261123-0001: in the store "
        "over 48 h without handover. Call the transporter.",
    ),
    (
        Rule.lost_in_transport,
        Severity.critical,
        "qingshui-thc-20261123-0001",
        {"limit_h": 24.0, "manifest_id": "MF-qingshui-thc-20261124-1"},
        "【医废警报】清水镇卫生院 qingshui-thc-20261123-0001：交转运 24 小时后处置中心仍未接收。请核查去向。",
        "[Medical waste ALARM] Qingshui THC, bag qingshui-thc-20261123-0001: handed over 24 h "
        "ago, not received at the plant. Trace it.",
    ),
    (
        Rule.weight_discrepancy,
        Severity.critical,
        "qingshui-thc-20261123-0001",
        {"stage": "received", "weight_kg": 1.4, "generated_kg": 2.0, "diff_pct": 30.0},
        "【医废警报】清水镇卫生院 qingshui-thc-20261123-0001：接收 1.4 kg，产生 2 kg，差 30%。请核查。",
        "[Medical waste ALARM] Qingshui THC, bag qingshui-thc-20261123-0001: 1.4 kg at the "
        "plant, 2 kg when filled, 30 % apart. Check it.",
    ),
    (
        Rule.out_of_sequence,
        Severity.warning,
        "qingshui-thc-20261123-0001",
        {"reason": "skipped stage(s): collected"},
        "【医废提醒】清水镇卫生院 qingshui-thc-20261123-0001：扫描记录异常，请核查。",
        "[Medical waste] Qingshui THC, bag qingshui-thc-20261123-0001: scans out of sequence "
        "(skipped stage(s): collected). Check it.",
    ),
    (
        Rule.late_pickup,
        Severity.warning,
        "qingshui-thc",
        {"due": "2026-11-24 16:00", "bags": 7},
        "【医废预警】清水镇卫生院：转运单位未按计划在 16:00 前收运，暂存 7 袋。请联系转运单位。",
        "[Medical waste] Qingshui THC: the transporter did not come by 16:00, 7 bag(s) waiting. Call them.",
    ),
    (
        Rule.manifest_mismatch,
        Severity.warning,
        "MF-qingshui-thc-20261124-1",
        {"extra_bags": 1},
        "【医废预警】转移联单 MF-qingshui-thc-20261124-1：处置中心接收与交接多出 1 袋。请核查。",
        "[Medical waste] Manifest MF-qingshui-thc-20261124-1: received 1 bag(s) not on it. Check it.",
    ),
    (
        Rule.refused_at_plant,
        Severity.critical,
        "qingshui-thc-20261123-0001",
        {"refused_kg": 2.1, "reason": "包装破损"},
        "【医废警报】清水镇卫生院 qingshui-thc-20261123-0001：处置中心拒收 2.1 kg（包装破损）。请处理。",
        "[Medical waste ALARM] Qingshui THC, bag qingshui-thc-20261123-0001: the plant "
        "refused 2.1 kg (包装破损). Deal with the returned waste.",
    ),
]


@pytest.mark.parametrize(("rule", "severity", "subject", "values", "zh", "en"), CASES)
def test_texts_in_both_languages(
    rule: Rule, severity: Severity, subject: str, values: dict[str, Any], zh: str, en: str
) -> None:
    d = dec(rule, severity, subject, **values)
    assert render(d, names=NAMES) == zh  # zh-CN is the default
    assert render(d, "zh-CN", NAMES) == zh
    assert render(d, "en", NAMES) == en
    assert len(zh) <= SMS_SEGMENT_CHARS
    assert len(en) <= 160  # one GSM-7 segment


def test_every_rule_has_its_own_text() -> None:
    assert {c[0] for c in CASES} == set(Rule)


def test_the_example_texts_of_the_issue() -> None:
    d = dec(Rule.heat_warning, celsius=9.2, minutes=35, threshold_c=8.0)
    assert render(d, names=NAMES) == (
        "【冷链预警】清水镇卫生院 疫苗冷藏冰箱 1：9.2°C，已高于 +8°C 35 分钟。请检查冰箱门和电源。"
    )
    assert render(d, "en", NAMES) == (
        "[Cold chain warning] Qingshui THC, Vaccine fridge 1: 9.2 °C, above +8 °C for 35 min. "
        "Check the door and the power."
    )


def test_a_freeze_alarm_on_freeze_sensitive_equipment_asks_for_a_shake_test() -> None:
    sensitive = dec(Rule.freeze_alarm, Severity.critical, celsius=-1.0, minutes=60, freeze_sensitive=True)
    assert "振荡试验前请勿使用" in render(sensitive, names=NAMES)
    assert "do not use until a shake test" in render(sensitive, "en", NAMES)
    other = dec(Rule.freeze_alarm, Severity.warning, celsius=-1.0, minutes=60, freeze_sensitive=False)
    assert "振荡试验" not in render(other, names=NAMES)
    assert "shake test" not in render(other, "en", NAMES)


def test_names_come_from_the_mapping_and_fall_back_to_the_id() -> None:
    d = dec(Rule.heat_warning, subject="baihe-fridge2", clinic="baihe-thc", celsius=8.6, minutes=31)
    assert render(d, names=ZH_NAMES).startswith("【冷链预警】白河镇卫生院 疫苗冷藏冰箱 2：")
    assert render(d, names={"baihe-thc": "白河"}).startswith("【冷链预警】白河 baihe-fridge2：")
    assert render(d).startswith("【冷链预警】baihe-thc baihe-fridge2：")
    assert render(d, "en", ZH_NAMES).startswith(
        "[Cold chain warning] baihe-thc, baihe-fridge2: "
    )  # no English
    plain = {"baihe-thc": "Baihe THC", "baihe-fridge2": "Fridge 2"}
    assert render(d, "en", plain).startswith("[Cold chain warning] Baihe THC, Fridge 2: ")
    no_clinic = dec(Rule.heat_warning, subject="baihe-fridge2", clinic=None, celsius=8.6)
    assert render(no_clinic, names=ZH_NAMES).startswith("【冷链预警】疫苗冷藏冰箱 2：8.6°C，")


def test_registry_names_cover_clinics_equipment_and_people() -> None:
    assert ZH_NAMES.zh["qingshui-thc"] == "清水镇卫生院"
    assert ZH_NAMES.zh["hexi-freezer1"] == "低温冰柜"
    assert ZH_NAMES.zh["qingshui-nurse1"] == "王秀英"
    assert ZH_NAMES.for_lang("zh") is ZH_NAMES.zh and ZH_NAMES.for_lang("en-GB") is ZH_NAMES.en


def test_language_tags() -> None:
    assert [normalize_lang(x) for x in ("zh-CN", "zh", "zh-TW", "EN", "en-US", "fr")] == [
        "zh-CN",
        "zh-CN",
        "zh-CN",
        "en",
        "en",
        "zh-CN",
    ]


def test_missing_numbers_leave_their_part_out() -> None:
    for rule in Rule:
        for lang in ("zh-CN", "en"):
            text = render(dec(rule, subject="qingshui-fridge1"), lang, NAMES)
            assert "None" not in text and "nan" not in text.lower(), text
    assert render(dec(Rule.heat_warning, celsius=float("nan"), minutes=None), names=NAMES) == (
        "【冷链预警】清水镇卫生院 疫苗冷藏冰箱 1：已高于 +8°C。请检查冰箱门和电源。"
    )
    assert render(dec(Rule.early_warning, celsius=7.5, forecast_min=None), "en", NAMES) == (
        "[Cold chain early warning] Qingshui THC, Vaccine fridge 1: 7.5 °C, rising, above +8 °C soon. "
        "Check the door and the power."
    )


def test_an_unknown_rule_still_gets_a_text() -> None:
    change = _change("mystery_rule", kind=EventKind.fired, severity=Severity.critical, subject="QJ-0001")
    assert render(change, names=NAMES) == "【警报】清水镇卫生院 QJ-0001：mystery_rule。"
    assert render(change, "en", NAMES) == "[ALARM] Qingshui THC, QJ-0001: mystery rule."


def _change(
    rule: str,
    *,
    kind: EventKind,
    severity: Severity = Severity.critical,
    subject: str = "qingshui-fridge1",
    by: str = "system",
    **values: Any,
) -> AlertChange:
    return AlertChange(
        alert_id="A-20261126-0001",
        clinic="qingshui-thc",
        rule=rule,
        severity=severity,
        state=AlertState.resolved if kind is EventKind.resolved else AlertState.firing,
        subject=subject,
        family="heat",
        kind=kind,
        at=T,
        by=by,
        message="",
        message_en="",
        started_at=T,
        values=values,
    )


def test_alert_changes_get_the_rule_text_or_a_state_text() -> None:
    fired = _change("heat_alarm", kind=EventKind.escalated, celsius=10.5, minutes=600)
    assert render(fired, names=NAMES).startswith("【冷链警报】清水镇卫生院 疫苗冷藏冰箱 1：10.5°C，")
    cleared = _change("heat_alarm", kind=EventKind.condition_cleared)
    assert render(cleared, names=NAMES) == (
        "【冷链恢复】清水镇卫生院 疫苗冷藏冰箱 1：温度已恢复正常。请记录处理措施后关闭警报 A-20261126-0001。"
    )
    assert render(cleared, "en", NAMES) == (
        "[Back in range] Qingshui THC, Vaccine fridge 1: temperature back in range. "
        "Record the corrective action to close alert A-20261126-0001."
    )
    auto = _change("heat_warning", kind=EventKind.resolved, severity=Severity.warning)
    assert render(auto, names=NAMES) == "【已恢复】清水镇卫生院 疫苗冷藏冰箱 1：高温预警已解除。"
    assert render(auto, "en", NAMES) == "[Cleared] Qingshui THC, Vaccine fridge 1: heat warning cleared."
    closed = _change("heat_alarm", kind=EventKind.resolved, by="qingshui-nurse1")
    assert render(closed, names=NAMES) == "【已关闭】清水镇卫生院 疫苗冷藏冰箱 1：高温警报已由 王秀英 关闭。"
    ack = _change("freeze_alarm", kind=EventKind.acknowledged, by="qingshui-head")
    assert render(ack, names=NAMES) == "【已确认】清水镇卫生院 疫苗冷藏冰箱 1：冻结警报已由 张丽娟 确认。"
    assert render(ack, "en", NAMES) == (
        "[Acknowledged] Qingshui THC, Vaccine fridge 1: freeze alarm acknowledged by qingshui-head."
    )
    clear = dec(Rule.battery_low, subject="qingshui-gw1", action=Action.clear, battery_pct=80)
    assert render(clear, names=NAMES) == "【已恢复】清水镇卫生院 qingshui-gw1：电量低已解除。"


# worst cases of each text: long numbers, the longest durations the rules produce
WORST: list[tuple[Rule, Severity, dict[str, Any]]] = [
    (Rule.heat_warning, Severity.warning, {"celsius": 19.95, "minutes": 119, "threshold_c": 8.0}),
    (Rule.heat_alarm, Severity.critical, {"celsius": 19.9, "minutes": 50, "cumulative_minutes": 1439}),
    (Rule.heat_alarm, Severity.critical, {"celsius": 19.9, "minutes": 1439}),
    (Rule.freeze_alarm, Severity.critical, {"celsius": -15.5, "minutes": 119, "freeze_sensitive": True}),
    (Rule.cold_warning, Severity.warning, {"celsius": -0.4, "minutes": 119, "threshold_c": 2.0}),
    (Rule.early_warning, Severity.warning, {"celsius": 7.95, "forecast_min": 119, "direction": "heat"}),
    (Rule.early_warning, Severity.warning, {"celsius": -0.1, "forecast_min": 119, "direction": "freeze"}),
    (Rule.power_outage, Severity.warning, {"minutes": 1439, "forecast_min": 119}),
    (Rule.battery_low, Severity.warning, {"battery_pct": 19.9}),
    (Rule.probe_fault, Severity.warning, {"reason": "ds18b20_minus127"}),
    (Rule.probe_fault, Severity.warning, {"reason": "out_of_range", "raw": -59.95}),
    (Rule.probe_fault, Severity.warning, {"reason": "stuck", "minutes": 1439}),
    (Rule.device_offline, Severity.warning, {"silent_min": 1439}),
    (Rule.twice_daily_check, Severity.warning, {"slot": "afternoon"}),
]


@pytest.mark.parametrize(("rule", "severity", "values"), WORST, ids=lambda v: str(v)[:30])
def test_every_text_fits_one_sms_for_every_demo_clinic_and_appliance(
    rule: Rule, severity: Severity, values: dict[str, Any]
) -> None:
    for clinic in REG.clinics():
        gateway = next(d.id for d in clinic.devices if d.kind == "gateway")
        device_rule = rule in (Rule.power_outage, Rule.battery_low, Rule.device_offline)
        subjects = [gateway] if device_rule else [e.id for e in clinic.equipment]
        for subject in subjects:
            d = dec(rule, severity, subject, clinic.id, **values)
            text = render(d, names=ZH_NAMES)
            assert len(text) <= SMS_SEGMENT_CHARS, (len(text), text)
            for kind in (EventKind.condition_cleared, EventKind.resolved, EventKind.acknowledged):
                change = AlertChange(
                    "A-20261126-0123", clinic.id, rule.value, severity, AlertState.firing, subject, "f",
                    kind, T, "qingshui-nurse1", "", "", T, values=values,
                )  # fmt: skip
                state_text = render(change, names=ZH_NAMES)
                assert len(state_text) <= SMS_SEGMENT_CHARS, (len(state_text), state_text)
