#!/usr/bin/env python3
"""Sign-in latency when a class starts: N people sign in at the same moment, with local
accounts (argon2id, the baseline measured in the same run) and with campus directory
accounts (a real slapd on loopback, tests/slapd.sh). Loopback only; ends by itself.

    python3 bench/login/run.py [--bin target/release/labbeam] [--sizes 40,500]

For each source and size: N threads each open a new TLS connection and POST
/api/auth/login at once (a barrier); the script prints p50/p99/max latency, how many were
answered 200 and how many 503 busy (argon2 slots full: the client is told to retry), and
the CPU time per sign-in of labbeam and of slapd (utime+stime, /proc). Directory sign-ins
run twice: the first makes the accounts (a class's first sign-in), the second finds them.
First, 20 sign-ins one after the other: what one costs without queueing.
Needs root or sudo only when slapd is not installed yet (tests/slapd.sh installs it).
"""
import argparse
import json
import os
import re
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "correct horse battery staple"
SUFFIX = "dc=campus,dc=example"


def slapd_start(dir_: Path, people: int) -> tuple[str, str]:
    out = subprocess.run(["bash", str(ROOT / "tests" / "slapd.sh"), "start", str(dir_)], check=True,
                         capture_output=True, text=True).stdout.split()
    ldap, ldaps = out[0], out[1]
    secret = (dir_ / "password").read_text()
    ldif = []
    for i in range(people):
        uid = f"bench{i:04d}"
        ldif.append(f"dn: uid={uid},ou=people,{SUFFIX}\nobjectClass: inetOrgPerson\nuid: {uid}\ncn: Bench {i}\n"
                    f"sn: {i}\nuserPassword: {secret}\n")
    members = "".join(f"member: uid=bench{i:04d},ou=people,{SUFFIX}\n" for i in range(people))
    ldif.append(f"dn: cn=students,ou=groups,{SUFFIX}\nchangetype: modify\nadd: member\n{members}")
    add = "\n".join(ldif[:-1])
    subprocess.run(["ldapadd", "-x", "-H", ldap, "-D", f"cn=admin,{SUFFIX}", "-w", secret], input=add, text=True,
                   check=True, capture_output=True)
    subprocess.run(["ldapmodify", "-x", "-H", ldap, "-D", f"cn=admin,{SUFFIX}", "-w", secret], input=ldif[-1],
                   text=True, check=True, capture_output=True)
    return ldaps, secret


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Server:
    def __init__(self, binary: Path, data: Path, config: Path):
        self.proc = subprocess.Popen(
            [str(binary), "serve", "--config", str(config), "--data-dir", str(data), "--http-listen", "127.0.0.1:0",
             "--turn-listen", "127.0.0.1:0"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env={"LABBEAM_LOG_LEVEL": "warn"})
        port = None
        assert self.proc.stdout
        for line in self.proc.stdout:
            m = re.search(r"Open:\s+https://[^:]+:(\d+)/", line)
            if m:
                port = int(m.group(1))
            if not line.strip() and port:
                break
        if port is None:
            raise SystemExit("labbeam serve did not print its address")
        self.base = f"https://127.0.0.1:{port}"
        self.ctx = ssl.create_default_context(cafile=str(data / "tls" / "cert.pem"))
        self.ctx.check_hostname = False

    def login(self, username: str, password: str) -> tuple[int, float]:
        req = urllib.request.Request(self.base + "/api/auth/login", method="POST",
                                     data=json.dumps({"username": username, "password": password}).encode(),
                                     headers={"content-type": "application/json"})
        t = time.perf_counter()
        try:
            with urllib.request.urlopen(req, context=self.ctx, timeout=60) as r:
                r.read()
                status = r.status
        except urllib.error.HTTPError as e:
            status = e.code
        return status, (time.perf_counter() - t) * 1000

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=15)


