// What the benchmarks in network namespaces (netns.sh: the server in lbbh0 at 10.77.0.10, PCs
// in lbbh1…) share: the labbeam server started inside lbbh0, and Chromium started inside a
// PC's namespace. Used by bench/broadcast and bench/handin.

import { spawn } from 'node:child_process';
import { chmodSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline';

import { CHROMIUM } from '../../tests/browser/lib.mjs';

export const SERVER_IP = '10.77.0.10';

/** Starts `bin serve` on `dataDir` inside lbbh0; resolves with the process once it serves. */
export async function startServerIn(bin, dataDir) {
  const child = spawn('ip', ['netns', 'exec', 'lbbh0', bin, 'serve', '--data-dir', dataDir, '--http-listen', `${SERVER_IP}:8443`, '--turn-listen', `${SERVER_IP}:3478`, '--public-host', SERVER_IP], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let log = '';
  child.stderr.on('data', (d) => (log += d));
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no banner: ${log}`)), 60_000);
    child.on('exit', (code) => reject(new Error(`labbeam exited ${code}: ${log}`)));
    createInterface({ input: child.stdout }).on('line', (line) => {
      if (line.includes('Open:')) {
        clearTimeout(timer);
        resolve();
      }
    });
  });
  return child;
}

/** A script in `dir` that runs Chromium inside namespace lbbh`host` (Playwright's executable). */
export function chromiumIn(dir, host) {
  const wrapper = path.join(dir, `chromium-${host}.sh`);
  writeFileSync(wrapper, `#!/bin/sh\nexec ip netns exec lbbh${host} ${CHROMIUM} "$@"\n`);
  chmodSync(wrapper, 0o755);
  return wrapper;
}
