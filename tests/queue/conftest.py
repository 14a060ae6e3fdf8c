"""Fixtures for the RabbitMQ queue tests: a unique prefix per test, its queues deleted after."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import aio_pika
import pytest

from ipaas.queue.base import BuildJob
from ipaas.queue.rabbitmq import RabbitQueue

URL = "amqp://guest:guest@127.0.0.1:5672/"
QueueMaker = Callable[..., RabbitQueue]


@pytest.fixture
def prefix() -> str:
    return f"t{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def broker(prefix: str) -> AsyncIterator[aio_pika.abc.AbstractChannel]:
    """A plain channel for looking at the queues; deletes them (and the exchange) afterwards."""
    connection = await aio_pika.connect(URL)
    channel = await connection.channel()
    yield channel
    cleanup = await connection.channel()  # a failed passive check in a test may close the first
    for suffix in ("builds", "builds.retry", "builds.dead"):
        await cleanup.queue_delete(f"{prefix}.{suffix}")
    await cleanup.exchange_delete(f"{prefix}.builds.dead")
    await connection.close()


@pytest.fixture
async def make_queue(
    prefix: str, broker: aio_pika.abc.AbstractChannel
) -> AsyncIterator[QueueMaker]:
    """RabbitQueues on the test's prefix, closed at the end (the broker fixture outlives them)."""
    made: list[RabbitQueue] = []

    def make(**kwargs: Any) -> RabbitQueue:
        queue = RabbitQueue(URL, prefix=prefix, **kwargs)
        made.append(queue)
        return queue

    yield make
    for queue in made:
        await queue.close()


async def lease_soon(queue: RabbitQueue, worker: str = "w1", within_s: float = 5.0) -> BuildJob:
    """Lease like the builder loop does: lease, and wait for a delivery when there is none."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        job = await queue.lease(worker)
        if job is not None:
            return job
        await queue.wait(0.2)
    raise AssertionError(f"no job within {within_s}s")


async def count(channel: aio_pika.abc.AbstractChannel, name: str) -> int:
    declared = await channel.declare_queue(name, passive=True)
    return int(declared.declaration_result.message_count or 0)
