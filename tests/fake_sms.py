"""Strict local fakes of the SMS providers' send APIs: Aliyun ``SendSms``, Tencent Cloud ``SendSms`` and
Twilio ``Messages.json``, each a threaded HTTP server on 127.0.0.1 (a free port).

Each fake is built with the credentials it expects and checks every request as the provider documents
it — method, path, required parameters or headers, and the signature, recomputed here independently of
``alerting.notify.signing`` (Aliyun RPC HMAC-SHA1, Tencent TC3-HMAC-SHA256, Twilio HTTP Basic). A request
that fails a check is answered with the provider's documented error body (Aliyun
``SignatureDoesNotMatch``, Tencent ``AuthFailure.SignatureFailure``, Twilio 401 / 20003, ...) and kept in
``rejected`` with the reason. A request that passes is answered by the next scripted outcome (``"ok"``
when none is left):

- ``"ok"``: accepted (kept in ``accepted``), the provider's documented success body;
- ``"throttle"``: the documented rate-limit error (Aliyun 200 ``isv.BUSINESS_LIMIT_CONTROL``, Tencent
  ``RequestLimitExceeded``, Twilio 429 / 20429);
- ``"server_error"``: the documented service-side error (Aliyun 503 ``ServiceUnavailable``, Tencent
  ``InternalError`` — Tencent reports its errors in an HTTP 200 ``Response`` — Twilio 503 / 20503);
- ``"bad_number"``: the documented invalid-number error (Aliyun 200 ``isv.MOBILE_NUMBER_ILLEGAL``, Tencent
  per number ``InvalidParameterValue.IncorrectPhoneNumber``, Twilio 400 / 21211);
- ``"hang"``: accepted and kept in ``accepted``, then no answer for ``hang_s`` seconds (longer than a
  client's timeout), then the success body — the case where a client must not send again;
- ``Reply(status, body)``: any other answer, verbatim.

``rejected`` holds only what the fake itself refused (a bad signature, a missing parameter, an invalid
number, ...), never a scripted error; ``requests`` holds every request received, header names in lower
case.

Timestamp freshness is checked only when ``max_skew_s`` is given (Tencent allows 300 s, Aliyun 900 s),
because tests drive the notifiers with manual clocks. Use a fake as a context manager
(``with FakeTencent(...) as fake:``) or call ``close()``.

Documents followed: Aliyun SendSms https://help.aliyun.com/document_detail/55284.htm, Aliyun RPC gateway
errors https://help.aliyun.com/document_detail/48054.html; Tencent SendSms
https://cloud.tencent.com/document/api/382/55981, its error codes .../382/52075 and .../382/59177,
TC3-HMAC-SHA256 https://cloud.tencent.com/document/api/213/30654; Twilio
https://www.twilio.com/docs/messaging/api/message-resource, https://www.twilio.com/docs/usage/twilios-response
and https://www.twilio.com/docs/api/errors.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import itertools
import json
import re
import socket
import threading
import time
import uuid
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, ClassVar, Literal, Self
from urllib.parse import parse_qsl, quote, urlsplit

from core.clock import Clock

Outcome = Literal["ok", "throttle", "server_error", "bad_number", "hang"]
OUTCOMES: tuple[Outcome, ...] = ("ok", "throttle", "server_error", "bad_number", "hang")
Body = dict[str, Any] | str


@dataclass(frozen=True, slots=True)
class Reply:
    """A scripted answer given verbatim (not recorded as accepted)."""

    status: int
    body: Body


@dataclass(frozen=True, slots=True)
class Accepted:
    provider: str
    to: str  # E.164, with "+"
    text: str
    key: str  # the idempotency key the provider carried back (Aliyun OutId, Tencent SessionContext)
    request_id: str  # the id the fake answered with (Aliyun BizId, Tencent SerialNo, Twilio sid)


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # names in lower case
    body: bytes


class Rejected(Exception):
    """Raised by a check: the fake answers ``status``/``body`` and records ``reason``."""

    def __init__(self, reason: str, status: int, body: Body) -> None:
        super().__init__(reason)
        self.reason, self.status, self.body = reason, status, body


@dataclass(frozen=True, slots=True)
class _Valid:
    to: str
    text: str
    key: str
    context: dict[str, str]


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that timed out and left is normal here


class FakeProvider:
    """The shared machinery; subclasses implement ``check``, ``success`` and ``error``."""

    provider: ClassVar[str]
    url_suffix: ClassVar[str] = "/"

    def __init__(
        self, *, max_skew_s: float | None = None, clock: Clock | None = None, hang_s: float = 3.0
    ) -> None:
        self.max_skew_s = max_skew_s
        self.clock = clock
        self.hang_s = hang_s
        self.accepted: list[Accepted] = []
        self.rejected: list[tuple[str, Request]] = []
        self.requests: list[Request] = []
        self._script: deque[Outcome | Reply] = deque()
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._ids = itertools.count(1)
        self._httpd = _Server(("127.0.0.1", 0), self._handler())
        self.port: int = self._httpd.server_address[1]
        self.host = f"127.0.0.1:{self.port}"
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.01}, name=self.provider, daemon=True
        )
        self._thread.start()

    # ---------------------------------------------------------------- public API

    @property
    def url(self) -> str:
        """The base URL to give the notifier as its endpoint."""
        return f"http://{self.host}{self.url_suffix}"

    def script(self, *outcomes: Outcome | Reply) -> None:
        """The next valid requests are answered with these outcomes, in order, then ``"ok"`` again."""
        for o in outcomes:
            if not isinstance(o, Reply) and o not in OUTCOMES:
                raise ValueError(f"unknown outcome {o!r}; one of {OUTCOMES} or a Reply")
        with self._lock:
            self._script.extend(outcomes)

    def close(self) -> None:
        self._closing.set()  # a hanging answer ends now
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # ---------------------------------------------------------------- for subclasses

    def check(self, req: Request) -> _Valid:
        raise NotImplementedError

    def success(self, valid: _Valid, request_id: str) -> tuple[int, Body]:
        raise NotImplementedError

    def error(self, outcome: Outcome, valid: _Valid) -> tuple[int, Body]:
        raise NotImplementedError

    def new_id(self) -> str:
        raise NotImplementedError

    def now(self) -> float:
        return self.clock.now() if self.clock else time.time()

    def skew_ok(self, timestamp: float) -> bool:
        return self.max_skew_s is None or abs(self.now() - timestamp) <= self.max_skew_s

    # ---------------------------------------------------------------- the exchange

    def answer(self, req: Request) -> tuple[int, Body]:
        with self._lock:
            self.requests.append(req)
        try:
            valid = self.check(req)
        except Rejected as r:
            with self._lock:
                self.rejected.append((r.reason, req))
            return r.status, r.body
        with self._lock:
            outcome = self._script.popleft() if self._script else "ok"
        if isinstance(outcome, Reply):
            return outcome.status, outcome.body
        if outcome in ("ok", "hang"):
            request_id = self.new_id()
            with self._lock:
                self.accepted.append(Accepted(self.provider, valid.to, valid.text, valid.key, request_id))
            if outcome == "hang":
                self._closing.wait(self.hang_s)
            return self.success(valid, request_id)
        return self.error(outcome, valid)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self) -> None:
                url = urlsplit(self.path)
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                req = Request(
                    self.command,
                    url.path,
                    dict(parse_qsl(url.query, keep_blank_values=True)),
                    {k.lower(): v for k, v in self.headers.items()},
                    body,
                )
                status, doc = fake.answer(req)
                data = doc.encode() if isinstance(doc, str) else json.dumps(doc, ensure_ascii=False).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json; charset=utf-8")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:  # the client gave up waiting
                    pass

            do_GET = do_POST = do_PUT = do_DELETE = _handle

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler


def refused_url(path: str = "/") -> tuple[socket.socket, str]:
    """A URL on which connections are refused (a bound socket that never listens); close the socket
    when done."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    return sock, f"http://127.0.0.1:{sock.getsockname()[1]}{path}"


