"""Logging: structlog, configured once in ``main`` (and again on SIGHUP reload).

JSON lines on stderr by default (journald-friendly), ``console`` for people. Per-connection
context (conn, peer_uid, peer_pid) comes from contextvars. :func:`redact_secrets` runs just
before the renderer: any ``bytes`` value is replaced by its length and secret-bearing field
names by ``"[redacted]"``, so a careless ``log.info(..., message=msg)`` cannot leak.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any, TextIO

import structlog

__all__ = ["SECRET_FIELDS", "LogSettings", "configure_logging", "redact_secrets", "settings"]

SECRET_FIELDS = frozenset(
    {
        "key",
        "keys",
        "secret",
        "master_key",
        "sealed_key",
        "message",
        "messages",
        "signature",
        "signatures",
        "response",
        "responses",
        "answer",
        "answers",
        "expected_response_hash",
        "salt",
        "password",
        "token",
    }
)
REDACTED = "[redacted]"

_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}


class LogSettings:
    """What the hot path asks before building a debug event (cheaper than calling the logger)."""

    debug = False


settings = LogSettings()


def _redact(value: Any) -> Any:
    if isinstance(value, bytes | bytearray | memoryview):
        return f"<{len(value)} bytes>"
    if isinstance(value, dict):
        return {k: REDACTED if k in SECRET_FIELDS else _redact(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redact(v) for v in value]
    return value


def redact_secrets(
    logger: Any, method_name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    for name, value in event_dict.items():
        if name in SECRET_FIELDS:
            event_dict[name] = REDACTED
        elif not isinstance(value, str | int | float | bool | None):
            event_dict[name] = _redact(value)
    return event_dict


def configure_logging(level: str = "info", fmt: str = "json", stream: TextIO | None = None) -> None:
    renderer: Any
    if fmt == "console":
        renderer = structlog.dev.ConsoleRenderer(colors=False)
    else:
        renderer = structlog.processors.JSONRenderer()
    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        redact_secrets,
        renderer,
    ]
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS[level]),
        logger_factory=structlog.WriteLoggerFactory(file=stream or sys.stderr),
        # Not cached: a SIGHUP reload must reach loggers that were already used.
        cache_logger_on_first_use=False,
    )
    settings.debug = level == "debug"
