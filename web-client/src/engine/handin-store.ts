/**
 * Where the collecting browser keeps what students handed in (handins.ts), in the Origin
 * Private File System, one folder per student:
 *
 *     labbeam-handins/<handinId>/handin.json
 *     labbeam-handins/<handinId>/<username>/<transferId>/<file index>
 *     labbeam-handins/<handinId>/<username>/<transferId>/delivery.json
 *
 * A delivery arrives like any transfer, into `labbeam-incoming/<transferId>/` (opfs.ts); once
 * every file is verified it is moved here, with `delivery.json` naming its files (name, size,
 * SHA-256), and only then is the receipt sent. Unlike incoming files, these stay when the page
 * is closed or reloaded, until the instructor removes the hand-in from this browser: a
 * student told "handed in" must not lose the work to a closed tab. On reopening, the
 * deliveries kept here whose receipt the server lacks are receipted then.
 *
 * "Save all" writes each student's newest delivery into a folder the instructor picks, as
 * `<username>/<relative path>`.
 */

import { INCOMING_DIR } from './opfs';
import { type Handin, type ReceiptFile, decodeHandin, decodeReceiptFiles } from './protocol';

export const HANDINS_DIR = 'labbeam-handins';
const DELIVERY_FILE = 'delivery.json';
/** The hand-in itself (title, lab, deadline…), so it is listed after it closed. */
const HANDIN_FILE = 'handin.json';

/** A delivery kept in this browser. */
export interface KeptDelivery {
  readonly handinId: string;
  readonly username: string;
  readonly displayName: string;
  readonly transferId: string;
  readonly files: readonly ReceiptFile[];
  readonly late: boolean;
  /** When it was verified here (ms since the epoch). */
  readonly keptAt: number;
}

type Dir = FileSystemDirectoryHandle;
/** `FileSystemHandle.move`, which Chromium has for OPFS files (not in TypeScript's DOM types yet). */
type Movable = FileSystemFileHandle & { move?: (parent: Dir, name: string) => Promise<void> };

async function root(): Promise<Dir> {
  return navigator.storage.getDirectory();
}

/** A name for one path segment: usernames and ids are safe already; this keeps them so. */
function segment(name: string): string {
  return encodeURIComponent(name);
}

async function deliveryDir(d: { handinId: string; username: string; transferId: string }, create: boolean): Promise<Dir> {
  const top = await (await root()).getDirectoryHandle(HANDINS_DIR, { create });
  const handin = await top.getDirectoryHandle(segment(d.handinId), { create });
  const student = await handin.getDirectoryHandle(segment(d.username), { create });
  return student.getDirectoryHandle(segment(d.transferId), { create });
}

/** The folders in `dir` (not its files, such as `handin.json`). */
async function folders(dir: Dir): Promise<Dir[]> {
  const out: Dir[] = [];
  for await (const handle of (dir as unknown as { values(): AsyncIterable<FileSystemHandle> }).values()) {
    if (handle.kind === 'directory') out.push(handle as Dir);
  }
  return out;
}

async function names(dir: Dir): Promise<string[]> {
  const out: string[] = [];
  for await (const name of (dir as unknown as { keys(): AsyncIterable<string> }).keys()) out.push(name);
  return out;
}

/**
 * Moves the verified files of receiving transfer `d.transferId` (every file, index order) out
 * of the incoming folder into the student's folder, and writes `delivery.json` last: a
 * delivery without it was not kept whole and is not listed.
 */
export async function keepDelivery(d: KeptDelivery): Promise<void> {
  const target = await deliveryDir(d, true);
  const incoming = await (await (await root()).getDirectoryHandle(INCOMING_DIR)).getDirectoryHandle(d.transferId);
  for (let index = 0; index < d.files.length; index++) {
    const name = String(index);
    if ((await names(target)).includes(name)) continue; // moved before an interruption
    const source = (await incoming.getFileHandle(name)) as Movable;
    let moved = false;
    if (typeof source.move === 'function') {
      try {
        await source.move(target, name);
        moved = true;
      } catch {
        // Some browsers move only within one folder tree: copy instead.
      }
    }
    if (!moved) {
      const writable = await (await target.getFileHandle(name, { create: true })).createWritable();
      await (await source.getFile()).stream().pipeTo(writable);
    }
  }
  const writable = await (await target.getFileHandle(DELIVERY_FILE, { create: true })).createWritable();
  await writable.write(JSON.stringify(d));
  await writable.close();
}

