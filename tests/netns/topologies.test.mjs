// Connectivity across NAT topologies: two lab PCs, each a network namespace with its own
// headless Chromium, reach the real labbeam binary in the appliance namespace through the
// routers of the topology, transfer a 4 MiB file through the web client, verify its SHA-256,
// and report the path the network allows (see netns.mjs `buildTopology`).
//
// Root only (namespaces, nftables); skipped with the reason otherwise. A results table is
// printed as test diagnostics (and to $LABBEAM_NETNS_RESULTS when set, one JSON per line).

import assert from 'node:assert/strict';
import { appendFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import { card, sendFiles, waitState } from '../browser/lib.mjs';
import { loggedTransfer, makeFile, openLab, transferVerified } from './lab.mjs';
import { certutilAvailable, cleanupStale, unsupported } from './netns.mjs';

const why = unsupported();
const MiB = 1024 * 1024;

// topology → the path both sides must report, and the transport each PC must use to reach
// its next hop (the chip of its card), when it is determined by the network.
const EXPECT = {
  lan: { path: 'direct', chipA: /^direct \(UDP\)$/, chipB: /^direct \(UDP\)$/ },
  cone: { path: 'direct', chipA: /^direct \(UDP\)$/, chipB: /^direct \(UDP\)$/ },
  symmetric: { path: 'relay', chipA: /^through the relay/, chipB: /^through the relay/ },
  // A's NAT drops UDP: A reaches the relay over TCP or TLS; B reaches it over UDP.
  'udp-blocked': { path: 'relay', chipA: /^through the relay \((TCP|TLS)\)$/, chipB: /^through the relay \(UDP\)$/ },
  // Only TCP 443 and 5349 leave either LAN: both reach the relay over TLS (port 5349).
  'tls-only': { path: 'relay', chipA: /^through the relay \(TLS\)$/, chipB: /^through the relay \(TLS\)$/ },
};

describe('NAT topologies (network namespaces)', { skip: why ?? false, timeout: 600_000 }, () => {
  let dir;
  let file;
  const rows = [];

  before(() => {
    cleanupStale();
    dir = mkdtempSync(path.join(tmpdir(), 'lbn-topo-'));
    file = makeFile(dir, 'lab-data.bin', 4 * MiB);
  });
  after(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
    if (rows.length) {
      console.log('\n| topology | connected | sender path | receiver path | time (s) |\n|---|---|---|---|---|');
      for (const r of rows) console.log(`| ${r.kind} | ${r.connected} | ${r.sender} | ${r.receiver} | ${r.seconds} |`);
    }
  });

  test('tls-only, the appliance certificate not trusted by the PCs: no connection, and the card says why', async (t) => {
    rows.push({ kind: 'tls-only, certificate not trusted', connected: 'no (expected)', sender: '-', receiver: '-', seconds: '-' });
    const lab = await openLab('tls-only', { trust: false });
    try {
      const [alice, bob] = lab.users;
      const id = await sendFiles(alice.page, 'bob', [file.path]);
      await bob.page.getByTestId('incoming-accept').click({ timeout: 20_000 });
      await waitState(alice.page, id, 'failed', 90_000);
      await waitState(bob.page, id, 'failed', 20_000);
      for (const who of [alice, bob]) {
        const text = await card(who.page, id).getByTestId('transfer-problem').textContent();
        t.diagnostic(`${who.username}: ${text}`);
        assert.match(text, /UDP blocked/);
        assert.match(text, /TURN\/TLS unreachable/);
        assert.match(text, /certificate/);
      }
    } finally {
      await lab.close();
    }
  });

  for (const [kind, expect] of Object.entries(EXPECT)) {
    test(`${kind}: connects, transfers a verified file, reports path ${expect.path}`, async (t) => {
      if (kind === 'tls-only' && !certutilAvailable()) {
        t.skip('needs certutil (Debian: libnss3-tools) to make the PCs trust the appliance certificate');
        return;
      }
      const row = { kind, connected: 'no', sender: '-', receiver: '-', seconds: '-' };
      rows.push(row);
      const lab = await openLab(kind);
      try {
        const [alice, bob] = lab.users;
        const r = await transferVerified(alice, bob, file);
        Object.assign(row, { connected: 'yes', sender: r.sender.chip, receiver: r.receiver.chip, seconds: (r.ms / 1000).toFixed(1) });
        if (process.env.LABBEAM_NETNS_RESULTS) appendFileSync(process.env.LABBEAM_NETNS_RESULTS, `${JSON.stringify({ kind, ...r })}\n`);
        t.diagnostic(`${kind}: ${r.sender.chip} / ${r.receiver.chip}, ${row.seconds} s`);
        assert.ok(r.ok, 'the saved copy has the sender’s SHA-256');
        assert.equal(r.sender.path, expect.path);
        assert.equal(r.receiver.path, expect.path);
        assert.match(r.sender.chip, expect.chipA);
        assert.match(r.receiver.chip, expect.chipB);
        const logged = await loggedTransfer(alice, r.id);
        assert.equal(logged.path, expect.path, 'the transfer log has the path');
        assert.equal(logged.bytes, file.size);
      } finally {
        await lab.close();
      }
    });
  }
});
