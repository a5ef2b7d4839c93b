"""How `calls-api serve` logs: the same lines as logging's own formatter, made cheaper."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest

from calls_api.access_log import LOG_FORMAT, _Formatter, configure_logging


@pytest.mark.parametrize("created", [1_700_000_000.0, 1_700_000_000.999, 1_700_000_001.0005])
def test_time_stamps_are_those_of_loggings_formatter(created: float) -> None:
    ours = _Formatter(LOG_FORMAT)
    for when in (created, created + 0.25, created + 1.5):  # cached second, then a new one
        record = logging.LogRecord("calls_api.access", logging.INFO, "f", 1, "GET %s", ("/",), None)
        record.created = when
        record.msecs = (when - int(when)) * 1000
        assert ours.format(record) == logging.Formatter(LOG_FORMAT).format(record)


@pytest.fixture
def clean_logging() -> Iterator[None]:
    root = logging.getLogger()
    saved = (
        root.handlers[:],
        root.level,
        logging._srcfile,
        logging.logThreads,
        logging.logProcesses,
        logging.logMultiprocessing,
    )
    try:
        yield
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
        logging._srcfile = saved[2]
        logging.logThreads, logging.logProcesses, logging.logMultiprocessing = saved[3:]


@pytest.mark.usefixtures("clean_logging")
def test_configured_logging_writes_one_line_per_record() -> None:
    stream = io.StringIO()
    logging.getLogger().handlers.clear()  # pytest's own come back for every test phase
    configure_logging("info", stream)
    logging.getLogger("calls_api.access").info("%s %s %d", "GET", "/v1/health", 200)
    logging.getLogger("calls_api.access").debug("not at info")
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1
    assert lines[0].endswith(" INFO calls_api.access: GET /v1/health 200")
    assert lines[0][:4].isdigit() and lines[0][19] == ","  # 2026-01-01 00:00:00,123
