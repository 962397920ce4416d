"""The engine's stop ends its loops even when a cancellation is swallowed.

On Python 3.11 ``asyncio.wait_for`` returns the inner result instead of raising when the
cancellation meets an inner future that has just finished (CPython gh-86296): a loop
around it (every engine loop: host polls, the watchdog, HA, maintenance ...) then runs
on, and one ``cancel()`` followed by ``gather`` waited for it forever. A fresh-clone run
saw an engine ignore SIGTERM that way. ``_cancel_all`` cancels again until the tasks
end, within a limit.
"""

from __future__ import annotations

import asyncio
import logging

import pytest

from virtplane_engine.engine import _cancel_all


def _stubborn(swallow: int, ended: list[str]) -> asyncio.Task[None]:
    async def loop() -> None:
        for _ in range(swallow):
            try:
                await asyncio.sleep(30)
            except asyncio.CancelledError:
                continue  # what a wait_for that swallowed it amounts to
        try:
            await asyncio.sleep(30)
        finally:
            ended.append("ended")
    return asyncio.get_running_loop().create_task(loop(), name=f"swallows-{swallow}")


def test_a_task_that_swallows_cancellations_is_cancelled_until_it_ends() -> None:
    ended: list[str] = []

    async def main() -> float:
        tasks = [_stubborn(0, ended), _stubborn(2, ended), _stubborn(3, ended)]
        began = asyncio.get_running_loop().time()
        await asyncio.wait_for(_cancel_all(tasks, limit=20), 15)
        assert all(t.done() for t in tasks)
        return asyncio.get_running_loop().time() - began

    took = asyncio.run(main())
    assert ended == ["ended"] * 3
    assert took < 10


def test_a_task_that_never_ends_is_left_after_the_limit_with_a_warning(
        caplog: pytest.LogCaptureFixture) -> None:
    stop = asyncio.Event()

    async def stubborn_until_told() -> None:
        while not stop.is_set():
            try:
                await asyncio.sleep(30)
            except asyncio.CancelledError:
                continue

    async def main() -> bool:
        task = asyncio.get_running_loop().create_task(stubborn_until_told(), name="stubborn")
        await asyncio.wait_for(_cancel_all([task], limit=1.5), 10)
        left = not task.done()
        stop.set()
        task.cancel()
        await asyncio.wait_for(task, 5)
        return left

    with caplog.at_level(logging.WARNING, logger="virtplane.engine"):
        assert asyncio.run(main())  # _cancel_all gave up at its limit, it did not hang
    assert any("stubborn still running after 1.5 s" in r.getMessage() for r in caplog.records)
