/**
 * What makes a waiting request hard to miss outside the dialog: the tab's title and icon
 * carry a badge while requests wait ("(1) Send files · LabBeam", the icon with a red dot),
 * and a short chime (WebAudio, no sound file) plays when one arrives.
 *
 * The icon with the dot is a second static file (`/favicon-waiting.svg`), not drawn on a
 * canvas: the server's Content-Security-Policy allows images from the page's own origin only
 * (no `data:` or `blob:` icons), and a static icon needs no drawing at all.
 *
 * The pure parts (`badgedTitle`, `countdownText`, `secondsLeft`) are unit-tested in
 * test/attention.test.ts.
 */

const ICON = '/favicon.svg';
const ICON_WAITING = '/favicon-waiting.svg';
const BADGE = /^\(\d+\) /;

/** `title` with the badge for `count` waiting requests (none for 0), whatever badge it had. */
export function badgedTitle(title: string, count: number): string {
  const plain = title.replace(BADGE, '');
  return count > 0 ? `(${count}) ${plain}` : plain;
}

/** Whole seconds left until `deadline` (ms since the epoch), never below 0. */
export function secondsLeft(deadline: number, now: number): number {
  return Math.max(0, Math.ceil((deadline - now) / 1000));
}

/** "0:42", "2:05": minutes and seconds for a countdown. */
export function countdownText(seconds: number): string {
  const s = Math.max(0, Math.floor(seconds));
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`;
}

/** The tab's badge: title prefix and icon, kept while `count` > 0. */
export class TabBadge {
  #count = 0;
  readonly #observer: MutationObserver | null;

  constructor() {
    // The shell sets the title when the view changes: put the badge back on it.
    const title = document.querySelector('title');
    this.#observer = title === null ? null : new MutationObserver(() => this.#applyTitle());
    if (title !== null) this.#observer?.observe(title, { childList: true, characterData: true, subtree: true });
  }

  get count(): number {
    return this.#count;
  }

  set(count: number): void {
    if (count === this.#count) return;
    this.#count = count;
    this.#applyTitle();
    const icon = document.querySelector<HTMLLinkElement>('link[rel="icon"]');
    if (icon !== null) icon.href = count > 0 ? ICON_WAITING : ICON;
  }

  stop(): void {
    this.set(0);
    this.#observer?.disconnect();
  }

  #applyTitle(): void {
    const want = badgedTitle(document.title, this.#count);
    if (document.title !== want) document.title = want;
  }
}

/**
 * A short two-note chime made with WebAudio. Browsers start audio only after the user has
 * interacted with the page, so the audio context is made (or resumed) at the first click or
 * key press; a chime asked for before that is silent. `played` counts the chimes started
 * (for tests: `window.labbeamTest.chimes()`).
 */
export class Chime {
  #context: AudioContext | null = null;
  played = 0;

  constructor() {
    const unlock = (): void => {
      this.#audio();
      window.removeEventListener('pointerdown', unlock);
      window.removeEventListener('keydown', unlock);
    };
    window.addEventListener('pointerdown', unlock);
    window.addEventListener('keydown', unlock);
  }

  play(): void {
    const ctx = this.#audio();
    if (ctx === null) return;
    this.played += 1;
    const start = ctx.currentTime + 0.01;
    for (const [i, frequency] of [880, 1318.5].entries()) {
      const at = start + i * 0.14;
      const osc = ctx.createOscillator();
      const gain = ctx.createGain();
      osc.type = 'sine';
      osc.frequency.value = frequency;
      gain.gain.setValueAtTime(0.0001, at);
      gain.gain.exponentialRampToValueAtTime(0.18, at + 0.015);
      gain.gain.exponentialRampToValueAtTime(0.0001, at + 0.22);
      osc.connect(gain).connect(ctx.destination);
      osc.start(at);
      osc.stop(at + 0.24);
    }
  }

  stop(): void {
    void this.#context?.close().catch(() => {});
    this.#context = null;
  }

  #audio(): AudioContext | null {
    try {
      this.#context ??= new AudioContext();
      if (this.#context.state === 'suspended') void this.#context.resume().catch(() => {});
      return this.#context;
    } catch {
      // No audio on this machine (or the API is missing): a chime is a nicety.
      return null;
    }
  }
}