def wave(server: Server, users: list[str], password: str, slapd: int, at_once: bool = True) -> dict:
    """Sign-ins of `users`, all at once (a barrier) or one after the other."""
    results: list[tuple[int, float]] = [(0, 0.0)] * len(users)
    barrier = threading.Barrier(len(users))

    def one(i: int, name: str):
        barrier.wait()
        results[i] = server.login(name, password)

    cpu = cpu_seconds(server.proc.pid)
    directory_cpu = cpu_seconds(slapd)
    if at_once:
        threads = [threading.Thread(target=one, args=(i, u)) for i, u in enumerate(users)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    else:
        for i, u in enumerate(users):
            results[i] = server.login(u, password)
    cpu = cpu_seconds(server.proc.pid) - cpu
    directory_cpu = cpu_seconds(slapd) - directory_cpu
    ok = sorted(ms for status, ms in results if status == 200)
    busy = sum(1 for status, _ in results if status == 503)
    other = [status for status, _ in results if status not in (200, 503)]
    if other:
        raise SystemExit(f"unexpected answers: {sorted(set(other))}")
    q = statistics.quantiles(ok, n=100) if len(ok) > 1 else ok * 99
    return {"ok": len(ok), "busy": busy, "p50": statistics.median(ok), "p99": q[98], "max": ok[-1],
            "cpu_ms": cpu * 1000 / max(len(ok), 1), "slapd_ms": directory_cpu * 1000 / max(len(ok), 1)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=str(ROOT / "target" / "release" / "labbeam"))
    ap.add_argument("--sizes", default="40,500")
    args = ap.parse_args()
    binary = Path(args.bin)
    if not binary.exists():
        sys.exit(f"{binary} not found: build it with cargo build --release (or pass --bin)")
    sizes = [int(s) for s in args.sizes.split(",")]
    people = max(sizes)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        ldaps, secret = slapd_start(tmp / "slapd", people)
        try:
            data = tmp / "data"
            for i in range(people):
                subprocess.run([str(binary), "user", "add", f"local{i:04d}", "--role", "student", "--password-stdin",
                                "--data-dir", str(data)], input=PASSWORD, text=True, check=True, capture_output=True)
            config = tmp / "labbeam.toml"
            config.write_text(
                f"[http]\nmax_connections_per_address = {people * 2}\n"
                f"[auth]\nmax_failures_per_address = {people * 2}\n"
                f"[auth.ldap]\nurl = \"{ldaps}\"\nca_file = \"{tmp / 'slapd' / 'ca.pem'}\"\n"
                f"bind_dn = \"cn=labbeam,ou=services,{SUFFIX}\"\nbind_password_file = \"{tmp / 'slapd' / 'password'}\"\n"
                f"user_base = \"ou=people,{SUFFIX}\"\n"
                f"[[auth.role_map]]\ngroup = \"cn=students,ou=groups,{SUFFIX}\"\nrole = \"student\"\n")
            server = Server(binary, data, config)
            slapd = int((tmp / "slapd" / "slapd.pid").read_text())
            rows = []
            try:
                # One after the other, each alone: what one sign-in costs without queueing.
                rows.append(("local, 20 one after the other",
                             wave(server, [f"local{i:04d}" for i in range(20)], PASSWORD, slapd, at_once=False)))
                first = [f"bench{i:04d}" for i in range(people - 20, people)]
                rows.append(("directory, 20 one after the other, first",
                             wave(server, first, secret, slapd, at_once=False)))
                rows.append(("directory, 20 one after the other, again",
                             wave(server, first, secret, slapd, at_once=False)))
                for n in sizes:
                    rows.append((f"local (argon2id), {n} at once",
                                 wave(server, [f"local{i:04d}" for i in range(n)], PASSWORD, slapd)))
                    ldap_users = [f"bench{i:04d}" for i in range(n)]
                    rows.append((f"directory, {n} at once, first sign-in", wave(server, ldap_users, secret, slapd)))
                    rows.append((f"directory, {n} at once, again", wave(server, ldap_users, secret, slapd)))
            finally:
                server.stop()
        finally:
            subprocess.run(["bash", str(ROOT / "tests" / "slapd.sh"), "stop", str(tmp / "slapd")], check=False)
    print(f"{'sign-ins':<42} {'ok':>5} {'503':>5} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}"
          f" {'labbeam CPU ms':>15} {'slapd CPU ms':>13}")
    for name, r in rows:
        print(f"{name:<42} {r['ok']:>5} {r['busy']:>5} {r['p50']:>8.1f} {r['p99']:>8.1f} {r['max']:>8.1f}"
              f" {r['cpu_ms']:>15.2f} {r['slapd_ms']:>13.2f}")
    print("(CPU ms are per successful sign-in; 503 = busy, argon2 slots full for 3 s: the client retries)")


if __name__ == "__main__":
    main()
