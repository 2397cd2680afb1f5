// Bundles the client into dist/: app.js (+ app.js.map) from src/main.ts, receive-worker.js
// (the worker that writes received files to disk) from src/engine/receive-worker.ts, app.css from
// src/styles/app.css, and copies static/ (index.html, favicon.svg) as they are.
// dist/ is emptied first: appliance/build.rs embeds every file found there, so nothing stale
// may linger. Type-checking is a separate step (`tsc --noEmit`, run first by `npm run build`).

import { build } from 'esbuild';
import { cp, mkdir, readdir, rm, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const dist = join(root, 'dist');

const common = {
  bundle: true,
  minify: true,
  target: 'es2022',
  outdir: dist,
  logLevel: 'warning',
  legalComments: 'none',
};

await rm(dist, { recursive: true, force: true });
await mkdir(dist, { recursive: true });

await Promise.all([
  build({
    ...common,
    entryPoints: [
      { in: join(root, 'src/main.ts'), out: 'app' },
      { in: join(root, 'src/engine/receive-worker.ts'), out: 'receive-worker' },
    ],
    format: 'esm',
    sourcemap: 'linked',
  }),
  build({
    ...common,
    entryPoints: [{ in: join(root, 'src/styles/app.css'), out: 'app' }],
  }),
  cp(join(root, 'static'), dist, { recursive: true }),
]);

const files = (await readdir(dist)).sort();
for (const name of files) {
  const { size } = await stat(join(dist, name));
  console.log(`  dist/${name.padEnd(16)} ${(size / 1024).toFixed(1).padStart(6)} KiB`);
}
