"""Every string the web pages show, in zh-CN (the default) and English: one table, looked up by key.

Templates get ``t`` (this table in the page's language) and format the few texts with a ``{name}`` or a
``{time}`` themselves; Jinja escapes the result like any other value. Alert texts themselves come from
the alert store (``alerting.messages`` wrote them in both languages).
"""

from __future__ import annotations

from datetime import datetime

from alerting.messages import EN, ZH, normalize_lang
from core.clinic_time import CLINIC_TZ

LANGS = (ZH, EN)
LOCAL_TZ = CLINIC_TZ  # Asia/Shanghai: the clinics' clocks, no DST

_TEXTS: dict[str, tuple[str, str]] = {
    # key: (zh-CN, en)
    "app": ("ChainWatch 冷链监测", "ChainWatch cold chain"),
    "other_lang": ("English", "中文"),  # the link to the other language, written in it
    "ack_title": ("警报确认", "Acknowledge alert"),
    "severity_critical": ("严重警报", "Critical alarm"),
    "severity_warning": ("预警", "Warning"),
    "severity_info": ("提示", "Notice"),
    "where": ("地点", "Where"),
    "since": ("开始时间", "Since"),
    "state": ("当前状态", "Status"),
    "state_firing": ("未确认", "Not acknowledged"),
    "state_acknowledged": ("已确认", "Acknowledged"),
    "state_resolved": ("已关闭", "Closed"),
    "ack_for": ("确认人：{name}", "Acknowledging as: {name}"),
    "note_label": ("备注（可选）", "Note (optional)"),
    "note_placeholder": ("例如：已到现场，正在转移疫苗", "e.g. on my way, moving the vaccines"),
    "ack_button": ("确认收到", "Acknowledge"),
    "done": (
        "已确认收到，谢谢。请按警报要求处理，并记录处理措施。",
        "Acknowledged, thank you. Act on the alert and record what you did.",
    ),
    "already_acked": (
        "此警报已由 {name} 于 {time} 确认。",
        "This alert was acknowledged by {name} at {time}.",
    ),
    "acked_note": ("备注：{note}", "Note: {note}"),
    "resolved_by": ("此警报已由 {name} 于 {time} 关闭。", "This alert was closed by {name} at {time}."),
    "resolved_auto": (
        "此警报已于 {time} 自动解除，情况已恢复正常。",
        "This alert cleared by itself at {time}: the condition is over.",
    ),
    "expired_title": ("链接已过期", "Link expired"),
    "expired": ("此确认链接已于 {time} 过期。", "This acknowledgement link expired at {time}."),
    "expired_todo": (
        "请打开 ChainWatch 的卫生院页面查看并确认警报，或致电卫生院负责人。",
        "Open the clinic's page in ChainWatch to see and acknowledge the alert, or call the clinic head.",
    ),
    "clinic_head": ("卫生院负责人：", "Clinic head: "),
    "invalid_title": ("链接无效", "Invalid link"),
    "invalid": (
        "此链接无效。请检查是否打开了短信中的完整链接，或打开 ChainWatch 的卫生院页面。",
        "This link is not valid. Check that the whole link in the SMS was opened, "
        "or open the clinic's page in ChainWatch.",
    ),
    "outbox_title": ("短信发件箱（演示）", "SMS outbox (demo)"),
    "outbox_intro": (
        "演示系统不发送真实短信：以下是本应发出的短信，最新的在前。点击链接即可像值班人员一样确认警报。",
        "The demo sends no real SMS: these are the texts it would have sent, newest first. "
        "Open a link to acknowledge the alert as the person on call would.",
    ),
    "outbox_empty": ("还没有短信。", "No SMS yet."),
    "bad_form_title": ("无法提交", "Could not send"),
    "bad_form": (
        "提交的内容无法处理（备注最长 {n} 字）。请返回重试。",
        "The form could not be read (a note has at most {n} characters). Go back and try again.",
    ),
    "login_title": ("登录", "Log in"),
    "username": ("用户名", "Username"),
    "password": ("密码", "Password"),
    "login_button": ("登录", "Log in"),
    "login_failed": ("用户名或密码错误。", "Wrong username or password."),
    "login_blocked": (
        "登录失败次数过多，请 15 分钟后再试。",
        "Too many failed logins: try again in 15 minutes.",
    ),
    "login_csrf": (
        "登录页面已过期，请重新输入并登录。",
        "The login page had expired: enter your details and log in again.",
    ),
    "logged_in_as": ("已登录：{name}", "Logged in as {name}"),
    "logout_button": ("退出登录", "Log out"),
    "role_clinic_staff": ("卫生院工作人员", "Clinic staff"),
    "role_district_officer": ("区卫生健康局", "District officer"),
    "role_admin": ("管理员", "Administrator"),
    # the clinic and district pages (web.pages)
    "home": ("首页", "Home"),
    "district_link": ("全区总览", "District overview"),
    "colour_green": ("正常", "Normal"),
    "colour_amber": ("注意", "Attention"),
    "colour_red": ("警报", "Alarm"),
    "range": ("允许范围 {span}°C", "Allowed range {span} °C"),
    "range_to": ("{low} 至 {high}", "{low} to {high}"),
    "reading_age": ("读数：{age}", "Reading: {age}"),
    "no_reading": ("暂无读数", "No reading yet"),
    "influx_down": (
        "温度数据暂时无法读取（数据库未响应），警报状态仍然有效。",
        "Temperatures are unavailable right now (the database did not answer); the alert states still hold.",
    ),
    "age_now": ("刚刚", "just now"),
    "age_min": ("{n} 分钟前", "{n} min ago"),
    "age_h": ("{n} 小时前", "{n} h ago"),
    "age_d": ("{n} 天前", "{n} days ago"),
    "open_for": ("已持续 {age}", "open since {age}"),
    "acked_by_at": ("{name} 于 {time} 已确认", "Acknowledged by {name} at {time}"),
    "other_alerts": ("其他警报", "Other alerts"),
    "no_alerts": ("无未关闭警报", "No open alerts"),
    "resolve_title": ("关闭警报", "Close the alert"),
    "corrective_action": ("处理措施", "Corrective action"),
    "choose_preset": ("— 请选择 —", "— choose —"),
    "needs_action": (
        "严重冷链警报：必须选择处理措施才能关闭。",
        "Critical cold-chain alert: choose the action taken.",
    ),
    "detail_label": (
        "说明（摇晃试验结果、批号等）",
        "Detail (shake test result, lot numbers, ...)",
    ),
    "resolve_button": ("关闭警报", "Close alert"),
    "resolve_failed": ("警报未关闭", "The alert was not closed"),
    "resolve_bad_preset": ("请从列表中选择处理措施。", "Choose a corrective action from the list."),
    "preset_moved_vaccines": ("已将疫苗转移至备用设备", "Moved the vaccines to a backup appliance"),
    "preset_called_technician": ("已联系维修人员", "Called the technician"),
    "preset_power_restored": ("已恢复供电", "Power restored"),
    "preset_shake_test_done": ("已做摇晃试验（请写明结果）", "Shake test done (give the result)"),
    "preset_stock_quarantined": ("已隔离疫苗（请写明批号）", "Stock quarantined (give the lot numbers)"),
    "preset_stock_discarded": ("已报废疫苗（请写明批号）", "Stock discarded (give the lot numbers)"),
    "preset_other": ("其他（请写明）", "Other (say what)"),
    "report_title": ("本月冷链记录（{month}）", "This month's cold-chain record ({month})"),
    "report_pdf": ("下载 PDF", "Download PDF"),
    "report_csv": ("下载 CSV", "Download CSV"),
    "waste_title": ("今日医疗废物", "Today's medical waste"),
    "waste_today": ("今日产生 {n} 袋，共 {kg} kg", "Generated today: {n} bags, {kg} kg"),
    "waste_store": ("暂存间内（超过 {h} 小时为超时）", "In the store (overdue after {h} h)"),
    "waste_empty": ("暂存间内无医废袋。", "No bags in the store."),
    "stored_h": ("已存 {n} 小时", "stored {n} h"),
    "overdue": ("超时", "overdue"),
    "waste_infectious": ("感染性", "infectious"),
    "waste_sharps": ("损伤性", "sharps"),
    "waste_pathological": ("病理性", "pathological"),
    "waste_pharmaceutical": ("药物性", "pharmaceutical"),
    "waste_chemical": ("化学性", "chemical"),
    "district_title": ("{name} · 卫生院总览", "{name} · clinics"),
    "open_count": ("{n} 条未关闭警报", "{n} open alerts"),
    "district_alerts": ("未关闭警报（按严重程度、时间排序）", "Open alerts (most severe, then oldest first)"),
    "no_clinics": ("本区没有卫生院。", "No clinics in this district."),
    # ---- clinic page: 24 h chart and twice-daily checks
    # ---- district page, compliance and the district report
    # ---- admin pages
}

_MONTHS_EN = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def pick_lang(requested: str | None, preferred: str | None = None) -> str:
    """The page's language: ``?lang=`` if given, else the person's, else zh-CN."""
    return normalize_lang(requested or preferred or ZH)


def texts(lang: str) -> dict[str, str]:
    """The table in one language (``zh-CN`` or ``en``)."""
    i = 1 if normalize_lang(lang) == EN else 0
    return {key: pair[i] for key, pair in _TEXTS.items()}


def local_time(t: float, lang: str) -> str:
    """Epoch seconds as the clinics read them (UTC+8): "11月26日 03:12" / "26 Nov 03:12"."""
    d = datetime.fromtimestamp(t, LOCAL_TZ)
    if normalize_lang(lang) == EN:
        return f"{d.day} {_MONTHS_EN[d.month - 1]} {d:%H:%M}"
    return f"{d.month}月{d.day}日 {d:%H:%M}"
