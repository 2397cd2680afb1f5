// Network-namespace test helpers: build small networks of Linux network namespaces joined
// by veth pairs and bridges, with NAT routers (nftables masquerade, cone or symmetric) and
// egress firewalls, run the real labbeam binary in one of them and headless Chromium in
// others. Root only. See README.md next to this file.
//
// Everything created carries the prefix `lbn`: namespaces `lbn-<pid>-<role>`, interfaces
// `lbn…`, nft tables `lbn_…`. `Net#down()` removes all of it (and the processes running in
// it); `cleanupStale()` removes what a killed run left behind (its pid no longer exists).

import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '..', '..');
export const BIN =
  process.env.LABBEAM_BIN ?? path.join(process.env.CARGO_TARGET_DIR ?? path.join(repo, 'target'), 'debug', 'labbeam');
export const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
const PREFIX = 'lbn';

function run(cmd, args, { input, allowFail = false, env } = {}) {
  const r = spawnSync(cmd, args, { input, encoding: 'utf8', env });
  if (r.status !== 0 && !allowFail) {
    throw new Error(`${cmd} ${args.join(' ')} failed (${r.status ?? r.signal}): ${(r.stderr || r.stdout || r.error?.message || '').trim()}`);
  }
  return r.stdout;
}

/** Why the namespace tests cannot run here, or null when they can. */
export function unsupported() {
  if (typeof process.getuid === 'function' && process.getuid() !== 0) return 'needs root (network namespaces, nftables)';
  for (const tool of ['ip', 'nft']) {
    if (spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0) return `no \`${tool}\` (install iproute2 and nftables)`;
  }
  const probe = `${PREFIX}-probe-${process.pid}`;
  const add = spawnSync('ip', ['netns', 'add', probe], { encoding: 'utf8' });
  if (add.status !== 0) return `\`ip netns add\` does not work here: ${add.stderr.trim()}`;
  const nft = spawnSync('ip', ['netns', 'exec', probe, 'nft', 'add', 'table', 'inet', `${PREFIX}_probe`], { encoding: 'utf8' });
  spawnSync('ip', ['netns', 'del', probe]);
  if (nft.status !== 0) return `nftables does not work in a namespace: ${nft.stderr.trim()}`;
  if (!existsSync(BIN)) return `no labbeam binary at ${BIN} (cargo build, or set LABBEAM_BIN)`;
  if (!existsSync(CHROMIUM)) return `no Chromium at ${CHROMIUM}`;
  return null;
}

/** Deletes `lbn-<pid>-*` namespaces whose creating process is gone. */
export function cleanupStale() {
  const list = run('ip', ['netns', 'list'], { allowFail: true });
  for (const line of list.split('\n')) {
    const name = line.split(' ')[0];
    const m = /^lbn-(\d+)-/.exec(name ?? '');
    if (!m) continue;
    const pid = Number(m[1]);
    let alive = true;
    try {
      process.kill(pid, 0);
    } catch {
      alive = false;
    }
    if (!alive) deleteNamespace(name);
  }
}

function deleteNamespace(name) {
  const pids = run('ip', ['netns', 'pids', name], { allowFail: true }).split('\n').filter(Boolean);
  for (const pid of pids) {
    try {
      process.kill(Number(pid), 'SIGKILL');
    } catch {
      // Already gone.
    }
  }
  run('ip', ['netns', 'del', name], { allowFail: true });
}

/**
 * A network of namespaces. Roles are short names (`app`, `natA`, `pcA`, …); each becomes the
 * namespace `lbn-<pid>-<n>-<role>`. Segments are bridges, each in a namespace of its own.
 */
export class Net {
  static #count = 0;
  #namespaces = [];
  #segments = new Map(); // name → { ns, cidr }
  #links = 0;
  #procs = [];

  constructor() {
    this.id = `${PREFIX}-${process.pid}-${Net.#count++}`;
    this.dir = mkdtempSync(path.join(tmpdir(), `${this.id}-`));
  }

  ns(role) {
    return `${this.id}-${role}`;
  }

