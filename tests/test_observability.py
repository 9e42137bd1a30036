"""The web process's log writer: records queued by the request path, written in batches."""

from __future__ import annotations

import io
import json
import logging
from typing import Any

from bot.observability import BatchWriter, JsonFormatter, _FieldsQueueHandler


class CountingStream(io.StringIO):
    """A text stream that counts its write calls."""

    writes = 0

    def write(self, text: str) -> int:
        self.writes += 1
        return super().write(text)


def writer_and_logger(stream: io.StringIO) -> tuple[BatchWriter, logging.Logger]:
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    writer = BatchWriter(handler, interval=3600)  # flushed by the test, never by the clock
    logger = logging.getLogger(f"kube_remedy.test.{id(writer)}")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    logger.addHandler(_FieldsQueueHandler(writer.records))
    return writer, logger


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_queued_records_are_written_in_order_in_one_write() -> None:
    stream = CountingStream()
    writer, logger = writer_and_logger(stream)
    for n in range(50):
        logger.info("web", extra={"fields": {"n": n, "webhook_secret": "s3cret"}})
    assert stream.getvalue() == ""  # the request path only queued them
    writer.flush()
    assert [line["n"] for line in lines(stream)] == list(range(50))
    assert stream.writes == 1
    assert "s3cret" not in stream.getvalue()


def test_stop_writes_what_is_still_queued() -> None:
    stream = CountingStream()
    writer, logger = writer_and_logger(stream)
    writer.start()
    logger.warning("web", extra={"fields": {"status": 401}})
    writer.stop()
    assert [(line["level"], line["status"]) for line in lines(stream)] == [("warning", 401)]


class Unprintable:
    def __str__(self) -> str:
        raise RuntimeError("no text")


def test_a_record_that_cannot_be_formatted_loses_no_other(monkeypatch: Any) -> None:
    stream = CountingStream()
    writer, logger = writer_and_logger(stream)
    handled: list[logging.LogRecord] = []
    monkeypatch.setattr(writer.handler, "handleError", handled.append)
    logger.info("before")
    logger.info("odd", extra={"fields": {"value": Unprintable()}})
    logger.info("after")
    writer.flush()
    assert [line["msg"] for line in lines(stream)] == ["before", "after"]
    assert len(handled) == 1
