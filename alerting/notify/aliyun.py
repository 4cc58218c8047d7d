"""Aliyun SMS ``SendSms`` (Dysmsapi 2017-05-25, RPC style: a signed GET, HMAC-SHA1).

Aliyun sends only approved templates: ``template_code`` names one whose single variable
``template_param`` (default ``text``) carries our alert text. Codes from Aliyun's documented error list
decide whether a failure may be retried; credentials never appear in a repr or a log line.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import httpx

from alerting.notify.base import Message, SendResult, Status
from alerting.notify.signing import aliyun_signed_query
from core.clock import Clock

# rate limits and service-side trouble: nothing was sent, a retry later is safe
RETRYABLE_CODES = frozenset(
    {"isv.BUSINESS_LIMIT_CONTROL", "Throttling", "Throttling.User", "ServiceUnavailable", "InternalError"}
)


@dataclass
class AliyunSmsNotifier:
    access_key_id: str
    access_key_secret: str = field(repr=False)
    sign_name: str = ""
    template_code: str = ""
    template_param: str = "text"
    endpoint: str = "https://dysmsapi.aliyuncs.com/"
    region: str = "cn-hangzhou"
    clock: Clock | None = None
    nonce: Callable[[], str] = field(default=lambda: str(uuid.uuid4()), repr=False)
    timeout_s: float = 10.0
    name: str = "aliyun"

    def params(self, message: Message, now: float) -> dict[str, str]:
        return {
            "AccessKeyId": self.access_key_id,
            "Action": "SendSms",
            "Format": "JSON",
            "OutId": message.key,
            "PhoneNumbers": message.to.removeprefix("+"),
            "RegionId": self.region,
            "SignName": self.sign_name,
            "SignatureMethod": "HMAC-SHA1",
            "SignatureNonce": self.nonce(),
            "SignatureVersion": "1.0",
            "TemplateCode": self.template_code,
            "TemplateParam": json.dumps({self.template_param: message.text}, ensure_ascii=False),
            "Timestamp": datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "Version": "2017-05-25",
        }

    def send(self, message: Message) -> SendResult:
        now = self.clock.now() if self.clock else datetime.now(UTC).timestamp()
        query = aliyun_signed_query(self.access_key_secret, "GET", self.params(message, now))
        try:
            resp = httpx.get(f"{self.endpoint}?{query}", timeout=self.timeout_s)
        except httpx.ConnectError as exc:
            return SendResult(Status.retryable, self.name, None, f"cannot connect: {exc}")
        except httpx.HTTPError as exc:  # the request may have been taken: do not send it twice
            return SendResult(Status.unknown, self.name, None, f"no answer: {exc}")
        try:
            doc = resp.json()
        except ValueError:
            doc = {}
        code, request_id = str(doc.get("Code", "")), doc.get("RequestId")
        if resp.status_code == 200 and code == "OK":
            return SendResult(Status.sent, self.name, doc.get("BizId") or request_id)
        detail = f"HTTP {resp.status_code} {code}: {doc.get('Message', resp.text[:200])}"
        if resp.status_code >= 500 or code in RETRYABLE_CODES:
            return SendResult(Status.retryable, self.name, request_id, detail)
        return SendResult(Status.failed, self.name, request_id, detail)
