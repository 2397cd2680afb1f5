/**
 * The account panel (who you are, your role, what you may do) and the entry to a voluntary
 * password change; reached from the home view's "Your account" button.
 */

import type { User } from '../api';
import { h, messageLine } from './dom';
import { permissionLabel, roleLabel } from './labels';
import type { View } from './shell';

export interface AccountViewOptions {
  user: User;
  onChangePassword: () => void;
  /** A confirmation to show once, e.g. after the password was changed. */
  status?: string | undefined;
  /** Back to sending and receiving files. */
  onBack?: (() => void) | undefined;
}

export function accountView({ user, onChangePassword, status, onBack }: AccountViewOptions): View {
  const statusLine = messageLine('notice', 'account-status');
  if (status !== undefined) statusLine.show(status, 'success');

  const changePassword = h(
    'button',
    { type: 'button', class: 'btn btn-secondary', 'data-testid': 'change-password' },
    'Change password',
  );
  changePassword.addEventListener('click', onChangePassword);
  let back: HTMLButtonElement | null = null;
  if (onBack !== undefined) {
    back = h('button', { type: 'button', class: 'btn btn-primary', 'data-testid': 'back-to-files' }, 'Back to files');
    back.addEventListener('click', onBack);
  }

  const permissions =
    user.permissions.length === 0
      ? h('p', { class: 'muted' }, 'No permissions are granted to this account.')
      : h(
          'ul',
          { class: 'chips', 'aria-label': 'Permissions' },
          ...user.permissions.map((permission) =>
            h('li', { class: 'chip', title: permission, 'data-permission': permission }, permissionLabel(permission)),
          ),
        );

  const heading = h('h1', { id: 'account-title', class: 'card-title', tabindex: -1 }, 'Your account');
  const root = h(
    'section',
    { class: 'card card-medium', 'aria-labelledby': 'account-title', 'data-testid': 'account-panel' },
    heading,
    statusLine.element,
    h(
      'dl',
      { class: 'facts' },
      fact('Username', user.username, 'account-username'),
      fact('Display name', user.displayName, 'account-display-name'),
      fact('Role', roleLabel(user.role), 'account-role'),
    ),
    h('h2', { class: 'section-title' }, 'What you can do'),
    permissions,
    user.source === 'local'
      ? null
      : h('p', { class: 'muted', 'data-testid': 'account-source' }, 'You sign in with your campus account: change its password where your campus manages it, not here.'),
    h('div', { class: 'actions' }, back, user.source === 'local' ? changePassword : null),
  );

  return { root, title: 'Your account', focus: () => heading.focus() };
}

function fact(term: string, value: string, testId: string): HTMLDivElement {
  return h('div', { class: 'fact' }, h('dt', {}, term), h('dd', { 'data-testid': testId }, value));
}
