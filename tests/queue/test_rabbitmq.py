"""RabbitQueue against a real broker: delivery, persistence, redelivery, retries, dead letters."""

from __future__ import annotations

import asyncio
import json
import time

import aio_pika
import pytest
from aiormq.exceptions import ChannelPreconditionFailed

from ipaas.queue.base import BuildJob
from ipaas.queue.rabbitmq import QueueRefused
from tests.queue.conftest import QueueMaker, count, lease_soon
from tests.services import need

Channel = aio_pika.abc.AbstractChannel
JOB = BuildJob(id="b1", app_id="a1", attempt=0)  # the API enqueues attempt 0


async def test_enqueue_lease_complete(make_queue: QueueMaker, broker: Channel, prefix: str) -> None:
    need("rabbitmq")
    queue = make_queue()
    await queue.enqueue(JOB)
    job = await lease_soon(queue)
    assert job == BuildJob(id="b1", app_id="a1", attempt=1)
    await queue.complete(job)
    await queue.wait(0.2)
    assert await queue.lease("w1") is None
    assert await count(broker, f"{prefix}.builds") == 0


async def test_a_process_that_only_publishes_takes_no_jobs(
    make_queue: QueueMaker, broker: Channel, prefix: str
) -> None:
    """The API beside a separate builder: every job it enqueues reaches the builder."""
    need("rabbitmq")
    api, builder = make_queue(), make_queue()
    await builder.wait(0.1)  # the builder is connected and consuming first
    jobs = [BuildJob(id=f"b{i}", app_id="a1", attempt=0) for i in range(6)]
    for job in jobs:
        await api.enqueue(job)
    leased = []
    for _ in jobs:
        leased.append(await lease_soon(builder, "w1"))
        await builder.complete(leased[-1])
    assert sorted(j.id for j in leased) == sorted(j.id for j in jobs)


async def test_messages_are_persistent_and_queues_durable(
    make_queue: QueueMaker, broker: Channel, prefix: str
) -> None:
    need("rabbitmq")
    queue = make_queue()
    await queue.enqueue(JOB)
    job = await lease_soon(queue)
    delivery = queue._leased[job.id]  # the unacked delivery the lease holds
    assert delivery.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
    assert json.loads(delivery.body) == {"build_id": "b1", "app_id": "a1", "attempt": 1}
    await queue.complete(job)
    # Re-declaring as non-durable is refused when the existing queue is durable.
    with pytest.raises(ChannelPreconditionFailed):
        await broker.declare_queue(f"{prefix}.builds", durable=False)


async def test_unacked_job_goes_to_another_builder_when_one_dies(
    make_queue: QueueMaker, broker: Channel, prefix: str
) -> None:
    need("rabbitmq")
    first, second = make_queue(), make_queue()
    await first.enqueue(JOB)
    job = await lease_soon(first, "w1")
    await second.wait(0.1)  # connects the second builder: it must not see the leased job
    assert await second.lease("w2") is None
    await first.close()  # the builder dies without acking
    again = await lease_soon(second, "w2")
    assert (again.id, again.attempt) == (job.id, 2)  # the lost try counts
    await second.complete(again)
    await second.wait(0.2)
    assert await second.lease("w2") is None
    assert await count(broker, f"{prefix}.builds") == 0


async def test_retry_later_comes_back_after_the_delay(make_queue: QueueMaker) -> None:
    need("rabbitmq")
    queue = make_queue()
    await queue.enqueue(JOB)
    job = await lease_soon(queue)
    started = time.monotonic()
    await queue.retry_later(job, 0.5, "registry timeout")
    await queue.wait(0.3)
    assert await queue.lease("w1") is None  # not before the delay
    again = await lease_soon(queue)
    assert time.monotonic() - started >= 0.5
    assert (again.id, again.attempt) == (job.id, 2)
    await queue.complete(again)


