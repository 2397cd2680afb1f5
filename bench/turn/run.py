#!/usr/bin/env python3
"""TURN relay benchmark: LabBeam against coturn, same load, same run, loopback only.

Starts `labbeam serve` and coturn's `turnserver` on other ports (both on 127.0.0.1, both
with the same TURN REST secret), then drives each with coturn's `turnutils_uclient` in
client-to-client mode (-y: every message goes client -> relay A -> relay B -> client, so
each message crosses the relay twice) at full speed (-z 0), for 1, 10 and 50 allocations
over UDP and TCP. Each case runs on both servers back to back (alternating which goes
first), repeated --repeats times. It reports, per case, medians of relayed throughput,
loss and server CPU seconds per GB received, and the ratios LabBeam/coturn.

Every run is bounded: a fixed number of messages, and a timeout. Nothing leaves loopback.
"""

import argparse
import ssl
import urllib.request
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))


def cpu_seconds(pid):
    """CPU time of every thread of `pid`, in seconds, with nanosecond resolution
    (/proc/PID/stat counts 10 ms ticks, too coarse for runs of a fraction of a CPU second).
    Both servers keep their threads for their whole life, so no thread's time is lost."""
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                total += int(f.read().split()[0])
        except (FileNotFoundError, ProcessLookupError):
            pass
    return total / 1e9


def udp_receive_buffer_errors():
    """The kernel's count of UDP datagrams dropped for a full receive buffer (all sockets)."""
    with open("/proc/net/snmp") as f:
        rows = [line.split() for line in f if line.startswith("Udp:")]
    header, values = rows[0], rows[1]
    return int(values[header.index("RcvbufErrors")])


def listening_udp(port):
    """True once some socket is bound to UDP `port` on 127.0.0.1 (from /proc/net/udp)."""
    want = f"0100007F:{port:04X}"
    with open("/proc/net/udp") as f:
        return any(line.split()[1] == want for line in f.readlines()[1:])


def wait_for(pred, timeout, what):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(0.1)
    sys.exit(f"bench: timed out waiting for {what}")


class LabBeam:
    name = "labbeam"

    def __init__(self, binary, workdir, port, relay_range, wrapper=(), name="labbeam"):
        self.name = name
        os.makedirs(workdir, exist_ok=True)
        self.binary = binary
        self.data = os.path.join(workdir, "labbeam-data")
        config = os.path.join(workdir, "labbeam.toml")
        with open(config, "w") as f:
            f.write(
                "[turn]\n"
                f"relay_port_min = {relay_range[0]}\nrelay_port_max = {relay_range[1]}\n"
                "max_allocations_per_user = 1000\nmax_allocations = 1000\ntls_port = 0\n"
            )
        self.out = open(os.path.join(workdir, "labbeam.out"), "w+")
        self.log = open(os.path.join(workdir, "labbeam.log"), "w")
        self.proc = subprocess.Popen(
            [*wrapper, binary, "serve", "--config", config, "--data-dir", self.data,
             "--http-listen", "127.0.0.1:0", "--turn-listen", f"127.0.0.1:{port}"],
            stdout=self.out, stderr=self.log, stdin=subprocess.DEVNULL,
        )
        self.port = port

        def banner():
            self.out.seek(0)
            return "TURN:" in self.out.read()
        wait_for(banner, 300, "labbeam to start")
        self.out.seek(0)
        self.https = re.search(r"Open:\s+https://[^:]+:(\d+)/", self.out.read()).group(1)
        subprocess.run([binary, "user", "add", "bench", "--role", "student", "--password-stdin",
                        "--data-dir", self.data], input=b"bench password 123\n", check=True,
                       stdout=subprocess.DEVNULL)
        self.user = "2"  # the first admin is 1
        with open(os.path.join(self.data, "turn.key")) as f:
            self.secret = f.read().strip()
        time.sleep(6)  # the relay reloads its user view every 5 s

    def drops(self):
        """LabBeam's own count of datagrams it dropped, by reason (from /metrics)."""
        # Loopback only, to the server this script started with its self-signed certificate.
        context = ssl.create_default_context(cafile=os.path.join(self.data, "tls", "cert.pem"))
        context.check_hostname = False
        with urllib.request.urlopen(f"https://127.0.0.1:{self.https}/metrics", context=context, timeout=10) as r:
            text = r.read().decode()
        return {m.group(1): float(m.group(2)) for m in
                re.finditer(r'^labbeam_turn_dropped_datagrams_total\{reason="(\w+)"\} (\S+)$', text, re.M)}

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()


