// Fails when the engine (src/engine/) touches the page's DOM. The engine runs transfers and
// must work without a document (its unit tests run in Node, its disk writer in a worker);
// elements, downloads and pickers belong to the UI (src/ui/). Workers, OPFS, WebRTC, Web
// Locks and storage are the engine's to use.
//
// How: esbuild compiles each engine file with every global below "defined" as a marker
// identifier. esbuild replaces only real references to the global — not words in strings or
// comments, not a property of another object, not a local variable of the same name — so a
// marker in the output is a use. Before looking at the engine, the check makes sure it still
// catches a known use (so a change in esbuild cannot turn it into a check that never fails).
// Run by `npm run typecheck` and `npm run build`.

import { transform } from 'esbuild';
import { readFile, readdir } from 'node:fs/promises';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const engineDir = join(root, 'src', 'engine');

/** Globals of a page (a window and its document) that a worker does not have. */
const DOM_GLOBALS = [
  'document',
  'window',
  'self.document',
  'self.window',
  'globalThis.document',
  'globalThis.window',
  'parent',
  'top',
  'opener',
  'frames',
  'customElements',
  'getComputedStyle',
  'requestAnimationFrame',
  'alert',
  'confirm',
  'prompt',
  'Element',
  'HTMLElement',
  'HTMLAnchorElement',
  'HTMLInputElement',
  'Node',
  'DocumentFragment',
  'MutationObserver',
  'DOMParser',
  'Image',
  // File System Access pickers: dialogs of the window.
  'showDirectoryPicker',
  'showOpenFilePicker',
  'showSaveFilePicker',
  'globalThis.showDirectoryPicker',
  'globalThis.showOpenFilePicker',
  'globalThis.showSaveFilePicker',
  'self.showDirectoryPicker',
];

const MARK = '__labbeam_dom__';
const markerOf = (name) => MARK + name.replaceAll('.', '_');
const define = Object.fromEntries(DOM_GLOBALS.map((name) => [name, markerOf(name)]));
const nameOf = new Map(DOM_GLOBALS.map((name) => [markerOf(name), name]));

/** The DOM globals `source` uses, each with the line (of the compiled JavaScript) it is on. */
async function domUses(source, file) {
  const { code } = await transform(source, { loader: 'ts', define, sourcefile: file, format: 'esm', target: 'es2022' });
  const uses = [];
  for (const line of code.split('\n')) {
    for (const m of line.matchAll(new RegExp(`${MARK}\\w+`, 'g'))) {
      const name = nameOf.get(m[0]) ?? m[0];
      uses.push({ name, line: line.trim().replaceAll(m[0], name) });
    }
  }
  return uses;
}

const probe = await domUses(
  [
    "const a = document.createElement('a');",
    "const w = (globalThis as { showDirectoryPicker?: unknown }).showDirectoryPicker;",
    "function f(document: string) { return document.length + 'window.document'.length; }",
  ].join('\n'),
  'probe.ts',
);
const probed = probe.map((u) => u.name).sort().join(',');
if (probed !== 'document,globalThis.showDirectoryPicker') {
  console.error(`check-engine: the DOM check no longer sees what it must (saw: ${probed || 'nothing'}); fix scripts/check-engine.mjs`);
  process.exit(2);
}

const files = (await readdir(engineDir, { recursive: true })).filter((f) => f.endsWith('.ts')).sort();
let found = 0;
for (const file of files) {
  const path = join(engineDir, file);
  for (const use of await domUses(await readFile(path, 'utf8'), file)) {
    found += 1;
    console.error(`${relative(root, path)}: uses the DOM (${use.name}): ${use.line}`);
  }
}
if (found > 0) {
  console.error(`check-engine: the engine must not touch the DOM; move that to src/ui/ (${found} use${found === 1 ? '' : 's'}).`);
  process.exit(1);
}
