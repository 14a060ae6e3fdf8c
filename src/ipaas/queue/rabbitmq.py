"""The RabbitMQ BuildQueue: jobs travel as persistent messages, a lease is an unacked delivery.

Queues (all durable), for a prefix `p`:
- `p.builds`: the jobs. Rejected messages dead-letter to `p.builds.dead`.
- `p.builds.retry`: delayed retries. Each message carries its own TTL (`expiration`); when it
  expires the broker dead-letters it back to `p.builds`. Per-message TTLs only expire at the
  head of the queue, so a retry may come back late (behind a longer delay), never early.
- `p.builds.dead`: jobs given up on, kept for an operator to inspect.

If a builder dies, the broker redelivers its unacked messages to another builder. With a
`BuildStore` (`builds=`), `lease` also claims the `builds` row (status `running`, lease owner,
attempt), as `JobTableQueue.lease` does, and skips jobs whose row is no longer live.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import replace
from datetime import timedelta
from typing import Any

import aio_pika
import structlog
from aio_pika.abc import (
    AbstractChannel,
    AbstractExchange,
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractRobustConnection,
)
from aio_pika.exceptions import (
    AMQPError,
    ChannelInvalidStateError,
    DeliveryError,
    PublishError,
)

from ipaas.domain.statuses import BuildStatus
from ipaas.queue.base import BuildJob, QueueUnavailable
from ipaas.store.builds import BuildStore, Claim

log = structlog.get_logger()
PUBLISH_TIMEOUT_S = 10.0


class QueueRefused(RuntimeError):
    """The broker did not take a message (negative confirm or unroutable)."""


class RabbitQueue:
    def __init__(
        self,
        url: str,
        *,
        builds: BuildStore | None = None,
        prefix: str = "ipaas",
        max_attempts: int = 3,
        prefetch: int = 4,
        lease_s: float = 60.0,
    ) -> None:
        self.url = url
        self.builds = builds
        self.max_attempts = max_attempts
        # Prefetch bounds the deliveries this builder holds (leased + buffered); set it to the
        # builder's concurrency so idle builders are not starved by a busy one.
        self.prefetch = prefetch
        self.lease_s = lease_s
        self.main_name = f"{prefix}.builds"
        self.retry_name = f"{prefix}.builds.retry"
        self.dead_name = f"{prefix}.builds.dead"
        self._connection: AbstractRobustConnection | None = None
        self._channel: AbstractChannel | None = None
        self._dead_exchange: AbstractExchange | None = None
        self._connect_lock = asyncio.Lock()
        self._ready: asyncio.Queue[AbstractIncomingMessage] = asyncio.Queue()
        self._arrived = asyncio.Event()
        self._leased: dict[str, AbstractIncomingMessage] = {}
        self._main: AbstractQueue | None = None
        self._consumer = False

    # --- connection -----------------------------------------------------------------------
    async def _ensure(self) -> AbstractChannel:
        """Connect on first use; the robust connection then reconnects (and re-consumes)."""
        async with self._connect_lock:
            if self._channel is None:
                connection = await aio_pika.connect_robust(self.url)
                try:
                    self._channel = await self._setup(connection)
                except BaseException:
                    await connection.close()
                    raise
                self._connection = connection
            return self._channel

    async def _setup(self, connection: AbstractRobustConnection) -> AbstractChannel:
        channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        await channel.set_qos(prefetch_count=self.prefetch)
        self._main = await self._declare(channel)
        return channel

    async def _consuming(self) -> None:
        """Builders only: a process that just publishes (the API with a separate builder) must
        not consume, or the broker hands it jobs it holds unacked and never builds."""
        await self._ensure()
        async with self._connect_lock:
            if not self._consumer and self._main is not None:
                # On the robust channel: re-consumed after a reconnect.
                await self._main.consume(self._on_message, no_ack=False)
                self._consumer = True

    async def _declare(self, channel: AbstractChannel) -> AbstractQueue:
        dead_x = await channel.declare_exchange(
            self.dead_name, aio_pika.ExchangeType.FANOUT, durable=True
        )
        dead = await channel.declare_queue(self.dead_name, durable=True)
        await dead.bind(dead_x)
        self._dead_exchange = dead_x
        await channel.declare_queue(
            self.retry_name,
            durable=True,
            arguments={"x-dead-letter-exchange": "", "x-dead-letter-routing-key": self.main_name},
        )
        return await channel.declare_queue(
            self.main_name, durable=True, arguments={"x-dead-letter-exchange": self.dead_name}
        )

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        self._ready.put_nowait(message)
        self._arrived.set()

    async def close(self) -> None:
        connection, self._connection, self._channel = self._connection, None, None
        self._main, self._consumer = None, False
        self._leased.clear()
        self._ready = asyncio.Queue()  # buffered deliveries die with the connection
        if connection is not None:
            await connection.close()

    # --- publishing -----------------------------------------------------------------------
    async def _publish(
        self,
        job: BuildJob,
        routing_key: str,
        *,
        exchange: AbstractExchange | None = None,
        expiration: timedelta | None = None,
        headers: dict[str, Any] | None = None,
    ) -> None:
        """Publish persistently and wait for the broker's confirm."""
        channel = await self._ensure()
        body = {"build_id": job.id, "app_id": job.app_id, "attempt": job.attempt}
        message = aio_pika.Message(
            json.dumps(body).encode(),
            content_type="application/json",
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            message_id=job.id,
            expiration=expiration,
            headers=headers or {},
        )
        target = exchange or channel.default_exchange
        try:
            await target.publish(message, routing_key=routing_key)
        except (DeliveryError, PublishError) as exc:
            raise QueueRefused(f"the broker refused build {job.id} for {routing_key}") from exc

    async def enqueue(self, job: BuildJob) -> None:
        # The API enqueues attempt 0 (the job table counts tries when leasing); on the wire the
        # attempt is the number of the try the delivery is for.
        publish = self._publish(replace(job, attempt=max(job.attempt, 1)), self.main_name)
        try:
            # Bounded: a broker that went away can leave a publish waiting for its confirm.
            await asyncio.wait_for(publish, PUBLISH_TIMEOUT_S)
        except (OSError, AMQPError, ChannelInvalidStateError, TimeoutError) as exc:
            raise QueueUnavailable(f"the broker did not take build {job.id}: {exc!r}") from exc

    async def _to_retry(self, job: BuildJob, delay_s: float) -> None:
        delay = timedelta(seconds=max(delay_s, 0.0))
        await self._publish(job, self.retry_name, expiration=delay)

    async def _to_dead(self, job: BuildJob, error: str) -> None:
        await self._ensure()
        assert self._dead_exchange is not None
        headers = {"x-ipaas-error": error[:1000]}
        await self._publish(job, "", exchange=self._dead_exchange, headers=headers)

    # --- leasing --------------------------------------------------------------------------
    async def lease(self, worker: str) -> BuildJob | None:
        await self._consuming()
        while (message := self._next_ready()) is not None:
            job = await self._accept(message, worker)
            if job is not None:
                self._leased[job.id] = message
                return job
        return None

    def _next_ready(self) -> AbstractIncomingMessage | None:
        while not self._ready.empty():
            message = self._ready.get_nowait()
            try:
                message.channel  # noqa: B018 - raises if the channel died under the delivery
            except ChannelInvalidStateError:
                continue  # the broker has already requeued it for someone
            return message
        return None

    async def _accept(self, message: AbstractIncomingMessage, worker: str) -> BuildJob | None:
        """The job to hand out, or None when the message was dealt with here."""
        job = _decode(message.body)
        if job is None:
            log.warning("malformed build message", body=message.body[:200])
            await message.reject(requeue=False)  # dead-letters it
            return None
        if self.builds is None:
            return await self._accept_bare(message, job)
        claim, wait_s, attempt = await self._claim(job, worker)
        if claim is Claim.OK:
            return replace(job, attempt=attempt)
        if claim is Claim.BUSY:
            await self._to_retry(job, wait_s)
        await message.ack()
        return None

    async def _accept_bare(
        self, message: AbstractIncomingMessage, job: BuildJob
    ) -> BuildJob | None:
        """Without the store, a redelivery means a builder died holding the job: count that try
        by re-publishing with attempt+1, so a job that kills its builder cannot loop forever."""
        if not message.redelivered:
            return job
        await self._publish(replace(job, attempt=job.attempt + 1), self.main_name)
        await message.ack()
        return None

    async def _claim(self, job: BuildJob, worker: str) -> tuple[Claim, float, int]:
        """Mark the row running for `worker`, like `BuildStore.lease` does for the job table."""
        assert self.builds is not None
        return await self.builds.claim(job.id, job.attempt, worker, self.lease_s)

    async def wait(self, timeout_s: float) -> None:
        """Sleep until a delivery arrives or the timeout passes (also when the broker is down)."""
        try:
            await self._consuming()
        except (AMQPError, OSError) as exc:
            log.warning("rabbitmq unavailable", error=repr(exc))
            await asyncio.sleep(timeout_s)
            return
        if not self._ready.empty():
            return
        self._arrived.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._arrived.wait(), timeout_s)

    async def renew(self, job: BuildJob) -> bool:
        return True  # the broker holds an unacked delivery as long as our connection lives

    # --- settling -------------------------------------------------------------------------
    async def _ack(self, job: BuildJob) -> None:
        message = self._leased.pop(job.id, None)
        if message is None:
            return
        try:
            await message.ack()
        except (AMQPError, ChannelInvalidStateError) as exc:
            # The channel died since the lease: the broker already requeued the delivery, and
            # whoever gets it finds the row finished (with a store) and drops it.
            log.warning("build ack lost", build_id=job.id, error=repr(exc))

    async def complete(self, job: BuildJob) -> None:
        await self._ack(job)

    async def retry_later(self, job: BuildJob, delay_s: float, error: str) -> None:
        if job.attempt >= self.max_attempts:
            await self._give_up(job, f"{error} (gave up after {job.attempt} attempts)")
            return
        await self._to_retry(replace(job, attempt=job.attempt + 1), delay_s)
        if self.builds is not None:
            await self.builds.requeue(job.id, delay_s, error)
        await self._ack(job)

    async def _give_up(self, job: BuildJob, error: str) -> None:
        if self.builds is not None:
            await self.builds.finish(
                job.id, BuildStatus.FAILED, error=error, error_code="retries_exhausted"
            )
        await self.fail(job, error)

    async def fail(self, job: BuildJob, error: str) -> None:
        # Publish a copy that carries the error (a plain reject would lose it), then ack.
        await self._to_dead(job, error)
        await self._ack(job)


def _decode(body: bytes) -> BuildJob | None:
    try:
        data = json.loads(body)
        return BuildJob(
            id=str(data["build_id"]), app_id=str(data["app_id"]), attempt=int(data["attempt"])
        )
    except (ValueError, KeyError, TypeError):
        return None