async def dead_letters(broker: Channel, prefix: str) -> list[aio_pika.abc.AbstractIncomingMessage]:
    dead = await broker.declare_queue(f"{prefix}.builds.dead", passive=True)
    found = []
    while (message := await dead.get(no_ack=True, fail=False)) is not None:
        found.append(message)
    return found


async def test_retries_end_in_the_dead_letter_queue(
    make_queue: QueueMaker, broker: Channel, prefix: str
) -> None:
    need("rabbitmq")
    queue = make_queue(max_attempts=2)
    await queue.enqueue(JOB)
    first = await lease_soon(queue)
    await queue.retry_later(first, 0.05, "boom")
    second = await lease_soon(queue)
    assert second.attempt == 2
    await queue.retry_later(second, 0.05, "boom")  # attempt 2 of 2: no third try
    await asyncio.sleep(0.3)
    assert await queue.lease("w1") is None
    (dead,) = await dead_letters(broker, prefix)
    assert json.loads(dead.body)["attempt"] == 2
    assert dead.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
    assert "gave up after 2 attempts" in str((dead.headers or {})["x-ipaas-error"])
    assert await count(broker, f"{prefix}.builds") == 0
    assert await count(broker, f"{prefix}.builds.retry") == 0


async def test_fail_keeps_the_job_and_its_error_for_an_operator(
    make_queue: QueueMaker, broker: Channel, prefix: str
) -> None:
    need("rabbitmq")
    queue = make_queue()
    await queue.enqueue(JOB)
    job = await lease_soon(queue)
    await queue.fail(job, "Dockerfile not found")
    (dead,) = await dead_letters(broker, prefix)
    assert json.loads(dead.body)["build_id"] == "b1"
    assert (dead.headers or {})["x-ipaas-error"] == "Dockerfile not found"
    await queue.wait(0.2)
    assert await queue.lease("w1") is None


async def test_malformed_message_is_dead_lettered(
    make_queue: QueueMaker, broker: Channel, prefix: str
) -> None:
    need("rabbitmq")
    queue = make_queue()
    await queue.wait(0.01)  # declares the queues
    await broker.default_exchange.publish(aio_pika.Message(b"not json"), f"{prefix}.builds")
    await queue.wait(2)
    assert await queue.lease("w1") is None
    await asyncio.sleep(0.1)
    assert [m.body for m in await dead_letters(broker, prefix)] == [b"not json"]


async def test_wait_returns_early_when_a_job_arrives(make_queue: QueueMaker) -> None:
    need("rabbitmq")
    builder, api = make_queue(), make_queue()
    await builder.wait(0.01)  # connected and consuming

    async def enqueue_soon() -> None:
        await asyncio.sleep(0.2)
        await api.enqueue(JOB)

    started = time.monotonic()
    await asyncio.gather(builder.wait(10), enqueue_soon())
    assert time.monotonic() - started < 2
    job = await builder.lease("w1")
    assert job is not None
    await builder.complete(job)


async def test_enqueue_raises_when_the_broker_refuses(
    make_queue: QueueMaker, broker: Channel, prefix: str
) -> None:
    need("rabbitmq")
    queue = make_queue()
    await queue.wait(0.01)
    await broker.queue_delete(f"{prefix}.builds")  # nothing to route to any more
    with pytest.raises(QueueRefused, match="refused build b1"):
        await queue.enqueue(JOB)


async def test_a_lost_channel_does_not_break_complete(make_queue: QueueMaker) -> None:
    need("rabbitmq")
    queue = make_queue()
    await queue.enqueue(JOB)
    job = await lease_soon(queue)
    assert queue._channel is not None
    underlay = await queue._channel.get_underlay_channel()
    await underlay.close()  # a blip: the broker requeues the delivery, the robust channel reopens
    await queue.complete(job)  # the ack is lost, not raised
    again = await lease_soon(queue)
    assert (again.id, again.attempt) == (job.id, 2)
    await queue.complete(again)
