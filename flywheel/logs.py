"""Structured logging that never carries raw event text.

Log calls pass identifiers and counts as ``extra={"fields": {...}}``; the formatters render them
as JSON keys (``json``) or ``key=value`` pairs (``console``). Event text (prompts, responses,
edits, user ids) is never passed to a logger: code logs event ids, conversation ids are not logged
either since a frontend may derive them from user data. As a second guard, field values longer
than ``MAX_FIELD_CHARS`` are cut, so a mistake cannot dump a whole event.
"""

from __future__ import annotations

import json
import logging
import sys
import traceback
from datetime import UTC, datetime
from typing import Any

MAX_FIELD_CHARS = 200
MASK = "**********"

_secrets: set[str] = set()
_factory_installed = False


def hide(secret: str) -> None:
    """Mask ``secret`` in every log record made from now on, whoever logs it.

    Client libraries get passwords in clear and some log their whole configuration (kafka-python
    at DEBUG); a record factory masks them as records are made, so no handler, formatter or
    test capture ever sees them.
    """
    global _factory_installed
    if len(secret) < 4:  # too short to mask without mangling ordinary text
        return
    _secrets.add(secret)
    if not _factory_installed:
        _factory_installed = True
        make_record = logging.getLogRecordFactory()

        def masked_record(*args: Any, **kwargs: Any) -> logging.LogRecord:
            record = make_record(*args, **kwargs)
            try:
                message = record.getMessage()
            except Exception:  # noqa: BLE001 - a bad format string is logging's to report
                return record
            masked = mask(message)
            if masked != message:
                record.msg, record.args = masked, None
            # ``extra`` fields are set after the factory ran: the formatters mask those.
            return record

        logging.setLogRecordFactory(masked_record)


def mask(text: str) -> str:
    """``text`` with every secret given to ``hide`` masked."""
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, MASK)
    return text


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    fields = getattr(record, "fields", None) or {}
    safe: dict[str, Any] = {}
    for key, value in fields.items():
        if isinstance(value, (int, float, bool)) or value is None:
            safe[key] = value
        else:
            text = mask(str(value))
            safe[key] = text if len(text) <= MAX_FIELD_CHARS else text[:MAX_FIELD_CHARS] + "..."
    return safe


def _exception(record: logging.LogRecord) -> str | None:
    """The exception's type and stack (files, lines, functions) without its message.

    Messages of library exceptions may quote the input they choked on, so they are left out;
    the stack is enough to find the bug.
    """
    if not record.exc_info or record.exc_info[0] is None:
        return None
    stack = "".join(traceback.format_tb(record.exc_info[2])).rstrip()
    return f"{record.exc_info[0].__name__}\n{stack}" if stack else record.exc_info[0].__name__


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and the record's fields."""

    def format(self, record: logging.LogRecord) -> str:
        """Render the record as one JSON line."""
        payload: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            **_fields(record),
        }
        exception = _exception(record)
        if exception:
            payload["exception"] = exception
        return json.dumps(payload, default=str)


class ConsoleFormatter(logging.Formatter):
    """``HH:MM:SS level logger: message key=value ...`` for people at a terminal."""

    def format(self, record: logging.LogRecord) -> str:
        """Render the record as one readable line."""
        when = datetime.fromtimestamp(record.created).strftime("%H:%M:%S")
        pairs = " ".join(f"{key}={value}" for key, value in _fields(record).items())
        line = f"{when} {record.levelname.lower():7} {record.name}: {record.getMessage()}"
        line = f"{line} {pairs}".rstrip()
        exception = _exception(record)
        return f"{line}\n  exception: {exception}" if exception else line


def configure_logging(level: str = "INFO", fmt: str = "console") -> None:
    """Send the platform's logs to stderr in the chosen format; quiet chatty libraries."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else ConsoleFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # kafka-python logs every reconnect attempt at WARNING/ERROR; one line per problem is ours.
    logging.getLogger("kafka").setLevel(logging.CRITICAL if level != "DEBUG" else logging.DEBUG)
    # The connection that looks into a failed one (flywheel.kafka.diagnose): its finding is the
    # error's message; librdkafka's own lines about it would repeat it.
    logging.getLogger("flywheel.kafka.probe").setLevel(
        logging.CRITICAL if level != "DEBUG" else logging.DEBUG
    )
    # alembic announces its dialect on every command that opens the warehouse.
    logging.getLogger("alembic").setLevel(logging.WARNING if level != "DEBUG" else logging.DEBUG)
    # httpx logs every request at INFO (the simulator posts thousands).
    logging.getLogger("httpx").setLevel(logging.WARNING if level != "DEBUG" else logging.DEBUG)
    # pyiceberg announces its file IO on every catalog it opens.
    logging.getLogger("pyiceberg").setLevel(logging.WARNING if level != "DEBUG" else logging.DEBUG)
    # Great Expectations logs its own start-up (hundreds of lines) at INFO.
    logging.getLogger("great_expectations").setLevel(
        logging.WARNING if level != "DEBUG" else logging.DEBUG
    )
