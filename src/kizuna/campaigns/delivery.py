"""Delivering a campaign's rendered messages: the send ledger's batches around the backend's sends.

Each batch is claimed ('sending') in one ledger write, sent, made durable where the backend syncs per batch
(the outbox: one barrier), then recorded in one write (docs/delivery.md, "Ledger states").
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from threading import Event
from typing import Any

import duckdb

from kizuna.campaigns import ledger
from kizuna.email.message import (
    BatchSyncedBackend,
    DeferredSendError,
    EmailBackend,
    OutgoingMessage,
    PermanentSendError,
    UncertainSendError,
)

__all__ = ["deliver"]


def _attempt(backend: EmailBackend, message: OutgoingMessage) -> ledger.Outcome:
    """One send, as the ledger records it (unsynced where the backend syncs per batch: see deliver)."""
    try:
        if isinstance(backend, BatchSyncedBackend):
            provider_id = backend.send_unsynced(message)
        else:
            provider_id = backend.send(message)
    except PermanentSendError as exc:
        return (message.message_key, "failed_permanent", None, str(exc))
    except DeferredSendError as exc:
        return (message.message_key, "pending", None, str(exc))
    except UncertainSendError as exc:
        return (message.message_key, "unknown", None, str(exc))
    except Exception as exc:  # unforeseen: the request may have gone out, unless the backend is idempotent
        state = "failed_permanent" if backend.idempotent_per_key else "unknown"
        return (message.message_key, state, None, f"{type(exc).__name__}: {exc}")
    return (message.message_key, "accepted", provider_id, None)


def _batches(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


NOT_SENT = "not sent: the run stopped before this message"


def _attempt_batch(backend: EmailBackend, messages: Sequence[OutgoingMessage], stop: Event) -> list[ledger.Outcome]:
    """A whole batch on one worker (the outbox): one task, not one future and two thread switches per message.
    Once ``stop`` is set (the run is stopping) the batch's remaining messages stay pending, unsent."""
    return [(m.message_key, "pending", None, NOT_SENT) if stop.is_set() else _attempt(backend, m) for m in messages]


@dataclasses.dataclass(frozen=True)
class _Flight:
    """A batch between its 'sending' mark and its record: one future per message, or one for the whole batch."""

    keys: Sequence[str]
    futures: list[Future[Any]]
    batched: bool

    def cancel(self) -> None:
        for future in self.futures:
            future.cancel()

    def outcomes(self) -> list[ledger.Outcome]:
        """The batch's answers; what never started (a cancelled future) stays pending, unsent."""
        if self.batched:
            whole = self.futures[0]
            return [(k, "pending", None, NOT_SENT) for k in self.keys] if whole.cancelled() else list(whole.result())
        return [
            (key, "pending", None, NOT_SENT) if future.cancelled() else future.result()
            for key, future in zip(self.keys, self.futures, strict=True)
        ]


def deliver(
    con: duckdb.DuckDBPyConnection,
    backend: EmailBackend,
    rows: Sequence[dict[str, Any]],
    make_message: Callable[[dict[str, Any]], OutgoingMessage],
    *,
    rendered: Sequence[OutgoingMessage] | None = None,
    concurrency: int = 32,
    batch_size: int = 500,
    on_progress: Callable[[int], None] | None = None,
) -> dict[str, int]:
    """Send every row's message with ``concurrency`` requests in flight; return the ledger outcomes by state.

    Each batch is marked 'sending' in one ledger write before its first request, and its answers are
    recorded in one write when the batch is done; the next batch is marked and queued while the previous
    one is still in flight, so the workers never wait for the ledger. A kill leaves at most two batches in
    'sending', which the next run turns into 'unknown'. On an exception (e.g. Ctrl-C), queued requests that
    never started go back to pending and those in flight are recorded. A backend that syncs per batch (the
    outbox) makes the batch durable with one barrier before its answers are recorded, never after.
    """
    totals: dict[str, int] = {}
    in_flight: list[_Flight] = []
    batch_synced = isinstance(backend, BatchSyncedBackend)
    stop = Event()

    def record(flight: _Flight) -> None:
        outcomes = flight.outcomes()
        if isinstance(backend, BatchSyncedBackend):
            backend.sync()  # every file of the batch on disk before the ledger says accepted
        ledger.mark(con, outcomes)
        for outcome in outcomes:
            totals[outcome[1]] = totals.get(outcome[1], 0) + 1
        if on_progress:
            on_progress(sum(totals.values()))

    # The outbox's work is Python under the GIL: one writer beside the ledger's thread, given whole batches.
    pool = ThreadPoolExecutor(max_workers=1 if batch_synced else concurrency, thread_name_prefix=f"send-{backend.name}")
    try:
        for number, batch in enumerate(_batches(range(len(rows)), batch_size)):
            start = batch[0]
            if rendered is not None:
                messages = list(rendered[start : start + len(batch)])
            else:
                messages = [make_message(rows[i]) for i in batch]
            keys = [m.message_key for m in messages]
            ledger.mark_sending(con, keys)
            if batch_synced:
                futures: list[Future[Any]] = [pool.submit(_attempt_batch, backend, messages, stop)]
            else:
                futures = [pool.submit(_attempt, backend, m) for m in messages]
            in_flight.append(_Flight(keys, futures, batch_synced))
            if number:  # record the previous batch while this one is in flight
                record(in_flight.pop(0))
        while in_flight:
            record(in_flight.pop(0))
    except BaseException:
        stop.set()
        for flight in in_flight:
            flight.cancel()
        pool.shutdown(wait=True)
        for flight in in_flight:
            record(flight)
        raise
    finally:
        pool.shutdown(wait=True)
    return totals
