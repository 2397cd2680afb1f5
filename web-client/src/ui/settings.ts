/**
 * The user's settings for this browser, kept in localStorage (nothing secret): this device's
 * name, relay mode, automatic saving, desktop notifications, the sound for incoming files,
 * the colour theme and, when collecting a hand-in, how many deliveries arrive at once.
 * The device name is the one its user gave this computer, '' until they give one: the server
 * then names the device by the lab's seat map or by its address ("PC .14"); a seat name set
 * by an admin wins over the user's name too (see docs/PROTOCOL.md, "Connecting").
 * `?relay=1` in the page address turns relay mode on for this page without storing it;
 * `?relay=udp` / `?relay=tcp` also pick how the relay is reached (for tests and diagnosis).
 */

export type Theme = 'system' | 'light' | 'dark';
/** Relay mode in force: off, on (any transport to the relay), or on over one transport only. */
export type RelayMode = 'off' | 'any' | 'udp' | 'tcp';

export interface SettingsValues {
  /** The name the user gave this computer; '' for none. */
  deviceName: string;
  forceRelay: boolean;
  autoSave: boolean;
  notifications: boolean;
  /** A chime when a request arrives (on by default). */
  sound: boolean;
  theme: Theme;
  /** Collecting a hand-in: how many students' deliveries arrive at once (1 to 16). */
  handinConcurrency: number;
}

/** How many hand-in deliveries arrive at once unless the user says (see handins.ts). */
export const HANDIN_CONCURRENCY_DEFAULT = 4;
export const HANDIN_CONCURRENCY_MAX = 16;

const KEY = 'labbeam.settings';

export class Settings {
  #values: SettingsValues;
  readonly #relayFromUrl: RelayMode;
  readonly #listeners = new Set<(values: SettingsValues) => void>();

  constructor(search = location.search) {
    this.#values = { ...defaults(), ...load() };
    const relay = new URLSearchParams(search).get('relay');
    this.#relayFromUrl = relay === '1' || relay === 'true' ? 'any' : relay === 'udp' || relay === 'tcp' ? relay : 'off';
  }

  get values(): Readonly<SettingsValues> {
    return this.#values;
  }

  /** Relay mode as in force: the stored setting, or the page address's `?relay=1`. */
  get forceRelay(): boolean {
    return this.relayMode !== 'off';
  }

  get relayMode(): RelayMode {
    if (this.#relayFromUrl !== 'off') return this.#relayFromUrl;
    return this.#values.forceRelay ? 'any' : 'off';
  }

  get relayFromUrl(): boolean {
    return this.#relayFromUrl !== 'off';
  }

  set<K extends keyof SettingsValues>(key: K, value: SettingsValues[K]): void {
    this.#values = { ...this.#values, [key]: value };
    try {
      localStorage.setItem(KEY, JSON.stringify(this.#values));
    } catch {
      // Storage disabled: the setting holds for this page only.
    }
    for (const l of this.#listeners) l(this.#values);
  }

  onChange(listener: (values: SettingsValues) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }
}

function defaults(): SettingsValues {
  return { deviceName: '', forceRelay: false, autoSave: false, notifications: false, sound: true, theme: 'system', handinConcurrency: HANDIN_CONCURRENCY_DEFAULT };
}

function load(): Partial<SettingsValues> {
  try {
    const raw: unknown = JSON.parse(localStorage.getItem(KEY) ?? '{}');
    if (typeof raw !== 'object' || raw === null) return {};
    const r = raw as Record<string, unknown>;
    const out: Partial<SettingsValues> = {};
    if (typeof r['deviceName'] === 'string') out.deviceName = storedDeviceName(r['deviceName'], browserName());
    if (typeof r['forceRelay'] === 'boolean') out.forceRelay = r['forceRelay'];
    if (typeof r['autoSave'] === 'boolean') out.autoSave = r['autoSave'];
    if (typeof r['notifications'] === 'boolean') out.notifications = r['notifications'];
    if (typeof r['sound'] === 'boolean') out.sound = r['sound'];
    if (r['theme'] === 'light' || r['theme'] === 'dark' || r['theme'] === 'system') out.theme = r['theme'];
    const n = r['handinConcurrency'];
    if (typeof n === 'number' && Number.isInteger(n) && n >= 1 && n <= HANDIN_CONCURRENCY_MAX) out.handinConcurrency = n;
    return out;
  } catch {
    return {};
  }
}

/**
 * The device name kept in storage: trimmed, at most 64 characters, and '' for the browser's
 * own name, which earlier versions stored as if the user had chosen it (it tells no two lab
 * PCs apart, so the server's name for the device is better).
 */
export function storedDeviceName(stored: string, browser: string): string {
  const name = stored.trim().slice(0, 64);
  return name === browser ? '' : name;
}

/** "Chrome on Linux": what this browser is, for when the server has no name for it yet. */
export function browserName(): string {
  const ua = navigator.userAgent;
  const browser = /Edg\//.test(ua) ? 'Edge' : /Firefox\//.test(ua) ? 'Firefox' : /Chrome\//.test(ua) ? 'Chrome' : /Safari\//.test(ua) ? 'Safari' : 'Browser';
  const os = /Windows/.test(ua) ? 'Windows' : /Mac OS X/.test(ua) ? 'macOS' : /CrOS/.test(ua) ? 'ChromeOS' : /Android/.test(ua) ? 'Android' : /Linux/.test(ua) ? 'Linux' : '';
  return os === '' ? browser : `${browser} on ${os}`;
}

/** Applies the theme to the page (`data-theme` on <html> overrides the system preference). */
export function applyTheme(theme: Theme): void {
  if (theme === 'system') document.documentElement.removeAttribute('data-theme');
  else document.documentElement.setAttribute('data-theme', theme);
}
