"""Thin adapter for InfluxDB's v1 HTTP API: line protocol ``/write`` and InfluxQL ``/query``.

Works with InfluxDB 1.x, and with 2.x/3.x through their v1 compatibility API. Writes are idempotent
(same series and timestamp overwrite), so every failure that may be transient — a 5xx such as
InfluxDB 1.6's ``engine: error syncing wal`` under load, a timeout, a refused connection — is
retryable. A 4xx means the body itself is wrong and retrying cannot help.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from typing import Any

import httpx

from core.lineprotocol import quote_ident


class InfluxError(RuntimeError):
    def __init__(self, message: str, *, retryable: bool, status: int | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.status = status


class InfluxClient:
    def __init__(
        self,
        url: str,
        database: str,
        *,
        username: str = "",
        password: str = "",
        timeout_s: float = 10.0,
        create_missing_database: bool = False,
    ) -> None:
        self.url = url.rstrip("/")
        self.database = database
        # a writer that must not lose data recreates a database that was dropped under it, instead
        # of treating "database not found" as a refusal of the lines
        self.create_missing_database = create_missing_database
        auth = (username, password) if username else None
        self._http = httpx.Client(base_url=self.url, timeout=timeout_s, auth=auth)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> InfluxClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def ping(self) -> bool:
        try:
            return self._http.get("/ping", timeout=2.0).status_code == 204
        except httpx.HTTPError:
            return False

    def create_database(self) -> None:
        self._post_query(f"CREATE DATABASE {quote_ident(self.database)}")

    def write(self, body: bytes | str, precision: str = "ms") -> None:
        """One write. Raises InfluxError (``retryable`` says whether trying again can help)."""
        data = body.encode() if isinstance(body, str) else body
        resp = self._post_write(data, precision)
        if resp.status_code == 404 and self.create_missing_database and "database not found" in resp.text:
            self.create_database()
            resp = self._post_write(data, precision)
        if resp.status_code == 204:
            return
        message = _error_text(resp)
        if resp.status_code == 404 and "database not found" in message:
            raise InfluxError(
                f"InfluxDB has no database {self.database!r}: create it (chainwatch services up does)",
                retryable=True,
                status=404,
            )
        raise InfluxError(
            f"InfluxDB refused a write ({resp.status_code}): {message}",
            retryable=resp.status_code >= 500 or resp.status_code == 429,
            status=resp.status_code,
        )

    def _post_write(self, data: bytes, precision: str) -> httpx.Response:
        try:
            params = {"db": self.database, "precision": precision}
            return self._http.post("/write", params=params, content=data)
        except httpx.TimeoutException as exc:
            raise InfluxError(f"InfluxDB write timed out at {self.url}: {exc}", retryable=True) from None
        except httpx.HTTPError as exc:
            raise InfluxError(f"cannot reach InfluxDB at {self.url}: {exc}", retryable=True) from None

    def write_retrying(
        self,
        body: bytes | str,
        *,
        attempts: int = 3,
        backoff_s: float = 0.2,
        precision: str = "ms",
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        """Write, retrying transient failures ``attempts`` times with exponential backoff."""
        for attempt in range(1, attempts + 1):
            try:
                self.write(body, precision)
                return
            except InfluxError as exc:
                if not exc.retryable or attempt == attempts:
                    raise
                sleep(backoff_s * 2 ** (attempt - 1))

    def query(
        self, q: str, params: Mapping[str, Any] | None = None, *, epoch: str = "ms"
    ) -> list[dict[str, Any]]:
        """Run InfluxQL; return the series of the first statement (each: name, tags, columns, values).

        Pass every value through ``params`` (bound as ``$name``) or ``quote_literal``: never format
        values into the query text.
        """
        form = {"db": self.database, "q": q, "epoch": epoch}
        if params:
            form["params"] = json.dumps(dict(params))
        try:
            resp = self._http.post("/query", data=form)
        except httpx.HTTPError as exc:
            raise InfluxError(f"cannot reach InfluxDB at {self.url}: {exc}", retryable=True) from None
        if resp.status_code != 200:
            raise InfluxError(
                f"InfluxDB query failed ({resp.status_code}): {_error_text(resp)}",
                retryable=resp.status_code >= 500,
                status=resp.status_code,
            )
        results = resp.json().get("results", [])
        if not results:
            return []
        first = results[0]
        if "error" in first:
            raise InfluxError(f"InfluxQL error: {first['error']}", retryable=False)
        return list(first.get("series", []))

    def _post_query(self, q: str) -> None:
        try:
            resp = self._http.post("/query", data={"q": q})
        except httpx.HTTPError as exc:
            raise InfluxError(f"cannot reach InfluxDB at {self.url}: {exc}", retryable=True) from None
        if resp.status_code != 200 or "error" in resp.text[:2000]:
            raise InfluxError(f"InfluxDB: {q!r} failed: {_error_text(resp)}", retryable=False)


def _error_text(resp: httpx.Response) -> str:
    try:
        return str(resp.json().get("error", resp.text))[:300]
    except ValueError:
        return resp.text[:300]
