#!/usr/bin/env python3
"""Portal page times with 100,000 transfer-log rows, against the same pages on a nearly
empty log in the same run (the baseline). Loopback only; ends by itself.

    python3 bench/portal/run.py [--rows 100000] [--bin target/release/labbeam]
"""
import argparse
import json
import random
import re
import sqlite3
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "correct horse battery staple"
PAGES = [
    "/admin/transfers",
    "/admin/transfers?status=failed",
    "/admin/transfers?user=user17",
    "/admin/transfers?lab=Lab%2007&path=relay",
    "/admin/transfers?from=2026-01-01&to=2026-01-31",
    "/admin",
    "/api/transfers?limit=50",
]


def fill(db: Path, rows: int) -> None:
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
        size = rng.randrange(1, 4 << 30)
        batch.append((
            f"t{i:08x}", f"user{s}", f"user{r}", "PC", "PC", lab, lab,
            json.dumps([{"name": f"file{i}.bin", "size": size, "mime": ""}]), 1, size,
            size if st == "completed" else 0, "", st, rng.choice(["direct", "relay"]), at, at + 5, at + 60, 55000, "",
        ))
        if len(batch) == 10000:
            insert(con, batch)
            batch = []
    if batch:
        insert(con, batch)
    con.commit()
    con.close()


def insert(con, batch):
    con.executemany(
        "INSERT INTO transfers (id, sender_username, receiver_username, sender_device, receiver_device, sender_lab,"
        " receiver_lab, files, file_count, total_bytes, bytes, sha256, status, path, requested_at, accepted_at,"
        " finished_at, duration_ms, failure_reason) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        batch,
    )


def measure(binary: Path, rows: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        subprocess.run([str(binary), "user", "add", "boss", "--role", "admin", "--password-stdin", "--data-dir", str(data)],
                       input=PASSWORD, text=True, check=True, capture_output=True)
        fill(data / "labbeam.db", rows)
        server = subprocess.Popen(
            [str(binary), "serve", "--data-dir", str(data), "--http-listen", "127.0.0.1:0", "--turn-listen", "127.0.0.1:0"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env={"LABBEAM_LOG_LEVEL": "warn"})
        try:
            port = None
            for line in server.stdout:
                m = re.search(r"Open:\s+https://[^:]+:(\d+)/", line)
                if m:
                    port = int(m.group(1))
                if not line.strip() and port:
                    break
            ctx = ssl.create_default_context(cafile=str(data / "tls" / "cert.pem"))
            ctx.check_hostname = False
            base = f"https://127.0.0.1:{port}"
            req = urllib.request.Request(base + "/api/auth/login", method="POST",
                                         data=json.dumps({"username": "boss", "password": PASSWORD}).encode(),
                                         headers={"content-type": "application/json"})
            with urllib.request.urlopen(req, context=ctx) as r:
                cookie = r.headers["set-cookie"].split(";")[0]
            result = {}
            for page in PAGES:
                times = []
                for _ in range(7):
                    t = time.perf_counter()
                    with urllib.request.urlopen(urllib.request.Request(base + page, headers={"cookie": cookie}),
                                                context=ctx) as r:
                        r.read()
                        assert r.status == 200, page
                    times.append((time.perf_counter() - t) * 1000)
                result[page] = statistics.median(times)
            return result
        finally:
            server.terminate()
            server.wait(timeout=15)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--bin", default=str(ROOT / "target" / "release" / "labbeam"))
    args = ap.parse_args()
    binary = Path(args.bin)
    if not binary.exists():
        sys.exit(f"{binary} not found: build it with cargo build --release (or pass --bin)")
    base = measure(binary, 100)
    big = measure(binary, args.rows)
    print(f"{'page':<48} {'100 rows ms':>12} {args.rows:>9,} rows ms {'ratio':>7}")
    for page in PAGES:
        print(f"{page:<48} {base[page]:>12.1f} {big[page]:>17.1f} {big[page] / base[page]:>7.1f}")


if __name__ == "__main__":
    main()
