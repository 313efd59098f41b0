// A real OpenID provider (npm `oidc-provider`) for the auth-check tests,
// bound to 127.0.0.1 and driven through a small control API.
//
//   node wasm-tests/oidc/provider.mjs [--port N] [--jwks-max-age SECONDS]
//                                     [--audience URL] [--exit-with-stdin]
//
// (`OIDC_PORT` and `OIDC_JWKS_MAX_AGE` work too; port 0, the default, picks a
// free one.) When it listens it prints one JSON line on stdout:
//   {"ready":true,"port":N,"issuer":"http://127.0.0.1:N","jwks_uri":…,"token_endpoint":…}
//
// The provider serves discovery, JWKS and the token endpoint for real: access
// tokens come from the client_credentials grant with resource indicators, so
// they are JWTs (`typ: at+jwt`) signed by the provider's current key. Every
// key generation has an RSA key (RS256, PS256), EC P-256 (ES256), EC P-384
// (ES384) and Ed25519 (EdDSA); rotating re-creates the provider with a new
// generation first (so it signs with it) and, by default, the previous one
// still published.
//
// Control API (JSON in and out):
//   POST /__test/token   {scope, roles, alg, audience, ttl, claims, header, secret, sub}
//                        → the token endpoint's answer ({access_token, …}, plus `kid`);
//                        with ?format=jwt the access token alone, as text (for
//                        `TOKEN=$(curl …)` without a JSON tool)
//   POST /__test/sign    {payload, header, alg, kid, secret} → {token}: mints
//                        anything (expired, alg none, crit, …) with jose and
//                        the provider's own keys, for tokens a provider would not issue
//   POST /__test/rotate  {keep_old = true} → {generation, kids, signing_kids}
//   GET  /__test/stats   → {jwks_fetches, discovery_fetches, token_requests, generation, kids}
//   POST /__test/stats/reset
//   POST /__test/config  {jwks_max_age, jwks_status} (null clears) → the config
//   GET  /__test/health  → {ok: true}

import * as http from 'node:http';
import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';

import Provider from 'oidc-provider';
import * as jose from 'jose';

const { values: flags } = parseArgs({
  options: {
    port: { type: 'string', default: process.env.OIDC_PORT ?? '0' },
    'jwks-max-age': { type: 'string', default: process.env.OIDC_JWKS_MAX_AGE },
    audience: { type: 'string', default: 'https://api.test' },
    'exit-with-stdin': { type: 'boolean', default: false },
  },
});

const CLIENT_ID = 'edge-tests';
const CLIENT_SECRET = 'edge-tests-secret';
const DEFAULT_TTL = 900; // 15 min access tokens, as the requirements say.

/** The key types of one generation and the algorithms each signs. */
const KEY_KINDS = [
  { name: 'rsa', gen: 'RS256', algs: ['RS256', 'PS256'] },
  { name: 'p256', gen: 'ES256', algs: ['ES256'] },
  { name: 'p384', gen: 'ES384', algs: ['ES384'] },
  { name: 'ed25519', gen: 'EdDSA', algs: ['EdDSA', 'Ed25519'] },
];

const config = {
  jwksMaxAge: flags['jwks-max-age'] === undefined ? null : Number(flags['jwks-max-age']),
  jwksStatus: null,
};
const stats = { jwks_fetches: 0, discovery_fetches: 0, token_requests: 0 };

let generation = 0;
/** Key generations, newest first: [{ generation, keys: [private JWK…] }]. */
let generations = [];
let provider;
let providerHandler;
let issuer;

async function newGeneration() {
  generation += 1;
  const stamp = `${generation}-${randomBytes(4).toString('hex')}`;
  const keys = [];
  for (const kind of KEY_KINDS) {
    const { privateKey } = await jose.generateKeyPair(kind.gen, { extractable: true });
    const jwk = await jose.exportJWK(privateKey);
    // No `alg` on the key: the RSA key signs both RS256 and PS256.
    keys.push({ ...jwk, kid: `${kind.name}-${stamp}`, use: 'sig' });
  }
  return { generation, keys };
}

function kindOf(alg) {
  return KEY_KINDS.find((k) => k.algs.includes(alg));
}