  /** Runs `args` inside `role`'s namespace; returns stdout. */
  exec(role, args, options) {
    return run('ip', ['netns', 'exec', this.ns(role), ...args], options);
  }

  nft(role, script) {
    return run('ip', ['netns', 'exec', this.ns(role), 'nft', '-f', '-'], { input: script });
  }

  addNamespace(role) {
    const name = this.ns(role);
    run('ip', ['netns', 'add', name]);
    this.#namespaces.push(name);
    // IPv4 only: IPv6 would add link-local addresses a moment after each link comes up
    // (duplicate address detection), which Chromium sees as a network change and answers by
    // aborting the navigation under way (ERR_NETWORK_CHANGED).
    run('ip', ['netns', 'exec', name, 'sysctl', '-q', '-w', 'net.ipv6.conf.all.disable_ipv6=1', 'net.ipv6.conf.default.disable_ipv6=1']);
    run('ip', ['-n', name, 'link', 'set', 'lo', 'up']);
    return name;
  }

  /** A layer-2 segment (a bridge in a namespace of its own). */
  addSegment(name) {
    const role = `seg${name}`;
    this.addNamespace(role);
    run('ip', ['-n', this.ns(role), 'link', 'add', `${PREFIX}br`, 'type', 'bridge']);
    run('ip', ['-n', this.ns(role), 'link', 'set', `${PREFIX}br`, 'up']);
    this.#segments.set(name, { role });
    return name;
  }

  /**
   * Plugs `role` into `segment` with a veth named `ifname` inside `role`, address `cidr`
   * (e.g. 10.77.0.2/24), and optionally a default route through `gateway`.
   */
  attach(role, segment, { ifname, cidr, gateway }) {
    const seg = this.#segments.get(segment);
    if (!seg) throw new Error(`no segment ${segment}`);
    const port = `${PREFIX}p${this.#links++}`;
    run('ip', ['-n', this.ns(role), 'link', 'add', ifname, 'type', 'veth', 'peer', 'name', port, 'netns', this.ns(seg.role)]);
    run('ip', ['-n', this.ns(seg.role), 'link', 'set', port, 'master', `${PREFIX}br`]);
    run('ip', ['-n', this.ns(seg.role), 'link', 'set', port, 'up']);
    run('ip', ['-n', this.ns(role), 'addr', 'add', cidr, 'dev', ifname]);
    run('ip', ['-n', this.ns(role), 'link', 'set', ifname, 'up']);
    if (gateway) run('ip', ['-n', this.ns(role), 'route', 'add', 'default', 'via', gateway]);
  }

  /** A host (lab PC, appliance) with one interface `lbn0` on `segment`. */
  addHost(role, segment, cidr, gateway) {
    this.addNamespace(role);
    this.attach(role, segment, { ifname: `${PREFIX}0`, cidr, gateway });
    return { role, ns: this.ns(role), ip: cidr.split('/')[0] };
  }

