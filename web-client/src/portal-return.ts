/**
 * The portal path in a `?next=` query, or `null` when there is none or it is not a path of
 * this server's portal (an open redirect elsewhere would be a phishing aid).
 */
export function portalReturn(search: string): string | null {
  const next = new URLSearchParams(search).get('next');
  if (next === null || !next.startsWith('/admin') || next.startsWith('//')) return null;
  try {
    const url = new URL(next, 'https://labbeam.invalid');
    if (url.origin !== 'https://labbeam.invalid' || (url.pathname !== '/admin' && !url.pathname.startsWith('/admin/'))) return null;
    return `${url.pathname}${url.search}`;
  } catch {
    return null;
  }
}
