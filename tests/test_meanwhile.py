"""ebpm.meanwhile: work started in a thread, its result (or its error) handed to the caller
that waits for it."""

from __future__ import annotations

import threading

import pytest

from ebpm.meanwhile import meanwhile


def test_the_result_comes_from_another_thread() -> None:
    gate = threading.Event()

    def work() -> int:
        gate.wait(5)
        return threading.get_ident()

    result = meanwhile(work)
    gate.set()  # the caller went on while the work waited
    assert result() != threading.get_ident()
    assert result() == result()  # waited for any number of times


def test_an_error_is_raised_to_the_caller_that_waits() -> None:
    def work() -> None:
        raise KeyError("boom")

    result = meanwhile(work)
    with pytest.raises(KeyError, match="boom"):
        result()


def test_each_gives_the_results_in_order_with_at_most_jobs_at_once() -> None:
    from ebpm.meanwhile import each

    lock = threading.Lock()
    running, most = [0], [0]
    three = threading.Barrier(3, timeout=5)  # three items do run side by side

    def work(i: int) -> int:
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        if i < 3:
            three.wait()
        with lock:
            running[0] -= 1
        return i * i

    assert each(work, list(range(20)), 3) == [i * i for i in range(20)]
    assert most[0] == 3
    assert each(work, [], 3) == []


def test_each_stops_starting_items_after_a_failure_and_raises_the_earliest() -> None:
    from ebpm.meanwhile import each

    started: list[int] = []
    both = threading.Barrier(2, timeout=5)

    def work(i: int) -> int:
        started.append(i)
        if i < 2:
            both.wait()  # items 0 and 1 fail together
            raise ValueError(f"item {i}")
        return i

    with pytest.raises(ValueError, match="item 0"):
        each(work, list(range(50)), 2)
    assert len(started) < 50  # the rest never started


def test_work_started_meanwhile_inside_an_each_worker_runs_in_that_worker() -> None:
    from ebpm.meanwhile import each

    def item(i: int) -> tuple[bool, bool]:
        here = threading.get_ident()
        inner = meanwhile(lambda: threading.get_ident())  # a pull's blob, in an install
        failing = meanwhile(lambda: 1 // 0)
        with pytest.raises(ZeroDivisionError):
            failing()
        return inner() == here, here != threading.main_thread().ident

    assert each(item, list(range(6)), 3) == [(True, True)] * 6
    # outside a worker: a thread of its own, as before
    assert meanwhile(lambda: threading.get_ident())() != threading.get_ident()