/** The private JWK that signs `alg` now (newest generation), or one by `kid`. */
function signingKey(alg, kid) {
  const all = generations.flatMap((g) => g.keys);
  if (kid) return all.find((k) => k.kid === kid);
  const kind = kindOf(alg);
  if (!kind) throw new Error(`unsupported alg ${alg}`);
  return generations[0].keys.find((k) => k.kid.startsWith(`${kind.name}-`));
}

/** Test options of one token request, passed from /__test/token in a header. */
function tokenOptions(ctx) {
  const raw = ctx.get('x-test-token-options');
  if (!raw) return {};
  return JSON.parse(Buffer.from(raw, 'base64url').toString('utf8'));
}

function buildProvider() {
  const p = new Provider(issuer, {
    clients: [
      {
        client_id: CLIENT_ID,
        client_secret: CLIENT_SECRET,
        grant_types: ['client_credentials'],
        redirect_uris: [],
        response_types: [],
        token_endpoint_auth_method: 'client_secret_basic',
      },
    ],
    jwks: { keys: generations.flatMap((g) => g.keys) },
    ttl: { ClientCredentials: (ctx, token) => token.resourceServer?.accessTokenTTL ?? DEFAULT_TTL },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      introspection: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => flags.audience,
        useGrantedResource: () => true,
        getResourceServerInfo: (ctx, resource) => {
          const options = tokenOptions(ctx);
          const alg = options.alg ?? 'RS256';
          const sign = alg.startsWith('HS')
            ? { alg, key: options.secret ?? 'edge-tests-hs-secret' }
            : { alg };
          return {
            // Whatever the client asks for is grantable: the tests choose.
            scope: ctx.oidc.params?.scope ?? '',
            audience: options.audience ?? resource.replace(/\/$/, ''),
            accessTokenTTL: options.ttl ?? DEFAULT_TTL,
            accessTokenFormat: 'jwt',
            jwt: { sign },
          };
        },
      },
    },
    formats: {
      customizers: {
        jwt: (ctx, token, jwt) => {
          const options = tokenOptions(ctx);
          if (options.roles) jwt.payload.roles = options.roles;
          if (options.sub) jwt.payload.sub = options.sub;
          Object.assign(jwt.payload, options.claims ?? {});
          jwt.header = { ...jwt.header, ...(options.header ?? {}) };
        },
      },
    },
  });
  // JWKS caching and outages, set by flag or /__test/config.
  p.use(async (ctx, next) => {
    if (ctx.path === '/jwks' && config.jwksStatus) {
      ctx.status = config.jwksStatus;
      ctx.body = { error: 'jwks unavailable (test)' };
      return;
    }
    await next();
    if (ctx.path === '/jwks' && config.jwksMaxAge !== null) {
      ctx.set('cache-control', `public, max-age=${config.jwksMaxAge}`);
    }
  });
  return p;
}

async function install() {
  provider = buildProvider();
  providerHandler = provider.callback();
}

async function readJson(req) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  const text = Buffer.concat(chunks).toString('utf8');
  return text ? JSON.parse(text) : {};
}

function send(res, status, body) {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
  });
  res.end(text);
}

function kidsNow() {
  return generations.flatMap((g) => g.keys.map((k) => k.kid));
}

function signingKids() {
  return Object.fromEntries(
    KEY_KINDS.flatMap((kind) => kind.algs.map((alg) => [alg, signingKey(alg).kid])),
  );
}

/** A real client_credentials grant at the provider's own token endpoint. */
async function issue(options) {
  const form = new URLSearchParams({ grant_type: 'client_credentials' });
  if (options.scope) form.set('scope', options.scope);
  form.set('resource', options.resource ?? flags.audience);
  const response = await fetch(`${issuer}/token`, {
    method: 'POST',
    headers: {
      authorization: `Basic ${Buffer.from(`${CLIENT_ID}:${CLIENT_SECRET}`).toString('base64')}`,
      'content-type': 'application/x-www-form-urlencoded',
      'x-test-token-options': Buffer.from(JSON.stringify(options)).toString('base64url'),
    },
    body: form,
  });
  const body = await response.json();
  if (response.ok) {
    body.kid = jose.decodeProtectedHeader(body.access_token).kid;
  }
  return [response.status, body];
}

