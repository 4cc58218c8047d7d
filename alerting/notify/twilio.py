"""Twilio Programmable Messaging: create a Message resource (REST API 2010-04-01).

What Twilio documents, and where:

- The request (https://www.twilio.com/docs/messaging/api/message-resource, "Create a Message resource";
  https://www.twilio.com/docs/iam/api for the base URL and authentication): ``POST
  https://api.twilio.com/2010-04-01/Accounts/{AccountSid}/Messages.json``, HTTP Basic authentication with
  the Account SID as user name and the Auth Token as password, form-encoded ``To`` (E.164), ``Body`` and
  the sender: ``From`` (a Twilio number) or ``MessagingServiceSid`` (``MG...``). Twilio takes no
  idempotency key for this call, so ``Message.key`` is not sent.
- The answer (https://www.twilio.com/docs/usage/twilios-response): ``201 Created`` with the new Message,
  whose ``sid`` (``SM...``) we report; on error a JSON body ``{"code", "message", "more_info", "status"}``
  with Twilio's error code (https://www.twilio.com/docs/api/errors), e.g. 20003 (401, bad credentials),
  21211 (invalid ``To``), 21408 (region not enabled), 21610 (recipient unsubscribed).

Whether a retry is safe follows Twilio's own words: 429 / 20429 "is never processed and is always safe to
retry" (https://www.twilio.com/docs/api/errors/20429); 503 / 20503 "temporarily unavailable: try again with
exponential back-off" (https://www.twilio.com/docs/api/errors/20503). But 500 / 20500 on a POST that sends
an SMS "is not idempotent ... if you retry, a customer may receive multiple messages"
(https://www.twilio.com/docs/api/errors/20500): so a 500 (and any other 5xx that may come after the
request was processed) is ``unknown``, never resent. Other 4xx answers are ``failed``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx

from alerting.notify.base import Message, SendResult, Status

API_VERSION = "2010-04-01"
RETRYABLE_HTTP = frozenset({429, 503})  # documented as "not processed" / "try again"
RETRYABLE_CODES = frozenset({20429, 20503})


@dataclass
class TwilioSmsNotifier:
    account_sid: str
    auth_token: str = field(repr=False)
    sender: str = ""  # a Twilio number (E.164) or a Messaging Service SID (MG...)
    endpoint: str = "https://api.twilio.com"
    timeout_s: float = 10.0
    name: str = "twilio"

    @property
    def url(self) -> str:
        return f"{self.endpoint.rstrip('/')}/{API_VERSION}/Accounts/{self.account_sid}/Messages.json"

    def form(self, message: Message) -> dict[str, str]:
        sender = "MessagingServiceSid" if self.sender.startswith("MG") else "From"
        return {"To": message.to, sender: self.sender, "Body": message.text}

    def send(self, message: Message) -> SendResult:
        try:
            resp = httpx.post(
                self.url,
                data=self.form(message),
                auth=(self.account_sid, self.auth_token),
                headers={"Accept": "application/json"},
                timeout=self.timeout_s,
            )
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:  # nothing left here
            return SendResult(Status.retryable, self.name, None, f"cannot connect: {exc}")
        except httpx.HTTPError as exc:  # the request may have been taken: do not send it twice
            return SendResult(Status.unknown, self.name, None, f"no answer: {exc}")
        return self.outcome(resp)

    def outcome(self, resp: httpx.Response) -> SendResult:
        try:
            doc: Any = resp.json()
        except ValueError:
            doc = None
        doc = doc if isinstance(doc, dict) else {}
        if 200 <= resp.status_code < 300:  # created: Twilio has the message
            sid = doc.get("sid")
            return SendResult(Status.sent, self.name, sid, "" if sid else "created, but no sid in the answer")
        code = doc.get("code")
        detail = f"HTTP {resp.status_code} {code if code is not None else ''}: "
        detail += str(doc.get("message", resp.text[:200]))
        if resp.status_code in RETRYABLE_HTTP or code in RETRYABLE_CODES:
            return SendResult(Status.retryable, self.name, None, detail)
        if resp.status_code >= 500:  # it may have been processed: Twilio says do not resend
            return SendResult(Status.unknown, self.name, None, detail)
        return SendResult(Status.failed, self.name, None, detail)
