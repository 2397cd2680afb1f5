#!/usr/bin/env python3
"""Live heap per connection by owner, from `heaptrack_print --print-leaks` output.

    heap-classify.py LEAKS.txt CONNECTIONS

The server was killed with N devices connected, so what heaptrack reports as "leaked" is
what those connections held. Each allocation site (its backtrace) is put in the first
group whose test matches its frames; the table gives bytes per connection.
"""
import re
import sys

UNIT = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3}


def sites(text):
    """(bytes, calls, frames) of every backtrace heaptrack lists under a leaking function."""
    out = []
    cur = None
    for line in text.split("\n"):
        m = re.match(r"^([0-9.]+)([KMG]?) leaked over (\d+) calls from(:?)$", line)
        if m:
            # "…from" heads a leaking function, "…from:" one of its backtraces.
            cur = None
            if m.group(4):
                cur = (float(m.group(1)) * UNIT[m.group(2)], int(m.group(3)), [])
                out.append(cur)
            continue
        if cur is None:
            continue
        m = re.match(r"^    (\S.*)$", line)
        if m:
            cur[2].append(m.group(1))
            continue
        m = re.match(r"^      at (.*)$", line)
        if m and cur[2]:
            cur[2][-1] += " @" + m.group(1).rsplit("/", 1)[-1]
    return out


def has(*keys):
    return lambda t: any(k in t for k in keys)


def engineio_task(t):
    """A task spawned in engineioxide's ws.rs, or a future of its socket's loops."""
    spawned_in_ws = "bind_new_task" in t and re.search(r"@ws\.rs:\d+", t) is not None
    return spawned_in_ws or re.search(r"ws\.rs:(155|164|170)|socket\.rs:3\d\d", t) is not None


GROUPS = [
    ("engineioxide: the socket's packet channels", lambda t: "create_session" in t and ("bounded.rs" in t or "engine.rs" in t)),
    ("engineioxide: channel blocks added by a burst of > 32 packets", lambda t: "@chan.rs" in t and "send" in t),
    ("rustls: read buffer (deframer)", has("prepare_read")),
    ("rustls: connection state, keys", has("key_schedule", "server_conn.rs", "common_state", "tls13.rs", "vecbuf")),
    ("tungstenite: write buffer (keeps the size of the largest burst)", has("buffer_frame")),
    ("tungstenite: WebSocket state + 1 KiB read buffer", has("from_raw_socket")),
    ("engineioxide: tasks (session, writer, reader, heartbeat)", engineio_task),
    ("tokio: I/O registration", has("add_source")),
    ("request parts kept for the socket (headers, extensions)", has("map_response.rs", "extensions.rs", "url_params", "path_router", "request.rs", "detach_")),
    ("hyper / axum-server: the upgraded connection", has("server.rs:")),
    ("socketioxide: the socket's handler map", lambda t: "on<>" in t and "map.rs" in t),
    ("LabBeam: auth extension, rooms, hub entry", has("events.rs", "hub.rs", "add_all", "broadcast_events", "roles.rs", "settings.rs")),
    ("SQLite page cache (shared)", has("sqlite3")),
]


def main():
    text = open(sys.argv[1], encoding="utf-8", errors="replace").read()
    n = int(sys.argv[2])
    totals = {name: 0.0 for name, _ in GROUPS}
    other = 0.0
    all_sites = sites(text)
    for size, _calls, frames in all_sites:
        t = " ".join(frames)
        for name, test in GROUPS:
            if test(t):
                totals[name] += size
                break
        else:
            other += size
    print(f"| live heap per connection (N = {n:,}) | bytes |")
    print("|---|---:|")
    for name, _ in GROUPS:
        print(f"| {name} | {totals[name] / n:,.0f} |")
    print(f"| other | {other / n:,.0f} |")
    print(f"| **total** | **{sum(s for s, _, _ in all_sites) / n:,.0f}** |")


if __name__ == "__main__":
    main()
