/**
 * Drop anywhere: files dragged over any part of the signed-in page show an overlay ("Drop to
 * choose these files"), and files dropped outside the drop targets become the current
 * selection, as if chosen with "Choose files…"; the user then picks a person (or a lab, to
 * broadcast) as usual. The drop targets keep their meaning: a person sends at once, the
 * "Choose files" area chooses. They stop their own `dragover`/`drop`, so this sees only the
 * drops nobody else took.
 *
 * The overlay never takes pointer events: the element under the pointer stays the drop target
 * (a person's row still lights up through it). Whether files are over the page is counted from
 * `dragenter`/`dragleave` (`DragTracker`), seen in the capture phase so that no target can hide
 * them. The overlay goes when the files leave the window, when they are dropped anywhere, and on
 * Esc; after Esc a drop on the page is refused until that drag ends.
 *
 * For screen readers the overlay itself is hidden (`aria-hidden`); a polite-but-prompt live
 * region (`role="status"`, assertive) says what a drop will do when it appears and that Esc
 * cancels, and the selection's own live region says what was chosen.
 *
 * Only while `active()` (the home view is on screen and no modal dialog is open): otherwise the
 * page-wide refusal (`keepDropsInPage`) applies as before.
 *
 * Test hooks: `drop-overlay` (`data-state`: `shown` or `hidden`), `drop-announcement`.
 */

import type { PickedFile } from '../engine/engine';
import { h } from './dom';
import { carriesFiles, fromDataTransfer } from './picking';

/**
 * Whether files are being dragged over the page, from the drag events the page sees: every
 * element entered is counted until it is left, so moving between elements keeps the count
 * above zero, and leaving the window brings it back to zero. Plain, unit-tested.
 */
export class DragTracker {
  #depth = 0;
  #cancelled = false;

  /** The overlay should show. */
  get shown(): boolean {
    return this.#depth > 0 && !this.#cancelled;
  }

  /** Esc was pressed during this drag: drops are refused until it ends. */
  get cancelled(): boolean {
    return this.#cancelled;
  }

  enter(): void {
    this.#depth += 1;
  }

  leave(): void {
    this.#depth = Math.max(0, this.#depth - 1);
    if (this.#depth === 0) this.#cancelled = false;
  }

  /** The user cancelled (Esc) while files were over the page. */
  cancel(): void {
    if (this.#depth > 0) this.#cancelled = true;
  }

  /** Dropped (anywhere): the drag is over. */
  end(): void {
    this.#depth = 0;
    this.#cancelled = false;
  }
}

export interface PageDropOptions {
  /** Whether page drops are taken now. */
  active(): boolean;
  /** Whether the user may broadcast (the overlay mentions labs then). */
  canBroadcast: boolean;
  /** Files were dropped outside the drop targets. */
  dropped(files: PickedFile[]): void;
  /** What was dropped could not be read. */
  failed(): void;
}

export class PageDrop {
  /** The overlay; place it anywhere in the view (it is fixed to the viewport). */
  readonly element: HTMLDivElement;
  /** The live region that announces the overlay; must stay in the page while hidden. */
  readonly announcement: HTMLParagraphElement;
  readonly #options: PageDropOptions;
  readonly #tracker = new DragTracker();
  /** What the live region says when the overlay appears. */
  readonly #spoken: string;
  #doc: Document | null = null;
  /** The drop under way came after Esc: refused. */
  #dropRefused = false;

  constructor(options: PageDropOptions) {
    this.#options = options;
    const then = options.canBroadcast ? 'Then pick a person or a lab to send them to.' : 'Then pick the person to send them to.';
    const hint = `${then} Dropped on a person, they are sent to them at once. Esc cancels.`;
    this.#spoken = `Files are over LabBeam. Drop to choose these files. ${hint}`;
    this.element = h(
      'div',
      { class: 'page-drop', 'aria-hidden': 'true', 'data-testid': 'drop-overlay', 'data-state': 'hidden', hidden: true },
      h(
        'div',
        { class: 'page-drop-card' },
        h('p', { class: 'page-drop-title' }, 'Drop to choose these files'),
        h('p', { class: 'page-drop-hint' }, hint),
      ),
    );
    this.announcement = h('p', { class: 'visually-hidden', role: 'status', 'aria-live': 'assertive', 'data-testid': 'drop-announcement' });
  }

  /** Starts listening on `doc` (once the view is started). */
  attach(doc: Document): void {
    if (this.#doc !== null) return;
    this.#doc = doc;
    doc.addEventListener('dragenter', this.#onEnter, true);
    doc.addEventListener('dragleave', this.#onLeave, true);
    doc.addEventListener('drop', this.#onAnyDrop, true);
    doc.addEventListener('dragover', this.#onOver);
    doc.addEventListener('drop', this.#onDrop);
    doc.addEventListener('keydown', this.#onKey);
  }

  detach(): void {
    const doc = this.#doc;
    if (doc === null) return;
    doc.removeEventListener('dragenter', this.#onEnter, true);
    doc.removeEventListener('dragleave', this.#onLeave, true);
    doc.removeEventListener('drop', this.#onAnyDrop, true);
    doc.removeEventListener('dragover', this.#onOver);
    doc.removeEventListener('drop', this.#onDrop);
    doc.removeEventListener('keydown', this.#onKey);
    this.#doc = null;
    this.#tracker.end();
    this.#render();
  }

  readonly #onEnter = (event: DragEvent): void => {
    if (!carriesFiles(event) || !this.#options.active()) return;
    this.#tracker.enter();
    this.#render();
  };

  readonly #onLeave = (event: DragEvent): void => {
    if (!carriesFiles(event)) return;
    this.#tracker.leave();
    this.#render();
  };

  /** Any drop, a drop target's included (seen before the target stops it): the drag is over. */
  readonly #onAnyDrop = (): void => {
    this.#dropRefused = this.#tracker.cancelled;
    this.#tracker.end();
    this.#render();
  };

  /** Reached only when no drop target took the drag: the page takes it (the pointer says copy). */
  readonly #onOver = (event: DragEvent): void => {
    if (!carriesFiles(event) || this.#tracker.cancelled || !this.#options.active()) return;
    event.preventDefault();
    event.stopPropagation();
    if (event.dataTransfer !== null) event.dataTransfer.dropEffect = 'copy';
  };

  readonly #onDrop = (event: DragEvent): void => {
    if (event.dataTransfer === null || !carriesFiles(event) || !this.#options.active()) return;
    event.preventDefault();
    event.stopPropagation();
    if (this.#dropRefused) return;
    void fromDataTransfer(event.dataTransfer).then(
      (files) => this.#options.dropped(files),
      () => this.#options.failed(),
    );
  };

  readonly #onKey = (event: KeyboardEvent): void => {
    if (event.key !== 'Escape' || !this.#tracker.shown) return;
    this.#tracker.cancel();
    this.#render();
  };

  #render(): void {
    const shown = this.#tracker.shown;
    if (shown === !this.element.hidden) return;
    this.element.hidden = !shown;
    this.element.setAttribute('data-state', shown ? 'shown' : 'hidden');
    this.announcement.textContent = shown ? this.#spoken : '';
  }
}
