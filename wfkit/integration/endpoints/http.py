"""``"api"`` endpoints: HTTP through the orchestrator's pooled ``httpx.AsyncClient``.

Config: ``url`` (``{field.path}`` placeholders are filled from the message, URL-encoded),
``method`` (GET for sources, POST for targets), ``headers``, ``timeout`` (seconds, default
30), ``params`` (query string), ``into`` (a source stores its JSON response under this key
instead of merging it), ``secret_headers`` (more header names to keep out of traces and logs;
``Authorization`` and key- or token-like names always are) and ``idempotency_header`` (sent
by targets with ``flow_id:message_id`` so a redelivered message can be recognised; default
``Idempotency-Key``, ``None`` to omit).

A target sends the message as JSON; a source sends it only for methods with a body. Non-2xx
answers raise :class:`~wfkit.errors.EndpointError` carrying ``status``; 408, 425, 429 and 5xx,
connection errors and timeouts are transient; 429 and 503 honour ``Retry-After``.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from wfkit.conditions import get_path
from wfkit.errors import EndpointError
from wfkit.integration.durable_queue import dumps
from wfkit.integration.endpoints.base import Endpoint, MessageContext, merge_into
from wfkit.integration.redaction import redact_url
from wfkit.integration.retry import parse_retry_after

__all__ = ["HttpEndpoint"]

_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
_FIELD = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_]+)*$")
_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
_NO_BODY = ("GET", "HEAD", "DELETE", "OPTIONS")
_TRANSIENT_STATUS = frozenset({408, 425, 429})
_MISSING = object()


class HttpEndpoint(Endpoint):
    TYPE = "api"
    KEYS = (
        "url",
        "method",
        "headers",
        "timeout",
        "params",
        "into",
        "secret_headers",
        "idempotency_header",
    )
    REQUIRED = ("url",)

    def check(self) -> None:
        super().check()
        cfg = self.config
        url = cfg["url"]
        if not isinstance(url, str) or not re.match(r"^https?://[^/\s]+", url):
            raise self.fail_config(
                f"url must start with http:// or https://, got {redact_url(str(url))!r}", "url"
            )
        for name in _PLACEHOLDER.findall(url):
            if not _FIELD.match(name):
                raise self.fail_config(
                    f"url placeholder {{{name}}} must be a dotted field path such as "
                    f"{{order.id}}",
                    "url",
                )
        method = cfg.get("method")
        if method is not None and (not isinstance(method, str) or method.upper() not in _METHODS):
            raise self.fail_config(f"method must be one of {', '.join(_METHODS)}, got {method!r}")
        self.method: str | None = method.upper() if method else None
        headers = cfg.get("headers") or {}
        if not isinstance(headers, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in headers.items()
        ):
            raise self.fail_config("headers must be a dict of str to str", "headers")
        self.headers: dict[str, str] = dict(headers)
        params = cfg.get("params") or {}
        if not isinstance(params, dict):
            raise self.fail_config(f"params must be a dict, got {type(params).__name__}", "params")
        self.params = dict(params) or None
        self.timeout = self.seconds("timeout", 30.0)
        self.into = self.into_key()
        secret = cfg.get("secret_headers") or []
        if isinstance(secret, str):
            secret = [secret]
        if not isinstance(secret, list | tuple) or not all(isinstance(h, str) for h in secret):
            raise self.fail_config("secret_headers must be a list of header names", "secret_headers")
        idem = cfg.get("idempotency_header", "Idempotency-Key")
        if idem is not None and (not isinstance(idem, str) or not idem):
            raise self.fail_config(f"idempotency_header must be a header name or None, got {idem!r}")
        self.idempotency_header: str | None = idem
        # credentials in the URL travel as Basic auth, so no URL (and no log of one) holds them
        parts = urlsplit(url)
        self.auth: tuple[str, str] | None = None
        if parts.username is not None or parts.password is not None:
            self.auth = (unquote(parts.username or ""), unquote(parts.password or ""))
            host = parts.netloc.rpartition("@")[2]
            url = urlunsplit(parts._replace(netloc=host))
        self.url = url
        self.has_placeholders = bool(_PLACEHOLDER.search(url))
        self.safe_url = redact_url(url)

    def _url(self, data: dict[str, Any]) -> str:
        if not self.has_placeholders:
            return self.url

        def fill(match: re.Match[str]) -> str:
            value = get_path(data, match.group(1), _MISSING)
            if value is _MISSING or value is None:
                raise EndpointError(
                    f"endpoint {self.endpoint_id!r}: the url needs {{{match.group(1)}}} but the "
                    f"message has no such field",
                    endpoint_id=self.endpoint_id,
                )
            return quote(str(value), safe="")

        return _PLACEHOLDER.sub(fill, self.url)

    async def _request(self, data: dict[str, Any], ctx: MessageContext, role: str) -> Any:
        import httpx

        self.active()
        method = self.method or ("GET" if role == "source" else "POST")
        url = self._url(data)
        headers = self.headers
        content = None
        if role == "target" or method not in _NO_BODY:
            content = dumps(data).encode()
            headers = {**headers, "Content-Type": "application/json"}
        if role == "target" and self.idempotency_header:
            headers = {**headers, self.idempotency_header: ctx.idempotency_key}
        redact = self.resources.redactor
        shown = redact(redact_url(url))
        try:
            response = await self.resources.http_client().request(
                method, url, headers=headers, params=self.params, content=content,
                timeout=self.timeout, auth=self.auth or httpx.USE_CLIENT_DEFAULT,
            )
        except httpx.TimeoutException as exc:
            raise EndpointError(
                f"{method} {shown} timed out after {self.timeout:g} s ({type(exc).__name__})",
                endpoint_id=self.endpoint_id,
                transient=True,
            ) from None
        except httpx.UnsupportedProtocol as exc:
            raise EndpointError(
                f"{method} {shown}: {redact(exc)}", endpoint_id=self.endpoint_id
            ) from None
        except httpx.HTTPError as exc:  # connection errors are worth another try
            raise EndpointError(
                f"{method} {shown} failed: {type(exc).__name__}: {redact(exc)}",
                endpoint_id=self.endpoint_id,
                transient=isinstance(exc, httpx.TransportError),
            ) from None
        status = response.status_code
        if not 200 <= status < 300:
            retry_after = None
            if status in (429, 503):
                retry_after = parse_retry_after(response.headers.get("Retry-After"))
            body = redact(response.text.strip().replace("\n", " "))  # mask, then shorten
            if len(body) > 300:
                body = body[:300] + "..."
            raise EndpointError(
                f"{method} {shown} answered {status} {response.reason_phrase}"
                + (f": {body}" if body else ""),
                endpoint_id=self.endpoint_id,
                status=status,
                transient=status in _TRANSIENT_STATUS or status >= 500,
                retry_after=retry_after,
            )
        return response

    async def fetch(self, data: dict[str, Any], ctx: MessageContext) -> dict[str, Any]:
        response = await self._request(data, ctx, "source")
        if response.content:
            try:
                payload = response.json()
            except ValueError:
                raise EndpointError(
                    f"source {self.endpoint_id!r}: the response of {self.safe_url} is not JSON "
                    f"(content-type {response.headers.get('content-type')!r})",
                    endpoint_id=self.endpoint_id,
                    status=response.status_code,
                ) from None
            merge_into(data, payload, self.into, endpoint_id=self.endpoint_id)
        return {"status_code": response.status_code}

    async def send(self, data: dict[str, Any], ctx: MessageContext) -> dict[str, Any]:
        response = await self._request(data, ctx, "target")
        return {"status_code": response.status_code}
