#!/usr/bin/env python3
"""`labbeam store copy` of a large transfer log from SQLite to PostgreSQL: rows per second
and peak memory of the copy, against PostgreSQL's own bulk load of the same rows in the
same run (the baseline: the table exported to CSV and loaded with psql's \\copy, no
checks). Runs as root (tests/postgres.sh starts a throwaway PostgreSQL on loopback); ends
by itself.

    python3 bench/store-copy/run.py [--rows 1000000] [--bin target/release/labbeam]
"""
import argparse
import csv
import json
import random
import re
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "correct horse battery staple"
COLUMNS = [
    "id", "sender_id", "receiver_id", "sender_username", "receiver_username", "sender_device", "receiver_device",
    "sender_lab", "receiver_lab", "files", "file_count", "total_bytes", "bytes", "sha256", "status", "path",
    "requested_at", "accepted_at", "finished_at", "duration_ms", "failure_reason", "broadcast_id",
    "sender_device_key", "receiver_device_key",
]


def fill(db: Path, rows: int) -> None:
    """`rows` transfer-log rows like a busy campus makes them: random ids (so the primary
    key is written in random order), 200 users, 20 labs, a year of dates, one to three files
    with names, sizes and types, a SHA-256 for completed ones."""
    con = sqlite3.connect(db)
    rng = random.Random(7)
    now = int(time.time())
    statuses = ["completed"] * 8 + ["failed", "cancelled", "declined", "expired"]
    batch = []
    for i in range(rows):
        s, r = rng.randrange(200), rng.randrange(200)
        lab = f"Lab {rng.randrange(20):02d}"
        st = rng.choice(statuses)
        at = now - rng.randrange(365 * 86400)
        files = [{"name": f"report-{i}-{k}.pdf", "size": rng.randrange(1, 1 << 30), "mime": "application/pdf"}
                 for k in range(rng.randrange(1, 4))]
        total = sum(f["size"] for f in files)
        done = st == "completed"
        batch.append((
            f"{rng.getrandbits(128):032x}", None, None, f"user{s}", f"user{r}", f"PC-{s:03d}", f"PC-{r:03d}", lab, lab,
            json.dumps(files), len(files), total, total if done else 0,
            f"{rng.getrandbits(256):064x}" if done else "", st, rng.choice(["direct", "relay"]) if done else "",
            at, at + 5 if done else None, at + 60 if st != "expired" else None, 55000 if done else None,
            "" if done else "the peer left", None, f"{rng.getrandbits(64):016x}", f"{rng.getrandbits(64):016x}",
        ))
        if len(batch) == 20000:
            insert(con, batch)
            batch = []
    if batch:
        insert(con, batch)
    con.commit()
    con.close()


def insert(con, batch):
    marks = ",".join("?" * len(COLUMNS))
    con.executemany(f"INSERT INTO transfers ({','.join(COLUMNS)}) VALUES ({marks})", batch)


def psql(url: str, sql: str) -> None:
    subprocess.run(["psql", url, "-qAtX", "-v", "ON_ERROR_STOP=1", "-c", sql], check=True, capture_output=True)


def database(server: str, name: str) -> str:
    psql(server, f"DROP DATABASE IF EXISTS {name}")
    psql(server, f"CREATE DATABASE {name}")
    return server.rsplit("/", 1)[0] + "/" + name


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--bin", type=Path, default=ROOT / "target/release/labbeam")
    args = ap.parse_args()
    binary = args.bin.resolve()
    results = Path(__file__).resolve().parent / "results"
    results.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="labbeam-store-copy-", dir="/tmp") as tmp:
        tmp = Path(tmp)
        # A folder of its own, which the script gives to the postgres user.
        pg_dir = Path(tempfile.mkdtemp(prefix="labbeam-store-copy-pg-", dir="/tmp"))
        started = subprocess.run(["bash", str(ROOT / "tests/postgres.sh"), "start", str(pg_dir)], capture_output=True,
                                 text=True)
        if started.returncode != 0:
            sys.exit(f"tests/postgres.sh start: {started.stderr.strip()}")
        server = started.stdout.strip()
        try:
            data = tmp / "data"
            subprocess.run([str(binary), "user", "add", "boss", "--role", "admin", "--password-stdin", "--data-dir",
                            str(data)], input=PASSWORD, text=True, check=True, capture_output=True)
            source = data / "labbeam.db"
            started = time.monotonic()
            fill(source, args.rows)
            print(f"filled {args.rows} rows in {time.monotonic() - started:.0f} s; "
                  f"{source.stat().st_size / 2**20:.0f} MiB of SQLite", file=sys.stderr)

            # The copy, under GNU time for its peak memory.
            target = database(server, "copy_target")
            started = time.monotonic()
            out = subprocess.run(["/usr/bin/time", "-v", str(binary), "store", "copy", "--from", f"sqlite://{source}",
                                  "--to", target], capture_output=True, text=True)
            copy_secs = time.monotonic() - started
            if out.returncode != 0:
                sys.exit(f"store copy failed:\n{out.stdout}{out.stderr}")
            print(out.stdout, file=sys.stderr)
            rss_kib = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", out.stderr).group(1))
            cpu = re.search(r"Percent of CPU this job got: (\d+)%", out.stderr).group(1)
            copied = sum(int(m) for m in re.findall(r"^  \S+ +(\d+) rows?", out.stdout, re.M))

            # The baseline: the same rows as CSV, bulk-loaded by PostgreSQL (a migrated,
            # empty database: `user list` opens the store, which applies the migrations).
            baseline = database(server, "baseline")
            subprocess.run([str(binary), "user", "list", "--data-dir", str(tmp / "unused")], check=True,
                           capture_output=True, env={"LABBEAM_STORE_URL": baseline})
            started = time.monotonic()
            dump = tmp / "transfers.csv"
            con = sqlite3.connect(source)
            with open(dump, "w", newline="") as f:
                w = csv.writer(f)
                for row in con.execute(f"SELECT {','.join(COLUMNS)} FROM transfers"):
                    w.writerow(["\\N" if v is None else v for v in row])
            con.close()
            psql(baseline, f"\\copy transfers ({','.join(COLUMNS)}) FROM '{dump}' WITH (FORMAT csv, NULL '\\N')")
            baseline_secs = time.monotonic() - started
        finally:
            subprocess.run(["bash", str(ROOT / "tests/postgres.sh"), "stop", str(pg_dir)], capture_output=True)
            subprocess.run(["rm", "-rf", str(pg_dir)])

    report = {
        "date": time.strftime("%Y-%m-%d"),
        "rows": args.rows,
        "copied_rows": copied,
        "store_copy_secs": round(copy_secs, 1),
        "store_copy_rows_per_sec": round(copied / copy_secs),
        "store_copy_peak_rss_mib": round(rss_kib / 1024, 1),
        "store_copy_cpu_percent": int(cpu),
        "baseline_csv_copy_secs": round(baseline_secs, 1),
        "baseline_rows_per_sec": round(args.rows / baseline_secs),
    }
    (results / f"{report['date']}-{args.rows}.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