def _request_id() -> str:
    return str(uuid.uuid4()).upper()


# ====================================================================== Aliyun

ALIYUN_ACTION, ALIYUN_VERSION = "SendSms", "2017-05-25"


def aliyun_percent(value: str) -> str:
    """RFC 3986 percent-encoding of UTF-8, only ``A-Z a-z 0-9 - _ . ~`` kept (Aliyun's rule)."""
    return quote(value.encode("utf-8"), safe="-_.~")


def aliyun_expected_signature(secret: str, method: str, params: Mapping[str, str]) -> str:
    """Aliyun RPC ``Signature`` over every parameter but ``Signature``: sort by encoded name, join,
    ``METHOD&%2F&encode(query)``, HMAC-SHA1 with ``secret + "&"``, base64."""
    pairs = sorted((aliyun_percent(k), aliyun_percent(v)) for k, v in params.items() if k != "Signature")
    query = "&".join(f"{k}={v}" for k, v in pairs)
    to_sign = "&".join([method.upper(), aliyun_percent("/"), aliyun_percent(query)])
    digest = hmac.new(f"{secret}&".encode(), to_sign.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def _aliyun_e164(number: str) -> str | None:
    """Aliyun's documented forms: ``+``/``+86``/``0086``/``86`` or no prefix for the mainland (11 digits
    from 1), else a country code and number."""
    digits = number.removeprefix("+").removeprefix("00")
    if not digits.isdigit():
        return None
    if len(digits) == 11 and digits.startswith("1"):
        return "+86" + digits
    if digits.startswith("86"):
        return "+" + digits if len(digits) == 13 and digits[2] == "1" else None
    return "+" + digits if 6 <= len(digits) <= 15 else None


class FakeAliyun(FakeProvider):
    """Aliyun Dysmsapi ``SendSms`` (RPC style, GET or POST form, HMAC-SHA1 signature).

    ``sign_name`` / ``template_code``, when given, must match (else ``isv.SMS_SIGNATURE_ILLEGAL`` /
    ``isv.SMS_TEMPLATE_ILLEGAL``); ``template_param`` is the variable that carries the text. A nonce used
    twice is refused (``SignatureNonceUsed``) unless ``check_nonce=False``."""

    provider = "aliyun"

    def __init__(
        self,
        access_key_id: str,
        access_key_secret: str,
        *,
        sign_name: str | None = None,
        template_code: str | None = None,
        template_param: str = "text",
        check_nonce: bool = True,
        max_skew_s: float | None = None,
        clock: Clock | None = None,
        hang_s: float = 3.0,
    ) -> None:
        self.access_key_id = access_key_id
        self._secret = access_key_secret
        self.sign_name, self.template_code, self.template_param = sign_name, template_code, template_param
        self.check_nonce = check_nonce
        self._nonces: set[str] = set()
        super().__init__(max_skew_s=max_skew_s, clock=clock, hang_s=hang_s)

    def __repr__(self) -> str:
        return f"FakeAliyun({self.url!r}, access_key_id={self.access_key_id!r})"

    @staticmethod
    def _gateway_error(status: int, code: str, message: str) -> Rejected:
        body = {
            "RequestId": _request_id(),
            "HostId": "dysmsapi.aliyuncs.com",
            "Code": code,
            "Message": message,
        }
        return Rejected(f"{code}: {message}", status, body)

    @staticmethod
    def _sms_error(code: str, message: str) -> Rejected:  # business errors come with HTTP 200
        return Rejected(
            f"{code}: {message}", 200, {"RequestId": _request_id(), "Code": code, "Message": message}
        )

    def check(self, req: Request) -> _Valid:
        err = self._gateway_error
        if req.method not in ("GET", "POST") or req.path != "/":
            raise err(
                404, "InvalidApi.NotFound", "Specified api is not found,please check your url and method."
            )
        params = dict(req.query)
        if req.method == "POST":
            if not req.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
                raise err(400, "InvalidParameter", "POST parameters must be form-encoded")
            params.update(parse_qsl(req.body.decode("utf-8"), keep_blank_values=True))
        required = [
            "AccessKeyId",
            "Action",
            "Format",
            "PhoneNumbers",
            "SignName",
            "Signature",
            "SignatureMethod",
            "SignatureNonce",
            "SignatureVersion",
            "TemplateCode",
            "TemplateParam",
            "Timestamp",
            "Version",
        ]
        for name in required:
            if not params.get(name):
                raise err(400, f"Missing{name}", f"{name} is mandatory for this action.")
        if params["Action"] != ALIYUN_ACTION:
            raise err(404, "InvalidApi.NotFound", f"Specified api {params['Action']} is not found.")
        if params["Version"] != ALIYUN_VERSION:
            raise err(400, "InvalidVersion", f"Specified parameter Version {params['Version']} is not valid.")
        if params["Format"] != "JSON":  # Aliyun would answer XML, which no notifier here reads
            raise err(400, "InvalidParameter", "Format must be JSON for this fake (Aliyun's default is XML)")
        if (params["SignatureMethod"], params["SignatureVersion"]) != ("HMAC-SHA1", "1.0"):
            raise err(400, "InvalidParameter", "SignatureMethod must be HMAC-SHA1, SignatureVersion 1.0")
        if params["AccessKeyId"] != self.access_key_id:
            raise err(400, "InvalidAccessKeyId.NotFound", "Specified access key is not found.")
        try:
            ts = datetime.strptime(params["Timestamp"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        except ValueError:
            raise err(
                400, "InvalidTimeStamp.Format", "Specified time stamp or date value is not well formatted."
            ) from None
        if not self.skew_ok(ts.timestamp()):
            raise err(400, "InvalidTimeStamp.Expired", "Specified time stamp or date value is expired.")
        want = aliyun_expected_signature(self._secret, req.method, params)
        if not hmac.compare_digest(want.encode(), params["Signature"].encode()):
            raise err(
                400, "SignatureDoesNotMatch", "Specified signature is not matched with our calculation."
            )
        with self._lock:
            reused = params["SignatureNonce"] in self._nonces
            self._nonces.add(params["SignatureNonce"])
        if self.check_nonce and reused:
            raise err(400, "SignatureNonceUsed", "Specified signature nonce was used already.")
        if self.sign_name is not None and params["SignName"] != self.sign_name:
            raise self._sms_error("isv.SMS_SIGNATURE_ILLEGAL", "该账号下找不到对应签名")
        if self.template_code is not None and params["TemplateCode"] != self.template_code:
            raise self._sms_error("isv.SMS_TEMPLATE_ILLEGAL", "该账号下找不到对应模板")
        try:
            variables = json.loads(params["TemplateParam"])
        except ValueError:
            variables = None
        if not isinstance(variables, dict) or not all(isinstance(v, str) for v in variables.values()):
            raise self._sms_error("isv.INVALID_JSON_PARAM", "JSON参数不合法，只接受字符串值")
        if self.template_param not in variables:
            raise self._sms_error("isv.TEMPLATE_MISSING_PARAMETERS", "模板缺少变量")
        if "," in params["PhoneNumbers"]:
            raise err(400, "InvalidParameter", "this fake takes one number per request")
        to = _aliyun_e164(params["PhoneNumbers"])
        if to is None:
            raise self._sms_error("isv.MOBILE_NUMBER_ILLEGAL", "非法手机号")
        return _Valid(to, variables[self.template_param], params.get("OutId", ""), {})

    def new_id(self) -> str:
        return f"{900619746936498440 + next(self._ids)}^0"

    def success(self, valid: _Valid, request_id: str) -> tuple[int, Body]:
        return 200, {"Code": "OK", "Message": "OK", "BizId": request_id, "RequestId": _request_id()}

    def error(self, outcome: Outcome, valid: _Valid) -> tuple[int, Body]:
        status, code, message = {
            "throttle": (200, "isv.BUSINESS_LIMIT_CONTROL", "触发分钟级流控Permits:1"),
            "server_error": (
                503,
                "ServiceUnavailable",
                "The request has failed due to a temporary failure of the server.",
            ),
            "bad_number": (200, "isv.MOBILE_NUMBER_ILLEGAL", "非法手机号"),
        }[outcome]
        return status, {"RequestId": _request_id(), "Code": code, "Message": message}


# ====================================================================== Tencent Cloud

TENCENT_ACTION, TENCENT_VERSION, TENCENT_SERVICE = "SendSms", "2021-01-11", "sms"
_TC3_AUTH = re.compile(
    r"TC3-HMAC-SHA256 Credential=(?P<id>[^/\s]+)/(?P<date>\d{4}-\d{2}-\d{2})/(?P<service>[a-z0-9]+)"
    r"/tc3_request, ?SignedHeaders=(?P<signed>[a-z0-9;-]+), ?Signature=(?P<signature>[0-9a-f]{64})"
)


def tc3_expected_signature(
    secret_key: str,
    *,
    method: str,
    uri: str,
    query: str,
    headers: Mapping[str, str],
    signed_headers: str,
    payload: bytes,
    timestamp: int,
    service: str,
) -> str:
    """TC3-HMAC-SHA256 as Tencent documents it, from the request as received: canonical headers are the
    signed ones, names and values lower-cased and trimmed; the key is derived from the secret, the UTC
    date and the service."""
    names = signed_headers.split(";")
    canonical_headers = "".join(f"{n}:{headers[n].strip().lower()}\n" for n in names)
    canonical = "\n".join(
        [method, uri, query, canonical_headers, signed_headers, hashlib.sha256(payload).hexdigest()]
    )
    date = datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d")
    scope = f"{date}/{service}/tc3_request"
    to_sign = f"TC3-HMAC-SHA256\n{timestamp}\n{scope}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
    key = ("TC3" + secret_key).encode()
    for part in (date, service, "tc3_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()


def _tencent_e164(number: str) -> str | None:
    """SendSms takes ``+[country][number]``; for the mainland also ``0086``, ``86`` or the bare 11 digits."""
    if number.startswith("+"):
        digits = number[1:]
        ok = digits.isdigit() and 6 <= len(digits) <= 15 and not digits.startswith("0")
        if ok and digits.startswith("86"):
            ok = len(digits) == 13 and digits[2] == "1"
        return number if ok else None
    bare = number.removeprefix("00").removeprefix("86") if len(number) > 11 else number
    return "+86" + bare if len(bare) == 11 and bare.isdigit() and bare.startswith("1") else None


class FakeTencent(FakeProvider):
    """Tencent Cloud SMS ``SendSms`` 2021-01-11 (API 3.0: POST JSON, TC3-HMAC-SHA256 in ``Authorization``).

    ``sdk_app_id`` / ``sign_name`` / ``template_id`` / ``region``, when given, must match. Tencent answers
    HTTP 200 with a ``Response`` object, an ``Error`` in it when the call failed; a bad number is reported
    per number in ``SendStatusSet`` (``InvalidParameterValue.IncorrectPhoneNumber``)."""

    provider = "tencent"

    def __init__(
        self,
        secret_id: str,
        secret_key: str,
        *,
        sdk_app_id: str | None = None,
        sign_name: str | None = None,
        template_id: str | None = None,
        region: str | None = None,
        max_skew_s: float | None = None,
        clock: Clock | None = None,
        hang_s: float = 3.0,
    ) -> None:
        self.secret_id = secret_id
        self._secret = secret_key
        self.sdk_app_id, self.sign_name, self.template_id, self.region = (
            sdk_app_id,
            sign_name,
            template_id,
            region,
        )
        super().__init__(max_skew_s=max_skew_s, clock=clock, hang_s=hang_s)

    def __repr__(self) -> str:
        return f"FakeTencent({self.url!r}, secret_id={self.secret_id!r})"

    @staticmethod
    def _error(code: str, message: str) -> dict[str, Any]:
        return {"Response": {"Error": {"Code": code, "Message": message}, "RequestId": str(uuid.uuid4())}}

    def _reject(self, code: str, message: str) -> Rejected:
        return Rejected(f"{code}: {message}", 200, self._error(code, message))

    @staticmethod
    def _status(valid: _Valid, code: str, message: str, serial: str, fee: int) -> dict[str, Any]:
        return {
            "SerialNo": serial,
            "PhoneNumber": valid.to,
            "Fee": fee,
            "SessionContext": valid.key,
            "Code": code,
            "Message": message,
            "IsoCode": "CN" if valid.to.startswith("+86") else "DEF",
        }

    def check(self, req: Request) -> _Valid:
        h, reject = req.headers, self._reject
        if req.method != "POST" or req.path != "/" or req.query:
            raise reject("InvalidParameter", "this fake takes POST / with a JSON body only")
        if not h.get("content-type", "").startswith("application/json"):
            raise reject("InvalidParameter", "Content-Type must be application/json")
        for name in ("x-tc-action", "x-tc-version", "x-tc-timestamp", "x-tc-region"):
            if not h.get(name):
                raise reject("MissingParameter", f"The request is missing a required parameter `{name}`.")
        if h["x-tc-action"] != TENCENT_ACTION:
            raise reject("InvalidAction", f"The action `{h['x-tc-action']}` is not found.")
        if h["x-tc-version"] != TENCENT_VERSION:
            raise reject("NoSuchVersion", f"The API version `{h['x-tc-version']}` does not exist.")
        if self.region is not None and h["x-tc-region"] != self.region:
            raise reject("UnsupportedRegion", f"The region `{h['x-tc-region']}` is not supported.")
        if h.get("host") != self.host:
            raise reject("AuthFailure.SignatureFailure", f"Host {h.get('host')!r} is not {self.host!r}")
        auth = _TC3_AUTH.fullmatch(h.get("authorization", ""))
        if auth is None:
            raise reject("AuthFailure.InvalidAuthorization", "Authorization is not TC3-HMAC-SHA256.")
        if auth["id"] != self.secret_id:
            raise reject("AuthFailure.SecretIdNotFound", "The SecretId is not found.")
        try:
            timestamp = int(h["x-tc-timestamp"])
        except ValueError:
            raise reject("InvalidParameter", "X-TC-Timestamp must be an integer.") from None
        if not self.skew_ok(timestamp):
            raise reject(
                "AuthFailure.SignatureExpire", "Signature expired: the timestamp is off by over 5 min."
            )
        signed = auth["signed"]
        names = signed.split(";")
        if "content-type" not in names or "host" not in names or names != sorted(names):
            raise reject(
                "AuthFailure.SignatureFailure", f"SignedHeaders {signed!r} lacks content-type or host"
            )
        if any(n not in h for n in names):
            raise reject("AuthFailure.SignatureFailure", f"a header in {signed!r} is missing")
        date = datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d")
        want = tc3_expected_signature(
            self._secret,
            method=req.method,
            uri=req.path,
            query="",
            headers=h,
            signed_headers=signed,
            payload=req.body,
            timestamp=timestamp,
            service=TENCENT_SERVICE,
        )
        good = (auth["date"], auth["service"]) == (date, TENCENT_SERVICE)
        if not (good and hmac.compare_digest(want, auth["signature"])):
            message = (
                "The provided credentials could not be validated. Please check your signature is correct."
            )
            raise reject("AuthFailure.SignatureFailure", message)
        try:
            doc = json.loads(req.body.decode("utf-8"))
        except ValueError:
            raise reject("FailedOperation.JsonParseFail", "The request body is not JSON.") from None
        if not isinstance(doc, dict):
            raise reject("FailedOperation.JsonParseFail", "The request body is not a JSON object.")
        numbers = doc.get("PhoneNumberSet")
        if not isinstance(numbers, list) or not numbers or not all(isinstance(n, str) for n in numbers):
            raise reject("MissingParameter.EmptyPhoneNumberSet", "PhoneNumberSet is empty.")
        if len(numbers) != 1:
            raise reject("InvalidParameter", "this fake takes one number per request")
        for name in ("SmsSdkAppId", "TemplateId"):
            if not isinstance(doc.get(name), str) or not doc[name]:
                raise reject("MissingParameter", f"The request is missing a required parameter `{name}`.")
        if self.sdk_app_id is not None and doc["SmsSdkAppId"] != self.sdk_app_id:
            raise reject("UnauthorizedOperation.SmsSdkAppIdVerifyFail", "SmsSdkAppId verification failed.")
        if self.sign_name is not None and doc.get("SignName") != self.sign_name:
            raise reject("FailedOperation.SignatureIncorrectOrUnapproved", "签名未审批或格式错误。")
        params = doc.get("TemplateParamSet")
        if self.template_id is not None and doc["TemplateId"] != self.template_id:
            raise reject("FailedOperation.TemplateIncorrectOrUnapproved", "模板未审批或内容不匹配。")
        if not isinstance(params, list) or len(params) != 1 or not isinstance(params[0], str):
            raise reject("FailedOperation.TemplateIncorrectOrUnapproved", "模板参数个数与模板不匹配。")
        context = doc.get("SessionContext", "")
        if not isinstance(context, str) or len(context.encode()) >= 512:
            raise reject("InvalidParameterValue", "SessionContext must be a string under 512 bytes.")
        to = _tencent_e164(numbers[0])
        valid = _Valid(to or numbers[0], params[0], context, {})
        if to is None:  # a per-number failure inside a successful call
            status = self._status(
                valid, "InvalidParameterValue.IncorrectPhoneNumber", "手机号格式错误。", "", 0
            )
            body = {"Response": {"SendStatusSet": [status], "RequestId": str(uuid.uuid4())}}
            raise Rejected("InvalidParameterValue.IncorrectPhoneNumber", 200, body)
        return valid

    def new_id(self) -> str:
        return f"2640:{104571066915705365784949 + next(self._ids)}"

    def success(self, valid: _Valid, request_id: str) -> tuple[int, Body]:
        status = self._status(valid, "Ok", "send success", request_id, 1)
        return 200, {"Response": {"SendStatusSet": [status], "RequestId": str(uuid.uuid4())}}

    def error(self, outcome: Outcome, valid: _Valid) -> tuple[int, Body]:
        if outcome == "throttle":
            return 200, self._error("RequestLimitExceeded", "请求的次数超过了频率限制。")
        if outcome == "server_error":
            return 200, self._error("InternalError", "内部错误。")
        status = self._status(valid, "InvalidParameterValue.IncorrectPhoneNumber", "手机号格式错误。", "", 0)
        return 200, {"Response": {"SendStatusSet": [status], "RequestId": str(uuid.uuid4())}}


# ====================================================================== Twilio

_TWILIO_PATH = re.compile(r"/2010-04-01/Accounts/(?P<sid>[^/]+)/Messages\.json")
_E164 = re.compile(r"\+[1-9]\d{1,14}")


def twilio_error(status: int, code: int, message: str) -> dict[str, Any]:
    """Twilio's documented error body."""
    return {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }


class FakeTwilio(FakeProvider):
    """Twilio ``POST /2010-04-01/Accounts/{AccountSid}/Messages.json`` (HTTP Basic, form-encoded).

    ``sender``, when given, is the only accepted ``From`` number or ``MessagingServiceSid``."""

    provider = "twilio"
    url_suffix = ""

    def __init__(
        self, account_sid: str, auth_token: str, *, sender: str | None = None, hang_s: float = 3.0
    ) -> None:
        self.account_sid = account_sid
        self._token = auth_token
        self.sender = sender
        super().__init__(hang_s=hang_s)

    def __repr__(self) -> str:
        return f"FakeTwilio({self.url!r}, account_sid={self.account_sid!r})"

    @staticmethod
    def _reject(status: int, code: int, message: str) -> Rejected:
        return Rejected(f"{code}: {message}", status, twilio_error(status, code, message))

    def _authenticated(self, header: str) -> bool:
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, _, password = base64.b64decode(value, validate=True).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        same_user = hmac.compare_digest(user.encode(), self.account_sid.encode())
        return same_user & hmac.compare_digest(password.encode(), self._token.encode())

    def check(self, req: Request) -> _Valid:
        reject = self._reject
        path = _TWILIO_PATH.fullmatch(req.path)
        if req.method != "POST" or path is None:
            raise reject(404, 20404, f"The requested resource {req.path} was not found")
        if not self._authenticated(req.headers.get("authorization", "")):
            raise reject(401, 20003, "Authenticate")
        if path["sid"] != self.account_sid:
            raise reject(404, 20404, f"The requested resource {req.path} was not found")
        if not req.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
            raise reject(400, 21604, "A 'To' phone number is required.")  # no form: no parameters at all
        try:
            pairs = parse_qsl(req.body.decode("ascii"), keep_blank_values=True, strict_parsing=bool(req.body))
            form = {k: v for k, v in pairs}
        except (UnicodeDecodeError, ValueError):
            raise reject(400, 21604, "A 'To' phone number is required.") from None
        if not form.get("To"):
            raise reject(400, 21604, "A 'To' phone number is required.")
        if not form.get("Body"):
            raise reject(400, 21602, "Message body is required.")
        sender_from, service = form.get("From"), form.get("MessagingServiceSid")
        if not sender_from and not service:
            raise reject(400, 21603, "A 'From' phone number is required.")
        if service and self.sender is not None and service != self.sender:
            raise reject(404, 20404, f"The requested resource /Services/{service} was not found")
        if sender_from and not service and self.sender is not None and sender_from != self.sender:
            message = f"The From phone number {sender_from} is not a valid, SMS-capable inbound phone number"
            raise reject(400, 21606, message + " or short code for your account.")
        if not _E164.fullmatch(form["To"]):
            raise reject(400, 21211, f"The 'To' number {form['To']} is not a valid phone number.")
        if len(form["Body"]) > 1600:
            raise reject(400, 21617, "The concatenated message body exceeds the 1600 character limit.")
        return _Valid(form["To"], form["Body"], "", {"from": sender_from or "", "service": service or ""})

    def new_id(self) -> str:
        return "SM" + uuid.uuid4().hex

    def success(self, valid: _Valid, request_id: str) -> tuple[int, Body]:
        now = format_datetime(datetime.now(UTC), usegmt=False)
        service = valid.context["service"] or None
        return 201, {
            "account_sid": self.account_sid,
            "api_version": "2010-04-01",
            "body": valid.text,
            "date_created": now,
            "date_sent": None,
            "date_updated": now,
            "direction": "outbound-api",
            "error_code": None,
            "error_message": None,
            "from": valid.context["from"] or None,
            "messaging_service_sid": service,
            "num_media": "0",
            "num_segments": "1",
            "price": None,
            "price_unit": None,
            "sid": request_id,
            "status": "accepted" if service else "queued",
            "subresource_uris": {
                "media": f"/2010-04-01/Accounts/{self.account_sid}/Messages/{request_id}/Media.json"
            },
            "to": valid.to,
            "uri": f"/2010-04-01/Accounts/{self.account_sid}/Messages/{request_id}.json",
        }

    def error(self, outcome: Outcome, valid: _Valid) -> tuple[int, Body]:
        status, code, message = {
            "throttle": (429, 20429, "Too Many Requests"),
            "server_error": (503, 20503, "Service unavailable"),
            "bad_number": (400, 21211, f"The 'To' number {valid.to} is not a valid phone number."),
        }[outcome]
        return status, twilio_error(status, code, message)