function decodeDelivery(v: unknown): KeptDelivery | null {
  if (typeof v !== 'object' || v === null) return null;
  const r = v as Record<string, unknown>;
  const str = (x: unknown): x is string => typeof x === 'string';
  const files = decodeReceiptFiles(r['files']);
  if (!str(r['handinId']) || !str(r['username']) || !str(r['transferId']) || files === null) return null;
  return {
    handinId: r['handinId'],
    username: r['username'],
    displayName: str(r['displayName']) ? r['displayName'] : r['username'],
    transferId: r['transferId'],
    files,
    late: r['late'] === true,
    keptAt: typeof r['keptAt'] === 'number' ? r['keptAt'] : 0,
  };
}

/** Notes hand-in `h` (once per hand-in): what keptHandins lists after it closed. */
export async function keepHandin(h: Handin): Promise<void> {
  const top = await (await root()).getDirectoryHandle(HANDINS_DIR, { create: true });
  const dir = await top.getDirectoryHandle(segment(h.handinId), { create: true });
  const writable = await (await dir.getFileHandle(HANDIN_FILE, { create: true })).createWritable();
  await writable.write(JSON.stringify(h));
  await writable.close();
}

/** The hand-ins this browser keeps files of. */
export async function keptHandins(): Promise<Handin[]> {
  const out: Handin[] = [];
  try {
    const top = await (await root()).getDirectoryHandle(HANDINS_DIR);
    for (const name of await names(top)) {
      try {
        const dir = await top.getDirectoryHandle(name);
        const h = decodeHandin(JSON.parse(await (await (await dir.getFileHandle(HANDIN_FILE)).getFile()).text()));
        if (h !== null) out.push(h);
      } catch {
        // Not a hand-in folder this page wrote whole.
      }
    }
  } catch {
    // Nothing kept (or no OPFS).
  }
  return out;
}

/** Every delivery of hand-in `handinId` kept in this browser, oldest first. */
export async function keptDeliveries(handinId: string): Promise<KeptDelivery[]> {
  const out: KeptDelivery[] = [];
  try {
    const top = await (await root()).getDirectoryHandle(HANDINS_DIR);
    const handin = await top.getDirectoryHandle(segment(handinId));
    for (const studentDir of await folders(handin)) {
      for (const transfer of await names(studentDir)) {
        try {
          const dir = await studentDir.getDirectoryHandle(transfer);
          const text = await (await (await dir.getFileHandle(DELIVERY_FILE)).getFile()).text();
          const d = decodeDelivery(JSON.parse(text));
          if (d !== null && d.handinId === handinId) out.push(d);
        } catch {
          // Not kept whole (no delivery.json): its transfer resumes or arrives again.
        }
      }
    }
  } catch {
    // Nothing kept for this hand-in (or no OPFS).
  }
  return out.sort((a, b) => a.keptAt - b.keptAt);
}

/** One kept file, disk-backed. */
export async function keptFile(d: KeptDelivery, index: number): Promise<File> {
  return (await (await deliveryDir(d, false)).getFileHandle(String(index))).getFile();
}

/**
 * Writes `deliveries` (each student's newest) into `target`, a folder the user picked:
 * `<username>/<relative path>`. Returns how many files were written.
 */
export async function saveDeliveries(deliveries: readonly KeptDelivery[], target: Dir): Promise<number> {
  let written = 0;
  for (const d of deliveries) {
    const studentDir = await target.getDirectoryHandle(d.username, { create: true });
    for (const [index, f] of d.files.entries()) {
      const parts = f.name.split('/').filter((p) => p !== '' && p !== '.' && p !== '..');
      const base = parts.pop();
      if (base === undefined) continue;
      let dir = studentDir;
      for (const part of parts) dir = await dir.getDirectoryHandle(part, { create: true });
      const writable = await (await dir.getFileHandle(base, { create: true })).createWritable();
      await (await keptFile(d, index)).stream().pipeTo(writable);
      written++;
    }
  }
  return written;
}

/** Removes everything this browser kept of hand-in `handinId`. */
export async function removeKept(handinId: string): Promise<void> {
  try {
    await (await (await root()).getDirectoryHandle(HANDINS_DIR)).removeEntry(segment(handinId), { recursive: true });
  } catch {
    // Already gone.
  }
}
