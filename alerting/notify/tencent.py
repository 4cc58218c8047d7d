"""Tencent Cloud SMS ``SendSms`` (API 3.0, version 2021-01-11): a JSON POST signed TC3-HMAC-SHA256.

What Tencent documents, and where:

- The request (https://cloud.tencent.com/document/api/382/55981, "发送短信" 2021-01-11): POST to
  ``sms.tencentcloudapi.com``, action ``SendSms``, ``Region`` required; body ``PhoneNumberSet`` (E.164,
  ``+86...``), ``SmsSdkAppId``, ``TemplateId`` (an approved template), ``SignName`` (an approved
  signature), ``TemplateParamSet`` (the template's variables, here one: our text) and ``SessionContext``
  (returned as is; we put the idempotency key there). The common parameters go in the ``X-TC-*``
  headers; ``Authorization`` is TC3-HMAC-SHA256 over method, path, the signed headers (``content-type``,
  ``host``, ``x-tc-action``) and the SHA-256 of the body (https://cloud.tencent.com/document/api/213/30654).
  ``Host`` must be the host the request goes to, and the signed host the same string: with a port when it
  is not the scheme's default (a local test server).
- The answer (example in the same page; tencentcloud-cli ``tccli/examples/sms/v20210111/SendSms.md``):
  always a ``Response`` object. With ``Error`` in it the call failed and nothing was sent
  (https://cloud.tencent.com/document/api/382/52075, "错误码"); otherwise ``SendStatusSet`` holds one entry
  per number whose ``Code`` is ``"Ok"`` when that number's message was taken, or an error code from the
  same list (e.g. ``LimitExceeded.PhoneNumberDailyLimit``, ``InvalidParameterValue.IncorrectPhoneNumber``),
  with ``SerialNo`` the send's serial number.
- Error codes of SendSms (https://cloud.tencent.com/document/api/382/59177; descriptions also in
  TencentCloud/tencentcloud-sdk-python ``tencentcloud/sms/v20210111/errorcodes.py``).

How a code maps to a :class:`Status` (see :func:`status_of`): rate limits (``RequestLimitExceeded*``,
``LimitExceeded.*``) and the service's own trouble (``InternalError``, ``InternalError.Timeout`` — "the
request to send timed out; retry", ``InternalError.SendAndRecvFail``, ...) are retryable; credentials,
parameters, unapproved signature or template, a blocked or malformed number, an empty balance are failed,
as are the few ``InternalError.*`` codes that describe our request (a bad clock:
``InternalError.RequestTimeException``; an unparsable body) since sending it again cannot help. A request
that left without an answer, or an answer that does not say what happened, is ``unknown``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx

from alerting.notify.base import Message, SendResult, Status
from alerting.notify.signing import tc3_authorization, tc3_canonical_request
from core.clock import Clock

ACTION = "SendSms"
VERSION = "2021-01-11"
SERVICE = "sms"
CONTENT_TYPE = "application/json; charset=utf-8"

# families of codes where nothing was sent and a later attempt may go through
RETRYABLE_PREFIXES = ("RequestLimitExceeded", "LimitExceeded", "InternalError")
# ... except these, which describe our own request: the same request fails the same way
FAILED_CODES = frozenset(
    {
        "LimitExceeded.PhoneNumberCountLimit",  # more than 200 numbers in one request
        "InternalError.RequestTimeException",  # our clock is more than 10 minutes off
        "InternalError.JsonParseFail",
        "InternalError.RestApiInterfaceNotExist",
        "InternalError.SigFieldMissing",
        "InternalError.SigVerificationFail",
    }
)
# answers that are not Tencent's JSON (a proxy or load balancer in the way)
RETRYABLE_HTTP = frozenset({429, 503})


def status_of(code: str) -> Status:
    """Whether a Tencent error code (top level or per number) leaves a retry safe and useful."""
    if code in FAILED_CODES:
        return Status.failed
    if any(code == p or code.startswith(p + ".") for p in RETRYABLE_PREFIXES):
        return Status.retryable
    return Status.failed


def host_header(url: httpx.URL) -> str:
    """``host`` or ``host:port`` as a client sends it in ``Host`` (the port only when not the default)."""
    default = {"http": 80, "https": 443}.get(url.scheme)
    return url.host if url.port in (None, default) else f"{url.host}:{url.port}"


@dataclass
class TencentSmsNotifier:
    secret_id: str
    secret_key: str = field(repr=False)
    sdk_app_id: str = ""
    sign_name: str = ""
    template_id: str = ""
    region: str = "ap-guangzhou"
    endpoint: str = "https://sms.tencentcloudapi.com/"
    clock: Clock | None = None
    timeout_s: float = 10.0
    name: str = "tencent"

    def body(self, message: Message) -> str:
        doc = {
            "PhoneNumberSet": [message.to],
            "SmsSdkAppId": self.sdk_app_id,
            "SignName": self.sign_name,
            "TemplateId": self.template_id,
            "TemplateParamSet": [message.text],
            "SessionContext": message.key,
        }
        return json.dumps(doc, ensure_ascii=False, separators=(",", ":"))

    def headers(self, payload: str, timestamp: int) -> dict[str, str]:
        url = httpx.URL(self.endpoint)
        host = host_header(url)
        request, signed = tc3_canonical_request(
            host=host, payload=payload, action=ACTION, content_type=CONTENT_TYPE, uri=url.path or "/"
        )
        auth = tc3_authorization(self.secret_id, self.secret_key, request, signed, timestamp, SERVICE)
        return {
            "Authorization": auth,
            "Content-Type": CONTENT_TYPE,
            "Host": host,
            "X-TC-Action": ACTION,
            "X-TC-Timestamp": str(timestamp),
            "X-TC-Version": VERSION,
            "X-TC-Region": self.region,
        }

    def send(self, message: Message) -> SendResult:
        now = self.clock.now() if self.clock else datetime.now(UTC).timestamp()
        payload = self.body(message)
        headers = self.headers(payload, int(now))
        try:
            resp = httpx.post(
                self.endpoint, content=payload.encode("utf-8"), headers=headers, timeout=self.timeout_s
            )
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:  # nothing left here
            return SendResult(Status.retryable, self.name, None, f"cannot connect: {exc}")
        except httpx.HTTPError as exc:  # the request may have been taken: do not send it twice
            return SendResult(Status.unknown, self.name, None, f"no answer: {exc}")
        return self.outcome(resp, message)

    def outcome(self, resp: httpx.Response, message: Message) -> SendResult:
        try:
            doc: Any = resp.json()
        except ValueError:
            doc = None
        response = doc.get("Response") if isinstance(doc, dict) else None
        if not isinstance(response, dict):  # not Tencent's API answering
            detail = f"HTTP {resp.status_code}: {resp.text[:200]}"
            if resp.status_code in RETRYABLE_HTTP:
                return SendResult(Status.retryable, self.name, None, detail)
            if resp.status_code < 400 or resp.status_code >= 500:  # it may have been processed
                return SendResult(Status.unknown, self.name, None, detail)
            return SendResult(Status.failed, self.name, None, detail)
        request_id = response.get("RequestId")
        error = response.get("Error")
        if isinstance(error, dict):
            code = str(error.get("Code", ""))
            detail = f"HTTP {resp.status_code} {code}: {error.get('Message', '')}"
            return SendResult(status_of(code), self.name, request_id, detail)
        statuses = response.get("SendStatusSet")
        entries = [s for s in statuses if isinstance(s, dict)] if isinstance(statuses, list) else []
        mine = [s for s in entries if s.get("PhoneNumber") == message.to] or entries[:1]
        if not mine:  # taken, but no word on the number: it may have gone out
            return SendResult(Status.unknown, self.name, request_id, "no SendStatusSet in the answer")
        entry = mine[0]
        code = str(entry.get("Code", ""))
        if not code:
            return SendResult(Status.unknown, self.name, request_id, "no Code for the number in the answer")
        if code == "Ok":
            return SendResult(Status.sent, self.name, entry.get("SerialNo") or request_id)
        detail = f"HTTP {resp.status_code} {code}: {entry.get('Message', '')}"
        return SendResult(status_of(code), self.name, request_id, detail)
