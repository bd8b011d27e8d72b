"""SIGKILL in the middle of an outbox batch (files written, not yet synced or recorded), then a re-run.

The outbox makes each batch durable with one barrier before the ledger records it (docs/delivery.md, "The
outbox's batches"). A kill mid-batch, even one that also tears files a lost page cache never wrote whole,
must end, after one re-run, with exactly one complete file per recipient: nothing sent twice, nothing lost.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import duckdb

from kizuna.campaigns.run import run_campaign
from kizuna.core.settings import Settings
from kizuna.email.outbox import written_message_id
from tests.campaigns.conftest import SG_AS_OF, SgWarehouse
from tests.campaigns.test_delivery import CAMPAIGN_FILE, campaign
from tests.reliability.conftest import BLOCK_HERE, start_victim, wait_for_marker

RECIPIENTS, BATCH, BLOCK_AFTER = 80, 20, 30  # blocks with batch 1 recorded and half of batch 2 written

VICTIM = (
    BLOCK_HERE
    + """
import datetime as dt, sys
from pathlib import Path
import threading
import kizuna.campaigns.ledger as ledger
import kizuna.email.outbox as outbox
from kizuna.campaigns.run import run_campaign
from kizuna.campaigns.spec import load_campaign
from kizuna.core.settings import Settings

marker, warehouse, var_dir, campaign_file, as_of, block_after = sys.argv[1:7]
real_write, real_mark, written, first_recorded = outbox.OutboxBackend._write, ledger.mark, [], threading.Event()
def mark(con, outcomes):
    real_mark(con, outcomes)
    first_recorded.set()
def _write(self, message):
    out = real_write(self, message)
    written.append(out)
    if len(written) == int(block_after):  # renamed into place, not yet synced nor recorded
        first_recorded.wait()  # batch 1 recorded first, so the kill finds the same ledger every time
        block_here(marker)
    return out
ledger.mark, outbox.OutboxBackend._write = mark, _write
settings = Settings(warehouse=Path(warehouse), var_dir=Path(var_dir), outbox_dir=Path(var_dir) / "outbox",
                    email_backend="outbox", send_concurrency=1, send_batch_size=int(sys.argv[7]),
                    approval_required="never")
run_campaign(settings, load_campaign(Path(campaign_file)), "run-killed", dt.date.fromisoformat(as_of))
raise SystemExit("the victim was not stopped at its kill point")
"""
)


def _ledger(warehouse: Path) -> dict[str, tuple[str, str | None]]:
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        rows = con.execute("SELECT message_key, state, provider_message_id FROM ops.send_ledger").fetchall()
    finally:
        con.close()
    return {key: (state, provider_id) for key, state, provider_id in rows}


def test_sigkill_mid_outbox_batch_then_a_rerun_leaves_one_complete_file_per_recipient(
    tmp_path: Path, sg_make_warehouse: SgWarehouse
) -> None:
    warehouse = sg_make_warehouse(RECIPIENTS)
    var_dir = tmp_path / "var"
    outbox = var_dir / "outbox"
    marker = tmp_path / "marker"
    args = [str(marker), str(warehouse), str(var_dir), str(CAMPAIGN_FILE), SG_AS_OF.isoformat()]
    victim = start_victim(VICTIM, *args, str(BLOCK_AFTER), str(BATCH), env={**os.environ})
    try:
        wait_for_marker(marker, victim)
    finally:
        os.killpg(victim.pid, signal.SIGKILL)
        victim.wait(timeout=30)
    assert victim.returncode == -signal.SIGKILL

    killed = _ledger(warehouse)
    states = sorted(state for state, _ in killed.values())
    assert states.count("accepted") == BATCH, states  # batch 1: synced, then recorded
    # batch 2 (half written) and, if the main thread got there before the kill, batch 3 (queued)
    assert states.count("sending") in (BATCH, 2 * BATCH), states
    files = {p.name: p.read_bytes() for p in outbox.glob("*.eml")}
    assert len(files) == BLOCK_AFTER
    for key, (state, provider_id) in killed.items():
        if state == "accepted":  # recorded as sent only with its whole file on disk
            assert written_message_id(outbox / f"{key}.eml") == provider_id
    # A power loss would also have torn files that were renamed into place but never synced: one cut short,
    # one empty. The re-run must write those again, and only those.
    unsynced = sorted(name for name in files if killed[name.removesuffix(".eml")][0] == "sending")
    assert len(unsynced) == BLOCK_AFTER - BATCH
    torn, emptied = unsynced[0], unsynced[1]
    (outbox / torn).write_bytes(files[torn][: len(files[torn]) // 2])
    (outbox / emptied).write_bytes(b"")

    settings = Settings(
        warehouse=warehouse,
        var_dir=var_dir,
        outbox_dir=outbox,
        email_backend="outbox",
        send_batch_size=BATCH,
        approval_required="never",
    )
    summary = run_campaign(settings, campaign(), "run-killed", SG_AS_OF)

    after = _ledger(warehouse)
    assert set(after) == set(killed)
    assert {state for state, _ in after.values()} == {"accepted"}
    assert summary.sent == RECIPIENTS - BATCH  # batch 1 was not sent again
    names = sorted(p.name for p in outbox.iterdir())
    assert names == sorted(f"{key}.eml" for key in after)  # one file per key, no temporary files left
    for name, before in files.items():
        if name in (torn, emptied):
            continue
        assert (outbox / name).read_bytes() == before, f"{name} was written twice"
    for key, (_, provider_id) in after.items():
        assert provider_id and written_message_id(outbox / f"{key}.eml") == provider_id
    assert (outbox / torn).read_bytes().endswith(b"--\r\n")  # the torn file is whole again
