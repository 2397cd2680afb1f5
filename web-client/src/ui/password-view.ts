/**
 * Change-password form, in two situations:
 * - forced: the account has a temporary password (`mustChangePassword`), and the server refuses
 *   everything else until it is changed, so there is no way back from this form but Sign out;
 * - voluntary: opened from the account panel, with a Cancel button.
 *
 * The client checks what it can (confirmation matches, minimum length) to save a round trip;
 * the server remains the judge and its refusals (`weak_password`, wrong current password) are
 * shown as it words them.
 */

import { ApiError, type ApiClient } from '../api';
import { field, h, messageLine, whileBusy } from './dom';
import type { View } from './shell';

/** Kept equal to the server's minimum so the hint is true. */
export const MIN_PASSWORD_LENGTH = 10;

export interface PasswordViewOptions {
  api: ApiClient;
  forced: boolean;
  onChanged: () => void;
  /** Voluntary change only. */
  onCancel?: (() => void) | undefined;
}

export function passwordView({ api, forced, onChanged, onCancel }: PasswordViewOptions): View {
  const current = field({
    label: forced ? 'Temporary password' : 'Current password',
    type: 'password',
    name: 'current-password',
    autocomplete: 'current-password',
    testId: 'password-current',
  });
  const next = field({
    label: 'New password',
    type: 'password',
    name: 'new-password',
    autocomplete: 'new-password',
    testId: 'password-new',
    hint: `At least ${MIN_PASSWORD_LENGTH} characters.`,
    minLength: MIN_PASSWORD_LENGTH,
  });
  const confirm = field({
    label: 'Confirm new password',
    type: 'password',
    name: 'confirm-password',
    autocomplete: 'new-password',
    testId: 'password-confirm',
    minLength: MIN_PASSWORD_LENGTH,
  });
  const submit = h('button', { type: 'submit', class: 'btn btn-primary', 'data-testid': 'password-submit' }, 'Change password');
  const cancel =
    !forced && onCancel !== undefined
      ? h('button', { type: 'button', class: 'btn btn-secondary', 'data-testid': 'password-cancel' }, 'Cancel')
      : null;
  cancel?.addEventListener('click', () => onCancel?.());
  const error = messageLine('error', 'password-error');

  const form = h(
    'form',
    { class: 'stack', novalidate: true },
    current.wrapper,
    next.wrapper,
    confirm.wrapper,
    error.element,
    h('div', { class: 'actions' }, submit, cancel),
  );
  const title = forced ? 'Choose a new password' : 'Change password';
  const root = h(
    'section',
    { class: forced ? 'card card-narrow' : 'card card-medium', 'aria-labelledby': 'password-title', 'data-testid': 'password-form' },
    h('h1', { id: 'password-title', class: 'card-title', tabindex: -1 }, title),
    forced
      ? h('p', { class: 'card-lead' }, 'Your password was set by an administrator. Choose your own to continue.')
      : null,
    form,
  );

  const fail = (text: string, input: HTMLInputElement): void => {
    error.show(text);
    input.setAttribute('aria-invalid', 'true');
    input.focus();
  };

  form.addEventListener('submit', (event) => {
    event.preventDefault();
    if (submit.disabled) return;
    error.clear();
    for (const { input } of [current, next, confirm]) input.removeAttribute('aria-invalid');

    const currentValue = current.input.value;
    const newValue = next.input.value;
    if (currentValue === '') return fail(`Enter your ${forced ? 'temporary' : 'current'} password.`, current.input);
    // Code points, not UTF-16 units, so an emoji counts as one character as people expect.
    if ([...newValue].length < MIN_PASSWORD_LENGTH) {
      return fail(`The new password must be at least ${MIN_PASSWORD_LENGTH} characters long.`, next.input);
    }
    if (newValue !== confirm.input.value) return fail('The new passwords do not match.', confirm.input);

    void whileBusy(form, submit, 'Changing…', () => api.changePassword(currentValue, newValue)).then(
      () => onChanged(),
      (reason: unknown) => {
        const wrongCurrent = reason instanceof ApiError && reason.code === 'invalid_credentials';
        const weak = reason instanceof ApiError && reason.code === 'weak_password';
        const text = reason instanceof ApiError ? reason.message : 'Changing the password failed unexpectedly. Try again.';
        fail(text, wrongCurrent ? current.input : weak ? next.input : current.input);
      },
    );
  });

  return {
    root,
    title,
    focus: () => current.input.focus(),
  };
}