  /**
   * A router between `lan` (inside, address `lanCidr`) and `wan` (outside, `wanCidr`).
   * nat: 'none' (plain routing), 'cone' (masquerade; Linux keeps the source port and the
   * mapping per source, i.e. endpoint-independent mapping with port-restricted filtering),
   * 'symmetric' (masquerade random,fully-random: each new destination gets a new random
   * port). egress: 'all', 'no-udp' (UDP from the LAN dropped), or a list of TCP ports (only
   * those let out, e.g. [443, 5349]).
   */
  addRouter(role, { wan, wanCidr, lan, lanCidr, nat = 'cone', egress = 'all', wanGateway }) {
    this.addNamespace(role);
    this.attach(role, wan, { ifname: `${PREFIX}wan`, cidr: wanCidr, gateway: wanGateway });
    this.attach(role, lan, { ifname: `${PREFIX}lan`, cidr: lanCidr });
    this.exec(role, ['sysctl', '-q', '-w', 'net.ipv4.ip_forward=1']);
    const masq = nat === 'symmetric' ? 'masquerade random,fully-random' : 'masquerade';
    let filter = '';
    if (egress === 'no-udp') filter = `iifname "${PREFIX}lan" meta l4proto udp counter drop`;
    else if (Array.isArray(egress)) {
      filter = `iifname "${PREFIX}lan" tcp dport { ${egress.join(', ')} } accept\n    iifname "${PREFIX}lan" counter drop`;
    }
    this.nft(
      role,
      `table ip ${PREFIX}_nat {
  chain lbnpost {
    type nat hook postrouting priority srcnat; policy accept;
    ${nat === 'none' ? '' : `oifname "${PREFIX}wan" ${masq}`}
  }
}
table inet ${PREFIX}_filter {
  chain lbnin {
    # Like a home or campus router's firewall: nothing unsolicited from outside reaches the
    # router itself. (Without this, a peer's first hole-punching packet creates a conntrack
    # entry for the router's own port, the PC's outgoing mapping then clashes with it and
    # masquerade picks another port: the cone NAT would behave symmetric.)
    type filter hook input priority filter; policy accept;
    iifname "${PREFIX}wan" ct state established,related accept
    iifname "${PREFIX}wan" drop
  }
  chain lbnfwd {
    type filter hook forward priority filter; policy accept;
    ct state established,related accept
    ${filter}
  }
}
`,
    );
    return { role, ns: this.ns(role), wanIp: wanCidr.split('/')[0], lanIp: lanCidr.split('/')[0] };
  }

  /** Routes `cidr` via `gateway` in `role` (e.g. the appliance's way back to a routed LAN). */
  route(role, cidr, gateway) {
    run('ip', ['-n', this.ns(role), 'route', 'add', cidr, 'via', gateway]);
  }

  /** A started process, killed on `down()`. */
  track(child) {
    this.#procs.push(child);
    return child;
  }