/** Mints any JWS with the provider's keys (or `secret` for HS*, nothing for none). */
async function mint({ payload = {}, header = {}, alg = 'RS256', kid, secret }) {
  if (alg === 'none') {
    const enc = (v) => Buffer.from(JSON.stringify(v)).toString('base64url');
    return `${enc({ alg: 'none', ...header })}.${enc(payload)}.`;
  }
  let key;
  let keyId;
  if (alg.startsWith('HS')) {
    key = new TextEncoder().encode(secret ?? 'edge-tests-hs-secret');
    keyId = kid;
  } else {
    const jwk = signingKey(alg, kid);
    if (!jwk) throw new Error(`no key for alg ${alg} / kid ${kid}`);
    key = await jose.importJWK(jwk, alg);
    keyId = jwk.kid;
  }
  return new jose.SignJWT(payload)
    .setProtectedHeader({ alg, kid: keyId, typ: 'at+jwt', ...header })
    .sign(key);
}

async function control(req, res, url) {
  const route = `${req.method} ${url.pathname}`;
  switch (route) {
    case 'GET /__test/health':
      return send(res, 200, { ok: true });
    case 'GET /__test/stats':
      return send(res, 200, { ...stats, generation, kids: kidsNow() });
    case 'POST /__test/stats/reset':
      stats.jwks_fetches = 0;
      stats.discovery_fetches = 0;
      stats.token_requests = 0;
      return send(res, 200, stats);
    case 'POST /__test/token': {
      const [status, body] = await issue(await readJson(req));
      if (status === 200 && url.searchParams.get('format') === 'jwt') {
        res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' });
        return res.end(`${body.access_token}\n`);
      }
      return send(res, status, body);
    }
    case 'POST /__test/sign':
      return send(res, 200, { token: await mint(await readJson(req)) });
    case 'POST /__test/rotate': {
      const { keep_old: keepOld = true } = await readJson(req);
      const fresh = await newGeneration();
      generations = keepOld ? [fresh, generations[0]] : [fresh];
      await install();
      return send(res, 200, { generation, kids: kidsNow(), signing_kids: signingKids() });
    }
    case 'POST /__test/config': {
      const body = await readJson(req);
      if ('jwks_max_age' in body) config.jwksMaxAge = body.jwks_max_age;
      if ('jwks_status' in body) config.jwksStatus = body.jwks_status;
      return send(res, 200, { jwks_max_age: config.jwksMaxAge, jwks_status: config.jwksStatus });
    }
    default:
      return send(res, 404, { error: `no control route ${route}` });
  }
}

const server = http.createServer((req, res) => {
  const url = new URL(req.url, 'http://x');
  const path = url.pathname;
  if (path.startsWith('/__test/')) {
    control(req, res, url).catch((e) => send(res, 500, { error: String(e?.stack ?? e) }));
    return;
  }
  if (path === '/.well-known/openid-configuration') stats.discovery_fetches += 1;
  else if (path === '/jwks') stats.jwks_fetches += 1;
  else if (path === '/token') stats.token_requests += 1;
  providerHandler(req, res);
});

generations = [await newGeneration()];
server.listen(Number(flags.port), '127.0.0.1', async () => {
  const { port } = server.address();
  issuer = `http://127.0.0.1:${port}`;
  await install();
  process.stdout.write(
    `${JSON.stringify({
      ready: true,
      port,
      issuer,
      jwks_uri: `${issuer}/jwks`,
      token_endpoint: `${issuer}/token`,
      client_id: CLIENT_ID,
      client_secret: CLIENT_SECRET,
      signing_kids: signingKids(),
    })}\n`,
  );
});

// Stop with the test: on a signal or, with --exit-with-stdin, when the
// parent closes our stdin (so a killed test leaves no provider behind).
for (const signal of ['SIGTERM', 'SIGINT']) process.on(signal, () => process.exit(0));
if (flags['exit-with-stdin']) {
  process.stdin.on('end', () => process.exit(0));
  process.stdin.on('error', () => process.exit(0));
  process.stdin.resume();
}
