// The OpenID provider of LabBeam's campus sign-in tests and benchmark: npm oidc-provider (a
// certified implementation) over HTTPS on a free loopback port, with a test CA made by
// openssl, one confidential client and a handful of people with groups.
//
//   node tests/oidc/provider.mjs --dir DIR [--tamper KIND] [--alg RS256|ES256] [--people N]
//
// Prints one JSON line when it listens: {"issuer": "https://127.0.0.1:PORT", "ca":
// "DIR/ca.pem", "clientId": "labbeam", "secretFile": "DIR/client-secret"}; runs until killed.
//
// People (password: the contents of DIR/password):
//   ann   groups ["students"]            tom   groups ["staff"]
//   ted   groups ["labtech"]             solo  no groups
//   admin (a name LabBeam's first local admin holds)
//   bad   preferred_username "not a username!" (LabBeam cannot use it)
//   sso0000 …  with --people N, groups ["students"] (bench/login)
//
// The sign-in page is this script's own (GET /interaction/UID: a form with username and
// password; POST checks the password). Consent is granted with the sign-in.
//
// --tamper KIND rewrites the ID token the token endpoint gives, to test that LabBeam refuses
// it: aud (another audience), expired, nonce (another nonce), iss (another issuer), none
// (alg "none", no signature), hs256 (HMAC signed with the public key as the secret),
// other-key (signed by a key that is not the provider's, with its key id).
//
// Redirect URIs: any https://127.0.0.1:PORT/api/auth/oidc/SLUG/callback (the LabBeam test
// servers take free ports); post-logout: https://127.0.0.1:PORT/.

import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:https';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

import * as jose from 'jose';
import Provider from 'oidc-provider';

const { values: args } = parseArgs({
  options: {
    dir: { type: 'string' },
    tamper: { type: 'string', default: '' },
    alg: { type: 'string', default: 'RS256' },
    people: { type: 'string', default: '0' },
  },
});
if (!args.dir) {
  console.error('usage: node tests/oidc/provider.mjs --dir DIR [--tamper KIND] [--alg RS256|ES256]');
  process.exit(2);
}
const TAMPERS = ['', 'aud', 'expired', 'nonce', 'iss', 'none', 'hs256', 'other-key'];
if (!TAMPERS.includes(args.tamper)) {
  console.error(`--tamper must be one of ${TAMPERS.filter(Boolean).join(', ')}`);
  process.exit(2);
}
const dir = args.dir;
mkdirSync(dir, { recursive: true });

// A test CA and a certificate for 127.0.0.1 and localhost.
const ca = join(dir, 'ca.pem');
const openssl = (...a) => execFileSync('openssl', a, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
openssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '30',
  '-subj', '/CN=OpenID test CA', '-addext', 'basicConstraints=critical,CA:TRUE',
  '-addext', 'keyUsage=critical,keyCertSign,cRLSign', '-keyout', 'ca-key.pem', '-out', 'ca.pem');
openssl('req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-subj', '/CN=127.0.0.1',
  '-keyout', 'key.pem', '-out', 'cert.csr');
