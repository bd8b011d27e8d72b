"""Delivering a campaign's rendered messages: the send ledger's batches around the backend's sends.

Each batch is claimed ('sending') in one ledger write, sent, made durable where the backend syncs per batch
(the outbox: one barrier), then recorded in one write (docs/delivery.md, "Ledger states").
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from kizuna.campaigns import ledger
from kizuna.core.connection import Connection
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


def deliver(
    con: Connection,
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
    in_flight: list[tuple[Sequence[str], list[Future[ledger.Outcome]]]] = []

    def record(keys: Sequence[str], futures: list[Future[ledger.Outcome]]) -> None:
        outcomes: list[ledger.Outcome] = []
        for key, future in zip(keys, futures, strict=True):
            if future.cancelled():
                outcomes.append((key, "pending", None, "not sent: the run stopped before this message"))
            else:
                outcomes.append(future.result())
        if isinstance(backend, BatchSyncedBackend):
            backend.sync()  # every file of the batch on disk before the ledger says accepted
        ledger.mark(con, outcomes)
        for outcome in outcomes:
            totals[outcome[1]] = totals.get(outcome[1], 0) + 1
        if on_progress:
            on_progress(sum(totals.values()))

    # The outbox's work is Python under the GIL: one writer beside the ledger's thread; more only contend.
    workers = 1 if isinstance(backend, BatchSyncedBackend) else concurrency
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"send-{backend.name}")
    try:
        for number, batch in enumerate(_batches(range(len(rows)), batch_size)):
            start = batch[0]
            if rendered is not None:
                messages = list(rendered[start : start + len(batch)])
            else:
                messages = [make_message(rows[i]) for i in batch]
            keys = [m.message_key for m in messages]
            ledger.mark_sending(con, keys)
            in_flight.append((keys, [pool.submit(_attempt, backend, m) for m in messages]))
            if number:  # record the previous batch while this one is in flight
                record(*in_flight.pop(0))
        while in_flight:
            record(*in_flight.pop(0))
    except BaseException:
        for _, futures in in_flight:
            for future in futures:
                future.cancel()
        pool.shutdown(wait=True)
        for flying_keys, futures in in_flight:
            record(flying_keys, futures)
        raise
    finally:
        pool.shutdown(wait=True)
    return totals
