"""Salesforce Bulk API 2.0 ingest jobs: many records' updates as CSV, processed by Salesforce asynchronously.

A job: create it (POST /jobs/ingest, operation, object, CSV, LF), upload its data once (PUT .../batches,
text/csv, at most ``MAX_UPLOAD_BYTES`` so the base64 form stays under Salesforce's 150 MB), close it (PATCH state
UploadComplete), poll its state until JobComplete, Failed or Aborted, then read successfulResults and
failedResults (CSV with sf__Id and sf__Error). Records neither in the successful nor the failed results (a job
that failed or was aborted) come back with an error, so the sync retries them next time.

CSV semantics of an update: an empty cell leaves the field as it is, ``#N/A`` clears it. So rows that change
different fields share one header: each row fills only its own changed fields.
"""

from __future__ import annotations

import csv
import io
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from kizuna.crm.salesforce_auth import SalesforceSession
from kizuna.crm.target import CrmError

log = logging.getLogger(__name__)

MAX_UPLOAD_BYTES = 90_000_000
FINAL_STATES = frozenset({"JobComplete", "Failed", "Aborted"})
NULL = "#N/A"  # Bulk API: set the field to null


@dataclass(frozen=True)
class BulkOutcome:
    """Per record Id: None when Salesforce applied the row, its error text otherwise."""

    errors: dict[str, str | None]
    jobs: list[str]


def to_csv(header: Sequence[str], rows: Sequence[Mapping[str, str]]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(header), lineterminator="\n", extrasaction="raise")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def chunks(header: Sequence[str], rows: Sequence[Mapping[str, str]], limit: int) -> list[str]:
    """The rows as CSV documents of at most `limit` bytes each, every one with the header."""
    head = to_csv(header, [])
    documents, current, size = [], [head], len(head.encode())
    for row in rows:
        line = to_csv(header, [row])[len(head) :]
        if size + len(line.encode()) > limit and len(current) > 1:
            documents.append("".join(current))
            current, size = [head], len(head.encode())
        current.append(line)
        size += len(line.encode())
    if len(current) > 1:
        documents.append("".join(current))
    return documents


def bulk_update(
    session: SalesforceSession,
    sobject: str,
    header: Sequence[str],
    rows: Sequence[Mapping[str, str]],
    *,
    poll_interval: float = 2.0,
    max_wait: float = 1800.0,
    upload_limit: int = MAX_UPLOAD_BYTES,
) -> BulkOutcome:
    """Update `rows` (each with an "Id") through as many ingest jobs as their size needs."""
    errors: dict[str, str | None] = {}
    jobs = []
    for document in chunks(header, rows, upload_limit):
        job_id = _run_job(session, sobject, document, poll_interval=poll_interval, max_wait=max_wait)
        jobs.append(job_id)
        sent = [r["Id"] for r in csv.DictReader(io.StringIO(document))]
        applied = _results(session, sobject, job_id, "successfulResults")
        failed = _results(session, sobject, job_id, "failedResults")
        for record_id in sent:
            key = record_id[:15]
            if key in applied:
                errors[record_id] = None
            else:
                errors[record_id] = failed.get(key) or f"not processed by Bulk API job {job_id}"
    return BulkOutcome(errors, jobs)


def _run_job(session: SalesforceSession, sobject: str, document: str, *, poll_interval: float, max_wait: float) -> str:
    what = f"{sobject} bulk update"
    base = session.data_path("/jobs/ingest")
    spec = {"object": sobject, "operation": "update", "contentType": "CSV", "lineEnding": "LF"}
    job = session.call(what, "POST", base, "POST /jobs/ingest", json=spec).json()
    job_id = str(job["id"])
    session.call(
        what,
        "PUT",
        f"{base}/{job_id}/batches",
        "PUT /jobs/ingest/batches",
        content=document.encode(),
        headers={"Content-Type": "text/csv"},
    )
    closing = session.call(
        what, "PATCH", f"{base}/{job_id}", "PATCH /jobs/ingest", json={"state": "UploadComplete"}, ok=(200, 400)
    )
    if closing.status_code == 400:  # refused: fine if a first, retried close had arrived (the job is no longer Open)
        info = session.call(what, "GET", f"{base}/{job_id}", "GET /jobs/ingest").json()
        if info.get("state") == "Open":
            raise CrmError(f"salesforce: {what}: Bulk API job {job_id} could not be closed: {closing.text[:300]}")
    started = time.monotonic()
    waited = 0.0
    while True:
        info = session.call(what, "GET", f"{base}/{job_id}", "GET /jobs/ingest").json()
        state = str(info.get("state"))
        if state in FINAL_STATES:
            if state != "JobComplete":
                log.warning("salesforce: %s: job %s ended %s: %s", what, job_id, state, info.get("errorMessage", ""))
            return job_id
        if waited >= max_wait or time.monotonic() - started >= max_wait:
            raise CrmError(
                f"salesforce: {what}: Bulk API job {job_id} still {state} after {max_wait:.0f} s; see Setup > Bulk "
                "Data Load Jobs, and run again (updates are idempotent)"
            )
        session.sleep(poll_interval)
        waited += poll_interval


def _results(session: SalesforceSession, sobject: str, job_id: str, kind: str) -> dict[str, str]:
    """The job's successful (error "") or failed (sf__Error) rows by 15-character record Id."""
    path = session.data_path(f"/jobs/ingest/{job_id}/{kind}")
    text = session.call(f"{sobject} bulk update results", "GET", path, f"GET /jobs/ingest/{kind}").text
    rows = csv.DictReader(io.StringIO(text))
    return {key[:15]: row.get("sf__Error") or "" for row in rows if (key := row.get("sf__Id") or row.get("Id"))}
