"""The event fan-out by itself: every reader gets every event, a slow reader loses only its
own (counted), the producer never blocks, and closing ends every stream."""

from __future__ import annotations

import asyncio
import threading

from ebpm.serve.fanout import FanOut


def test_slow_reader_loses_its_own_events_only() -> None:
    async def main() -> tuple[list[int], int, int, int]:
        fan = FanOut()
        fast = fan.subscribe(capacity=10_000)
        slow = fan.subscribe(capacity=10)
        done = threading.Event()

        def produce() -> None:
            for i in range(5000):
                fan.publish(i)
            done.set()

        thread = threading.Thread(target=produce)
        thread.start()
        got: list[int] = []
        while len(got) < 5000:
            got.extend(await fast.next_batch(5))
        thread.join()
        assert done.is_set()
        slow_got = await slow.next_batch(0)
        fan.close()
        return got, len(slow_got), slow.lost, fast.lost

    got, slow_count, slow_lost, fast_lost = asyncio.run(main())
    assert got == list(range(5000))
    assert fast_lost == 0
    assert slow_count == 10 and slow_lost == 4990


def test_history_replay_and_close_ends_streams() -> None:
    async def main() -> tuple[list[int], bool, int]:
        fan = FanOut(history=3)
        for i in range(5):
            fan.publish(i)
        reader = fan.subscribe(replay=fan.recent())
        first = await reader.next_batch(1)
        waiting = asyncio.ensure_future(reader.next_batch(30))
        await asyncio.sleep(0.01)
        fan.close()
        try:
            await waiting
            ended = False
        except EOFError:
            ended = True
        late = fan.subscribe()
        return first, ended, int(late.closed)

    first, ended, late_closed = asyncio.run(main())
    assert first == [2, 3, 4]
    assert ended and late_closed == 1


def test_loss_of_readers_that_left_is_kept_in_the_total() -> None:
    async def main() -> tuple[int, int]:
        fan = FanOut()
        reader = fan.subscribe(capacity=1)
        fan.publish_many([1, 2, 3])
        reader.close()
        return fan.lost, fan.readers

    assert asyncio.run(main()) == (2, 0)
