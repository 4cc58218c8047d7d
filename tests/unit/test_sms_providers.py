"""The three SMS channels (Aliyun, Tencent Cloud, Twilio) against strict local fakes of their APIs
(tests/fake_sms.py): what each provider answers decides whether a retry is safe, and the secrets never
show."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest

from alerting.notify.aliyun import AliyunSmsNotifier
from alerting.notify.base import Message, Notifier, SendResult, Status
from alerting.notify.tencent import TencentSmsNotifier
from alerting.notify.twilio import TwilioSmsNotifier
from core.clock import ManualClock
from tests.fake_sms import (
    FakeAliyun,
    FakeProvider,
    FakeTencent,
    FakeTwilio,
    Reply,
    aliyun_expected_signature,
    refused_url,
    tc3_expected_signature,
    twilio_error,
)
from tests.reference import REFERENCE

NOW = 1_795_000_000.0  # 2026-11-18T11:06:40Z
TEXT = "【冷链告警】清水镇卫生院 冰箱1 9.2°C 确认 http://x/a/3-Ab"
MSG = Message("+8613800001001", TEXT, "A-20261118-0001", "qingshui-nurse1", "A-20261118-0001:nurse1:1")
TIMEOUT_S = 0.4  # the client's, for "hang"
HANG_S = 3.0  # the fake's: longer than the client waits (a fake's close() cuts it short)

SIGN_NAME = "示范区卫健局"
ALIYUN_ID, ALIYUN_SECRET = "LTAI-test-id", "aliyun-Secret-9f2Zq"
TENCENT_ID, TENCENT_SECRET = "AKIDtest0000000000000000000000000000", "tencent-Secret-Xw7Lm"
TWILIO_SID, TWILIO_TOKEN = "AC" + "0123456789abcdef" * 2, "twilio-Token-Kp3Rt"
TWILIO_FROM = "+15005550006"


@dataclass(frozen=True)
class Provider:
    name: str
    secret: str
    start: Callable[[], FakeProvider]
    notifier: Callable[..., Notifier]  # (endpoint, secret=..., timeout_s=...) -> Notifier
    id_prefix: str  # the shape of the provider's id for an accepted message
    signature_error: str  # the documented code when the signature does not verify
    carries_key: bool  # whether the provider takes our idempotency key


def aliyun_notifier(
    url: str, secret: str = ALIYUN_SECRET, timeout_s: float = 5.0, **kw: Any
) -> AliyunSmsNotifier:
    return AliyunSmsNotifier(
        ALIYUN_ID,
        secret,
        sign_name=SIGN_NAME,
        template_code="SMS_1",
        endpoint=url,
        clock=ManualClock(NOW),
        timeout_s=timeout_s,
        **kw,
    )


def tencent_notifier(url: str, secret: str = TENCENT_SECRET, timeout_s: float = 5.0) -> TencentSmsNotifier:
    return TencentSmsNotifier(
        TENCENT_ID,
        secret,
        sdk_app_id="1400006666",
        sign_name=SIGN_NAME,
        template_id="1110",
        endpoint=url,
        clock=ManualClock(NOW),
        timeout_s=timeout_s,
    )


def twilio_notifier(
    url: str, secret: str = TWILIO_TOKEN, timeout_s: float = 5.0, sender: str = TWILIO_FROM
) -> TwilioSmsNotifier:
    return TwilioSmsNotifier(TWILIO_SID, secret, sender=sender, endpoint=url, timeout_s=timeout_s)


PROVIDERS = {
    "aliyun": Provider(
        "aliyun",
        ALIYUN_SECRET,
        lambda: FakeAliyun(
            ALIYUN_ID, ALIYUN_SECRET, sign_name=SIGN_NAME, template_code="SMS_1", hang_s=HANG_S
        ),
        aliyun_notifier,
        "",
        "SignatureDoesNotMatch",
        True,
    ),
    "tencent": Provider(
        "tencent",
        TENCENT_SECRET,
        lambda: FakeTencent(
            TENCENT_ID,
            TENCENT_SECRET,
            sdk_app_id="1400006666",
            sign_name=SIGN_NAME,
            template_id="1110",
            region="ap-guangzhou",
            hang_s=HANG_S,
        ),
        tencent_notifier,
        "2640:",
        "AuthFailure.SignatureFailure",
        True,
    ),
    "twilio": Provider(
        "twilio",
        TWILIO_TOKEN,
        lambda: FakeTwilio(TWILIO_SID, TWILIO_TOKEN, sender=TWILIO_FROM, hang_s=HANG_S),
        twilio_notifier,
        "SM",
        "20003",
        False,
    ),
}


@dataclass
class Bound:
    """A provider with its fake running."""

    p: Provider
    fake: FakeProvider

    def notifier(self, **kw: Any) -> Notifier:
        return self.p.notifier(self.fake.url, **kw)


@pytest.fixture(params=list(PROVIDERS))
def sms(request: pytest.FixtureRequest) -> Iterator[Bound]:
    p = PROVIDERS[request.param]
    with p.start() as fake:
        yield Bound(p, fake)


def no_secret(result: SendResult, *secrets: str) -> SendResult:
    for s in secrets:
        assert s not in result.detail and s not in str(result)
    return result


# ------------------------------------------------------------------ every provider


@pytest.mark.parametrize(
    "text",
    [
        TEXT,
        "【冷链告警】清水镇卫生院 冰箱1 9.2°C 确认 http://x/a/3-Ab?x=1&y=a+b%20c*~'\"\n第二行 😷",
    ],
    ids=["alert", "encoding-traps"],
)
def test_a_correctly_signed_send_is_accepted_and_the_text_arrives_byte_exact(sms: Bound, text: str) -> None:
    message = Message(MSG.to, text, MSG.alert_id, MSG.person_id, MSG.key)
    result = no_secret(sms.notifier().send(message), sms.p.secret)
    assert sms.fake.rejected == []
    (accepted,) = sms.fake.accepted
    assert (result.status, result.provider, result.request_id) == (
        Status.sent,
        sms.p.name,
        accepted.request_id,
    )
    assert accepted.request_id.startswith(sms.p.id_prefix) and accepted.request_id
    assert accepted.text.encode("utf-8") == text.encode("utf-8")
    assert accepted.to == MSG.to
    assert accepted.key == (MSG.key if sms.p.carries_key else "")


@pytest.mark.parametrize(
    ("outcome", "status"),
    [("throttle", Status.retryable), ("server_error", Status.retryable), ("bad_number", Status.failed)],
)
def test_documented_errors_say_whether_a_retry_is_safe(sms: Bound, outcome: str, status: Status) -> None:
    sms.fake.script(outcome)  # type: ignore[arg-type]
    notifier = sms.notifier()
    result = no_secret(notifier.send(MSG), sms.p.secret)
    assert result.status is status, result
    assert sms.fake.accepted == [] and sms.fake.rejected == []  # valid request, refused by script
    assert no_secret(notifier.send(MSG), sms.p.secret).status is Status.sent  # the script is used up
    assert len(sms.fake.accepted) == 1


def test_no_answer_is_unknown_and_the_provider_did_take_it(sms: Bound) -> None:
    sms.fake.script("hang")
    started = time.monotonic()
    result = no_secret(sms.notifier(timeout_s=TIMEOUT_S).send(MSG), sms.p.secret)
    assert result.status is Status.unknown  # so it must never be sent again ...
    assert [a.text for a in sms.fake.accepted] == [MSG.text]  # ... since the provider has it
    assert time.monotonic() - started < HANG_S


@pytest.mark.parametrize("name", list(PROVIDERS))
def test_connection_refused_is_retryable(name: str) -> None:
    p = PROVIDERS[name]
    sock, url = refused_url()
    with sock:
        result = no_secret(p.notifier(url).send(MSG), p.secret)
    assert result.status is Status.retryable


def test_a_wrong_secret_gets_the_documented_signature_error_and_fails(sms: Bound) -> None:
    result = sms.notifier(secret="not-the-" + sms.p.secret).send(MSG)
    assert result.status is Status.failed
    assert sms.p.signature_error in result.detail
    assert sms.fake.accepted == []
    ((reason, request),) = sms.fake.rejected
    assert sms.p.signature_error in reason
    assert sms.p.secret.encode() not in request.body and "not-the-" not in result.detail


def test_the_secret_never_shows_in_a_repr(sms: Bound) -> None:
    notifier = sms.notifier()
    assert sms.p.secret not in repr(notifier) and sms.p.secret not in str(notifier)
    assert sms.p.secret not in repr(sms.fake)


# ------------------------------------------------------------------ Aliyun specifics


def test_aliyun_fake_refuses_a_reused_nonce_and_a_stale_timestamp() -> None:
    with FakeAliyun(ALIYUN_ID, ALIYUN_SECRET, max_skew_s=900, clock=ManualClock(NOW + 60)) as fake:
        n = aliyun_notifier(fake.url, nonce=lambda: "same-nonce")
        assert n.send(MSG).status is Status.sent
        again = n.send(MSG)
        assert again.status is Status.failed and "SignatureNonceUsed" in again.detail
        late = aliyun_notifier(fake.url)
        late.clock = ManualClock(NOW - 3600)
        stale = late.send(MSG)
        assert stale.status is Status.failed and "InvalidTimeStamp.Expired" in stale.detail
        assert len(fake.accepted) == 1 and len(fake.rejected) == 2


def test_aliyun_fake_refuses_an_illegal_number_as_aliyun_does() -> None:
    with FakeAliyun(ALIYUN_ID, ALIYUN_SECRET) as fake:
        result = aliyun_notifier(fake.url).send(Message("+86123", TEXT, key="k"))
        assert result.status is Status.failed and "isv.MOBILE_NUMBER_ILLEGAL" in result.detail
        assert fake.accepted == [] and "isv.MOBILE_NUMBER_ILLEGAL" in fake.rejected[0][0]


def test_aliyun_fake_signature_check_matches_the_published_examples() -> None:
    doc = json.loads((REFERENCE / "sms-signing" / "aliyun-rpc-hmac-sha1.json").read_text(encoding="utf-8"))
    for v in doc["vectors"]:
        got = aliyun_expected_signature(v["access_key_secret"], v["http_method"], v["params"])
        assert got == v["expected_signature"], v["id"]


# ------------------------------------------------------------------ Tencent specifics


def test_tencent_request_is_what_the_docs_ask_for() -> None:
    with FakeTencent(TENCENT_ID, TENCENT_SECRET) as fake:
        assert tencent_notifier(fake.url).send(MSG).status is Status.sent
        (req,) = fake.requests
    h = req.headers
    assert (req.method, req.path, h["host"]) == ("POST", "/", f"127.0.0.1:{fake.port}")  # port kept
    assert (h["x-tc-action"], h["x-tc-version"], h["x-tc-region"]) == (
        "SendSms",
        "2021-01-11",
        "ap-guangzhou",
    )
    assert h["x-tc-timestamp"] == str(int(NOW)) and h["content-type"] == "application/json; charset=utf-8"
    assert h["authorization"].startswith(
        f"TC3-HMAC-SHA256 Credential={TENCENT_ID}/2026-11-18/sms/tc3_request, "
        "SignedHeaders=content-type;host;x-tc-action, Signature="
    )
    body = json.loads(req.body)
    assert body == {
        "PhoneNumberSet": [MSG.to],
        "SmsSdkAppId": "1400006666",
        "SignName": SIGN_NAME,
        "TemplateId": "1110",
        "TemplateParamSet": [TEXT],
        "SessionContext": MSG.key,
    }


def tencent_statuses(code: str) -> dict[str, Any]:
    status = {"SerialNo": "", "PhoneNumber": MSG.to, "Fee": 0, "SessionContext": MSG.key, "Code": code}
    return {"Response": {"SendStatusSet": [status | {"Message": "x", "IsoCode": "CN"}], "RequestId": "r-1"}}


def tencent_error(code: str) -> dict[str, Any]:
    return {"Response": {"Error": {"Code": code, "Message": "x"}, "RequestId": "r-2"}}


@pytest.mark.parametrize(
    ("reply", "status"),
    [
        (tencent_statuses("LimitExceeded.PhoneNumberDailyLimit"), Status.retryable),
        (tencent_statuses("LimitExceeded.PhoneNumberThirtySecondLimit"), Status.retryable),
        (tencent_statuses("InvalidParameterValue.IncorrectPhoneNumber"), Status.failed),
        (tencent_statuses("FailedOperation.PhoneNumberInBlacklist"), Status.failed),
        (tencent_error("RequestLimitExceeded"), Status.retryable),
        (tencent_error("RequestLimitExceeded.UinLimitExceeded"), Status.retryable),
        (tencent_error("InternalError.Timeout"), Status.retryable),
        (tencent_error("InternalError.RequestTimeException"), Status.failed),  # our clock: fix it first
        (tencent_error("LimitExceeded.PhoneNumberCountLimit"), Status.failed),
        (tencent_error("AuthFailure.SecretIdNotFound"), Status.failed),
        (tencent_error("AuthFailure.SignatureExpire"), Status.failed),
        (tencent_error("UnauthorizedOperation.SmsSdkAppIdVerifyFail"), Status.failed),
        (tencent_error("FailedOperation.SignatureIncorrectOrUnapproved"), Status.failed),
        (tencent_error("FailedOperation.TemplateIncorrectOrUnapproved"), Status.failed),
        (tencent_error("FailedOperation.InsufficientBalanceInSmsPackage"), Status.failed),
        ({"Response": {"SendStatusSet": [], "RequestId": "r-3"}}, Status.unknown),  # taken, no word
        ("<html>bad gateway</html>", Status.unknown),  # HTTP 200 yet not Tencent's answer
    ],
    ids=lambda v: v.value if isinstance(v, Status) else None,
)
def test_tencent_codes_top_level_and_per_number(reply: dict[str, Any] | str, status: Status) -> None:
    with FakeTencent(TENCENT_ID, TENCENT_SECRET) as fake:
        fake.script(Reply(200, reply))
        result = tencent_notifier(fake.url).send(MSG)
    assert result.status is status
    if isinstance(reply, dict) and status is not Status.unknown:
        code = (reply["Response"].get("Error") or reply["Response"]["SendStatusSet"][0])["Code"]
        assert code in result.detail


@pytest.mark.parametrize(
    ("http", "status"), [(503, Status.retryable), (429, Status.retryable), (502, Status.unknown)]
)
def test_tencent_non_api_answers(http: int, status: Status) -> None:
    with FakeTencent(TENCENT_ID, TENCENT_SECRET) as fake:
        fake.script(Reply(http, "<html>gateway</html>"))
        assert tencent_notifier(fake.url).send(MSG).status is status


def test_tencent_fake_checks_the_body_the_signature_covers_and_the_clock() -> None:
    with FakeTencent(TENCENT_ID, TENCENT_SECRET, max_skew_s=300, clock=ManualClock(NOW + 100)) as fake:
        n = tencent_notifier(fake.url)
        headers = n.headers(n.body(MSG), int(NOW))
        tampered = n.body(Message(MSG.to, "一切正常", key=MSG.key)).encode()
        resp = httpx.post(fake.url, content=tampered, headers=headers, timeout=5)
        assert resp.json()["Response"]["Error"]["Code"] == "AuthFailure.SignatureFailure"
        n.clock = ManualClock(NOW - 400)  # more than Tencent's five minutes off
        late = n.send(MSG)
        assert late.status is Status.failed and "AuthFailure.SignatureExpire" in late.detail
        bad = n.send(Message("+86123", TEXT, key="k"))  # reported per number in a successful call
        assert bad.status is Status.failed and "AuthFailure" in bad.detail  # the clock is still off
        n.clock = ManualClock(NOW + 100)
        bad = n.send(Message("+86123", TEXT, key="k"))
        assert bad.status is Status.failed and "InvalidParameterValue.IncorrectPhoneNumber" in bad.detail
        assert fake.accepted == [] and len(fake.rejected) == 4


@pytest.mark.parametrize(
    "v", json.loads((REFERENCE / "sms-signing" / "tencent-tc3-hmac-sha256.json").read_text())["vectors"]
)
def test_tencent_fake_signature_check_matches_the_published_examples(v: dict[str, Any]) -> None:
    with_action = "x-tc-action" in v["expected_canonical_request"]
    headers = {
        "content-type": "application/json; charset=utf-8",
        "host": v["host"],
        "x-tc-action": v["action"],
    }
    got = tc3_expected_signature(
        v["secret_key"],
        method="POST",
        uri="/",
        query="",
        headers=headers,
        signed_headers="content-type;host;x-tc-action" if with_action else "content-type;host",
        payload=v["payload"].encode(),
        timestamp=v["timestamp"],
        service=v["service"],
    )
    assert got == v["expected_signature"]


# ------------------------------------------------------------------ Twilio specifics


def test_twilio_posts_the_documented_form_with_basic_auth() -> None:
    with FakeTwilio(TWILIO_SID, TWILIO_TOKEN) as fake:
        assert twilio_notifier(fake.url).send(MSG).status is Status.sent
        assert twilio_notifier(fake.url, sender="MG" + "0" * 32).send(MSG).status is Status.sent
        first, second = fake.requests
    assert first.path == f"/2010-04-01/Accounts/{TWILIO_SID}/Messages.json"
    assert first.headers["authorization"].startswith("Basic ")
    assert first.headers["content-type"].startswith("application/x-www-form-urlencoded")
    assert parse_qs(first.body.decode()) == {"To": [MSG.to], "From": [TWILIO_FROM], "Body": [TEXT]}
    assert parse_qs(second.body.decode()) == {
        "To": [MSG.to],
        "MessagingServiceSid": ["MG" + "0" * 32],
        "Body": [TEXT],
    }


@pytest.mark.parametrize(
    ("http", "code", "status"),
    [
        (500, 20500, Status.unknown),  # Twilio: a POST that sends an SMS is not idempotent, do not resend
        (502, None, Status.unknown),
        (400, 21610, Status.failed),  # unsubscribed
        (400, 21408, Status.failed),  # region not enabled
        (401, 20003, Status.failed),
    ],
)
def test_twilio_statuses(http: int, code: int | None, status: Status) -> None:
    with FakeTwilio(TWILIO_SID, TWILIO_TOKEN) as fake:
        fake.script(Reply(http, twilio_error(http, code, "x") if code else "<html>bad gateway</html>"))
        result = twilio_notifier(fake.url).send(MSG)
    assert result.status is status and (code is None or str(code) in result.detail)


def test_twilio_fake_refuses_an_invalid_to_and_a_foreign_sender() -> None:
    with FakeTwilio(TWILIO_SID, TWILIO_TOKEN, sender=TWILIO_FROM) as fake:
        bad_to = twilio_notifier(fake.url).send(Message("13800001001", TEXT))
        assert bad_to.status is Status.failed and "21211" in bad_to.detail
        other = twilio_notifier(fake.url, sender="+15005550001").send(MSG)
        assert other.status is Status.failed and "21606" in other.detail
        assert fake.accepted == [] and [r.split(":")[0] for r, _ in fake.rejected] == ["21211", "21606"]