writeFileSync(join(dir, 'ext.cnf'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n');
openssl('x509', '-req', '-in', 'cert.csr', '-CA', 'ca.pem', '-CAkey', 'ca-key.pem', '-CAcreateserial', '-days', '30',
  '-extfile', 'ext.cnf', '-out', 'cert.pem');

const password = `provider-${randomBytes(9).toString('base64url')}`;
writeFileSync(join(dir, 'password'), password);
const clientSecret = randomBytes(24).toString('base64url');
const secretFile = join(dir, 'client-secret');
writeFileSync(secretFile, `${clientSecret}\n`, { mode: 0o600 });

const PEOPLE = {
  ann: { name: 'Ann Example', groups: ['students'] },
  tom: { name: 'Tom Teacher', groups: ['staff'] },
  ted: { name: 'Ted Technician', groups: ['labtech'] },
  solo: { name: 'Solo Nogroup', groups: [] },
  admin: { name: 'Someone Else', groups: ['labtech'] },
  bad: { name: 'Bad Name', groups: ['students'], preferred_username: 'not a username!' },
};
// --people N: sso0000 … sso(N-1), students, for bench/login.
for (let i = 0; i < Number(args.people); i += 1) {
  PEOPLE[`sso${String(i).padStart(4, '0')}`] = { name: `Bench ${i}`, groups: ['students'] };
}

const { privateKey } = await jose.generateKeyPair(args.alg, { extractable: true });
const signingJwk = { ...(await jose.exportJWK(privateKey)), kid: 'test-key-1', alg: args.alg, use: 'sig' };

// The provider's records (sessions, interactions, codes, grants, tokens) in plain Maps:
// oidc-provider's built-in development store keeps the newest 1,000 only, which a lecture
// hall's sign-ins (bench/login: 500 at once, several records each) overflow. Expired records
// stay until the provider stops (it lives for one test or one benchmark run) and are
// treated as absent.
const records = new Map();
const sessionsByUid = new Map();
const grantMembers = new Map();
class MapAdapter {
  constructor(model) {
    this.model = model;
  }

  key(id) {
    return `${this.model}:${id}`;
  }

  async upsert(id, payload, expiresIn) {
    const expiresAt = typeof expiresIn === 'number' ? Date.now() + expiresIn * 1000 : Infinity;
    records.set(this.key(id), { payload, expiresAt });
    if (this.model === 'Session' && payload.uid) sessionsByUid.set(payload.uid, id);
    if (payload.grantId) {
      if (!grantMembers.has(payload.grantId)) grantMembers.set(payload.grantId, new Set());
      grantMembers.get(payload.grantId).add(this.key(id));
    }
  }

  async find(id) {
    const found = records.get(this.key(id));
    return found && found.expiresAt > Date.now() ? found.payload : undefined;
  }

  async findByUid(uid) {
    const id = sessionsByUid.get(uid);
    return id === undefined ? undefined : this.find(id);
  }

  async findByUserCode() {
    return undefined;
  }

  async consume(id) {
    const found = records.get(this.key(id));
    if (found) found.payload.consumed = Math.floor(Date.now() / 1000);
  }

  async destroy(id) {
    records.delete(this.key(id));
  }

  async revokeByGrantId(grantId) {
    for (const key of grantMembers.get(grantId) ?? []) records.delete(key);
    grantMembers.delete(grantId);
  }
}

const server = createServer({ key: readFileSync(join(dir, 'key.pem')), cert: readFileSync(join(dir, 'cert.pem')) });
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
const issuer = `https://127.0.0.1:${server.address().port}`;

const provider = new Provider(issuer, {
  clients: [{
    client_id: 'labbeam',
    client_secret: clientSecret,
    redirect_uris: ['https://127.0.0.1/api/auth/oidc/campus-sso/callback'],
    post_logout_redirect_uris: ['https://127.0.0.1/'],
    response_types: ['code'],
    grant_types: ['authorization_code'],
    id_token_signed_response_alg: args.alg,
  }],
  adapter: MapAdapter,
  jwks: { keys: [signingJwk] },
  cookies: { keys: [randomBytes(16).toString('hex')] },
  scopes: ['openid', 'profile', 'email', 'groups'],
  claims: { openid: ['sub'], profile: ['name', 'preferred_username'], email: ['email'], groups: ['groups'] },
  features: { devInteractions: { enabled: false }, rpInitiatedLogout: { enabled: true } },
  interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
  async findAccount(_ctx, id) {
    const person = PEOPLE[id];
    if (!person) return undefined;
    return {
      accountId: id,
      async claims() {
        return {
          sub: id,
          name: person.name,
          preferred_username: person.preferred_username ?? id,
          email: `${id}@campus.example`,
          groups: person.groups,
        };
      },
    };
  },
  renderError(ctx, out) {
    ctx.type = 'html';
    ctx.body = `<!doctype html><title>Error</title><h1 data-testid="provider-error">${out.error}</h1>`;
  },
});
provider.proxy = false;

// LabBeam test servers take free ports: any loopback HTTPS callback of LabBeam's shape.
const CALLBACK = /^https:\/\/(127\.0\.0\.1|localhost):\d+\/api\/auth\/oidc\/[a-z0-9-]+\/callback$/;
const LOGOUT = /^https:\/\/(127\.0\.0\.1|localhost):\d+\/$/;
provider.Client.prototype.redirectUriAllowed = (uri) => CALLBACK.test(uri);
provider.Client.prototype.postLogoutRedirectUriAllowed = (uri) => LOGOUT.test(uri);

// --tamper: the token endpoint's ID token rewritten before it leaves.
provider.use(async (ctx, next) => {
  await next();
  if (!args.tamper || ctx.path !== '/token' || ctx.status !== 200 || !ctx.body?.id_token) return;
  const claims = jose.decodeJwt(ctx.body.id_token);
  const now = Math.floor(Date.now() / 1000);
  const sign = (payload, key = privateKey, kid = signingJwk.kid, alg = args.alg) =>
    new jose.SignJWT(payload).setProtectedHeader({ alg, kid }).sign(key);
  switch (args.tamper) {
    case 'aud': ctx.body.id_token = await sign({ ...claims, aud: 'someone-else' }); break;
    case 'expired': ctx.body.id_token = await sign({ ...claims, iat: now - 7200, exp: now - 3600 }); break;
    case 'nonce': ctx.body.id_token = await sign({ ...claims, nonce: 'not-this-sign-in' }); break;
    case 'iss': ctx.body.id_token = await sign({ ...claims, iss: 'https://evil.example' }); break;
    case 'none': {
      const enc = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
      ctx.body.id_token = `${enc({ alg: 'none' })}.${enc(claims)}.`;
      break;
    }
    case 'hs256': {
      const { d, p, q, dp, dq, qi, ...publicJwk } = signingJwk;
      const secret = new TextEncoder().encode(JSON.stringify(publicJwk));
      ctx.body.id_token = await sign(claims, secret, signingJwk.kid, 'HS256');
      break;
    }
    case 'other-key': {
      const { privateKey: other } = await jose.generateKeyPair(args.alg);
      ctx.body.id_token = await sign(claims, other);
      break;
    }
  }
});

const escape = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

function page(uid, error = '') {
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Campus SSO</title></head><body>
<main><h1>Campus SSO</h1>${error ? `<p role="alert">${escape(error)}</p>` : ''}
<form method="post" action="/interaction/${escape(uid)}/login">
<label>Username <input name="username" autocomplete="username" data-testid="provider-username"></label>
<label>Password <input name="password" type="password" data-testid="provider-password"></label>
<button type="submit" data-testid="provider-submit">Sign in</button>
</form></main></body></html>`;
}

async function readForm(req) {
  let body = '';
  for await (const chunk of req) {
    body += chunk;
    if (body.length > 10000) throw new Error('form too large');
  }
  return new URLSearchParams(body);
}

const handle = provider.callback();
server.on('request', async (req, res) => {
  const m = /^\/interaction\/([\w-]+)(\/login)?$/.exec(req.url.split('?')[0]);
  if (!m) return handle(req, res);
  try {
    const details = await provider.interactionDetails(req, res);
    if (req.method === 'GET') {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
      return res.end(page(details.uid));
    }
    const form = await readForm(req);
    const username = form.get('username') ?? '';
    if (!PEOPLE[username] || form.get('password') !== password) {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
      return res.end(page(details.uid, 'Wrong username or password.'));
    }
    const grant = new provider.Grant({ accountId: username, clientId: details.params.client_id });
    grant.addOIDCScope(String(details.params.scope ?? 'openid'));
    const grantId = await grant.save();
    await provider.interactionFinished(req, res, { login: { accountId: username }, consent: { grantId } },
      { mergeWithLastSubmission: false });
  } catch (e) {
    res.writeHead(400, { 'content-type': 'text/plain' });
    res.end(`interaction failed: ${e.message}`);
  }
});

// Standard output carries this one line only: whoever started the provider may stop
// reading it afterwards. oidc-provider's own notices go to standard error.
process.stdout.on('error', () => {});
process.stdout.write(`${JSON.stringify({ issuer, ca, clientId: 'labbeam', secretFile, passwordFile: join(dir, 'password') })}\n`);
console.log = console.error;
console.info = console.error;
process.on('SIGTERM', () => process.exit(0));
