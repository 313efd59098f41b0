// Mints JWTs with the `jose` npm package for tests/cross_check.rs: fresh
// keys for every algorithm the function verifies, a valid token and one
// variant per refusal, plus two attacks (alg=none, HS256 signed with the
// RSA public key). Prints one JSON document on stdout.
//
// Usage: node mint.mjs ISSUER AUDIENCE
import { createHmac } from 'node:crypto';
import { createRequire } from 'node:module';
import {
  SignJWT,
  exportJWK,
  exportSPKI,
  generateKeyPair,
  generateSecret,
} from 'jose';

const [issuer, audience] = process.argv.slice(2);
if (!issuer || !audience) {
  console.error('usage: node mint.mjs ISSUER AUDIENCE');
  process.exit(2);
}
const version = createRequire(import.meta.url)('jose/package.json').version;
const now = Math.floor(Date.now() / 1000);
const b64url = (data) => Buffer.from(data).toString('base64url');

function claims(overrides = {}) {
  return {
    iss: issuer,
    aud: audience,
    sub: 'user-1',
    scope: 'read write',
    roles: ['admin'],
    iat: now,
    exp: now + 900,
    ...overrides,
  };
}

async function sign(alg, kid, key, payload) {
  return new SignJWT(payload)
    .setProtectedHeader({ alg, kid, typ: 'JWT' })
    .sign(key);
}

// The valid token with another payload under the original signature.
function tamper(token) {
  const [header, , signature] = token.split('.');
  const payload = b64url(JSON.stringify(claims({ sub: 'admin' })));
  return `${header}.${payload}.${signature}`;
}

async function tokens(alg, kid, key) {
  const valid = await sign(alg, kid, key, claims());
  return {
    valid,
    tampered: tamper(valid),
    expired: await sign(alg, kid, key, claims({ iat: now - 3600, exp: now - 1800 })),
    wrong_audience: await sign(alg, kid, key, claims({ aud: 'someone-else' })),
    wrong_issuer: await sign(alg, kid, key, claims({ iss: 'https://evil.example' })),
    not_yet_valid: await sign(alg, kid, key, claims({ nbf: now + 3600, exp: now + 7200 })),
  };
}

const out = { library: `jose ${version}`, now, algorithms: {} };
// Every asymmetric algorithm, each with a key of its own.
const ASYMMETRIC = [
  'RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512',
  'ES256', 'ES384', 'ES512', 'EdDSA',
];
for (const alg of ASYMMETRIC) {
  const kid = `jose-${alg}`;
  const options = alg === 'EdDSA' ? { crv: 'Ed25519', extractable: true } : { extractable: true };
  const { publicKey, privateKey } = await generateKeyPair(alg, options);
  out.algorithms[alg] = {
    jwk: { ...(await exportJWK(publicKey)), kid, use: 'sig' },
    pem: await exportSPKI(publicKey),
    tokens: await tokens(alg, kid, privateKey),
  };
}
// HMAC secrets of the hash's size (32, 48, 64 bytes), as jose makes them.
for (const alg of ['HS256', 'HS384', 'HS512']) {
  const secret = await generateSecret(alg, { extractable: true });
  out.algorithms[alg] = {
    secret: (await exportJWK(secret)).k,
    tokens: await tokens(alg, `jose-${alg}`, secret),
  };
}

// Attacks, built by hand since jose refuses to make them.
const rsa = out.algorithms.RS256;
const header = (h) => b64url(JSON.stringify(h));
const body = b64url(JSON.stringify(claims({ sub: 'admin' })));
const confusion = `${header({ alg: 'HS256', kid: rsa.jwk.kid, typ: 'JWT' })}.${body}`;
out.attacks = {
  alg_none: `${header({ alg: 'none', typ: 'JWT' })}.${body}.`,
  hs256_with_rsa_public_key: `${confusion}.${createHmac('sha256', rsa.pem).update(confusion).digest('base64url')}`,
};
console.log(JSON.stringify(out));
