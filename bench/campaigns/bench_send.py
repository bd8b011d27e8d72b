"""The campaign step alone (select, send gate, claim, render, outbox) at 10,000 customers, two commits side by side.

    python bench/campaigns/bench_send.py [--customers 10000] [--rounds 3] [--before layers] [--work DIR]

Builds the demo once (`kizuna demo-data`, then `kizuna run` into a warehouse, under DIR), clears what the
run's campaigns left (ledger, recipients, exclusions, call list) so every campaign finds its audience unsent,
and checks out the --before commit in a git worktree beside this tree. Each round then runs both trees in
turn (which goes first alternates) on a fresh copy of that warehouse: every enabled campaign through
`kizuna.pipeline.send_campaign`, each tree in its own process, with Great Expectations imported before the
clock starts (`kizuna run` has it loaded by the gate). It prints wall and CPU seconds per tree and round, and
whether both trees selected, recorded and wrote the same: the recipients and ledger rows (timestamps left out)
and every .eml file with its Date header and random MIME boundary blanked.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from kizuna.core.settings import PROJECT_DIR

AS_OF = "2026-12-05"
ENV = {
    "KIZUNA_SEND_WINDOW": "00:00-24:00",
    "KIZUNA_SEND_ON_BUSINESS_DAYS_ONLY": "false",
    "KIZUNA_APPROVAL_REQUIRED": "never",
}
CLEARED = ("send_ledger", "campaign_recipients", "campaign_exclusions", "call_list", "template_intent_links")

# Runs in the tree under test (its src/ first on sys.path): times the campaign step, then fingerprints it.
CHILD = """
import datetime as dt, hashlib, json, os, re, resource, sys, time
from pathlib import Path
import duckdb
import great_expectations  # noqa: F401  (loaded by the gate in `kizuna run`; not the campaign step's cost)
from kizuna import pipeline
from kizuna.core.settings import Settings

work, as_of = Path(sys.argv[1]), dt.date.fromisoformat(sys.argv[2])
settings = Settings(warehouse=work / "w.duckdb", var_dir=work / "var", outbox_dir=work / "outbox")
cpu0, t0 = time.process_time(), time.perf_counter()
sent = sum(pipeline.send_campaign(settings, c, "run-bench", as_of).sent for c in pipeline.enabled_campaigns(settings))
wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0

def digest(con, table, order):
    cols = [r[0] for r in con.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = 'ops' AND table_name = ? "
        "AND data_type NOT LIKE 'TIMESTAMP%' ORDER BY column_name", [table]).fetchall()]
    rows = con.execute(f"SELECT {', '.join(cols)} FROM ops.{table} ORDER BY {order}").fetchall()
    return hashlib.sha256(repr(rows).encode()).hexdigest()[:16], len(rows)

con = duckdb.connect(str(settings.warehouse), read_only=True)
recipients = digest(con, "campaign_recipients", "campaign, contact_id, message_key")
sends = digest(con, "send_ledger", "message_key")
con.close()
eml = hashlib.sha256()
for path in sorted(settings.outbox_dir.glob("*.eml")):
    data = path.read_bytes()
    boundary = re.search(rb'boundary="([^"]+)"', data).group(1)
    data = re.sub(rb"(?m)^Date: .*$", b"Date: -", data.replace(boundary, b"BOUNDARY"))
    eml.update(path.name.encode() + hashlib.sha256(data).digest())
print(json.dumps({"wall": wall, "cpu": cpu, "sent": sent, "recipients": recipients, "ledger": sends,
                  "eml": eml.hexdigest()[:16], "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def kizuna(*args: str, env: dict[str, str]) -> None:
    subprocess.run([sys.executable, "-m", "kizuna.cli", *args], check=True, env=env, stdout=subprocess.DEVNULL)


def prepare(work: Path, customers: int) -> Path:
    """A warehouse as `kizuna run` leaves it, minus what its campaigns wrote: built once, reused."""
    base = work / "base.duckdb"
    if base.exists():
        return base
    env = {**os.environ, **ENV, "KIZUNA_VAR_DIR": str(work / "var"), "KIZUNA_OUTBOX_DIR": str(work / "outbox")}
    source = ("--customers", str(customers), "--seed", "42", "--as-of", AS_OF, "--out", str(work / "src"))
    kizuna("demo-data", *source, env=env)
    built = work / "built.duckdb"
    kizuna("run", "--source-dir", str(work / "src"), "--warehouse", str(built), "--as-of", AS_OF, env=env)
    import duckdb

    con = duckdb.connect(str(built))
    for table in CLEARED:
        con.execute(f"DELETE FROM ops.{table}")
    con.close()
    built.rename(base)
    return base


def worktree(commit: str, work: Path) -> Path:
    tree = work / f"tree-{commit}"
    if not tree.exists():
        subprocess.run(["git", "-C", str(PROJECT_DIR), "worktree", "add", "--detach", str(tree), commit], check=True)
    return tree


def run_tree(tree: Path, base: Path, work: Path) -> dict[str, object]:
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    shutil.copy(base, work / "w.duckdb")
    env = {**os.environ, **ENV, "PYTHONPATH": f"{tree / 'src'}{os.pathsep}{tree}", "KIZUNA_VAR_DIR": str(work / "var")}
    # A script file, not `python -c`: pyspark (imported by Great Expectations when installed) exits at import
    # when __main__ has no __file__, taking it for a doctest run.
    script = work / "child.py"
    script.write_text(CHILD, encoding="utf-8")
    out = subprocess.run(
        [sys.executable, str(script), str(work), AS_OF], check=True, env=env, cwd=tree, capture_output=True, text=True
    )
    result: dict[str, object] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--before", default="layers", help="the commit to compare with (a git worktree of it)")
    parser.add_argument("--work", type=Path, default=Path("/tmp/kizuna-bench-send"))
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    base = prepare(args.work, args.customers)
    trees = {f"before ({args.before})": worktree(args.before, args.work), "after (this tree)": PROJECT_DIR}
    results: dict[str, list[dict[str, object]]] = {name: [] for name in trees}
    for round_ in range(1, args.rounds + 1):
        # Each round starts with the other tree: a run pays part of the previous run's file system work (its
        # thousands of files deleted, its dirty pages), which would otherwise always land on the same tree.
        order = list(trees.items()) if round_ % 2 else list(trees.items())[::-1]
        for name, tree in order:
            result = run_tree(tree, base, args.work / "round")
            results[name].append(result)
            load = os.getloadavg()[0]
            print(
                f"round {round_} {name}: {result['wall']:.1f} s wall, {result['cpu']:.1f} s CPU, "
                f"{result['sent']:,} messages, peak {result['peak_mb']:.0f} MB, load {load:.1f}",
                flush=True,
            )
    fingerprints = {
        name: {k: rs[0][k] for k in ("sent", "recipients", "ledger", "eml")} for name, rs in results.items()
    }
    same = len({json.dumps(f, sort_keys=True) for f in fingerprints.values()}) == 1
    for name, rs in results.items():
        best = min(rs, key=lambda r: float(str(r["wall"])))
        print(f"{name}: best {best['wall']:.1f} s wall, {best['cpu']:.1f} s CPU; {fingerprints[name]}")
    print("same recipients, ledger rows and .eml bytes (Date and boundary blanked):", "yes" if same else "NO")


if __name__ == "__main__":
    main()
