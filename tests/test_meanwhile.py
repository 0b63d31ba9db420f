"""ebpm.meanwhile: work started in a thread, its result (or its error) handed to the caller
that waits for it."""

from __future__ import annotations

import threading

import pytest

from ebpm.meanwhile import meanwhile


def test_the_result_comes_from_another_thread() -> None:
    gate = threading.Event()

    def work() -> str:
        gate.wait(5)
        return threading.current_thread().name

    result = meanwhile(work)
    gate.set()  # the caller went on while the work waited
    assert result() == "ebpm-meanwhile"


def test_an_error_is_raised_to_the_caller_that_waits() -> None:
    def work() -> None:
        raise KeyError("boom")

    result = meanwhile(work)
    with pytest.raises(KeyError, match="boom"):
        result()