class Coturn:
    name = "coturn"

    def __init__(self, workdir, port, relay_range, secret, wrapper=()):
        self.port = port
        self.user = "2"
        self.secret = secret
        self.log = open(os.path.join(workdir, "coturn.log"), "w")
        self.proc = subprocess.Popen(
            [*wrapper, "turnserver", "-n", "--listening-ip=127.0.0.1", f"--listening-port={port}",
             "--relay-ip=127.0.0.1", f"--min-port={relay_range[0]}", f"--max-port={relay_range[1]}",
             "--use-auth-secret", f"--static-auth-secret={secret}", "--realm=labbeam",
             "--allow-loopback-peers", "--no-cli", "--no-tls", "--no-dtls",
             f"--db={os.path.join(workdir, 'turndb')}", f"--pidfile={os.path.join(workdir, 'turn.pid')}",
             "--no-software-attribute", "--simple-log", "--log-file=stdout"],
            stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
        wait_for(lambda: self.proc.poll() is not None or listening_udp(port), 300, "turnserver to start")
        if self.proc.poll() is not None:
            sys.exit(f"bench: turnserver exited at start; see {self.log.name}")
        time.sleep(1.5)

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def last_number(text, key):
    found = re.findall(re.escape(key) + r"\s*([0-9]+)", text)
    return int(found[-1]) if found else None


def run_load(server, transport, clients, messages, size, timeout, pace_ms=0, metrics=True):
    """One bounded uclient run; returns measurements. `metrics=False` leaves LabBeam's
    /metrics alone (under callgrind, those requests would be counted too)."""
    cmd = ["turnutils_uclient", "-y", "-c", "-z", str(pace_ms), "-m", str(clients), "-n", str(messages),
           "-l", str(size), "-u", server.user, "-W", server.secret, "-p", str(server.port), "127.0.0.1"]
    if transport == "tcp":
        cmd.insert(1, "-t")
    metrics = metrics and hasattr(server, "drops")
    own0 = server.drops() if metrics else {}
    cpu0 = cpu_seconds(server.proc.pid)
    drops0 = udp_receive_buffer_errors()
    t0 = time.monotonic()
    try:
        out = subprocess.run(cmd, capture_output=True, timeout=timeout).stdout.decode(errors="replace")
    except subprocess.TimeoutExpired as e:
        out = (e.stdout or b"").decode(errors="replace")
    wall = time.monotonic() - t0
    cpu = cpu_seconds(server.proc.pid) - cpu0
    kernel_drops = udp_receive_buffer_errors() - drops0
    own = {k: v - own0.get(k, 0) for k, v in (server.drops() if metrics else {}).items()}
    sent = last_number(out, "tot_send_msgs=") or 0
    received = last_number(out, "tot_recv_msgs=") or 0
    received_bytes = received * size
    return {
        "server": server.name, "transport": transport, "allocations": 2 * clients,
        "sent": sent, "received": received, "wall_s": round(wall, 3), "server_cpu_s": round(cpu, 3),
        "kernel_udp_drops": kernel_drops,
        "server_drops": {k: v for k, v in own.items() if v},
        "throughput_mb_s": received_bytes / wall / 1e6 if wall > 0 else 0.0,
        "loss": (sent - received) / sent if sent else 1.0,
        "cpu_s_per_gb": cpu / (received_bytes / 1e9) if received_bytes else float("inf"),
    }


def callgrind_total(server, prefix):
    """Dumps `server`'s callgrind counters and returns the instructions executed (Ir) since
    the last zeroing, over all threads."""
    subprocess.run(["callgrind_control", "-d", str(server.proc.pid)], check=True, capture_output=True, timeout=120)
    directory, base = os.path.split(prefix)
    dumps = [os.path.join(directory, f) for f in os.listdir(directory) if f.startswith(base + ".")]
    newest = max(dumps, key=os.path.getmtime)
    with open(newest) as f:
        for line in f:
            if line.startswith("totals:") or line.startswith("summary:"):
                return int(line.split()[1])
    sys.exit(f"bench: no totals in {newest}")


def callgrind_zero(server):
    subprocess.run(["callgrind_control", "-z", str(server.proc.pid)], check=True, capture_output=True, timeout=120)


def instructions(args, work):
    """Instructions (user space, as counted by callgrind) each server executes per relayed
    message under the same paced uclient load. Each server runs under callgrind; for two
    message counts the counters are zeroed before the uclient run and dumped after it; the
    idle rate (measured on the same server) times the wall time is subtracted; and the
    difference between the two counts, divided by the difference in messages received,
    cancels the cost of allocating, authenticating and binding channels."""
    if not shutil.which("valgrind") or not shutil.which("callgrind_control"):
        sys.exit("bench: valgrind not found; install the Debian package valgrind")
    low, high = (int(x) for x in args.instr_messages.split(","))
    servers = []
    lb_prefix = os.path.join(work, "callgrind-labbeam")
    ct_prefix = os.path.join(work, "callgrind-coturn")
    wrapper = lambda prefix: ["valgrind", "--tool=callgrind", f"--callgrind-out-file={prefix}.%p", "--dump-instr=no"]
    labbeam = LabBeam(args.binary, work, 39478, (45000, 49999), wrapper(lb_prefix))
    servers.append((labbeam, lb_prefix))
    coturn = Coturn(work, 39578, (40000, 44999), labbeam.secret, wrapper(ct_prefix))
    servers.append((coturn, ct_prefix))
    results = []
    try:
        idle = {}
        for server, prefix in servers:
            callgrind_zero(server)
            t0 = time.monotonic()
            time.sleep(10)
            idle[server.name] = callgrind_total(server, prefix) / (time.monotonic() - t0)
            print(f"  {server.name:8} idle: {idle[server.name] / 1e3:.0f} k instructions/s", flush=True)
        for repeat in range(args.repeats):
            for transport in args.transports.split(","):
                for server, prefix in (servers if repeat % 2 == 0 else servers[::-1]):
                    points = []
                    for count in (low, high):
                        callgrind_zero(server)
                        r = run_load(server, transport, args.instr_clients, count, args.size, args.timeout,
                                     pace_ms=args.instr_pace, metrics=False)
                        ir = callgrind_total(server, prefix) - idle[server.name] * r["wall_s"]
                        points.append((ir, r["received"], r["sent"]))
                    (ir1, recv1, sent1), (ir2, recv2, sent2) = points
                    per = (ir2 - ir1) / (recv2 - recv1) if recv2 > recv1 else float("inf")
                    row = {"server": server.name, "transport": transport, "repeat": repeat,
                           "instructions_per_message": per, "points": points}
                    results.append(row)
                    print(f"  {server.name:8} {transport}: {per:8.0f} instructions per relayed message "
                          f"(received {recv1}/{sent1} and {recv2}/{sent2})", flush=True)
    finally:
        labbeam.stop()
        coturn.stop()
    print("\ntransport  LabBeam Ir/msg  coturn Ir/msg  ratio")
    summary = []
    for transport in args.transports.split(","):
        med = lambda name: statistics.median(
            r["instructions_per_message"] for r in results if r["server"] == name and r["transport"] == transport)
        lb, ct = med("labbeam"), med("coturn")
        summary.append({"transport": transport, "labbeam": lb, "coturn": ct, "ratio": lb / ct})
        print(f"{transport:9}  {lb:14.0f}  {ct:13.0f}  {lb / ct:5.2f}")
    print(f"\n(medians of {args.repeats} repeats; a message crosses the relay twice; logs and "
          f"callgrind dumps in {work})")
    return {"instructions": results, "summary": summary}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", default=os.environ.get("LABBEAM_BIN", os.path.join(ROOT, "target", "release", "labbeam")))
    ap.add_argument("--base-binary", default=os.environ.get("LABBEAM_BASE_BIN"),
                    help="a second labbeam (e.g. the commit before a change) measured in the same run")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--messages", type=int, default=20000, help="messages per run, spread over the clients")
    ap.add_argument("--size", type=int, default=1000, help="payload bytes per message")
    ap.add_argument("--loads", default="1,10,50", help="allocations per run (even numbers: uclient -y pairs them)")
    ap.add_argument("--transports", default="udp,tcp")
    ap.add_argument("--timeout", type=int, default=90, help="seconds before a run is cut off")
    ap.add_argument("--json", help="also write every run here")
    ap.add_argument("--instructions", action="store_true",
                    help="count instructions per relayed message under callgrind instead (steady on a loaded machine)")
    ap.add_argument("--instr-messages", default="300,900", help="the two message counts per client (--instructions)")
    ap.add_argument("--instr-clients", type=int, default=1, help="uclient -m (--instructions)")
    ap.add_argument("--instr-pace", type=int, default=5, help="ms between messages per client (--instructions)")
    args = ap.parse_args()
    for tool in ("turnutils_uclient", "turnserver"):
        if not shutil.which(tool):
            sys.exit(f"bench: {tool} not found; install the Debian package coturn")
    if not os.access(args.binary, os.X_OK):
        sys.exit(f"bench: {args.binary} not found; build it with `cargo build --release` or pass --binary")

    work = tempfile.mkdtemp(prefix="turn-bench-")
    if args.instructions:
        out = instructions(args, work)
        if args.json:
            os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
            with open(args.json, "w") as f:
                json.dump({**out, "args": vars(args)}, f, indent=1)
        return
    labbeam = LabBeam(args.binary, work, 39478, (45000, 49999))
    coturn = Coturn(work, 39578, (40000, 44999), labbeam.secret)
    base = None
    if args.base_binary:
        base = LabBeam(args.base_binary, os.path.join(work, "base"), 39678, (35000, 39999), name="labbeam-base")
    servers = [labbeam, coturn] + ([base] if base else [])
    runs = []
    try:
        for repeat in range(args.repeats):
            for transport in args.transports.split(","):
                for load in [int(x) for x in args.loads.split(",")]:
                    clients = max(1, load // 2)
                    per_client = max(1, args.messages // (2 * clients))
                    order = servers if repeat % 2 == 0 else servers[::-1]
                    for server in order:
                        r = run_load(server, transport, clients, per_client, args.size, args.timeout)
                        r["repeat"] = repeat
                        runs.append(r)
                        print(f"  {r['server']:8} {transport} {r['allocations']:3} alloc: "
                              f"{r['throughput_mb_s']:7.2f} MB/s  loss {100 * r['loss']:5.2f} %  "
                              f"{r['cpu_s_per_gb']:7.2f} CPU s/GB  kernel UDP drops {r['kernel_udp_drops']}"
                              + (f"  relay drops {r['server_drops']}" if r.get("server_drops") else ""),
                              flush=True)
                        time.sleep(1)
    finally:
        for server in servers:
            server.stop()

    print("\ncase              LabBeam MB/s  coturn MB/s  thr ratio  loss LB/ct (%)   CPU s/GB LB/ct   CPU ratio")
    summary = []
    for transport in args.transports.split(","):
        for load in [int(x) for x in args.loads.split(",")]:
            alloc = 2 * max(1, load // 2)
            pick = lambda name: [r for r in runs if r["server"] == name and r["transport"] == transport and r["allocations"] == alloc]
            lb, ct = pick("labbeam"), pick("coturn")
            med = lambda rs, k: statistics.median(r[k] for r in rs)
            thr_ratios = [a["throughput_mb_s"] / b["throughput_mb_s"] for a, b in zip(lb, ct) if b["throughput_mb_s"] > 0]
            cpu_ratios = [a["cpu_s_per_gb"] / b["cpu_s_per_gb"] for a, b in zip(lb, ct) if b["cpu_s_per_gb"] > 0]
            row = {
                "transport": transport, "allocations": alloc,
                "labbeam_mb_s": med(lb, "throughput_mb_s"), "coturn_mb_s": med(ct, "throughput_mb_s"),
                "throughput_ratio": statistics.median(thr_ratios) if thr_ratios else None,
                "labbeam_loss": med(lb, "loss"), "coturn_loss": med(ct, "loss"),
                "labbeam_cpu_s_per_gb": med(lb, "cpu_s_per_gb"), "coturn_cpu_s_per_gb": med(ct, "cpu_s_per_gb"),
                "cpu_ratio": statistics.median(cpu_ratios) if cpu_ratios else None,
            }
            summary.append(row)
            fmt = lambda v: "n/a" if v is None else f"{v:.2f}"
            print(f"{transport} {alloc:3} alloc      {row['labbeam_mb_s']:8.2f}    {row['coturn_mb_s']:8.2f}"
                  f"      {fmt(row['throughput_ratio']):>5}    {100 * row['labbeam_loss']:5.2f} / {100 * row['coturn_loss']:5.2f}"
                  f"    {row['labbeam_cpu_s_per_gb']:6.1f} / {row['coturn_cpu_s_per_gb']:6.1f}    {fmt(row['cpu_ratio']):>5}")
    print(f"\n(medians of {args.repeats} repeats; ratios are LabBeam/coturn per repeat, then the median; "
          f"logs in {work})")
    if base:
        print("\ncase              LabBeam MB/s  base MB/s  thr ratio   CPU s/GB LB/base   CPU ratio")
        for transport in args.transports.split(","):
            for load in [int(x) for x in args.loads.split(",")]:
                alloc = 2 * max(1, load // 2)
                pick = lambda name: [r for r in runs if r["server"] == name and r["transport"] == transport and r["allocations"] == alloc]
                lb, bs = pick("labbeam"), pick("labbeam-base")
                med = lambda rs, k: statistics.median(r[k] for r in rs)
                thr = statistics.median(a["throughput_mb_s"] / b["throughput_mb_s"] for a, b in zip(lb, bs) if b["throughput_mb_s"] > 0)
                cpu = statistics.median(b["cpu_s_per_gb"] / a["cpu_s_per_gb"] for a, b in zip(lb, bs) if a["cpu_s_per_gb"] > 0)
                summary.append({"transport": transport, "allocations": alloc, "vs_base_throughput_ratio": thr,
                                "vs_base_cpu_efficiency_ratio": cpu})
                print(f"{transport} {alloc:3} alloc      {med(lb, 'throughput_mb_s'):8.2f}   {med(bs, 'throughput_mb_s'):8.2f}"
                      f"     {thr:5.2f}    {med(lb, 'cpu_s_per_gb'):6.1f} / {med(bs, 'cpu_s_per_gb'):6.1f}    {cpu:5.2f}")
        print("(LabBeam against the base binary, per repeat then the median; above 1 is better for both: "
              "throughput LB/base, CPU efficiency base CPU s/GB / LB CPU s/GB)")
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as f:
            json.dump({"runs": runs, "summary": summary, "args": vars(args)}, f, indent=1)


if __name__ == "__main__":
    main()
