"""Bounded concurrency over hosts: a fixed pool of workers pulls hosts from one shared iterator.

Only `limit` tasks ever exist, whatever the fleet size, so memory and scheduling stay O(limit) and
no host waits on a semaphore queue of N tasks. Work functions return results (a failed host is data);
anything they raise is a bug and cancels the run through the task group.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar, cast

Item = TypeVar("Item")
Result = TypeVar("Result")


async def fan_out(
    items: Sequence[Item],
    work: Callable[[Item], Awaitable[Result]],
    *,
    limit: int,
    on_result: Callable[[Result], None] | None = None,
) -> list[Result]:
    """work(item) for every item, at most `limit` at once; results in the order of `items`."""
    if limit < 1:
        raise ValueError("limit must be at least 1")
    results: list[Result | None] = [None] * len(items)
    pending = iter(enumerate(items))

    async def worker() -> None:
        for index, item in pending:
            result = await work(item)
            results[index] = result
            if on_result is not None:
                on_result(result)

    async with asyncio.TaskGroup() as group:
        for _ in range(min(limit, len(items))):
            group.create_task(worker())
    return cast("list[Result]", results)  # every index was filled: the task group waited for all workers
