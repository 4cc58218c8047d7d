"""The webhook channel: a JSON POST to any system (WeChat Work / DingTalk bot relays, a ticketing
system), signed with HMAC-SHA256 in ``X-ChainWatch-Signature`` so the receiver can trust it."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import httpx

from alerting.notify.base import Message, SendResult, Status
from alerting.notify.signing import webhook_signature

SIGNATURE_HEADER = "X-ChainWatch-Signature"


@dataclass
class WebhookNotifier:
    url: str
    secret: str = field(repr=False)  # never in a log line or a repr
    timeout_s: float = 10.0
    name: str = "webhook"

    def body(self, message: Message) -> bytes:
        doc = {
            "to": message.to,
            "text": message.text,
            "alert_id": message.alert_id,
            "person_id": message.person_id,
            "key": message.key,
        }
        return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode()

    def send(self, message: Message) -> SendResult:
        body = self.body(message)
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            SIGNATURE_HEADER: webhook_signature(self.secret, body),
            "Idempotency-Key": message.key,
        }
        try:
            resp = httpx.post(self.url, content=body, headers=headers, timeout=self.timeout_s)
        except httpx.ConnectError as exc:  # nothing left this machine: safe to try again
            return SendResult(Status.retryable, self.name, None, f"cannot connect: {exc}")
        except httpx.TimeoutException as exc:  # it may have arrived
            return SendResult(Status.unknown, self.name, None, f"no answer: {exc}")
        except httpx.HTTPError as exc:
            return SendResult(Status.unknown, self.name, None, str(exc))
        request_id = resp.headers.get("X-Request-Id")
        if 200 <= resp.status_code < 300:
            return SendResult(Status.sent, self.name, request_id)
        status = Status.retryable if resp.status_code >= 500 or resp.status_code == 429 else Status.failed
        return SendResult(status, self.name, request_id, f"HTTP {resp.status_code}: {resp.text[:200]}")
