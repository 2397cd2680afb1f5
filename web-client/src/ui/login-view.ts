/**
 * Sign-in form. Shown whenever there is no valid session.
 *
 * Test hooks (the stable ones are in docs/TEST-HOOKS.md): `login-username`, `login-password`,
 * `login-submit`, plus `login-error` (the server's message for a refused sign-in),
 * `login-notice` (why the user is here, e.g. the session ended) and `sign-in-provider` (one
 * "Sign in with …" link per campus identity provider, `data-provider` its id).
 */

import { ApiError, type ApiClient, type SignInProvider, type User } from '../api';
import { field, h, messageLine, whileBusy } from './dom';
import type { View } from './shell';

export interface LoginViewOptions {
  api: ApiClient;
  onSignedIn: (user: User) => void;
  /** Shown above the form: why the user has to sign in (session ended, server unreachable…). */
  notice?: { text: string; tone: 'info' | 'warning' } | undefined;
}

export function loginView({ api, onSignedIn, notice }: LoginViewOptions): View {
  const username = field({
    label: 'Username',
    type: 'text',
    name: 'username',
    autocomplete: 'username',
    testId: 'login-username',
  });
  const password = field({
    label: 'Password',
    type: 'password',
    name: 'password',
    autocomplete: 'current-password',
    testId: 'login-password',
  });
  const submit = h('button', { type: 'submit', class: 'btn btn-primary btn-block', 'data-testid': 'login-submit' }, 'Sign in');
  const error = messageLine('error', 'login-error');
  const info = messageLine('notice', 'login-notice');
  if (notice !== undefined) info.show(notice.text, notice.tone);

  const form = h('form', { class: 'stack', novalidate: true }, username.wrapper, password.wrapper, error.element, submit);
  // Filled once the server says which campus identity providers it knows (none: stays empty).
  const providers = h('div', { class: 'stack sign-in-providers', hidden: true });
  const root = h(
    'section',
    { class: 'card card-narrow', 'aria-labelledby': 'login-title' },
    h('h1', { id: 'login-title', class: 'card-title' }, 'Sign in'),
    h('p', { class: 'card-lead' }, 'Use your lab account to send and receive files between lab computers.'),
    info.element,
    providers,
    form,
  );
  void api.signInProviders().then(
    (list) => showProviders(providers, list),
    // Without the list the password form still works; nothing to tell the user.
    () => undefined,
  );

  form.addEventListener('submit', (event) => {
    event.preventDefault();
    if (submit.disabled) return;
    error.clear();
    const name = username.input.value.trim();
    const secret = password.input.value;
    if (name === '' || secret === '') {
      error.show('Enter your username and password.');
      (name === '' ? username.input : password.input).focus();
      return;
    }
    void whileBusy(form, submit, 'Signing in…', () => api.login(name, secret)).then(
      (user) => onSignedIn(user),
      (reason: unknown) => {
        error.show(loginErrorText(reason));
        password.input.select();
        password.input.focus();
      },
    );
  });

  return {
    root,
    title: 'Sign in',
    focus: () => (username.input.value === '' ? username.input : password.input).focus(),
  };
}

function showProviders(box: HTMLElement, list: readonly SignInProvider[]): void {
  if (list.length === 0) return;
  for (const p of list) {
    box.append(
      h(
        'a',
        {
          class: 'btn btn-primary btn-block',
          href: `${p.startUrl}?return_to=${encodeURIComponent('/')}`,
          'data-testid': 'sign-in-provider',
          'data-provider': p.id,
        },
        `Sign in with ${p.name}`,
      ),
    );
  }
  box.append(h('p', { class: 'card-lead' }, 'or with a LabBeam account:'));
  box.hidden = false;
}

function loginErrorText(reason: unknown): string {
  if (!(reason instanceof ApiError)) return 'Signing in failed unexpectedly. Reload the page and try again.';
  if (reason.status === 429 || reason.code === 'too_many_attempts') {
    const wait = reason.retryAfter === null ? 'try again later' : `try again in ${reason.retryAfter} s`;
    return `${withoutFinalStop(reason.message)} — ${wait}.`;
  }
  return reason.message;
}

function withoutFinalStop(text: string): string {
  return text.trim().replace(/[.!]+$/, '');
}
