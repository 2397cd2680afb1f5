/**
 * Saving received files, the page's part of it: a download (an `<a download>` that points at
 * the stored, disk-backed file, so nothing is copied into memory) and the folder picker of
 * "Save all to folder…" where the browser has one. The engine reads the stored files and
 * writes into the picked folder; it has no DOM (engine/opfs.ts).
 */

/** Saves `file` through the browser's download (the "Downloads" folder or its prompt). */
export function downloadFile(file: Blob, path: string): void {
  const url = URL.createObjectURL(file);
  const a = document.createElement('a');
  a.href = url;
  a.download = downloadName(path);
  a.rel = 'noopener';
  document.body.append(a);
  a.click();
  a.remove();
  // The download has resolved the URL by then; revoking early can cut a slow start short.
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

/**
 * A download cannot create folders, so a relative path keeps its last part; folders are kept
 * by "Save all to folder…" where the browser offers it.
 */
export function downloadName(path: string): string {
  const parts = path.split('/').filter((p) => p !== '');
  return parts[parts.length - 1] ?? 'download';
}

interface DirectoryPickerWindow {
  showDirectoryPicker?: (options?: { mode?: 'readwrite' }) => Promise<FileSystemDirectoryHandle>;
}

export function folderPickerAvailable(): boolean {
  return typeof (window as DirectoryPickerWindow).showDirectoryPicker === 'function';
}

/** Asks the user for a folder to write into; rejects with an `AbortError` when they cancel. */
export async function pickFolder(): Promise<FileSystemDirectoryHandle> {
  const pick = (window as DirectoryPickerWindow).showDirectoryPicker;
  if (pick === undefined) throw new Error('This browser cannot save into a folder; save the files one by one.');
  return pick.call(window, { mode: 'readwrite' });
}
