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
    "preset_shake_test_done": ("已做振荡试验（请写明结果）", "Shake test done (give the result)"),
    "preset_stock_quarantined": ("已隔离疫苗（请写明批号）", "Stock quarantined (give the lot numbers)"),
    "preset_stock_discarded": ("已报废疫苗（请写明批号）", "Stock discarded (give the lot numbers)"),
    "preset_other": ("其他（请写明）", "Other (say what)"),
    # a recorded corrective action as the records show it (corrective_action_text)
    "action_moved_vaccines": ("已将疫苗转移至备用设备", "Moved the vaccines to a backup appliance"),
    "action_called_technician": ("已联系维修人员", "Called the technician"),
    "action_power_restored": ("已恢复供电", "Power restored"),
    "action_shake_test_done": ("已做振荡试验", "Shake test done"),
    "action_stock_quarantined": ("已隔离疫苗", "Stock quarantined"),
    "action_stock_discarded": ("已报废疫苗", "Stock discarded"),
    "action_other": ("其他", "Other"),
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
        "警报服务（alerting）30 秒内发现变化并按新的登记信息重新构建"
        "（规则、阈值、每日两次检查、医废收运时间、短信值班表和升级设置），期间收到的数据不会丢失。",
        "After a load: the web pages use the new registry at once; the collector picks up the devices within "
        "30 s; the alerting service sees the change within 30 s and builds itself again from it (rules, "
        "thresholds, twice-daily checks, waste pickups, SMS rota and escalation); nothing that arrives "
        "meanwhile is lost.",
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
    "stock_link": ("疫苗库存", "Vaccine stock"),
    "stock_district_link": ("各卫生院疫苗库存", "Vaccine stock by clinic"),
    "stock_title": ("{name} · 疫苗库存", "{name} · vaccine stock"),
    "stock_district_title": ("{name} · 疫苗库存", "{name} · vaccine stock"),
    "stock_back_clinic": ("← 返回卫生院页面", "← Back to the clinic page"),
    "stock_back_district": ("← 返回全区概况", "← Back to the district"),
    "stock_available_n": ("可用 {n} 剂", "{n} doses available"),
    "stock_quarantined_n": ("隔离 {n} 剂", "{n} quarantined"),
    "stock_available": ("可用（剂）", "Available (doses)"),
    "stock_quarantined": ("隔离（剂）", "Quarantined"),
    "stock_expiry": ("有效期至 {date}", "Expires {date}"),
    "stock_expires_in": ("{n} 天后过期", "Expires in {n} days"),
    "stock_expired": ("已过期，请勿使用", "Expired: do not use"),
    "stock_budget_left": ("热稳定性余量 {pct}", "Heat budget left {pct}"),
    "stock_budget_used": ("热稳定性已用 {pct}", "heat budget used {pct}"),
    "stock_frozen": ("曾冻结 {n} 分钟", "Frozen for {n} min"),
    "stock_none_here": ("此设备中没有疫苗。", "No vaccines in this appliance."),
    "stock_no_appliances": ("本院没有存放疫苗的设备。", "This clinic has no appliance for vaccines."),
    "stock_none": ("没有库存记录。", "No stock recorded."),
    "stock_choose": ("请选择", "Choose"),
    "stock_place": (
        "{product} {lot}（{equipment}，可用 {n} 剂）",
        "{product} {lot} ({equipment}, {n} available)",
    ),
    "stock_doses": ("剂次数", "Doses"),
    "stock_which_lot": ("疫苗批次", "Lot"),
    "stock_product": ("疫苗", "Vaccine"),
    "stock_lot_number": ("批号（输入或扫码）", "Lot number (type or scan)"),
    "stock_expiry_label": ("有效期", "Expiry date"),
    "stock_expiry_hint": ("新批号必须填写有效期。", "Required for a lot not recorded before."),
    "stock_into": ("放入", "Into"),
    "stock_to": ("移到", "To"),
    "stock_source": ("来源", "From"),
    "stock_source_placeholder": ("例如：县疾控中心", "e.g. the county CDC"),
    "stock_reason": ("原因", "Reason"),
    "stock_form_received": ("接收入库", "Receive a delivery"),
    "stock_form_administered": ("今日接种", "Administered today"),
    "stock_form_moved": ("移到另一台设备", "Move to another appliance"),
    "stock_form_wasted": ("损耗", "Wasted"),
    "stock_button_received": ("记录入库", "Record delivery"),
    "stock_button_administered": ("记录接种", "Record doses given"),
    "stock_button_moved": ("记录移动", "Record move"),
    "stock_button_wasted": ("记录损耗", "Record waste"),
    "stock_reason_opened_vial_expiry": ("开启后超时", "Opened vial past its time"),
    "stock_reason_broken": ("破损", "Broken"),
    "stock_reason_excursion": ("温度异常损坏", "Damaged by heat or freezing"),
    "stock_reason_expired": ("过期", "Expired"),
    "stock_reason_other": ("其他", "Other"),
    "stock_done_received": ("已记录入库。", "Delivery recorded."),
    "stock_done_administered": ("已记录接种剂次。", "Doses given recorded."),
    "stock_done_moved": ("已记录移动。", "Move recorded."),
    "stock_done_wasted": ("已记录损耗。", "Waste recorded."),
    "stock_refused": ("未记录：{why}", "Not recorded: {why}"),
    "stock_bad_doses": (
        "未记录：剂次数须为 1 至 {max} 的整数。",
        "Not recorded: doses must be a whole number from 1 to {max}.",
    ),
    "stock_need_product": ("未记录：请选择疫苗。", "Not recorded: choose the vaccine."),
    "stock_need_lot": ("未记录：请填写批号。", "Not recorded: give the lot number."),
    "stock_bad_lot": (
        "未记录：批号只能包含字母、数字和 . _ / -，最多 {max} 个字符。",
        "Not recorded: a lot number has letters, digits and . _ / - only, up to {max}.",
    ),
    "stock_need_expiry": (
        "未记录：这是新批号，请填写有效期。",
        "Not recorded: this lot is new, give its expiry date.",
    ),
    "stock_bad_expiry": ("未记录：有效期不是日期。", "Not recorded: the expiry is not a date."),
    "stock_other_expiry": (
        "未记录：批号与有效期不符（{why}）。",
        "Not recorded: lot and expiry do not match ({why}).",
    ),
    "stock_need_equipment": (
        "未记录：请选择本院的设备。",
        "Not recorded: choose one of this clinic's appliances.",
    ),
    "stock_need_place": ("未记录：请选择批次。", "Not recorded: choose the lot."),
    "stock_not_enough": (
        "未记录：该批次在此设备中只有 {n} 剂可用。",
        "Not recorded: only {n} doses of this lot are available in that appliance.",
    ),
    "stock_same_place": ("未记录：请选择另一台设备。", "Not recorded: choose another appliance."),
    "stock_transit": ("在途（已发放，待入库）", "In transit (issued, not checked in)"),
    "stock_need_reason": ("未记录：请选择原因。", "Not recorded: choose the reason."),
    "stock_district_total": ("全区合计", "District total"),
    "stock_expiring_title": ("{n} 天内过期的批次：", "Lots expiring within {n} days:"),
    "stock_spent_title": ("热稳定性已用一半以上的批次：", "Lots with half their heat budget used or more:"),
    "stock_lot_note": ("{product} {lot}（{n} 剂）：{note}", "{product} {lot} ({n} doses): {note}"),
    # ---- excursion impact and shake test
    "impact_at_risk": (
        "警报开始时设备内的疫苗：{n} 剂受影响",
        "Vaccines inside when it began: {n} doses at risk",
    ),
    "impact_none": (
        "警报开始时此设备内没有登记的疫苗。",
        "No vaccine stock was recorded in this appliance when the alert began.",
    ),
    "impact_lot": ("{product} 批号 {lot} · {doses} 剂", "{product} lot {lot} · {doses} doses"),
    "impact_expiry": ("有效期至 {date}", "expires {date}"),
    "impact_quarantined": ("其中 {n} 剂已隔离", "{n} of them quarantined"),
    "impact_budget_left": ("热稳定性余量 {pct}%", "heat budget left {pct}%"),
    "impact_no_vvm": ("无 VVM", "no VVM"),
    "impact_freeze_min": ("冻结 {n} 分钟", "frozen {n} min"),
    "impact_advice": ("建议：", "Advice: "),
    "rec_use": ("可以使用", "Use"),
    "rec_use_first": ("优先使用", "Use first"),
    "rec_quarantine_shake_test": ("隔离，待振荡试验", "Quarantine pending a shake test"),
    "rec_quarantine_assessment": ("隔离，待评估", "Quarantine pending assessment"),
    "rec_discard": ("销毁", "Discard"),
    "reason_expired": ("已过有效期", "past its expiry date"),
    "reason_vvm_discard_point": (
        "热暴露已达 VVM 报废点",
        "its heat exposure has reached the VVM's discard point",
    ),
    "reason_freeze_sensitive": ("冻结敏感疫苗，可能已冻结", "freeze-sensitive, and it may have frozen"),
    "reason_not_freeze_sensitive": ("冻结不损害此疫苗", "freezing does not harm it"),
    "reason_no_vvm": ("无 VVM，无法按热暴露判断", "no VVM to judge its heat exposure by"),
    "reason_exposure_unknown": ("热暴露尚未计算", "its heat exposure is not computed yet"),
    "reason_budget_high": ("热稳定性余量不足 25%", "less than 25% of its heat budget left"),
    "reason_budget_moderate": ("热稳定性余量不足一半", "less than half of its heat budget left"),
    "reason_budget_ok": ("热稳定性余量充足", "enough heat budget left"),
    "shake_link": ("做振荡试验", "Do the shake test"),
    "shake_link_done": ("振荡试验结果", "Shake test results"),
    "shake_title": ("振荡试验", "Shake test"),
    "shake_how": ("振荡试验步骤（WHO）", "How to do the shake test (WHO)"),
    "shake_step1": (
        "取一支同品种、同批号的疫苗，冷冻到完全结冰后融化，作为对照，标上“冻”。",
        "Take a vial of the same vaccine and lot, freeze it solid, then let it thaw: this is the control. "
        "Mark it 'frozen'.",
    ),
    "shake_step2": (
        "从报警的冰箱里取一支该批号的疫苗，作为待检疫苗。",
        "Take a vial of that lot from the appliance that alarmed: this is the vial to test.",
    ),
    "shake_step3": (
        "两支拿在一只手里，用力摇晃 10 到 15 秒。",
        "Hold both in one hand and shake them hard for 10 to 15 seconds.",
    ),
    "shake_step4": (
        "放在平面上静置，对着光观察，最多 30 分钟。",
        "Put them down on a flat surface and watch them against the light, for up to 30 minutes.",
    ),
    "shake_step5": (
        "比较沉淀：待检疫苗比对照沉得慢 = 通过（没有冻过），可以使用；"
        "沉得一样快或更快 = 未通过（冻过），销毁。",
        "Compare how they settle: the vial to test settles slower than the control = passed (not frozen), "
        "use it; as fast or faster = failed (it froze), discard it.",
    ),
    "shake_passed": ("通过：待检疫苗沉得慢", "Passed: the vial settles slower"),
    "shake_failed": ("未通过：沉得一样快或更快", "Failed: it settles as fast or faster"),
    "shake_record_button": ("记录 {lot} 的结果", "Record the result of {lot}"),
    "shake_result_passed": (
        "通过：{n} 剂已解除隔离，可以使用。{name}，{time}",
        "Passed: {n} doses released for use. {name}, {time}",
    ),
    "shake_result_failed": (
        "未通过：{n} 剂已销毁（冻结）。{name}，{time}",
        "Failed: {n} doses discarded (frozen). {name}, {time}",
    ),
    "shake_pending": ("尚未记录结果。", "No result recorded yet."),
    "shake_none": (
        "此警报不需要振荡试验：它不是冻结警报，或警报开始时设备内没有冻结敏感疫苗。",
        "This alert needs no shake test: it is not a freeze alarm, or no freeze-sensitive vaccine was "
        "inside when it began.",
    ),
    "shake_all_done": ("所有批号都已有振荡试验结果。", "Every lot has its shake test result."),
    "shake_close_button": ("按试验结果关闭警报", "Close the alert with these results"),
    "shake_closed": ("警报已关闭：{action}", "The alert is closed: {action}"),
    "shake_failed_to_record": ("未能记录", "Not recorded"),
    "shake_bad_form": ("请选择试验结果（通过或未通过）。", "Choose the result: passed or failed."),
    "shake_not_all": (
        "请先记录每个批号的试验结果，再关闭警报。",
        "Record the result of every lot before closing the alert.",
    ),
    "shake_back": ("返回卫生院页面", "Back to the clinic page"),
    # ---- stock reconciliation
    "stock_flags_title": ("{month} 账目不符（请核查）", "{month}: books that do not add up (follow up)"),
}

