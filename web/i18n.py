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
    "resolve_detail_needs_preset": (
        "写了说明，请同时从列表中选择处理措施（没有合适的选“其他”）。",
        "You wrote a detail: also choose a corrective action (or 'other').",
    ),
    "resolve_other_needs_detail": (
        "选择“其他”时，请在说明中写明做了什么。",
        "For 'other', say in the detail what was done.",
    ),
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
    "chart_title": (
        "{name} 过去 24 小时温度：最低 {low}，最高 {high}；{n} 个 10 分钟时段中 {out} 个超出允许范围",
        "{name}, last 24 h: lowest {low}, highest {high}; {out} of {n} 10-minute periods out of range",
    ),
    "chart_none": ("过去 24 小时无温度读数。", "No readings in the last 24 h."),
    "chart_down": (
        "温度曲线暂时无法显示（数据库未响应）。",
        "The chart is unavailable (the database did not answer).",
    ),
    "chart_caption": (
        "过去 24 小时 · 绿色为允许范围 · 红点为超出范围",
        "Last 24 h · green: allowed range · red: out of range",
    ),
    "out_of_range_since": (
        "超出允许范围，自 {time} 起（尚未报警）",
        "Out of range since {time} (no alarm yet)",
    ),
    "check_title": ("今日温度检查（每日两次）", "Today's temperature checks (twice daily)"),
    "check_morning": ("上午", "Morning"),
    "check_afternoon": ("下午", "Afternoon"),
    "check_done": ("已完成：{time} {name}，读数 {celsius}", "done: {time} by {name}, read {celsius}"),
    "check_due": ("待检查（{due} 前）", "due by {due}"),
    "check_late": (
        "已超时（应于 {due} 前），{end} 前仍可补做",
        "overdue (due by {due}), possible until {end}",
    ),
    "check_missed": ("未检查（已错过）", "missed"),
    "check_later": ("{opens} 后检查（{due} 前）", "from {opens} (due by {due})"),
    "check_celsius": ("温度计读数（°C）", "Thermometer reading (°C)"),
    "check_button_morning": ("记录上午检查", "Record the morning check"),
    "check_button_afternoon": ("记录下午检查", "Record the afternoon check"),
    "check_failed": ("检查未记录", "The check was not recorded"),
    "check_bad_celsius": (
        "请填写温度计读数：−100 至 100 之间的数字。",
        "Enter the thermometer reading: a number from −100 to 100.",
    ),
    # ---- district page, compliance and the district report
    "ranking_title": ("合规评分排名（{month}，截至目前）", "Compliance ranking ({month} so far)"),
    "ranking_intro": (
        "合规评分 0–100，为五项得分的加权平均；无可评内容的项目不计入，其权重分给其他项目。",
        "Scores 0–100: the weighted mean of five components; one with nothing to judge is left out "
        "and its weight goes to the others.",
    ),
    "district_month": ("全辖区本月", "The district this month"),
    "median_ack": ("确认用时中位数", "Median time to acknowledge"),
    "district_acked": ("（全辖区已确认 {n} 条警报）", "({n} alerts acknowledged in the district)"),
    "closed_loop": ("医废闭环率", "Waste closed-loop rate"),
    "district_bags": ("（满 72 小时的医废袋 {n} 袋）", "({n} bags at least 72 h old)"),
    "median_score": ("各卫生院评分中位数", "Median score of the clinics"),
    "district_report": ("辖区合规月报（{month}）", "District compliance report ({month})"),
    "rank_n": ("第 {n} 名", "#{n}"),
    "not_ranked": ("不排名", "Not ranked"),
    "not_judged": ("不计", "not judged"),
    "nothing_to_judge": ("无可评内容：{why}", "Nothing to judge: {why}"),
    "how_scored": ("各项计分方法", "How each component is scored"),
    "grid_out_of_range": ("温度超出范围，尚未报警", "Out of range, no alarm yet"),
    # ---- admin pages
    "admin_link": ("管理", "Admin"),
    "admin_title": ("系统管理", "Administration"),
    "admin_users_title": ("用户管理", "Users"),
    "admin_registry_title": ("登记信息", "Registry"),
    "admin_dead_title": ("被拒消息（死信）", "Dead letters"),
    "admin_users_count": ("{n} 个账号，其中 {d} 个已停用", "{n} logins, {d} disabled"),
    "admin_dead_count": ("{n} 条被拒消息", "{n} rejected messages"),
    "admin_reg_summary": (
        "{district}：{townships} 个乡镇，{clinics} 家卫生院，{equipment} 台冷链设备，"
        "{devices} 个采集器，{people} 名人员",
        "{district}: {townships} townships, {clinics} clinics, {equipment} pieces of equipment, "
        "{devices} devices, {people} people",
    ),
    "admin_reg_none": ("尚未加载登记信息。", "No registry is loaded."),
    "admin_error": ("未能保存", "Not saved"),
    "admin_role": ("角色", "Role"),
    "admin_scope": ("范围", "Scope"),
    "admin_person": ("关联人员", "Linked person"),
    "admin_language": ("语言", "Language"),
    "admin_status": ("状态", "Status"),
    "admin_enabled": ("已启用", "Enabled"),
    "admin_disabled": ("已停用", "Disabled"),
    "admin_you": ("（你本人）", "(you)"),
    "admin_scope_missing": ("不在登记信息中", "not in the registry"),
    "admin_no_scope": ("— 无（管理员）—", "— none (admins) —"),
    "admin_districts": ("区县", "Districts"),
    "admin_clinics": ("卫生院", "Clinics"),
    "admin_no_person": ("— 无 —", "— none —"),
    "admin_lang_default": ("同关联人员（默认中文）", "As the linked person (default Chinese)"),
    "admin_lang_zh-CN": ("中文", "Chinese"),
    "admin_lang_en": ("英文", "English"),
    "admin_add_title": ("添加用户", "Add a user"),
    "admin_add_button": ("添加用户", "Add user"),
    "admin_initial_password": ("初始密码（至少 {n} 位）", "Initial password (at least {n} characters)"),
    "admin_change_role": ("修改角色和范围", "Change role and scope"),
    "admin_save": ("保存", "Save"),
    "admin_reset_password": ("重置密码", "Reset the password"),
    "admin_new_password": (
        "新密码（至少 {n} 位；该用户需重新登录）",
        "New password (at least {n} characters; the user logs in again)",
    ),
    "admin_disable": ("停用此账号", "Disable this login"),
    "admin_enable": ("启用此账号", "Enable this login"),
    "admin_disable_note": (
        "停用后无法登录，已登录的会话立即结束。",
        "A disabled login cannot log in, and its open sessions end at once.",
    ),
    "admin_done_user_added": ("已添加用户 {name}。", "User {name} added."),
    "admin_done_role_changed": ("已修改 {name} 的角色和范围。", "Role and scope of {name} changed."),
    "admin_done_password_reset": (
        "已重置 {name} 的密码，其会话已结束。",
        "The password of {name} was reset; their sessions ended.",
    ),
    "admin_done_disabled": ("已停用 {name}，其会话已结束。", "{name} disabled; their sessions ended."),
    "admin_done_enabled": ("已启用 {name}。", "{name} enabled."),
    "admin_done_reloaded": ("已从文件重新加载登记信息。", "The registry was reloaded from the file."),
    "admin_done_uploaded": ("已加载上传的登记信息。", "The uploaded registry was loaded."),
    "admin_loaded_now": ("当前登记信息", "Loaded now"),
    "admin_n_district": ("区县", "District"),
    "admin_n_townships": ("乡镇", "Townships"),
    "admin_n_clinics": ("卫生院", "Clinics"),
    "admin_n_equipment": ("冷链设备", "Equipment"),
    "admin_n_devices": ("采集器（网关、扫码器）", "Devices (gateways, scanners)"),
    "admin_n_people": ("人员", "People"),
    "admin_township_clinics": ("{name}：{n} 家卫生院", "{name}: {n} clinic(s)"),
    "admin_registry_source": ("配置的文件：{file}", "Configured file: {file}"),
    "admin_registry_demo": (
        "随系统提供的示范区（core/demo_district.yaml）",
        "the demo district shipped with ChainWatch (core/demo_district.yaml)",
    ),
    "admin_replace_note": (
        "加载会替换全部登记信息（机构、设备、人员、值班表、升级设置）；警报和记录保留。",
        "Loading replaces the whole registry (sites, equipment, people, rota, escalation); "
        "alerts and records stay.",
    ),
    "admin_services_note": (
        "加载后：网页立即使用新的登记信息；数据采集服务（collector）30 秒内自动更新设备列表；"
        "警报服务（alerting）只在启动时读取登记信息（规则、阈值、每日两次检查、医废收运时间、短信值班表和升级设置），"
        "必须重启才能生效：重启 chainwatch alerting；"
        "用 chainwatch run 时，结束 alerting 进程即可，它会自动重新启动。",
        "After a load: the web pages use the new registry at once; the collector picks up the devices within "
        "30 s; the alerting service reads the registry only when it starts (rules, thresholds, twice-daily "
        "checks, waste pickups, SMS rota and escalation), so restart it (the chainwatch alerting process; "
        "under chainwatch run, stop that process and it is started again).",
    ),
    "admin_reload_title": ("从文件重新加载", "Reload from the file"),
    "admin_reload_button": ("重新加载", "Reload"),
    "admin_upload_title": ("上传 YAML", "Upload a YAML"),
    "admin_upload_label": ("登记信息 YAML（粘贴全文）", "Registry YAML (paste the whole text)"),
    "admin_upload_button": ("校验并加载", "Check and load"),
    "admin_registry_invalid": (
        "登记信息有误，未做任何更改：",
        "The registry is not valid; nothing was changed:",
    ),
    "admin_registry_empty": ("请粘贴登记信息 YAML。", "Paste the registry YAML."),
    "admin_registry_too_big": (
        "YAML 太长（最多 {n} 个字符）。",
        "The YAML is too long (at most {n} characters).",
    ),
    "admin_dead_intro": (
        "数据采集服务拒收的消息，最新的在前。",
        "Messages the collector rejected, newest first.",
    ),
    "admin_dead_all": ("全部原因", "All reasons"),
    "admin_dead_reason": ("原因", "Reason"),
    "admin_dead_time": ("时间", "Time"),
    "admin_dead_filter": ("筛选", "Filter"),
    "admin_dead_topic": ("主题", "Topic"),
    "admin_dead_detail": ("说明", "Detail"),
    "admin_dead_payload": ("内容（{n} 字节）", "Payload ({n} bytes)"),
    "admin_dead_hex": ("二进制，以十六进制显示", "binary, shown as hex"),
    "admin_dead_truncated": ("（已截断）", "(truncated)"),
    "admin_dead_none": ("没有被拒消息。", "No dead letters."),
    "admin_dead_page": ("第 {page} / {pages} 页，共 {total} 条", "Page {page} of {pages}, {total} in all"),
    "admin_prev": ("上一页", "Previous"),
    "admin_next": ("下一页", "Next"),
    # ---- vaccine stock pages and API
    # ---- excursion impact and shake test
    # ---- stock reconciliation
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