  /** Removes every namespace (and so every veth, bridge and nft table) and process. */
  async down() {
    for (const p of this.#procs) {
      if (p.exitCode === null && p.signalCode === null) {
        try {
          p.kill('SIGKILL');
        } catch {
          // Gone.
        }
      }
    }
    for (const name of this.#namespaces.splice(0)) deleteNamespace(name);
    rmSync(this.dir, { recursive: true, force: true });
  }
}

// ---- faults ----

/**
 * Drops packets of `role` (a host) in both directions: everything (`except` unset), or all
 * but traffic to/from the addresses in `except` (e.g. the appliance: "peer path only").
 * Returns a function that lifts the block.
 */
export function block(net, role, { except = [] } = {}) {
  const set = except.join(', ');
  const keepOut = except.length === 0 ? '' : `ip daddr { ${set} } accept`;
  const keepIn = except.length === 0 ? '' : `ip saddr { ${set} } accept`;
  net.nft(
    role,
    `table inet ${PREFIX}_fault {
  chain lbnout {
    type filter hook output priority filter; policy accept;
    oifname "lo" accept
    ${keepOut}
    counter drop
  }
  chain lbnin {
    type filter hook input priority filter; policy accept;
    iifname "lo" accept
    ${keepIn}
    counter drop
  }
}
`,
  );
  return () => net.exec(role, ['nft', 'delete', 'table', 'inet', `${PREFIX}_fault`], { allowFail: true });
}

/**
 * Counts the bytes `role` (a host) sends out of its interface, from now on: returns
 * `{ bytes() }`. Used to measure what a transfer really put on the wire (re-sends included).
 */
export function egressCounter(net, role) {
  net.nft(
    role,
    `table inet ${PREFIX}_count {
  counter lbnbytes { }
  chain lbnout {
    type filter hook output priority filter - 10; policy accept;
    oifname "${PREFIX}0" counter name "lbnbytes"
  }
}
`,
  );
  return {
    bytes() {
      const out = net.exec(role, ['nft', '-j', 'list', 'counter', 'inet', `${PREFIX}_count`, 'lbnbytes']);
      const found = JSON.parse(out).nftables.find((e) => e.counter)?.counter;
      return found?.bytes ?? 0;
    },
    stop() {
      net.exec(role, ['nft', 'delete', 'table', 'inet', `${PREFIX}_count`], { allowFail: true });
    },
  };
}

/**
 * Loss on `role`'s link with tc netem (`loss` in percent, 100 = nothing passes), until the
 * returned function is called.
 */
export function netemLoss(net, role, loss) {
  net.exec(role, ['tc', 'qdisc', 'add', 'dev', `${PREFIX}0`, 'root', 'netem', 'loss', `${loss}%`]);
  return () => net.exec(role, ['tc', 'qdisc', 'del', 'dev', `${PREFIX}0`, 'root'], { allowFail: true });
}

// ---- processes inside namespaces ----

/**
 * A wrapper script that runs Chromium inside `role`'s namespace, with `home` as $HOME (where
 * Chromium looks for its NSS certificate database, `.pki/nssdb`). Playwright talks to
 * Chromium over --remote-debugging-pipe (inherited file descriptors 3 and 4), which
 * `ip netns exec` passes through, so it can be given as `executablePath`.
 */
export function chromiumIn(net, role, { home } = {}) {
  const script = path.join(net.dir, `chromium-${role}.sh`);
  const env = home ? `env HOME=${shellQuote(home)} ` : '';
  writeFileSync(script, `#!/bin/sh\nexec ip netns exec ${shellQuote(net.ns(role))} ${env}${shellQuote(CHROMIUM)} "$@"\n`);
  chmodSync(script, 0o755);
  return script;
}

function shellQuote(s) {
  return `'${String(s).replaceAll("'", "'\\''")}'`;
}

/**
 * A $HOME whose NSS database (what Chromium on Linux trusts besides its root store) trusts
 * `certPem` as a server certificate, like a lab PC that had the appliance's certificate
 * installed by its administrator. Needs `certutil` (Debian: libnss3-tools).
 */
export function homeTrusting(dir, certPem) {
  const home = path.join(dir, 'home');
  const db = path.join(home, '.pki', 'nssdb');
  mkdirSync(db, { recursive: true });
  const certFile = path.join(dir, 'appliance.pem');
  writeFileSync(certFile, certPem);
  run('certutil', ['-N', '-d', `sql:${db}`, '--empty-password']);
  // C: a trusted CA (the self-signed certificate is its own issuer); P: a trusted peer.
  run('certutil', ['-A', '-d', `sql:${db}`, '-n', 'labbeam-appliance', '-t', 'CP,,', '-i', certFile]);
  return home;
}

export function certutilAvailable() {
  return spawnSync('sh', ['-c', 'command -v certutil']).status === 0;
}

/**
 * The real labbeam binary in `role`'s namespace at `ip`: HTTPS on `httpsPort`, STUN/TURN on
 * 3478 (UDP, TCP), TURN over TLS on `tlsPort`, `--public-host ip` so that the certificate and
 * the ICE server URLs name that address. `restart()` kills it (SIGKILL) and starts it again
 * on the same data directory.
 */
export async function startAppliance(net, role, ip, { httpsPort = 443, tlsPort = 5349, config = '' } = {}) {
  const dir = path.join(net.dir, `appliance-${role}`);
  const dataDir = path.join(dir, 'data');
  mkdirSync(dir, { recursive: true });
  const configFile = path.join(dir, 'labbeam.toml');
  writeFileSync(configFile, `[turn]\ntls_port = ${tlsPort}\n${config}`);
  // The binary refuses unknown LABBEAM_* variables (LABBEAM_BIN is the harness's own).
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('LABBEAM_')));
  let child;
  let log = '';

  async function boot() {
    child = net.track(
      spawn(
        'ip',
        ['netns', 'exec', net.ns(role), BIN, 'serve', '--config', configFile, '--data-dir', dataDir,
          '--http-listen', `${ip}:${httpsPort}`, '--turn-listen', `${ip}:3478`, '--public-host', ip],
        { env, stdio: ['ignore', 'pipe', 'pipe'] },
      ),
    );
    child.stderr.on('data', (d) => {
      log += d;
    });
    const c = child;
    return new Promise((resolve, reject) => {
      const lines = [];
      const timer = setTimeout(() => reject(new Error(`labbeam printed no banner; log: ${log}`)), 60_000);
      c.on('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`labbeam exited with ${code}: ${log}`));
      });
      createInterface({ input: c.stdout }).on('line', (line) => {
        lines.push(line);
        if (line.trim() === '' && lines.some((l) => l.includes('Open:'))) {
          clearTimeout(timer);
          resolve(lines);
        }
      });
    });
  }

  const banner = await boot();
  const server = {
    role,
    ip,
    base: `https://${ip}${httpsPort === 443 ? '' : `:${httpsPort}`}`,
    dataDir,
    banner,
    certPem: () => readFileSync(path.join(dataDir, 'tls', 'cert.pem'), 'utf8'),
    log: () => log,
    addUser(username, roleName, password) {
      run(BIN, ['user', 'add', username, '--role', roleName, '--password-stdin', '--data-dir', dataDir], { input: password, env });
    },
    /** A lab with one address range (the running server and its relay pick it up at once). */
    addLab(name, cidr) {
      run(BIN, ['lab', 'add', name, '--cidr', cidr, '--data-dir', dataDir], { env });
    },
    /** The TURN REST secret (coturn's `-W`). */
    turnSecret: () => readFileSync(path.join(dataDir, 'turn.key'), 'utf8').trim(),
    /** SIGKILL, then (after `downMs`) the same binary on the same data directory. */
    async restart(downMs = 0) {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGKILL');
      await exited;
      if (downMs > 0) await new Promise((r) => setTimeout(r, downMs));
      server.banner = await boot();
    },
    kill() {
      child.kill('SIGKILL');
    },
  };
  return server;
}

