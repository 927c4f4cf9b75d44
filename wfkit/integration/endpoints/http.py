"""``"api"`` endpoints: HTTP through the orchestrator's pooled ``httpx.AsyncClient``.

Config: ``url`` (``{field.path}`` placeholders are filled from the message, URL-encoded; a
value that would make a path segment ``.``, ``..`` or empty is refused, so a message cannot
change which path is asked for), ``method`` (GET for sources, POST for targets), ``headers``,
``timeout`` (seconds, default 30), ``params`` (query string), ``into`` (a source stores its JSON
response under this key instead of merging it), ``secret_headers`` (more header names to keep
out of traces and logs; ``Authorization``, cookies and key- or token-like names always are),
``idempotency_header`` (sent by targets with ``flow_id:message_id`` so a redelivered message
can be recognised; default ``Idempotency-Key``, ``None`` to omit) and ``follow_redirects``.

Redirects (``follow_redirects``): ``"same_origin"`` (the default) follows them within the
url's origin (scheme, host and port) and fails on one that leads elsewhere; a list of origins
(``["https://cdn.example.com"]``) may be followed too; ``True`` follows any; ``False`` none (a
3xx answer is then an error). Secret headers and URL credentials are never sent to an origin
other than the url's, whatever this says.

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
from wfkit.integration.retry import parse_retry_after
from wfkit.redaction import is_sensitive_name, redact_url

__all__ = ["HttpEndpoint"]

_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
_FIELD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*+(?:\.[A-Za-z0-9_]++)*+")  # fullmatch only
_MAX_REDIRECTS = 20
_DEFAULT_PORTS = {"http": 80, "https": 443}
_ALWAYS_SECRET = ("authorization", "proxy-authorization", "cookie")
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
        "follow_redirects",
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
            if not _FIELD.fullmatch(name):
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
        secret_names = {h.lower() for h in secret} | set(_ALWAYS_SECRET)
        self.secret_header_names = frozenset(
            h.lower() for h in self.headers if h.lower() in secret_names or is_sensitive_name(h)
        ) | frozenset(_ALWAYS_SECRET)
        self.redirects = self._redirect_policy(cfg.get("follow_redirects", "same_origin"))
        # credentials in the URL travel as Basic auth, so no URL (and no log of one) holds them
        parts = urlsplit(url)
        self.auth: tuple[str, str] | None = None
        if parts.username is not None or parts.password is not None:
            self.auth = (unquote(parts.username or ""), unquote(parts.password or ""))
            host = parts.netloc.rpartition("@")[2]
            url = urlunsplit(parts._replace(netloc=host))
        self.url = url
        self.origin = _origin(urlsplit(url))
        self.has_placeholders = bool(_PLACEHOLDER.search(url))
        self.safe_url = redact_url(url)
        # The url split where a message's values cannot reach the path's shape: the head
        # (scheme and authority), the path's segments, and the query and fragment.
        authority_end = _first_of(url, "/?#", url.index("://") + 3)
        path_end = _first_of(url, "?#", authority_end)
        self._url_head = url[:authority_end]
        self._url_segments = url[authority_end:path_end].split("/")
        self._url_tail = url[path_end:]

    def _redirect_policy(self, value: Any) -> bool | str | frozenset[tuple[str, str, int]]:
        if isinstance(value, bool) or value == "same_origin":
            return value
        if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
            origins = set()
            for text in value:
                parts = urlsplit(text)
                if parts.scheme not in _DEFAULT_PORTS or not parts.hostname or parts.path not in ("", "/"):
                    raise self.fail_config(
                        f"follow_redirects: {text!r} is not an origin; write one as "
                        f"'https://host' or 'https://host:port'",
                        "follow_redirects",
                    )
                origins.add(_origin(parts))
            return frozenset(origins)
        raise self.fail_config(
            f"follow_redirects must be 'same_origin' (the default), a list of origins such as "
            f"['https://cdn.example.com'], True (any origin) or False (none); got {value!r}",
            "follow_redirects",
        )

    def _url(self, data: dict[str, Any]) -> str:
        if not self.has_placeholders:
            return self.url
        segments = []
        for segment in self._url_segments:
            filled = self._fill(segment, data)
            if filled in ("", ".", "..") and segment != filled:
                names = ", ".join(f"{{{n}}}" for n in _PLACEHOLDER.findall(segment))
                raise EndpointError(
                    f"endpoint {self.endpoint_id!r}: {names} made the url path segment "
                    f"{segment!r} {filled!r}, which would change the path asked for; a "
                    f"placeholder in the path must not be empty, '.' or '..'",
                    endpoint_id=self.endpoint_id,
                )
            segments.append(filled)
        return self._fill(self._url_head, data) + "/".join(segments) + self._fill(self._url_tail, data)

    def _fill(self, template: str, data: dict[str, Any]) -> str:
        if "{" not in template:
            return template

        def fill(match: re.Match[str]) -> str:
            value = get_path(data, match.group(1), _MISSING)
            if value is _MISSING or value is None:
                raise EndpointError(
                    f"endpoint {self.endpoint_id!r}: the url needs {{{match.group(1)}}} but the "
                    f"message has no such field",
                    endpoint_id=self.endpoint_id,
                )
            return quote(str(value), safe="")

        return _PLACEHOLDER.sub(fill, template)

    def _may_follow(self, origin: tuple[str, str, int]) -> bool:
        policy = self.redirects
        if origin == self.origin or policy is True:
            return True
        return isinstance(policy, frozenset) and origin in policy

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
            client = self.resources.http_client()
            response = await client.request(
                method, url, headers=headers, params=self.params, content=content,
                timeout=self.timeout, auth=self.auth or httpx.USE_CLIENT_DEFAULT,
                follow_redirects=False,
            )
            if self.redirects is not False:
                response = await self._follow(client, response, method, shown)
        except httpx.TimeoutException as exc:
            raise EndpointError(
                f"{method} {shown} timed out after {self.timeout:g} s ({type(exc).__name__})",
                endpoint_id=self.endpoint_id,
                transient=True,
            ) from None
        except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:  # a bad Location too
            raise EndpointError(
                f"{method} {shown}: {type(exc).__name__}: {redact(exc)}",
                endpoint_id=self.endpoint_id,
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

    async def _follow(self, client: Any, response: Any, method: str, shown: str) -> Any:
        """Follow redirects as ``follow_redirects`` allows; secret headers and URL credentials
        go to the url's own origin only."""
        import httpx

        hops = 0
        while response.next_request is not None:
            request = response.next_request
            hops += 1
            if hops > _MAX_REDIRECTS:
                raise EndpointError(
                    f"{method} {shown} was redirected more than {_MAX_REDIRECTS} times",
                    endpoint_id=self.endpoint_id,
                )
            origin = _origin(request.url)
            if not self._may_follow(origin):
                raise EndpointError(
                    f"{method} {shown} answered {response.status_code} "
                    f"{response.reason_phrase}, a redirect to another origin "
                    f"({_show_origin(origin)}), which is not followed: add it to "
                    f"connection_config['follow_redirects'] (a list of origins) to allow it",
                    endpoint_id=self.endpoint_id,
                    status=response.status_code,
                )
            auth: Any = None  # no credentials of any kind for another origin
            if origin == self.origin:
                auth = self.auth or httpx.USE_CLIENT_DEFAULT
            else:
                for name in self.secret_header_names:
                    request.headers.pop(name, None)
            response = await client.send(request, auth=auth, follow_redirects=False)
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


def _first_of(text: str, chars: str, start: int) -> int:
    """Index of the first of ``chars`` in ``text`` from ``start`` (``len(text)`` if none)."""
    found = [i for i in (text.find(c, start) for c in chars) if i != -1]
    return min(found) if found else len(text)


def _origin(url: Any) -> tuple[str, str, int]:
    """(scheme, host, port) of a ``urlsplit`` result or an ``httpx.URL``."""
    scheme = (url.scheme or "").lower()
    host = (url.hostname if hasattr(url, "hostname") else url.host) or ""
    port = url.port or _DEFAULT_PORTS.get(scheme, 0)
    return scheme, host.lower(), port


def _show_origin(origin: tuple[str, str, int]) -> str:
    scheme, host, port = origin
    shown_port = port in (0, _DEFAULT_PORTS.get(scheme))
    return f"{scheme}://{host}" + ("" if shown_port else f":{port}")
