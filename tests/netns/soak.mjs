#!/usr/bin/env node
// Soak (issue 9): many transfers between two lab PCs (network namespaces behind cone NATs,
// the real binary, Chromium driven through the web client), each with a random fault in the
// middle: none, the peer path dropped, the sender's network stopped, the receiver's page
// reloaded, the server killed and restarted. Reports the completion rate (completed with the
// sender's SHA-256 on the saved copy) and the bytes re-sent over the bytes needed.
//
// Bytes re-sent are measured two ways. By the client: the sender's card says how many file
// bytes it put on the data channel, re-sent ones included (`data-wire-bytes`, once resumable
// transfers are in); beyond the file size they were re-sent. On the wire, independently of
// the client: an nft counter on the sender's interface gives what each transfer put on the
// network; the first fault-free transfers of the same run give the wire bytes per file byte
// without faults (headers, acknowledgements); beyond that counts as re-sent (this also
// counts SCTP retransmissions, and varies by a few % between fault-free runs).
//
//   node tests/netns/soak.mjs [--runs 50] [--size-mib 24] [--seed 1] [--json FILE]
//
// Root only; slow (about 15 s per transfer): not part of CI.

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';

import { card } from '../browser/lib.mjs';
import { finishVerified, makeFile, openLab, startTransfer } from './lab.mjs';
import { block, cleanupStale, egressCounter, unsupported } from './netns.mjs';

const { values: opts } = parseArgs({
  options: {
    runs: { type: 'string', default: '50' },
    'size-mib': { type: 'string', default: '24' },
    seed: { type: 'string', default: '1' },
    baseline: { type: 'string', default: '3' },
    json: { type: 'string' },
  },
});
const RUNS = Number(opts.runs);
const SIZE = Number(opts['size-mib']) * 1024 * 1024;
const BASELINE = Number(opts.baseline);

const why = unsupported();
if (why) {
  console.error(`soak skipped: ${why}`);
  process.exit(0);
}

