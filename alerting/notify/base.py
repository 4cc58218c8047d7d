"""One small interface for every channel: send one text to one phone (or endpoint), report what
happened. A notifier never retries by itself; the delivery loop (next step of the issue) decides,
from ``SendResult.status``, whether a retry is safe."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol


class Status(StrEnum):
    sent = "sent"  # the provider accepted it: never send it again
    retryable = "retryable"  # nothing was accepted (connection refused, 5xx, throttled): a retry is safe
    failed = "failed"  # refused for good (bad number, bad credentials, template): retrying cannot help
    unknown = "unknown"  # sent, but no answer (timeout after the request left): NOT safe to resend


@dataclass(frozen=True, slots=True)
class Message:
    to: str  # E.164 phone number, or the endpoint's recipient id
    text: str
    alert_id: str | None = None
    person_id: str | None = None
    key: str = ""  # idempotency key (alert, person, level): providers that take one get it


@dataclass(frozen=True, slots=True)
class SendResult:
    status: Status
    provider: str
    request_id: str | None = None
    detail: str = ""


class Notifier(Protocol):
    name: str

    def send(self, message: Message) -> SendResult: ...
