"""Notifiers against a local HTTP server that checks each request as the provider documents it
(method, path, parameters, signature computed independently here) and answers with the provider's
documented bodies; the outcome decides whether a retry is safe."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from alerting.notify.aliyun import AliyunSmsNotifier
from alerting.notify.base import Message, Status
from alerting.notify.outbox import OutboxNotifier, OutboxRow
from alerting.notify.webhook import SIGNATURE_HEADER, WebhookNotifier
from core.clock import ManualClock

NOW = 1_795_000_000.0
MSG = Message(
    "+8613800001001",
    "【冷链警报】清水镇卫生院 疫苗冷藏冰箱 1：9.2°C",
    "A-20261126-0001",
    "qingshui-nurse1",
    "k1",
)

Reply = tuple[int, dict[str, Any] | str]


class Server:
    """Records requests; ``reply(method, path, query, headers, body)`` decides the answer."""

    def __init__(self, reply: Callable[[str, str, dict[str, str], dict[str, str], bytes], Reply]) -> None:
        self.requests: list[tuple[str, str, dict[str, str], dict[str, str], bytes]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self) -> None:
                url = urlsplit(self.path)
                query = dict(parse_qsl(url.query, keep_blank_values=True))
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                req = (self.command, url.path, query, dict(self.headers), body)
                outer.requests.append(req)
                code, doc = reply(*req)
                data = doc.encode() if isinstance(doc, str) else json.dumps(doc).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = _handle

            def log_message(self, *_a: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def serve() -> Iterator[Callable[..., Server]]:
    servers: list[Server] = []

    def start(reply: Callable[..., Reply]) -> Server:
        servers.append(Server(reply))
        return servers[-1]

    yield start
    for s in servers:
        s.close()


# ------------------------------------------------------------------ Aliyun

SECRET = "testSecret"


def aliyun_signature_ok(query: dict[str, str]) -> bool:
    """Aliyun's documented check, written again here (RFC 3986 encoding, sorted, HMAC-SHA1, key + '&')."""
    pe = lambda s: quote(s, safe="-_.~")  # noqa: E731
    params = {k: v for k, v in query.items() if k != "Signature"}
    canonical = "&".join(f"{pe(k)}={pe(v)}" for k, v in sorted(params.items()))
    sts = f"GET&{pe('/')}&{pe(canonical)}"
    want = base64.b64encode(hmac.new(f"{SECRET}&".encode(), sts.encode(), hashlib.sha1).digest()).decode()
    return hmac.compare_digest(want, query.get("Signature", ""))


def aliyun(url: str) -> AliyunSmsNotifier:
    return AliyunSmsNotifier(
        "testId",
        SECRET,
        sign_name="示范区卫健局",
        template_code="SMS_1",
        endpoint=url,
        clock=ManualClock(NOW),
        nonce=lambda: "nonce-1",
    )


def test_aliyun_sends_a_correctly_signed_sendsms(serve) -> None:
    def reply(method, path, q, headers, body) -> Reply:
        ok = method == "GET" and path == "/" and aliyun_signature_ok(q)
        if not ok:
            return 400, {"Code": "SignatureDoesNotMatch", "Message": "bad", "RequestId": "r0"}
        return 200, {"Code": "OK", "Message": "OK", "BizId": "900619746936498440^0", "RequestId": "r1"}

    server = serve(reply)
    result = aliyun(server.url).send(MSG)
    assert (result.status, result.request_id) == (Status.sent, "900619746936498440^0")
    ((_, _, q, _, _),) = server.requests
    assert q["Action"] == "SendSms" and q["Version"] == "2017-05-25" and q["PhoneNumbers"] == "8613800001001"
    assert json.loads(q["TemplateParam"]) == {"text": MSG.text}
    assert q["Timestamp"] == "2026-11-18T11:06:40Z" and q["OutId"] == "k1"


@pytest.mark.parametrize(
    ("code", "http", "status"),
    [
        ("isv.BUSINESS_LIMIT_CONTROL", 200, Status.retryable),  # Aliyun's rate limit: later is fine
        ("ServiceUnavailable", 503, Status.retryable),
        ("isv.MOBILE_NUMBER_ILLEGAL", 200, Status.failed),  # retrying cannot help
        ("SignatureDoesNotMatch", 400, Status.failed),
    ],
)
def test_aliyun_errors_say_whether_a_retry_is_safe(serve, code: str, http: int, status: Status) -> None:
    server = serve(lambda *_a: (http, {"Code": code, "Message": "x", "RequestId": "r2"}))
    result = aliyun(server.url).send(MSG)
    assert result.status is status and code in result.detail


def test_aliyun_unreachable_is_retryable_and_the_secret_never_shows() -> None:
    n = aliyun("http://127.0.0.1:9/")
    assert n.send(MSG).status is Status.retryable
    assert SECRET not in repr(n)


# ------------------------------------------------------------------ webhook


def test_webhook_posts_signed_json(serve) -> None:
    def reply(method, path, q, headers, body) -> Reply:
        want = "sha256=" + hmac.new(b"hook-secret", body, hashlib.sha256).hexdigest()
        return (204, "") if method == "POST" and headers.get(SIGNATURE_HEADER) == want else (401, "bad")

    server = serve(reply)
    n = WebhookNotifier(server.url, "hook-secret")
    assert n.send(MSG).status is Status.sent
    ((_, _, _, headers, body),) = server.requests
    assert json.loads(body)["text"] == MSG.text and headers["Idempotency-Key"] == "k1"
    assert "hook-secret" not in repr(n)
    assert WebhookNotifier(server.url, "wrong").send(MSG).status is Status.failed


def test_webhook_server_errors_are_retryable(serve) -> None:
    server = serve(lambda *_a: (503, "busy"))
    assert WebhookNotifier(server.url, "s").send(MSG).status is Status.retryable


# ------------------------------------------------------------------ outbox


def test_outbox_keeps_every_message() -> None:
    engine = create_engine("sqlite://")
    n = OutboxNotifier(engine, ManualClock(NOW))
    assert n.send(MSG).status is Status.sent
    with Session(engine) as s:
        (row,) = s.scalars(select(OutboxRow))
    assert (row.to, row.text, row.alert_id, row.created_at) == (MSG.to, MSG.text, MSG.alert_id, NOW)
