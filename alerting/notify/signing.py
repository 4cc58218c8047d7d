"""Request signing as the SMS providers document it (pure functions, no I/O, time passed in).

- Aliyun RPC API (``SendSms`` of Dysmsapi 2017-05-25): SignatureMethod HMAC-SHA1, SignatureVersion 1.0.
  Percent-encode with the RFC 3986 unreserved set only, sort by encoded key, sign
  ``METHOD&%2F&encode(canonical query)`` with the key ``secret + "&"``, base64.
- Tencent Cloud API 3.0 (``SendSms`` 2021-01-11): TC3-HMAC-SHA256 over a canonical request, with a key
  derived from the secret, the UTC date and the service.
- Twilio request validation (``X-Twilio-Signature`` on the callbacks Twilio sends us): base64
  HMAC-SHA1 of the URL followed by the sorted POST parameters.
- Our own webhook: hex HMAC-SHA256 of the body.

Every function is checked against the vectors in ``../shared/reference/sms-signing/`` (the providers'
own published examples) by tests/unit/test_sms_signing_reference.py.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from urllib.parse import quote

# ------------------------------------------------------------------ Aliyun RPC, HMAC-SHA1


def aliyun_encode(value: str) -> str:
    """Percent-encoding as Aliyun signs it: UTF-8, only ``A-Z a-z 0-9 - _ . ~`` left as they are."""
    return quote(value, safe="-_.~")


def aliyun_canonical_query(params: Mapping[str, str]) -> str:
    pairs = sorted((aliyun_encode(k), aliyun_encode(v)) for k, v in params.items())
    return "&".join(f"{k}={v}" for k, v in pairs)


def aliyun_string_to_sign(method: str, params: Mapping[str, str]) -> str:
    return f"{method.upper()}&{aliyun_encode('/')}&{aliyun_encode(aliyun_canonical_query(params))}"


def aliyun_signature(access_key_secret: str, method: str, params: Mapping[str, str]) -> str:
    """The ``Signature`` parameter (base64; URL-encode it once more when putting it in a query)."""
    key = (access_key_secret + "&").encode()
    digest = hmac.new(key, aliyun_string_to_sign(method, params).encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def aliyun_signed_query(access_key_secret: str, method: str, params: Mapping[str, str]) -> str:
    """The whole query string of a signed request: ``Signature=...&`` followed by the canonical query."""
    signature = aliyun_signature(access_key_secret, method, params)
    return f"Signature={aliyun_encode(signature)}&{aliyun_canonical_query(params)}"


# ------------------------------------------------------------------ Tencent Cloud TC3-HMAC-SHA256


def _sha256_hex(data: str) -> str:
    return hashlib.sha256(data.encode()).hexdigest()


def _hmac256(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def tc3_date(timestamp: int) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d")


def tc3_canonical_request(
    *,
    host: str,
    payload: str,
    action: str | None = None,
    content_type: str = "application/json; charset=utf-8",
    method: str = "POST",
    uri: str = "/",
    query: str = "",
) -> tuple[str, str]:
    """(canonical request, signed headers). ``action`` adds the ``x-tc-action`` header to those signed,
    as the current documentation does."""
    headers = {"content-type": content_type, "host": host}
    if action is not None:
        headers["x-tc-action"] = action.lower()
    signed = ";".join(sorted(headers))
    canonical_headers = "".join(f"{k}:{headers[k]}\n" for k in sorted(headers))
    request = "\n".join([method, uri, query, canonical_headers, signed, _sha256_hex(payload)])
    return request, signed


def tc3_string_to_sign(canonical_request: str, timestamp: int, service: str) -> str:
    scope = f"{tc3_date(timestamp)}/{service}/tc3_request"
    return f"TC3-HMAC-SHA256\n{timestamp}\n{scope}\n{_sha256_hex(canonical_request)}"


def tc3_signing_key(secret_key: str, timestamp: int, service: str) -> bytes:
    secret_date = _hmac256(("TC3" + secret_key).encode(), tc3_date(timestamp))
    secret_service = _hmac256(secret_date, service)
    return _hmac256(secret_service, "tc3_request")


def tc3_signature(secret_key: str, canonical_request: str, timestamp: int, service: str) -> str:
    key = tc3_signing_key(secret_key, timestamp, service)
    sts = tc3_string_to_sign(canonical_request, timestamp, service)
    return hmac.new(key, sts.encode(), hashlib.sha256).hexdigest()


def tc3_authorization(
    secret_id: str, secret_key: str, canonical_request: str, signed_headers: str, timestamp: int, service: str
) -> str:
    """The ``Authorization`` header."""
    signature = tc3_signature(secret_key, canonical_request, timestamp, service)
    scope = f"{tc3_date(timestamp)}/{service}/tc3_request"
    return (
        f"TC3-HMAC-SHA256 Credential={secret_id}/{scope}, SignedHeaders={signed_headers}, "
        f"Signature={signature}"
    )


# ------------------------------------------------------------------ Twilio request validation


def twilio_signature(auth_token: str, url: str, params: Mapping[str, str] | Iterable[tuple[str, str]]) -> str:
    """``X-Twilio-Signature`` for a callback to ``url`` with form ``params`` (a mapping, or pairs
    when a name repeats)."""
    pairs = sorted(params.items() if isinstance(params, Mapping) else params)
    data = url + "".join(k + v for k, v in pairs)
    return base64.b64encode(hmac.new(auth_token.encode(), data.encode(), hashlib.sha1).digest()).decode()


# ------------------------------------------------------------------ our webhook


def webhook_signature(secret: str, body: bytes) -> str:
    """``X-ChainWatch-Signature: sha256=<hex>`` of a webhook body."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def webhook_signature_ok(secret: str, body: bytes, header: str) -> bool:
    return hmac.compare_digest(webhook_signature(secret, body), header)
