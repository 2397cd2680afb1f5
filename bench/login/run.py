#!/usr/bin/env python3
"""Sign-in latency when a class starts: N people sign in at the same moment, with local
accounts (argon2id, the baseline measured in the same run), with campus directory
accounts (a real slapd on loopback, tests/slapd.sh) and through an OpenID provider (npm
oidc-provider on loopback, tests/oidc/provider.mjs). Loopback only; ends by itself.

    python3 bench/login/run.py [--bin target/release/labbeam] [--sizes 40,500]

For each source and size: N threads each open a new TLS connection and POST
/api/auth/login at once (a barrier); the script prints p50/p99/max latency, how many were
answered 200 and how many 503 busy (argon2 slots full: the client is told to retry), and
the CPU time per sign-in of labbeam and of slapd (utime+stime, /proc). Directory sign-ins
run twice: the first makes the accounts (a class's first sign-in), the second finds them.
First, 20 sign-ins one after the other: what one costs without queueing.

OpenID sign-ins are two requests to LabBeam with the person at the provider in between:
N browsers open /api/auth/oidc/bench/start at once (timed), sign in at the provider (not
timed: that is the person typing), then come back to the callback at once (timed: the
code exchange, the ID token check, userinfo and the account). A row gives start + callback
per person, and the CPU time of labbeam and of the provider in the two timed steps.
Needs root or sudo only when slapd is not installed yet (tests/slapd.sh installs it), and
`npm ci` in tests/oidc.
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
import urllib.parse
import urllib.request
from http.cookiejar import CookieJar
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


def provider_start(dir_: Path, people: int) -> tuple[subprocess.Popen, dict]:
    dir_.mkdir()
    proc = subprocess.Popen(["node", str(ROOT / "tests" / "oidc" / "provider.mjs"), "--dir", str(dir_), "--people",
                             str(people)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert proc.stdout
    info = json.loads(proc.stdout.readline())
    info["password"] = Path(info["passwordFile"]).read_text()
    return proc, info


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


class Browser:
    """One person's browser: its own cookies, redirects looked at rather than followed, a new
    TLS connection per request; trusts LabBeam's certificate and the provider's CA."""

    def __init__(self, ctx: ssl.SSLContext):
        self.opener = urllib.request.build_opener(NoRedirect, urllib.request.HTTPSHandler(context=ctx),
                                                  urllib.request.HTTPCookieProcessor(CookieJar()))

    def go(self, url: str, form: dict | None = None) -> tuple[int, str, float]:
        """(status, Location or '', ms)."""
        data = urllib.parse.urlencode(form).encode() if form is not None else None
        req = urllib.request.Request(url, data=data, headers={"accept": "application/json"})
        t = time.perf_counter()
        try:
            with self.opener.open(req, timeout=60) as r:
                r.read()
                status, location = r.status, r.headers.get("location", "")
        except urllib.error.HTTPError as e:
            e.read()
            status, location = e.code, e.headers.get("location", "")
        return status, urllib.parse.urljoin(url, location) if location else "", (time.perf_counter() - t) * 1000


def at_once(jobs) -> list:
    """Runs every job in its own thread, all released by one barrier; their results in order."""
    results = [None] * len(jobs)
    barrier = threading.Barrier(len(jobs))

    def run(i, job):
        barrier.wait()
        results[i] = job()

    threads = [threading.Thread(target=run, args=(i, job)) for i, job in enumerate(jobs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def oidc_wave(server: "Server", users: list[str], op: dict, op_pid: int) -> dict:
    ctx = ssl.create_default_context(cafile=str(server.cert))
    ctx.load_verify_locations(cafile=op["ca"])
    ctx.check_hostname = False
    browsers = [Browser(ctx) for _ in users]
    start_url = server.base + "/api/auth/oidc/bench/start"
    cpu, op_cpu = cpu_seconds(server.proc.pid), cpu_seconds(op_pid)
    starts = at_once([lambda b=b: b.go(start_url) for b in browsers])
    cpu, op_cpu = cpu_seconds(server.proc.pid) - cpu, cpu_seconds(op_pid) - op_cpu
    if any(status != 303 for status, _, _ in starts):
        raise SystemExit(f"unexpected answers to start: {sorted(set(status for status, _, _ in starts))}")

    def at_provider(b: Browser, authorize: str, user: str) -> str:
        status, interaction, _ = b.go(authorize)
        if interaction.startswith(server.base):
            return interaction  # signed in there already
        status, resume, _ = b.go(interaction + "/login", {"username": user, "password": op["password"]})
        status, callback, _ = b.go(resume)
        if not callback.startswith(server.base):
            return f"the provider did not send {user} back: {status} {callback!r} (after {interaction}, {resume})"
        return callback

    callbacks = at_once([lambda b=b, s=s, u=u: at_provider(b, s[1], u) for b, s, u in zip(browsers, starts, users)])
    lost = [c for c in callbacks if not c.startswith(server.base)]
    if lost:
        raise SystemExit(f"{len(lost)} of {len(users)}: {lost[0]}")
    cpu2, op_cpu2 = cpu_seconds(server.proc.pid), cpu_seconds(op_pid)
    done = at_once([lambda b=b, c=c: b.go(c) for b, c in zip(browsers, callbacks)])
    cpu += cpu_seconds(server.proc.pid) - cpu2
    op_cpu += cpu_seconds(op_pid) - op_cpu2
    bad = [(s[0], d[0]) for s, d in zip(starts, done) if s[0] != 303 or d[0] != 200]
    if bad:
        raise SystemExit(f"unexpected answers (start, callback): {sorted(set(bad))}")
    ms = sorted(s[2] + d[2] for s, d in zip(starts, done))
    q = statistics.quantiles(ms, n=100) if len(ms) > 1 else ms * 99
    return {"ok": len(ms), "busy": 0, "p50": statistics.median(ms), "p99": q[98], "max": ms[-1],
            "cpu_ms": cpu * 1000 / len(ms), "slapd_ms": op_cpu * 1000 / len(ms)}


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
        self.cert = data / "tls" / "cert.pem"
        self.ctx = ssl.create_default_context(cafile=str(self.cert))
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
        op_proc, op = provider_start(tmp / "oidc", people)
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
                f"[[auth.oidc]]\nname = \"Bench\"\nissuer = \"{op['issuer']}\"\nclient_id = \"{op['clientId']}\"\n"
                f"client_secret_file = \"{op['secretFile']}\"\nca_file = \"{op['ca']}\"\n"
                f"scopes = [\"openid\", \"profile\", \"groups\"]\n"
                f"[[auth.role_map]]\ngroup = \"cn=students,ou=groups,{SUFFIX}\"\nrole = \"student\"\n"
                f"[[auth.role_map]]\ngroup = \"students\"\nrole = \"student\"\n")
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
                    sso_users = [f"sso{i:04d}" for i in range(n)]
                    rows.append((f"OpenID, {n} at once, first sign-in", oidc_wave(server, sso_users, op, op_proc.pid)))
                    rows.append((f"OpenID, {n} at once, again", oidc_wave(server, sso_users, op, op_proc.pid)))
            finally:
                server.stop()
        finally:
            op_proc.terminate()
            subprocess.run(["bash", str(ROOT / "tests" / "slapd.sh"), "stop", str(tmp / "slapd")], check=False)
    print(f"{'sign-ins':<42} {'ok':>5} {'503':>5} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}"
          f" {'labbeam CPU ms':>15} {'slapd/OP CPU ms':>15}")
    for name, r in rows:
        print(f"{name:<42} {r['ok']:>5} {r['busy']:>5} {r['p50']:>8.1f} {r['p99']:>8.1f} {r['max']:>8.1f}"
              f" {r['cpu_ms']:>15.2f} {r['slapd_ms']:>15.2f}")
    print("(CPU ms are per successful sign-in; 503 = busy, argon2 slots full for 3 s: the client retries;")
    print(" OpenID rows: start + callback per person, the provider's CPU in the last column)")


if __name__ == "__main__":
    main()
