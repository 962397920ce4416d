"""Structured logs: one JSON object per line on stderr.

JSON lines rather than logfmt: every value keeps its type and needs no quoting
rules of its own (a reason with spaces, quotes or ``=`` in it stays one
field), journald keeps each line as one message, and ``jq`` reads them
(``journalctl -u virtplane-engine -o cat | jq 'select(.code == 12)'``).
Fields: ``ts`` (UTC, ISO 8601), ``level``, ``logger``, ``msg``, and whatever
the call passed in ``extra`` (``host``, ``vm``, ``code``, ``job``,
``correlation_id`` ...); ``exc`` carries a traceback when there is one.
"""

from __future__ import annotations

import json
import logging
import time
from typing import TextIO

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class JsonLines(logging.Formatter):
    """Format a record as one JSON line."""

    def format(self, record: logging.LogRecord) -> str:
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        data: dict[str, object] = {
            "ts": f"{ts}.{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                data[key] = value
        if record.exc_info:
            data["exc"] = self.formatException(record.exc_info)
        return json.dumps(data, default=str)


def setup(stream: TextIO, level: int = logging.INFO) -> logging.Handler:
    """Send the ``virtplane`` loggers' records to ``stream`` as JSON lines.

    ``stream`` is the real stderr, taken before the per-thread proxies are
    installed, so that log lines never end up in a client's command output.
    """
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonLines())
    root = logging.getLogger("virtplane")
    root.addHandler(handler)
    root.setLevel(level)
    root.propagate = False
    return handler


def teardown(handler: logging.Handler) -> None:
    root = logging.getLogger("virtplane")
    root.removeHandler(handler)
    root.propagate = True
