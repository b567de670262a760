"""Log formats: Lambda's JSON records, and local mode's one readable line per record.

Handlers log identifiers and gauges as fields (`extra={"job_id": ...}`), never inside the message. On AWS the Lambda
runtime's JSON log format writes each record as one JSON object with those fields at the top level;
`LambdaJsonFormatter` writes the same shape (the runtime's `awslambdaric` JsonFormatter: `timestamp`, `level`,
`message`, `logger`, then every extra field), so tests can read a handler's lines as CloudWatch receives them.

Local mode's log is for people: `OneLineFormatter` writes `HH:MM:SS message key=value ...` and escapes every control
character (newline included) in the message and the fields, so a client's text that reaches a record (a field or
parameter name, a job's error) can never start a line of its own.
"""

from __future__ import annotations

import json
import logging
import unicodedata
from datetime import UTC, datetime
from typing import Any

RECORD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}
"""What every LogRecord has; anything else on a record came from `extra=`."""


def extra_fields(record: logging.LogRecord) -> dict[str, Any]:
    return {name: value for name, value in vars(record).items() if name not in RECORD_ATTRIBUTES}


class LambdaJsonFormatter(logging.Formatter):
    """One JSON object per record, extra fields at the top level, as Lambda's JSON log format writes it."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "timestamp": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "message": record.getMessage(),
            "logger": record.name,
        }
        if record.exc_info and record.exc_info[0] is not None:
            line["errorType"] = record.exc_info[0].__name__
            line["errorMessage"] = str(record.exc_info[1])
        line.update((name, value) for name, value in extra_fields(record).items() if name not in line)
        return json.dumps({k: v for k, v in line.items() if v is not None}, ensure_ascii=False, default=str)


def escaped(text: str) -> str:
    """`text` with control and line/paragraph separator characters written as escapes (`\\n`, `\\x1b`, `\\u2028`)."""
    return "".join(
        char.encode("unicode_escape").decode("ascii") if unicodedata.category(char) in {"Cc", "Zl", "Zp"} else char
        for char in text
    )


class OneLineFormatter(logging.Formatter):
    """`HH:MM:SS message key=value ...`: one line per record, whatever its message and fields hold (a traceback
    follows on lines of its own, indented)."""

    def __init__(self) -> None:
        super().__init__(datefmt="%H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        fields = " ".join(f"{name}={escaped(str(value))}" for name, value in extra_fields(record).items())
        line = f"{self.formatTime(record, self.datefmt)} {escaped(record.getMessage())}"
        if fields:
            line += f"  {fields}"
        if record.exc_info:
            trace = self.formatException(record.exc_info)
            line += "\n" + "\n".join(f"    | {row}" for row in trace.splitlines())
        return line
