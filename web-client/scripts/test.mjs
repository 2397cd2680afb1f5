// Runs the engine's unit tests (test/*.test.ts) in Node: each test file is bundled by esbuild
// into a temporary folder (Node cannot run TypeScript by itself here), then node's test
// runner runs them all and prints its summary.

import { build } from 'esbuild';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const out = mkdtempSync(join(tmpdir(), 'labbeam-web-test-'));
const tests = readdirSync(join(root, 'test')).filter((f) => f.endsWith('.test.ts'));
try {
  await build({
    entryPoints: tests.map((f) => join(root, 'test', f)),
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    outdir: out,
    outExtension: { '.js': '.mjs' },
    external: ['node:*'],
    logLevel: 'warning',
  });
  const files = tests.map((f) => join(out, f.replace(/\.ts$/, '.mjs')));
  const r = spawnSync(process.execPath, ['--test', ...files], { stdio: 'inherit' });
  process.exitCode = r.status ?? 1;
} finally {
  rmSync(out, { recursive: true, force: true });
}
