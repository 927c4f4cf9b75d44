"""Keep secrets out of traces, errors, logs and reprs.

Two layers: :func:`redact_config` masks a configuration structurally (for reprs), and a
:class:`Redactor` knows every secret *value* of the registered endpoints and replaces it in any
text before that text leaves wfkit (an error message from httpx or a database driver, a
response body that echoes a header, a log line). Secrets are: values of sensitive headers
(``Authorization``, cookies, anything named like a key or token, and every header listed in
``secret_headers``), passwords in URLs, and config or query parameters named like a password,
token, secret or key.
"""

from __future__ import annotations

import base64
import logging
import re
import weakref
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

__all__ = [
    "MASK",
    "Redactor",
    "redact_config",
    "redact_url",
    "is_sensitive_name",
    "secrets_of",
    "guard_library_logs",
]

MASK = "***"
_MIN_SECRET = 3  # shorter values would mask ordinary words; structural masking still applies

_SENSITIVE = re.compile(
    r"auth|token|secret|passw|pwd|api[-_]?key|apikey|access[-_]?key|private[-_]?key|cookie|"
    r"session|signature|credential|^key$",
    re.IGNORECASE,
)
_URL_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*://[^/\s:@]*:)(?P<pw>[^@\s/]+)@")


def is_sensitive_name(name: str) -> bool:
    """Whether a header, parameter or config key name suggests a secret value."""
    return bool(_SENSITIVE.search(str(name)))


def redact_url(url: str) -> str:
    """Mask the password of ``scheme://user:password@host`` and secret query parameters."""
    text = _URL_USERINFO.sub(lambda m: f"{m.group('scheme')}{MASK}@", str(url))
    if "?" in text:
        head, _, query = text.partition("?")
        query, hash_, fragment = query.partition("#")
        parts = []
        for piece in query.split("&"):
            name, eq, _value = piece.partition("=")
            parts.append(f"{name}={MASK}" if eq and is_sensitive_name(name) else piece)
        text = f"{head}?{'&'.join(parts)}{hash_}{fragment}"
    return text


def _secret_header_names(config: Mapping[str, Any]) -> set[str]:
    extra = config.get("secret_headers") or ()
    if isinstance(extra, str):
        extra = (extra,)
    return {str(h).lower() for h in extra}


def redact_config(config: Any) -> Any:
    """A copy of an endpoint's ``connection_config`` that is safe to print."""
    if not isinstance(config, Mapping):
        return config
    secret_headers = _secret_header_names(config)
    out: dict[str, Any] = {}
    for key, value in config.items():
        if key == "headers" and isinstance(value, Mapping):
            out[key] = {
                h: (MASK if is_sensitive_name(h) or str(h).lower() in secret_headers else v)
                for h, v in value.items()
            }
        elif key == "params" and isinstance(value, Mapping):
            out[key] = {p: (MASK if is_sensitive_name(p) else v) for p, v in value.items()}
        elif key in ("url", "dsn") and isinstance(value, str):
            out[key] = redact_url(value)
        elif is_sensitive_name(key) and value is not None and not isinstance(value, bool):
            out[key] = MASK
        else:
            out[key] = value
    return out


def _url_secrets(url: str) -> Iterable[str]:
    try:
        parts = urlsplit(url)
    except ValueError:
        return
    if parts.password:
        yield parts.password
        yield unquote(parts.password)
        # HTTP clients send URL credentials as Basic auth: mask that form too
        user = unquote(parts.username or "")
        token = base64.b64encode(f"{user}:{unquote(parts.password)}".encode()).decode()
        yield token
    for name, value in parse_qsl(parts.query):
        if is_sensitive_name(name) and value:
            yield value


def secrets_of(config: Any) -> set[str]:
    """Every secret value in an endpoint's ``connection_config``."""
    found: set[str] = set()
    if not isinstance(config, Mapping):
        return found
    secret_headers = _secret_header_names(config)
    headers = config.get("headers")
    if isinstance(headers, Mapping):
        for name, value in headers.items():
            if value and (is_sensitive_name(name) or str(name).lower() in secret_headers):
                value = str(value)
                found.add(value)
                scheme, _, credential = value.partition(" ")  # "Bearer abc" -> also "abc"
                if credential and scheme.isalpha():
                    found.add(credential)
    params = config.get("params")
    if isinstance(params, Mapping):
        found.update(str(v) for k, v in params.items() if v and is_sensitive_name(k))
    for key, value in config.items():
        if key in ("url", "dsn") and isinstance(value, str):
            found.update(_url_secrets(value))
        elif (
            key not in ("headers", "params", "secret_headers")
            and is_sensitive_name(key)
            and isinstance(value, str | int)
            and not isinstance(value, bool)
        ):
            found.add(str(value))
    return {s for s in found if len(s) >= _MIN_SECRET}


class Redactor:
    """Replaces known secret values (and URL passwords) in text."""

    __slots__ = ("_secrets", "_pattern", "__weakref__")

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        self.add(secrets)

    def add(self, secrets: Iterable[str]) -> None:
        new = {s for s in secrets if s and len(s) >= _MIN_SECRET} - self._secrets
        if not new:
            return
        self._secrets |= new
        ordered = sorted(self._secrets, key=len, reverse=True)  # longest first: no partial leaks
        self._pattern = re.compile("|".join(map(re.escape, ordered)))

    def add_config(self, config: Any) -> None:
        self.add(secrets_of(config))

    def __call__(self, text: Any) -> str:
        text = _URL_USERINFO.sub(lambda m: f"{m.group('scheme')}{MASK}@", str(text))
        if self._pattern is not None:
            text = self._pattern.sub(MASK, text)
        return text

    def __repr__(self) -> str:
        return f"Redactor({len(self._secrets)} secrets)"


_live: weakref.WeakSet[Redactor] = weakref.WeakSet()
_LIBRARY_LOGGERS = ("httpx", "httpcore")


class _LibraryLogFilter(logging.Filter):
    """Masks secrets in the HTTP libraries' own log records (httpx logs every request URL)."""

    def filter(self, record: logging.LogRecord) -> bool:
        redactors = list(_live)
        if redactors:
            text = record.getMessage()
            for redactor in redactors:
                text = redactor(text)
            record.msg, record.args = text, None
        return True


_filter = _LibraryLogFilter()


def guard_library_logs(redactor: Redactor) -> None:
    """Have ``redactor`` mask what httpx and httpcore log (records at enabled levels only)."""
    _live.add(redactor)
    for name in _LIBRARY_LOGGERS:
        logger = logging.getLogger(name)
        if _filter not in logger.filters:
            logger.addFilter(_filter)
