"""Keep secrets out of traces, errors, logs and reprs.

Two layers: :func:`redact_config` masks a configuration structurally (for reprs), and a
:class:`Redactor` knows every secret *value* of the registered endpoints and replaces it in any
text before that text leaves wfkit (an error message from httpx or a database driver, a
response body that echoes a header, a log line). Secrets are: values of sensitive headers
(``Authorization``, cookies, anything named like a key or token, and every header listed in
``secret_headers``), passwords in URLs, and config or query parameters named like a password,
token, secret or key.

Every scan here is linear in the length of the text, because redaction runs on the event loop
over whatever a server answers (a megabyte error body included): the patterns have no nested
or backtracking quantifiers (unbounded repeats are possessive), the URL-credential pattern
starts with the literal ``://`` so the engine only tries where that occurs, and known secrets
are first looked for with ``str`` searches so that a body with none of them is not rescanned.
"""

from __future__ import annotations

import base64
import logging
import re
import threading
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
    "redact_text",
]

MASK = "***"
_MIN_SECRET = 3  # shorter values would mask ordinary words; structural masking still applies

_SENSITIVE = re.compile(
    r"auth|token|secret|passw|pwd|api[-_]?key|apikey|access[-_]?key|private[-_]?key|cookie|"
    r"session|signature|credential|^key\Z",
    re.IGNORECASE,
)
# "user:password@" after "scheme://". Linear: the engine looks only where the literal "://"
# occurs, a fixed-width look-behind checks that a scheme character precedes it, and the
# repeats are possessive (they never give back what they took, so nothing backtracks).
_URL_USERINFO = re.compile(r"://(?<=[A-Za-z0-9+.\-]://)(?P<user>[^/\s:@]*+):[^@\s/]++@")


def _redact_userinfo(text: str) -> str:
    if "://" not in text:
        return text
    parts = _URL_USERINFO.split(text)  # [text, user, text, user, ..., text]: no per-match call
    if len(parts) > 1:
        parts[1::2] = [f"://{user}:{MASK}@" for user in parts[1::2]]
        text = "".join(parts)
    return text


def is_sensitive_name(name: str) -> bool:
    """Whether a header, parameter or config key name suggests a secret value."""
    return bool(_SENSITIVE.search(str(name)))


def redact_url(url: str) -> str:
    """Mask the password of ``scheme://user:password@host`` and secret query parameters."""
    text = _redact_userinfo(str(url))
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


def _alternation(secrets: Iterable[str]) -> re.Pattern[str]:
    """Literal alternatives, longest first (so a secret that contains another is masked
    whole); literals only, so matching is linear in the text."""
    return re.compile("|".join(map(re.escape, secrets)))


class Redactor:
    """Replaces known secret values (and URL passwords) in text, in time linear in its length."""

    __slots__ = ("_secrets", "_ordered", "_pattern", "__weakref__")

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets: set[str] = set()
        self._ordered: tuple[str, ...] = ()
        self._pattern: re.Pattern[str] | None = None
        self.add(secrets)

    def add(self, secrets: Iterable[str]) -> None:
        new = {s for s in secrets if s and len(s) >= _MIN_SECRET} - self._secrets
        if not new:
            return
        self._secrets |= new
        self._ordered = tuple(sorted(self._secrets, key=lambda s: (-len(s), s)))
        self._pattern = _alternation(self._ordered)

    def add_config(self, config: Any) -> None:
        self.add(secrets_of(config))

    def __call__(self, text: Any) -> str:
        text = _redact_userinfo(str(text))
        if self._pattern is None:
            return text
        # One C-speed search per secret first: most texts hold none, and then need no regex.
        present = [s for s in self._ordered if s in text]
        if not present:
            return text
        pattern = self._pattern if len(present) == len(self._ordered) else _alternation(present)
        return pattern.sub(MASK, text)

    def __repr__(self) -> str:
        return f"Redactor({len(self._secrets)} secrets)"


_live: weakref.WeakSet[Redactor] = weakref.WeakSet()
_LIBRARY_LOGGERS = ("httpx", "httpcore")
_MASKED = "_wfkit_masked"


def _mask_record(record: logging.LogRecord) -> None:
    """Mask a record's message (and its formatted exception) in place, once."""
    if getattr(record, _MASKED, False):
        return
    setattr(record, _MASKED, True)
    redactors = list(_live)
    if not redactors:
        return
    text = record.getMessage()
    for redactor in redactors:
        text = redactor(text)
    record.msg, record.args = text, None
    if record.exc_info and not record.exc_text:
        record.exc_text = logging.Formatter().formatException(record.exc_info)
    if record.exc_text:
        for redactor in redactors:
            record.exc_text = redactor(record.exc_text)


class _LibraryLogFilter(logging.Filter):
    """Masks the records logged on the httpx and httpcore loggers themselves."""

    def filter(self, record: logging.LogRecord) -> bool:
        _mask_record(record)
        return True


class _LibraryLogMask(logging.Handler):
    """The first handler of the httpx and httpcore loggers: masks each record in place.

    A logger's filters see only the records logged on that very logger, not those its child
    loggers (``httpcore.http11``, ``httpcore.connection``, ... made as the library needs them)
    pass up to their parents' handlers. Handlers see both, and those of a record's logger run
    before its ancestors' (the root's included), so masking here reaches every handler above.
    """

    def __init__(self) -> None:
        super().__init__(logging.NOTSET)

    def handle(self, record: logging.LogRecord) -> bool:  # no lock: masking is idempotent
        _mask_record(record)
        if record.levelno >= logging.WARNING and not _other_handlers(record.name):
            last = logging.lastResort  # what logging does when nobody handles a record
            if last is not None and record.levelno >= last.level:
                last.handle(record)
        return True

    def emit(self, record: logging.LogRecord) -> None:
        _mask_record(record)


def _other_handlers(name: str) -> bool:
    """Whether a record of logger ``name`` reaches a handler besides this module's."""
    logger: logging.Logger | None = logging.getLogger(name)
    while logger is not None:
        if any(h is not _handler for h in logger.handlers):
            return True
        logger = logger.parent if logger.propagate else None
    return False


_filter = _LibraryLogFilter()
_handler = _LibraryLogMask()
_guard_lock = threading.Lock()


def guard_library_logs(redactor: Redactor) -> None:
    """Have ``redactor`` mask what httpx and httpcore, and their child loggers, log (records
    at enabled levels only; a child logger with ``propagate = False`` is the caller's own)."""
    _live.add(redactor)
    with _guard_lock:
        for name in _LIBRARY_LOGGERS:
            logger = logging.getLogger(name)
            if _filter not in logger.filters:
                logger.addFilter(_filter)
            if _handler not in logger.handlers:
                logger.handlers.insert(0, _handler)


# A URL's tail from "://" to the next blank or quote: possessive, so the scan stays linear.
_URL_TAIL = re.compile(r"://[^\s\"'<>]++")


def redact_text(text: Any) -> str:
    """Mask what wfkit knows to be secret in free text (a task's error message or traceback):
    URL passwords, secret query parameters of the URLs in it, and every secret value of the
    endpoints registered in this process. Linear in the length of the text."""
    text = _redact_userinfo(str(text))
    if "?" in text and "://" in text:
        text = _URL_TAIL.sub(lambda m: redact_url(m.group()), text)
    for redactor in list(_live):
        text = redactor(text)
    return text
