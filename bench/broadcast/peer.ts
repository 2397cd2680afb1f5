// A lab PC for bench/broadcast without a browser: signs in to the real labbeam server, speaks
// the real broadcast protocol over Socket.IO (start, manifest, offers, links, status), and
// moves the pieces with the web client's own piece code (broadcast-pieces.ts: layout,
// manifest, have/need sets, link messages, reassembly; broadcast-forward.ts: the forwarder
// with its backpressure) — over TCP between the namespaces instead of WebRTC data channels.
// Why: nine headless Chromiums on two shared cores are CPU-bound long before 20 Mbit/s links
// are (see README.md), which would measure the CPU, not the tree.
//
// Bundled by run.mjs with esbuild; driven by JSON lines: commands on stdin, events on stdout.
//   argv: BASE USERNAME PASSWORD OWN_IP
//   stdin  {"cmd":"broadcast","file":PATH,"lab":NAME}     (the sender)
//   stdout {"ev":"ready","peerId"} | {"ev":"started","id"} | {"ev":"progress","username","state","bytes"}
//          | {"ev":"ended","id"} | {"ev":"error","message"}

import { createHash } from 'node:crypto';
import { closeSync, openSync, readSync, writeSync } from 'node:fs';
import net from 'node:net';
import { createInterface } from 'node:readline';
import { io } from 'socket.io-client';

import type { ChannelLike } from '../../web-client/src/engine/channel';
import { PieceForwarder, type PieceSource } from '../../web-client/src/engine/broadcast-forward';
import { Manifest, PieceAssembler, PieceLayout, PieceSet, decodeLink, encodeLink } from '../../web-client/src/engine/broadcast-pieces';

const [base, username, password, ownIp] = process.argv.slice(2) as [string, string, string, string];
const out = (v: unknown): void => void process.stdout.write(`${JSON.stringify(v)}\n`);
const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

/** A TCP socket as a `ChannelLike`: frames of [type 0 text | 1 binary][u32 length][payload]. */
class TcpChannel implements ChannelLike {
  readyState: RTCDataChannelState = 'open';
  bufferedAmountLowThreshold = 0;
  readonly #socket: net.Socket;
  readonly #listeners = new Map<string, Set<() => void>>();
  #buf = Buffer.alloc(0);

