/**
 * Turns what the user picked or dropped into `PickedFile`s: plain files keep their name, files
 * inside a folder keep their path relative to the folder's parent (`Photos/2024/a.jpg`), which
 * the receiver sees and "Save to folder…" recreates.
 */

import type { PickedFile } from '../engine/engine';

export function fromFileList(list: FileList | null): PickedFile[] {
  if (list === null) return [];
  return [...list].map((file) => ({
    name: file.webkitRelativePath !== '' ? file.webkitRelativePath : file.name,
    blob: file,
    mime: file.type,
  }));
}

/** Files of a drop, walking into dropped folders (Chromium, Firefox and Safari support entries). */
export async function fromDataTransfer(data: DataTransfer): Promise<PickedFile[]> {
  const entries = [...data.items]
    .filter((item) => item.kind === 'file')
    .map((item) => item.webkitGetAsEntry?.() ?? null);
  if (entries.some((e) => e === null)) return fromFileList(data.files);
  const out: PickedFile[] = [];
  for (const entry of entries) if (entry !== null) await walk(entry, '', out);
  return out;
}

async function walk(entry: FileSystemEntry, prefix: string, out: PickedFile[]): Promise<void> {
  const path = prefix === '' ? entry.name : `${prefix}/${entry.name}`;
  if (entry.isFile) {
    const file = await new Promise<File>((resolve, reject) => (entry as FileSystemFileEntry).file(resolve, reject));
    out.push({ name: path, blob: file, mime: file.type });
    return;
  }
  if (!entry.isDirectory) return;
  const reader = (entry as FileSystemDirectoryEntry).createReader();
  // readEntries returns at most 100 entries per call: read until empty.
  for (;;) {
    const batch = await new Promise<FileSystemEntry[]>((resolve, reject) => reader.readEntries(resolve, reject));
    if (batch.length === 0) break;
    for (const child of batch) await walk(child, path, out);
  }
}

/**
 * The selection after choosing `added` on top of `current`: the files are added after the
 * ones already chosen, leaving out those chosen already (the same name, size and, for files
 * from the disk, modification time), so dropping the same file twice chooses it once.
 */
export function mergeSelection(current: readonly PickedFile[], added: readonly PickedFile[]): PickedFile[] {
  const key = (f: PickedFile): string => JSON.stringify([f.name, f.blob.size, 'lastModified' in f.blob ? f.blob.lastModified : null]);
  const seen = new Set(current.map(key));
  const out = [...current];
  for (const f of added) {
    const k = key(f);
    if (seen.has(k)) continue;
    seen.add(k);
    out.push(f);
  }
  return out;
}

/** Whether a drag carries files (not text or a link). */
export function carriesFiles(event: DragEvent): boolean {
  return event.dataTransfer?.types.includes('Files') ?? false;
}

/**
 * Stops the browser from opening files (or following links) dropped outside every drop
 * target, which would leave LabBeam and the transfers running in it. Drop targets stop their
 * own drag events, so `win` only sees the drops nobody takes: it refuses them (the pointer
 * says so while dragging). Text dragged into a text field is left alone. On the signed-in
 * home, files dropped anywhere are taken as the selection (page-drop.ts) before they get
 * here; this refuses them on the other pages, while a dialog is open, and after Esc.
 */
export function keepDropsInPage(win: Window): void {
  const refuse = (event: DragEvent): void => {
    const link = event.dataTransfer?.types.includes('text/uri-list') ?? false;
    if (!carriesFiles(event) && !(link && !editable(event.target))) return;
    event.preventDefault();
    if (event.dataTransfer !== null) event.dataTransfer.dropEffect = 'none';
  };
  win.addEventListener('dragover', refuse);
  win.addEventListener('drop', refuse);
}

function editable(target: EventTarget | null): boolean {
  return target instanceof HTMLInputElement || target instanceof HTMLTextAreaElement || (target instanceof HTMLElement && target.isContentEditable);
}

/**
 * Makes `element` take dropped files and folders (`drop-active` while something is dragged
 * over it); `onFiles` gets what was dropped, `failed` is called when it cannot be read. It
 * stops its own `dragover`/`drop`, so the page-wide drop (page-drop.ts) leaves it alone.
 */
export function dropTarget(element: HTMLElement, onFiles: (files: PickedFile[]) => void, failed: () => void): void {
  let depth = 0;
  element.addEventListener('dragenter', (e) => {
    if (!carriesFiles(e)) return;
    e.preventDefault();
    depth += 1;
    element.classList.add('drop-active');
  });
  element.addEventListener('dragover', (e) => {
    if (!carriesFiles(e)) return;
    e.preventDefault();
    e.stopPropagation();
    if (e.dataTransfer !== null) e.dataTransfer.dropEffect = 'copy';
  });
  element.addEventListener('dragleave', () => {
    depth = Math.max(0, depth - 1);
    if (depth === 0) element.classList.remove('drop-active');
  });
  element.addEventListener('drop', (e) => {
    if (e.dataTransfer === null || !carriesFiles(e)) return;
    e.preventDefault();
    e.stopPropagation();
    depth = 0;
    element.classList.remove('drop-active');
    void fromDataTransfer(e.dataTransfer).then(onFiles, failed);
  });
}
