/**
 * Lab policies on the home view, for instructors and admins (shown to users with
 * `broadcast.send` or `users.manage`): the labs this user may set (`lab:policies`: the labs
 * they are responsible for; an admin's, every lab), each with its exam-mode switch and its
 * visibility, and its exam window when it has one (docs/PROTOCOL.md, "Exam mode"). Starting
 * exam mode asks first, in words about that lab's students. Every change goes to the server
 * (`lab:policy`), which applies, audits and tells the lab's devices; the row shows what the
 * server answered, and a refusal puts it back as it was.
 *
 * Test hooks: `lab-policy` (the panel), `lab-policy-lab` (one lab's row, `data-lab`,
 * `data-exam` = true|false), `lab-policy-exam` (its exam switch, a checkbox with
 * `role="switch"`, `data-lab`), `lab-policy-visibility` (its visibility select, `data-lab`;
 * values `default`, `own`, `all`), `lab-policy-schedule` (its exam window, when it has one),
 * `lab-policy-error`, `lab-policy-empty`.
 */

import type { TransferEngine } from '../engine/engine';
import type { LabPolicyChange, LabPolicyState, PolicyVisibility } from '../engine/protocol';
import { h, messageLine, uniqueId } from './dom';

const VISIBILITIES: readonly [PolicyVisibility, string][] = [
  ['default', 'Server default'],
  ['own', 'Own lab only'],
  ['all', 'All labs'],
];

/** Longest wait before the list is read again for a window that starts or ends (ms). */
const MAX_WAIT_MS = 6 * 3600 * 1000;

/** The question before exam mode starts in `lab`. */
export function examConfirmText(lab: string): string {
  return (
    `Students in ${lab} will no longer be able to send files to each other, or to receive them one to one, ` +
    'and will see only the lab’s instructors and admins until exam mode ends. Transfers under way between them stop now. ' +
    'Broadcasts and hand-ins still reach them.\n\nStart exam mode?'
  );
}

/** A lab's exam window in this computer's local time: `Thu 3 Dec, 10:15–12:15`. */
export function scheduleWords(from: number, until: number, locale?: string): string {
  const start = new Date(from * 1000);
  const end = new Date(until * 1000);
  const day: Intl.DateTimeFormatOptions = { weekday: 'short', day: 'numeric', month: 'short' };
  const time: Intl.DateTimeFormatOptions = { hour: '2-digit', minute: '2-digit' };
  const sameDay = start.toDateString() === end.toDateString();
  const endText = sameDay ? end.toLocaleTimeString(locale, time) : `${end.toLocaleDateString(locale, day)}, ${end.toLocaleTimeString(locale, time)}`;
  return `Exam window: ${start.toLocaleDateString(locale, day)}, ${start.toLocaleTimeString(locale, time)}–${endText}`;
}

/** When the list should be read again: shortly after the next start or end of a window (ms from now), or null. */
export function nextRefreshMs(labs: readonly LabPolicyState[], nowMs: number): number | null {
  let next: number | null = null;
  for (const l of labs) {
    if (l.schedule === null) continue;
    const at = l.schedule.from * 1000 > nowMs ? l.schedule.from * 1000 : l.schedule.until * 1000;
    if (at > nowMs && (next === null || at < next)) next = at;
  }
  return next === null ? null : Math.min(next - nowMs + 2000, MAX_WAIT_MS);
}

export class LabPolicyPanel {
  readonly root: HTMLElement;
  #engine: TransferEngine | null = null;
  readonly #list: HTMLUListElement;
  readonly #empty: HTMLParagraphElement;
  readonly #error = messageLine('error', 'lab-policy-error');
  #timer: ReturnType<typeof setTimeout> | null = null;
  /** Labs with a change on its way: their controls wait. */
  readonly #busy = new Set<string>();

  constructor() {
    const titleId = uniqueId('lab-policy-title');
    this.#list = h('ul', { class: 'lab-policy-list', 'aria-labelledby': titleId });
    this.#empty = h('p', { class: 'muted empty', 'data-testid': 'lab-policy-empty', hidden: true }, 'You are not responsible for any lab. An administrator makes you responsible for one.');
    this.root = h(
      'section',
      { class: 'card panel panel-lab-policy', 'aria-labelledby': titleId, 'data-testid': 'lab-policy' },
      h('h2', { id: titleId, class: 'panel-title' }, 'Your labs'),
      h('p', { class: 'muted' }, 'Exam mode stops files going one to one between a lab’s students; visibility decides which labs they see.'),
      this.#error.element,
      this.#list,
      this.#empty,
    );
  }

