"""The outbox pays one barrier per batch, seen from outside: which files the sending process opens, and how.

docs/delivery.md ("The outbox's batches"): each message is a temporary file renamed into place, no fsync; each
batch ends with one syncfs(2) of the outbox's file system and one fsync of its directory, both of which open the
outbox directory. A child process delivers through kizuna.campaigns.run.deliver with a Python audit hook that
logs every open (os.open for an fsync, open() for reading a file back), so the count comes from the system calls, not from patching kizuna's functions.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

from kizuna.core.settings import PROJECT_DIR
from kizuna.email.outbox import written_message_id

MESSAGES, BATCH = 7, 3  # three batches: 3, 3 and 1

CHILD = """
import json, os, sys
from pathlib import Path
opened = []
sys.addaudithook(lambda event, args: opened.append((str(args[0]), args[1], args[2])) if event == "open" else None)
import duckdb
from kizuna.campaigns import ledger
from kizuna.campaigns.run import deliver
from kizuna.core import ops
from kizuna.email.message import OutgoingMessage
from kizuna.email.outbox import OutboxBackend

work, count, batch = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
keys = [f"k{i:02d}" for i in range(count)]
con = duckdb.connect(str(work / "w.duckdb"))
ledger.ensure_ledger(con)
for key in keys:
    con.execute(
        f"INSERT INTO {ops.SEND_LEDGER.name} (message_key, campaign, contact_id, email, occasion, run_id, state, "
        "backend, claimed_at) VALUES (?, 'c', ?, ?, 'once', 'r1', 'pending', 'outbox', now())",
        [key, key, f"{key}@example.jp"],
    )
messages = [
    OutgoingMessage(message_key=k, to_email=f"{k}@example.jp", to_name="山田 太郎", from_email="news@example.jp",
                    from_name="Kizuna", subject=f"お知らせ {k}", html=f"<p>{k}</p>", text=k)
    for k in keys
]
outbox = work / "outbox"
backend = OutboxBackend(outbox)
del opened[:]
totals = deliver(con, backend, [{}] * count, lambda row: None, rendered=messages, batch_size=batch)
rows = con.execute(f"SELECT state, count(*) FROM {ops.SEND_LEDGER.name} GROUP BY 1").fetchall()
directory = [flags for path, mode, flags in opened if path == str(outbox)]
# os.open(path, O_RDONLY) of a written file is how one is fsynced (reading it back goes through open(), "rb")
eml_reads = [path for path, mode, flags in opened if path.endswith(".eml") and mode is None
             and flags & os.O_ACCMODE == os.O_RDONLY]
print(json.dumps({"totals": totals, "ledger": dict(rows), "directory_opens": len(directory),
                  "eml_fsync_opens": len(eml_reads)}))
"""


def test_one_barrier_per_batch_and_no_fsync_per_file(tmp_path: Path) -> None:
    # A script file, not `python -c`: pyspark (imported by Great Expectations when installed) exits at import
    # when __main__ has no __file__, taking it for a doctest run.
    script = tmp_path / "child.py"
    script.write_text(CHILD, encoding="utf-8")
    out = subprocess.run(
        [sys.executable, str(script), str(tmp_path), str(MESSAGES), str(BATCH)],
        check=True,
        capture_output=True,
        text=True,
        cwd=PROJECT_DIR,
        env={**os.environ, "PYTHONPATH": f"{PROJECT_DIR / 'src'}{os.pathsep}{PROJECT_DIR}"},
    )
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert seen["totals"] == {"accepted": MESSAGES} and seen["ledger"] == {"accepted": MESSAGES}
    batches = -(-MESSAGES // BATCH)
    # syncfs and the directory's fsync each open the folder once per batch; no file is opened to be fsynced.
    assert seen["directory_opens"] == 2 * batches
    assert seen["eml_fsync_opens"] == 0
    files = sorted(p.name for p in (tmp_path / "outbox").iterdir())
    assert files == [f"k{i:02d}.eml" for i in range(MESSAGES)]  # no temporary file left behind
    for path in (tmp_path / "outbox").iterdir():
        assert written_message_id(path)  # complete: ends with its closing boundary
        assert stat.S_IMODE(path.stat().st_mode) == 0o600  # readable by the owner only (mkstemp)


def test_a_campaign_waits_for_the_warehouse_in_the_open_it_sends_through(tmp_path: Path) -> None:
    """The campaign step opens the warehouse once: a file held past the wait stops it there, naming the holder,
    before anything is selected or claimed (the flow does not retry a WarehouseBusyError)."""
    import datetime as dt

    import duckdb
    import pytest

    from kizuna import pipeline
    from kizuna.campaigns.spec import load_campaign
    from kizuna.core.locks import WarehouseBusyError
    from kizuna.core.settings import Settings
    from tests.ops.test_locks import HOLD_DUCKDB, holder

    warehouse = tmp_path / "w.duckdb"
    duckdb.connect(str(warehouse)).close()
    settings = Settings(
        warehouse=warehouse,
        var_dir=tmp_path / "var",
        outbox_dir=tmp_path / "outbox",
        send_window="00:00-24:00",
        send_on_business_days_only=False,
        warehouse_wait_seconds=0.5,
    )
    campaign = load_campaign(PROJECT_DIR / "campaigns" / "renewal_reminder.yml")
    with holder(HOLD_DUCKDB, warehouse) as proc, pytest.raises(WarehouseBusyError, match=f"PID {proc.pid}"):
        pipeline.send_campaign(settings, campaign, "r1", dt.date(2026, 12, 4))
    with duckdb.connect(str(warehouse), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'ops'").fetchone() == (
            0,
        )
    assert not (tmp_path / "outbox").exists()
