"""What `kizuna run` prints when piped: progress and the summary, the rest in a run log; one message on failure."""

from __future__ import annotations

import csv
import re
import sqlite3
from pathlib import Path

from tests.ops.conftest import AS_OF, kizuna, write_sources_by_hand

NOISE = ("Traceback", "nanobind", "ephemeral docs site", "START sql", "Finished in state", "\x1b[")


def logged_path(output: str) -> Path:
    found = re.search(r"^(?:- )?log\b[^:]*: (\S+\.log)$", output, re.MULTILINE)
    assert found, f"no log path in:\n{output}"
    return Path(found.group(1))


def yen(text: str, key: str) -> int:
    found = re.search(rf"^- {key}: (-?)¥([\d,]+)$", text, re.MULTILINE)
    assert found, f"{key} missing from the summary:\n{text}"
    return int(found.group(2).replace(",", "")) * (-1 if found.group(1) else 1)


def with_display_name_owner(customers: Path) -> str:
    """The first customer's owner written as a mail client shows it, as an export from a CRM may: the address."""
    with customers.open(encoding="utf-8", newline="") as fh:
        rows = list(csv.reader(fh))
    column = rows[0].index("owner_email")
    owner = next(r[column] for r in rows[1:] if r[column])
    for row in rows[1:]:
        if row[column] == owner:
            row[column] = f'"佐藤 太郎" <{owner}>'
            break
    with customers.open("w", encoding="utf-8", newline="") as fh:
        csv.writer(fh).writerows(rows)
    return owner


def test_a_piped_run_prints_progress_and_the_summary_and_logs_the_rest(workspace: Path) -> None:
    """As a newcomer runs it: no Prefect server configured, a PREFECT_HOME of its own (migrated on first use)."""
    with_display_name_owner(workspace / "src" / "customers.csv")
    home = workspace / "prefect-home"
    done = kizuna(workspace, "run", "--as-of", str(AS_OF), PREFECT_HOME=str(home))

    out = done.stdout
    assert done.returncode == 0, out
    assert len(out.splitlines()) <= 60, f"{len(out.splitlines())} lines:\n{out}"
    for noise in NOISE:
        assert noise not in out, f"{noise!r} printed:\n{out}"
    assert "- ingest" in out and "- dbt build" in out and "# kizuna daily run" in out
    assert "- normalised: customers.owner_email: 1 value rewritten" in out, "what the gate rewrote is said"
    log = logged_path(out)
    assert log.parent == (workspace / "var" / "logs").resolve()
    text = log.read_text(encoding="utf-8")
    assert "OK created sql table model" in text, "dbt's node lines go to the log"
    assert "ephemeral docs site" in text, "Great Expectations' lines go to the log"
    assert "\x1b[" not in text, "no escape codes in the log either"
    bridge = (
        yen(out, "starting_mrr")
        + yen(out, "new_mrr")
        + yen(out, "expansion_mrr")
        + yen(out, "reactivation_mrr")
        - yen(out, "contraction_mrr")
        - yen(out, "churned_mrr")
        + yen(out, "fx_impact_mrr")
    )
    assert abs(bridge - yen(out, "ending_mrr")) <= 4, "the printed bridge adds up (yen rounding aside)"

    # The temporary server (flows/server.py) registered no block types: that would import every installed Prefect
    # collection (prefect-dbt, dbt) in the server at each start. The run's flow is recorded all the same.
    with sqlite3.connect(f"file:{home / 'prefect.db'}?mode=ro", uri=True) as db:
        assert db.execute("SELECT count(*) FROM block_type").fetchone() == (0,)
        assert {state for (state,) in db.execute("SELECT state_type FROM flow_run")} == {"COMPLETED"}


def test_a_refused_load_prints_one_error_and_verbose_shows_the_rest(prefect_server: str, tmp_path: Path) -> None:
    """On the suite's Prefect server, so neither run starts a temporary one (≈ 10 s each); the piped run above
    shows a temporary server's lines stay off the terminal."""
    write_sources_by_hand(tmp_path / "src", ["C001", "C002", "C002"])
    server = {"PREFECT_API_URL": prefect_server}

    refused = kizuna(tmp_path, "run", "--as-of", str(AS_OF), **server)

    out = refused.stdout
    assert refused.returncode == 1, out
    assert len(out.splitlines()) < 20, f"{len(out.splitlines())} lines:\n{out}"
    for noise in NOISE:
        assert noise not in out, f"{noise!r} printed:\n{out}"
    assert out.count("quality gate stopped") == 1, "the error once, not three times"
    assert "customers.csv, row 4, column customer_id: duplicate value" in out
    assert "what to do:" in out
    log = logged_path(out)
    assert "Traceback" in log.read_text(encoding="utf-8"), "the traceback is kept, in the log"

    verbose = kizuna(tmp_path, "run", "--as-of", str(AS_OF), "--verbose", **server)
    assert verbose.returncode == 1
    assert "Traceback" in verbose.stdout and "customers.csv, row 4" in verbose.stdout
    assert logged_path(verbose.stdout) != log, "each run has its own log"
