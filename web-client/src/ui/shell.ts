/**
 * The page chrome every view lives in: the top bar (app name, who is signed in, Sign out) and
 * the `<main id="app-main">` region that shows one view at a time.
 *
 * The shell does not decide which view to show or call the server; the app controller in
 * main.ts does, and hands the shell what to display.
 */

import type { User } from '../api';
import { h, messageLine } from './dom';
import { roleLabel } from './labels';

/** One screen of the app, shown in the main region. */
export interface View {
  readonly root: HTMLElement;
  /** Shown in the browser tab after the app name. */
  readonly title: string;
  /** Moves focus where a keyboard or screen-reader user should start on this view. */
  focus(): void;
}

export class Shell {
  readonly #session: HTMLDivElement;
  readonly #banner: ReturnType<typeof messageLine>;
  readonly #main: HTMLElement;

  private constructor(session: HTMLDivElement, banner: ReturnType<typeof messageLine>, main: HTMLElement) {
    this.#session = session;
    this.#banner = banner;
    this.#main = main;
  }

  /** Replaces the content of `host` (the static loading message) with the shell. */
  static mount(host: HTMLElement): Shell {
    const session = h('div', { class: 'session' });
    const header = h(
      'header',
      { class: 'topbar' },
      h(
        'div',
        { class: 'topbar-inner' },
        h(
          'a',
          { class: 'brand', href: '/' },
          h('img', { class: 'brand-mark', src: '/favicon.svg', alt: '', width: 28, height: 28 }),
          h('span', { class: 'brand-name' }, 'LabBeam'),
        ),
        session,
      ),
    );
    // App-wide problems that belong to no single view (sign-out failed; later: lost connection).
    const banner = messageLine('error', 'app-alert');
    banner.element.classList.add('banner');
    const main = h('main', { id: 'app-main', class: 'app-main' });
    host.replaceChildren(header, banner.element, main);
    return new Shell(session, banner, main);
  }

  /** Shows who is signed in, with a Sign out button; `null` clears it (signed out). */
  setUser(user: User | null, onSignOut?: (button: HTMLButtonElement) => void): void {
    if (user === null) {
      this.#session.replaceChildren();
      return;
    }
    const signOut = h('button', { type: 'button', class: 'btn btn-secondary btn-small', 'data-testid': 'logout' }, 'Sign out');
    if (onSignOut !== undefined) signOut.addEventListener('click', () => onSignOut(signOut));
    // Users who may use the admin portal get a way there from every page.
    const portal = user.permissions.includes('portal.access')
      ? h('a', { class: 'btn btn-secondary btn-small', href: '/admin', 'data-testid': 'portal-link' }, 'Admin portal')
      : null;
    this.#session.replaceChildren(
      h(
        'div',
        { class: 'session-who', 'data-testid': 'current-user', 'data-username': user.username },
        h('span', { class: 'session-name' }, user.displayName),
        h('span', { class: 'role-badge' }, roleLabel(user.role)),
      ),
      ...(portal === null ? [] : [portal]),
      signOut,
    );
  }

  /** Shows an app-wide error under the top bar until `clearAlert` or the next view. */
  alert(text: string): void {
    this.#banner.show(text);
  }

  clearAlert(): void {
    this.#banner.clear();
  }

  show(view: View): void {
    this.#banner.clear();
    this.#main.replaceChildren(view.root);
    document.title = view.title === '' ? 'LabBeam' : `${view.title} · LabBeam`;
    view.focus();
  }

  /** A plain message in the main region, e.g. while the session is being checked. */
  showMessage(text: string): void {
    this.#main.replaceChildren(h('p', { class: 'boot-message', role: 'status' }, text));
  }
}
