import assert from 'node:assert/strict';
import { test } from 'node:test';

import { ApiClient } from '../src/api';

/** A fetch that records each request's method, path and headers and answers `body`. */
function recorder(body: unknown) {
  const seen: { method: string; path: string; headers: Record<string, string> }[] = [];
  const fetch = async (input: RequestInfo | URL, init?: RequestInit): Promise<Response> => {
    seen.push({ method: init?.method ?? 'GET', path: String(input), headers: { ...(init?.headers as Record<string, string>) } });
    return new Response(JSON.stringify(body), { status: 200, headers: { 'Content-Type': 'application/json' } });
  };
  return { seen, fetch };
}

test('calls that change something send the CSRF header the server wants with the session cookie', async () => {
  const { seen, fetch } = recorder({ ok: true });
  const api = new ApiClient({ fetch });
  await api.logout();
  await api.changePassword('old passphrase here', 'new passphrase here');
  assert.deepEqual(
    seen.map((r) => [r.method, r.path, r.headers['X-LabBeam-CSRF']]),
    [
      ['POST', '/api/auth/logout', '1'],
      ['POST', '/api/me/password', '1'],
    ],
  );
});

test('reads do not send it', async () => {
  const { seen, fetch } = recorder({ transfers: [] });
  await new ApiClient({ fetch }).transfers();
  assert.equal(seen[0]?.method, 'GET');
  assert.equal(seen[0]?.headers['X-LabBeam-CSRF'], undefined);
});

test("the history asks for the caller's own transfers and keeps both sides' account ids", async () => {
  const row = { id: 't1', sender_id: 7, receiver_id: null, sender_username: 'ann', receiver_username: 'gone', files: [], status: 'completed' };
  const { seen, fetch } = recorder({ transfers: [row], next: null });
  const [got] = await new ApiClient({ fetch }).transfers(20);
  assert.equal(seen[0]?.path, '/api/transfers?scope=own&limit=20');
  assert.equal(got?.senderId, 7);
  assert.equal(got?.receiverId, null);
});

test("sign-in providers are this server's own start links; anything else is left out", async () => {
  const { fetch } = recorder({
    providers: [
      { id: 'campus-sso', position: 0, name: 'Campus SSO', startUrl: '/api/auth/oidc/campus-sso/start' },
      { id: 'evil', position: 1, name: 'Evil', startUrl: 'https://evil.example/start' },
      { id: 7, name: 'Broken', startUrl: '/api/auth/oidc/7/start' },
    ],
  });
  const list = await new ApiClient({ fetch }).signInProviders();
  assert.deepEqual(list, [{ id: 'campus-sso', name: 'Campus SSO', startUrl: '/api/auth/oidc/campus-sso/start' }]);
});

test("signing out gives the identity provider's end-session URL when there is one", async () => {
  const url = 'https://sso.example/session/end?id_token_hint=x';
  assert.equal(await new ApiClient({ fetch: recorder({ ok: true, endSessionUrl: url }).fetch }).logout(), url);
  assert.equal(await new ApiClient({ fetch: recorder({ ok: true }).fetch }).logout(), null);
  const plain = recorder({ ok: true, endSessionUrl: 'javascript:alert(1)' }).fetch;
  assert.equal(await new ApiClient({ fetch: plain }).logout(), null);
});