  attach(engine: TransferEngine): void {
    this.#engine = engine;
    engine.on('connection', (state) => {
      if (state.kind === 'connected') void this.refresh();
    });
    // This device's own lab went into exam mode or out of it: the list may be behind.
    let lastOn: boolean | null = null;
    engine.on('exam', (state) => {
      if (lastOn !== null && lastOn !== state.on) void this.refresh();
      lastOn = state.on;
    });
  }

  /** Reads the labs and their policies again. */
  async refresh(): Promise<void> {
    const engine = this.#engine;
    if (engine === null) return;
    try {
      const labs = await engine.labPolicies();
      this.#error.clear();
      this.#render(labs);
    } catch (error) {
      this.#error.show(error instanceof Error && error.message !== '' ? error.message : 'Your labs could not be read.');
    }
  }

  #render(labs: readonly LabPolicyState[]): void {
    this.#list.replaceChildren(...labs.map((l) => this.#row(l)));
    this.#empty.hidden = labs.length > 0;
    if (this.#timer !== null) clearTimeout(this.#timer);
    const wait = nextRefreshMs(labs, Date.now());
    this.#timer = wait === null ? null : setTimeout(() => void this.refresh(), wait);
  }

  #row(l: LabPolicyState): HTMLLIElement {
    const examId = uniqueId('lab-policy-exam');
    const visibilityId = uniqueId('lab-policy-visibility');
    const exam = h('input', { type: 'checkbox', role: 'switch', id: examId, class: 'check-input', 'data-testid': 'lab-policy-exam', 'data-lab': l.lab, checked: l.exam });
    const visibility = h(
      'select',
      { id: visibilityId, class: 'field-input field-select', 'data-testid': 'lab-policy-visibility', 'data-lab': l.lab },
      ...VISIBILITIES.map(([value, label]) => h('option', { value, selected: value === l.visibility }, label)),
    );
    const row = h(
      'li',
      { class: 'lab-policy', 'data-testid': 'lab-policy-lab', 'data-lab': l.lab, 'data-exam': String(l.exam) },
      h('strong', { class: 'lab-policy-name' }, l.lab),
      h('span', { class: 'check' }, exam, h('label', { for: examId }, 'Exam mode')),
      h('span', { class: 'lab-policy-visibility' }, h('label', { for: visibilityId }, 'Students see'), visibility),
      l.schedule === null ? null : h('span', { class: 'muted', 'data-testid': 'lab-policy-schedule' }, scheduleWords(l.schedule.from, l.schedule.until)),
    );
    exam.addEventListener('change', () => {
      if (exam.checked && !window.confirm(examConfirmText(l.lab))) {
        exam.checked = false;
        return;
      }
      void this.#change(l, { exam: exam.checked }, row);
    });
    visibility.addEventListener('change', () => {
      const value = VISIBILITIES.find(([v]) => v === visibility.value)?.[0];
      if (value !== undefined) void this.#change(l, { visibility: value }, row);
    });
    if (this.#busy.has(l.lab)) for (const control of [exam, visibility]) control.disabled = true;
    return row;
  }

  async #change(before: LabPolicyState, change: LabPolicyChange, row: HTMLLIElement): Promise<void> {
    const engine = this.#engine;
    if (engine === null) return;
    this.#busy.add(before.lab);
    for (const control of row.querySelectorAll<HTMLInputElement | HTMLSelectElement>('input, select')) control.disabled = true;
    this.#error.clear();
    let now = before;
    try {
      now = await engine.setLabPolicy(before.lab, change);
    } catch (error) {
      this.#error.show(`${before.lab}: ${error instanceof Error && error.message !== '' ? error.message : 'the change did not go through.'}`);
    } finally {
      this.#busy.delete(before.lab);
    }
    // The server's answer (or, refused, what it was) replaces the row.
    row.replaceWith(this.#row(now));
  }
}