// A small seeded generator (mulberry32), so that a run can be repeated.
let state = Number(opts.seed) >>> 0;
function random() {
  state = (state + 0x6d2b79f5) >>> 0;
  let t = state;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
const between = (lo, hi) => lo + Math.floor(random() * (hi - lo + 1));
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** The faults: name → async (lab) => description. */
const FAULTS = {
  none: async () => 'no fault',
  'peer-path': async (lab) => {
    const s = between(2, 10);
    const lift = block(lab.net, 'pcA', { except: [lab.topo.appliance.ip] });
    await sleep(s * 1000);
    lift();
    return `peer path dropped ${s} s`;
  },
  'sender-offline': async (lab) => {
    const s = between(5, 30);
    const lift = block(lab.net, 'pcA');
    await sleep(s * 1000);
    lift();
    return `sender offline ${s} s`;
  },
  'receiver-reload': async (lab) => {
    await lab.users[1].page.reload();
    return 'receiver page reloaded';
  },
  'server-restart': async (lab) => {
    const s = between(0, 5);
    await lab.app.restart(s * 1000);
    return `server killed, back after ${s} s`;
  },
};
const NAMES = Object.keys(FAULTS);

cleanupStale();
const dir = mkdtempSync(path.join(tmpdir(), 'lbn-soak-'));
const file = makeFile(dir, 'soak.bin', SIZE);
let lab = await openLab('cone');
const results = [];
let overhead = null; // wire bytes per file byte without faults
try {
  for (let i = 0; i < BASELINE + RUNS; i++) {
    const baseline = i < BASELINE;
    const fault = baseline ? 'none' : NAMES[Math.floor(random() * NAMES.length)];
    const counter = egressCounter(lab.net, 'pcA');
    const started = Date.now();
    const row = { run: baseline ? `baseline ${i + 1}` : i - BASELINE + 1, fault, what: '', completed: false, wireBytes: 0, channelBytes: null, resumes: null, ms: 0, problem: null };
    try {
      const id = await startTransfer(lab, file, between(2, Math.max(3, Math.floor(SIZE / 1024 / 1024 / 2))) * 1024 * 1024);
      row.what = await FAULTS[fault](lab);
      const sha = await finishVerified(lab, id, 120_000);
      row.completed = sha === file.sha;
      const sender = card(lab.users[0].page, id);
      const channel = await sender.getAttribute('data-wire-bytes');
      const resumes = await sender.getAttribute('data-resumes');
      row.channelBytes = channel === null ? null : Number(channel);
      row.resumes = resumes === null ? null : Number(resumes);
      if (!row.completed) row.problem = 'SHA-256 differs';
      for (const u of lab.users) await card(u.page, id).getByTestId('transfer-dismiss').click({ timeout: 5000 }).catch(() => {});
    } catch (error) {
      row.problem = String(error.message ?? error).slice(0, 300);
    }
    row.ms = Date.now() - started;
    row.wireBytes = counter.bytes();
    counter.stop();
    if (baseline && row.completed) overhead = Math.min(overhead ?? Infinity, row.wireBytes / SIZE);
    results.push(row);
    console.log(
      `${String(row.run).padEnd(10)} ${row.what.padEnd(30)} ${row.completed ? 'completed' : 'FAILED   '} wire ${(row.wireBytes / SIZE).toFixed(3)}×` +
        `${row.channelBytes === null ? '' : ` channel ${(row.channelBytes / SIZE).toFixed(3)}×`}${row.resumes === null ? '' : ` resumes ${row.resumes}`}` +
        ` ${(row.ms / 1000).toFixed(1)} s${row.problem ? `  ${row.problem}` : ''}`,
    );
    // A failed run may leave the pages in any state: start the next one from a fresh lab.
    if (!row.completed) {
      await lab.close();
      lab = await openLab('cone');
    }
  }
} finally {
  await lab.close();
  rmSync(dir, { recursive: true, force: true });
}

const runs = results.filter((r) => typeof r.run === 'number');
const completed = runs.filter((r) => r.completed);
const needed = completed.length * SIZE;
const resent = overhead === null ? null : completed.reduce((n, r) => n + Math.max(0, r.wireBytes - overhead * SIZE), 0);
const counted = completed.filter((r) => r.channelBytes !== null);
const channelResent = counted.length === 0 ? null : counted.reduce((n, r) => n + Math.max(0, r.channelBytes - SIZE), 0) / (counted.length * SIZE);
const byFault = Object.fromEntries(
  NAMES.map((f) => {
    const of = runs.filter((r) => r.fault === f);
    return [f, `${of.filter((r) => r.completed).length}/${of.length}`];
  }),
);
const summary = {
  runs: runs.length,
  completed: completed.length,
  completionRate: runs.length ? completed.length / runs.length : null,
  fileBytes: SIZE,
  wireOverheadWithoutFaults: overhead,
  resentOverNeeded: resent === null || needed === 0 ? null : resent / needed,
  channelResentOverNeeded: channelResent,
  byFault,
  seed: Number(opts.seed),
};
console.log(`\ncompletion: ${completed.length}/${runs.length} (${((summary.completionRate ?? 0) * 100).toFixed(1)} %)`);
console.log(`by fault: ${Object.entries(byFault).map(([f, v]) => `${f} ${v}`).join(', ')}`);
console.log(`wire bytes per file byte without faults: ${overhead?.toFixed(3) ?? 'n/a (no baseline completed)'}`);
console.log(`bytes re-sent / bytes needed (completed runs), on the wire: ${summary.resentOverNeeded?.toFixed(4) ?? 'n/a'}`);
console.log(`bytes re-sent / bytes needed (completed runs), by the client: ${channelResent?.toFixed(4) ?? 'n/a (this client does not report it)'}`);
if (opts.json) writeFileSync(opts.json, JSON.stringify({ summary, results }, null, 2));
process.exitCode = completed.length === runs.length ? 0 : 1;
