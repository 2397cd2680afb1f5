/**
 * Human wording for the server's machine names (roles, permissions).
 *
 * Admins can define roles and the server may grow permissions, so every lookup falls back to a
 * readable form of the raw name instead of hiding it.
 */

const PERMISSION_LABELS: Readonly<Record<string, string>> = {
  'portal.access': 'Admin portal',
  'users.manage': 'Manage users',
  'audit.view': 'View audit log',
  'broadcast.send': 'Broadcast files',
  announce: 'Send announcements',
  'transfer.send': 'Send files',
  'transfer.receive': 'Receive files',
};

export function permissionLabel(permission: string): string {
  return PERMISSION_LABELS[permission] ?? permission;
}

/** `instructor` → `Instructor`, `lab_assistant` → `Lab assistant`. */
export function roleLabel(role: string): string {
  const words = role.replace(/[_-]+/g, ' ').trim();
  return words === '' ? role : words.charAt(0).toUpperCase() + words.slice(1);
}