  constructor(socket: net.Socket, onMessage: (m: string | ArrayBuffer) => void, onClose: () => void) {
    this.#socket = socket;
    socket.setNoDelay(true);
    socket.on('drain', () => this.#fire('bufferedamountlow'));
    socket.on('close', () => {
      this.readyState = 'closed';
      this.#fire('close');
      onClose();
    });
    socket.on('error', () => socket.destroy());
    socket.on('data', (d: Buffer) => {
      this.#buf = this.#buf.length === 0 ? d : Buffer.concat([this.#buf, d]);
      while (this.#buf.length >= 5) {
        const len = this.#buf.readUInt32BE(1);
        if (this.#buf.length < 5 + len) break;
        const type = this.#buf[0];
        const payload = this.#buf.subarray(5, 5 + len);
        this.#buf = this.#buf.subarray(5 + len);
        if (type === 0) onMessage(payload.toString('utf8'));
        else onMessage(payload.buffer.slice(payload.byteOffset, payload.byteOffset + payload.byteLength) as ArrayBuffer);
      }
    });
  }

  get bufferedAmount(): number {
    return this.#socket.writableLength;
  }

  send(data: string | ArrayBufferView): void {
    const payload = typeof data === 'string' ? Buffer.from(data) : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    const head = Buffer.alloc(5);
    head[0] = typeof data === 'string' ? 0 : 1;
    head.writeUInt32BE(payload.length, 1);
    this.#socket.write(head);
    this.#socket.write(Buffer.from(payload));
  }

  close(): void {
    this.#socket.destroy();
  }

  addEventListener(type: string, l: () => void): void {
    const s = this.#listeners.get(type) ?? new Set();
    s.add(l);
    this.#listeners.set(type, s);
  }

  removeEventListener(type: string, l: () => void): void {
    this.#listeners.get(type)?.delete(l);
  }

  #fire(type: string): void {
    for (const l of [...(this.#listeners.get(type) ?? [])]) l();
  }
}

interface Session {
  id: string;
  layout: PieceLayout;
  source: PieceSource;
  /** linkId → forwarder, for the children of this device. */
  children: Map<string, { channel: TcpChannel | null; forwarder: PieceForwarder | null; abort: AbortController }>;
  // Receiver only:
  manifest?: Manifest;
  have?: PieceSet;
  fd?: number;
  bytes?: number;
  parent?: { linkId: string; channel: TcpChannel | null };
  started?: number;
  done?: boolean;
}

const sessions = new Map<string, Session>();
const pendingChildren = new Map<string, (socket: net.Socket) => void>();

// One TCP server per device: children connect and name their link first.
const server = net.createServer((socket) => {
  socket.once('data', (first: Buffer) => {
    const nl = first.indexOf(10);
    const linkId = first.subarray(0, nl).toString('utf8');
    const rest = first.subarray(nl + 1);
    const accept = pendingChildren.get(linkId);
    if (accept === undefined) {
      socket.destroy();
      return;
    }
    pendingChildren.delete(linkId);
    accept(socket);
    if (rest.length > 0) socket.emit('data', rest);
  });
});
await new Promise<void>((r) => server.listen(0, ownIp, r));
const port = (server.address() as net.AddressInfo).port;

const login = await fetch(`${base}/api/auth/login`, {
  method: 'POST',
  headers: { 'content-type': 'application/json' },
  body: JSON.stringify({ username, password }),
});
const { token } = (await login.json()) as { token: string };
const socket = io(base, { transports: ['websocket'], auth: { token, device: `bench-${username}` }, rejectUnauthorized: false });
const call = async (event: string, payload: unknown): Promise<Record<string, unknown>> => {
  const ack = (await socket.timeout(20_000).emitWithAck(event, payload)) as Record<string, unknown>;
  if (ack['ok'] !== true) throw new Error(`${event}: ${JSON.stringify(ack['error'])}`);
  return ack;
};

socket.on('presence:snapshot', (snap: { self: { peerId: string } }) => out({ ev: 'ready', peerId: snap.self.peerId }));

socket.on('broadcast:offer', (o: { broadcastId: string; transferId: string; files: { size: number }[]; pieceBytes: number; autoAccept: boolean }) => {
  const layout = new PieceLayout(o.files.map((f) => f.size), o.pieceBytes);
  const have = new PieceSet(layout.count);
  const fd = openSync(`/tmp/lbb-peer-${username}-${o.transferId}`, 'w+');
  const s: Session = {
    id: o.broadcastId,
    layout,
    children: new Map(),
    manifest: new Manifest(layout),
    have,
    fd,
    bytes: 0,
    source: {
      has: (n) => have.has(n),
      read: async (n) => {
        const p = layout.piece(n);
        const b = new Uint8Array(p.size);
        readSync(fd, b, 0, p.size, p.offset);
        return b;
      },
    },
  };
  sessions.set(o.broadcastId, s);
  if (!o.autoAccept) void call('broadcast:respond', { broadcastId: o.broadcastId, accept: true });
  const timer = setInterval(() => {
    if (s.done === true || !sessions.has(s.id)) return clearInterval(timer);
    void call('broadcast:status', { broadcastId: s.id, state: 'receiving', bytes: s.bytes }).catch(() => {});
  }, 1000);
});

socket.on('broadcast:manifest', (m: { broadcastId: string; file: number; first: number; hashes: string[]; sha256?: string }) => {
  sessions.get(m.broadcastId)?.manifest?.add({ file: m.file, first: m.first, hashes: m.hashes, sha256: m.sha256 ?? null });
});

socket.on('broadcast:link', (l: { broadcastId: string; linkId: string; role: 'parent' | 'child'; peer: string }) => {
  const s = sessions.get(l.broadcastId);
  if (s === undefined) return;
  if (l.role === 'parent') {
    const abort = new AbortController();
    const entry: { channel: TcpChannel | null; forwarder: PieceForwarder | null; abort: AbortController } = { channel: null, forwarder: null, abort };
    s.children.set(l.linkId, entry);
    pendingChildren.set(l.linkId, (sock) => {
      const channel = new TcpChannel(
        sock,
        (m) => {
          if (typeof m !== 'string') return;
          const msg = decodeLink(m);
          if (msg?.t === 'need') entry.forwarder?.setNeed(msg.ranges);
        },
        () => abort.abort(new Error('closed')),
      );
      entry.channel = channel;
      entry.forwarder = new PieceForwarder(channel, s.layout.count, s.source, abort.signal);
      entry.forwarder.onError(() => channel.close());
    });
    void call('signal', { transferId: l.linkId, to: l.peer, data: { tcp: `${ownIp}:${port}` } });
    return;
  }
  // A (new) parent: drop the old one, connect when it says where.
  s.parent?.channel?.close();
  s.parent = { linkId: l.linkId, channel: null };
});

socket.on('signal', (m: { transferId: string; data: { tcp?: string } }) => {
  for (const s of sessions.values()) {
    if (s.parent?.linkId !== m.transferId || m.data.tcp === undefined) continue;
    const [host, p] = m.data.tcp.split(':');
    const sock = net.connect(Number(p), host);
    const parent = s.parent;
    const assembler = new PieceAssembler(s.layout.pieceBytes);
    sock.once('connect', () => {
      sock.write(`${m.transferId}\n`);
      s.started ??= Date.now();
      parent.channel?.send(encodeLink({ t: 'need', ranges: s.have?.missingRanges() ?? [] }));
    });
    parent.channel = new TcpChannel(
      sock,
      (msg) => {
        const piece =
          typeof msg === 'string'
            ? (() => {
                const d = decodeLink(msg);
                return d?.t === 'piece' ? assembler.begin(d.n, d.size) : null;
              })()
            : assembler.push(msg);
        if (piece !== null) onPiece(s, piece.n, piece.bytes);
      },
      () => {
        if (s.done !== true && s.parent === parent) void call('broadcast:problem', { broadcastId: s.id, linkId: parent.linkId, kind: 'lost' }).catch(() => {});
      },
    );
  }
});

function onPiece(s: Session, n: number, bytes: Uint8Array): void {
  if (s.have === undefined || s.manifest === undefined || s.fd === undefined || s.have.has(n)) return;
  if (sha(bytes) !== s.manifest.hashOf(n)) {
    out({ ev: 'error', message: `bad piece ${n}` });
    return;
  }
  const p = s.layout.piece(n);
  writeSync(s.fd, bytes, 0, bytes.byteLength, p.offset);
  s.have.add(n);
  s.bytes = (s.bytes ?? 0) + p.size;
  for (const c of s.children.values()) c.forwarder?.available(n);
  if (s.have.complete) {
    s.done = true;
    // The whole file, read back, against the sender's SHA-256.
    const h = createHash('sha256');
    const buf = new Uint8Array(4 * 1024 * 1024);
    for (let at = 0; at < s.layout.totalBytes; ) {
      const got = readSync(s.fd, buf, 0, Math.min(buf.byteLength, s.layout.totalBytes - at), at);
      h.update(buf.subarray(0, got));
      at += got;
    }
    const digest = h.digest('hex');
    if (digest !== s.manifest.fileSha(0)) out({ ev: 'error', message: 'whole-file hash mismatch' });
    void call('broadcast:status', { broadcastId: s.id, state: 'done', bytes: s.layout.totalBytes, sha256: digest, durationMs: Date.now() - (s.started ?? Date.now()) }).catch((e: unknown) => out({ ev: 'error', message: String(e) }));
  }
}

socket.on('broadcast:progress', (p: { broadcastId: string; peer: { username: string }; state: string; bytes: number }) => {
  out({ ev: 'progress', id: p.broadcastId, username: p.peer.username, state: p.state, bytes: p.bytes });
});

socket.on('broadcast:ended', (e: { broadcastId: string }) => {
  const s = sessions.get(e.broadcastId);
  if (s !== undefined) {
    for (const c of s.children.values()) {
      c.abort.abort(new Error('ended'));
      c.channel?.close();
    }
    s.parent?.channel?.close();
    if (s.fd !== undefined) closeSync(s.fd);
    sessions.delete(e.broadcastId);
  }
  out({ ev: 'ended', id: e.broadcastId });
});

// The sender's side.
async function broadcast(file: string, lab: string, size: number): Promise<void> {
  const ack = await call('broadcast:start', { target: { lab }, files: [{ name: 'handout.bin', size, mime: '' }] });
  const id = ack['broadcastId'] as string;
  const layout = new PieceLayout([size], ack['pieceBytes'] as number);
  const fd = openSync(file, 'r');
  const read = (n: number): Uint8Array => {
    const p = layout.piece(n);
    const b = new Uint8Array(p.size);
    readSync(fd, b, 0, p.size, p.offset);
    return b;
  };
  sessions.set(id, { id, layout, children: new Map(), source: { has: () => true, read: async (n) => read(n) } });
  out({ ev: 'started', id });
  const whole = createHash('sha256');
  let part: string[] = [];
  let first = 0;
  for (let n = 0; n < layout.count; n += 1) {
    const b = read(n);
    part.push(sha(b));
    whole.update(b);
    const last = n + 1 === layout.count;
    if (part.length === 512 || last) {
      await call('broadcast:manifest', { broadcastId: id, file: 0, first, hashes: part, ...(last ? { sha256: whole.digest('hex') } : {}) });
      first += part.length;
      part = [];
    }
  }
}

for await (const line of createInterface({ input: process.stdin })) {
  try {
    const c = JSON.parse(line) as { cmd: string; file: string; lab: string; size: number };
    if (c.cmd === 'broadcast') await broadcast(c.file, c.lab, c.size);
    if (c.cmd === 'quit') break;
  } catch (error) {
    out({ ev: 'error', message: String(error) });
  }
}
socket.close();
server.close();
process.exit(0);