_MONTHS_EN = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def pick_lang(requested: str | None, preferred: str | None = None) -> str:
    """The page's language: ``?lang=`` if given, else the person's, else zh-CN."""
    return normalize_lang(requested or preferred or ZH)


def texts(lang: str) -> dict[str, str]:
    """The table in one language (``zh-CN`` or ``en``)."""
    i = 1 if normalize_lang(lang) == EN else 0
    return {key: pair[i] for key, pair in _TEXTS.items()}


def corrective_action_text(value: str | None, lang: str) -> str:
    """A stored corrective action (``preset: detail``, as the API records it) as people read it:
    "已将疫苗转移至备用设备：疫苗已转移至2号冰箱"; anything else as it is."""
    if not value:
        return ""
    preset, _sep, detail = value.partition(": ")
    pair = _TEXTS.get(f"action_{preset}")
    if pair is None:
        return value
    if lang == EN:
        return f"{pair[1]}: {detail}" if detail else pair[1]
    return f"{pair[0]}：{detail}" if detail else pair[0]


def local_time(t: float, lang: str) -> str:
    """Epoch seconds as the clinics read them (UTC+8): "11月26日 03:12" / "26 Nov 03:12"."""
    d = datetime.fromtimestamp(t, LOCAL_TZ)
    if normalize_lang(lang) == EN:
        return f"{d.day} {_MONTHS_EN[d.month - 1]} {d:%H:%M}"
    return f"{d.month}月{d.day}日 {d:%H:%M}"