/**
 * The standard topologies of the connectivity tests. The appliance sits on the "campus"
 * segment 10.77.0.0/24 at 10.77.0.2; lab PCs A and B sit on their own LANs
 * (192.168.11.0/24, 192.168.12.0/24) behind routers at 10.77.0.11 and .12, except in `lan`,
 * where both PCs and the appliance share one segment.
 *
 *   lan        — one segment, no router
 *   cone       — both PCs behind masquerading (port-preserving) NATs
 *   symmetric  — both behind NATs with random,fully-random port mapping
 *   udp-blocked— A behind a cone NAT that drops all UDP, B behind a cone NAT
 *   tls-only   — both behind NATs that let out only TCP 443 and 5349
 */
export const TOPOLOGIES = ['lan', 'cone', 'symmetric', 'udp-blocked', 'tls-only'];

export function buildTopology(net, kind) {
  const APP = '10.77.0.2';
  net.addSegment('campus');
  const appliance = net.addHost('app', 'campus', `${APP}/24`);
  if (kind === 'lan') {
    const a = net.addHost('pcA', 'campus', '10.77.0.21/24');
    const b = net.addHost('pcB', 'campus', '10.77.0.22/24');
    return { appliance, pcs: [a, b], routers: [] };
  }
  const side = (name, subnet, natOpts) => {
    net.addSegment(`lan${name}`);
    const router = net.addRouter(`nat${name}`, {
      wan: 'campus',
      wanCidr: `10.77.0.${subnet}/24`,
      lan: `lan${name}`,
      lanCidr: `192.168.${subnet}.1/24`,
      ...natOpts,
    });
    const pc = net.addHost(`pc${name}`, `lan${name}`, `192.168.${subnet}.2/24`, `192.168.${subnet}.1`);
    return { router, pc };
  };
  const opts = {
    cone: [{ nat: 'cone' }, { nat: 'cone' }],
    symmetric: [{ nat: 'symmetric' }, { nat: 'symmetric' }],
    'udp-blocked': [{ nat: 'cone', egress: 'no-udp' }, { nat: 'cone' }],
    'tls-only': [{ nat: 'cone', egress: [443, 5349] }, { nat: 'cone', egress: [443, 5349] }],
  }[kind];
  if (!opts) throw new Error(`unknown topology ${kind}`);
  const A = side('A', 11, opts[0]);
  const B = side('B', 12, opts[1]);
  return { appliance, pcs: [A.pc, B.pc], routers: [A.router, B.router] };
}
