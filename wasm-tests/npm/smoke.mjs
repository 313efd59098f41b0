// Imports every export of the packed `edge-functions` package, installed in
// a scratch project (no bundler), calls each capability and prints what it
// answered as one JSON object. The Rust side (wasm-tests/tests/all/npm_package.rs)
// installs the tarball, runs this under each Node it has, and checks the
// answers against the native functions.
//   node smoke.mjs --geojson functions/spatial-query/testdata/sample.geojson --out answers.json
import crypto from "node:crypto";
import { readFile, writeFile } from "node:fs/promises";
import http from "node:http";
import { functions, secrets } from "./fixtures.mjs";

const arg = (name) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? process.argv[i + 1] : undefined;
};
const problem = (e) => ({
  isError: e instanceof Error,
  name: e?.name,
  type: e?.type,
  title: e?.title,
  status: e?.status,
  detail: e?.detail,
  message: e?.message,
});
/** What `f` returned, or the error it threw. */
const attempt = (f) => {
  try {
    return { ok: f() };
  } catch (e) {
    return { error: problem(e) };
  }
};
const attemptAsync = async (f) => {
  try {
    return { ok: await f() };
  } catch (e) {
    return { error: problem(e) };
  }
};

// Under Deno, `process.version` is the Node version it emulates.
const out = { node: process.version, deno: globalThis.Deno?.version.deno };

// The root: no wasm.
const root = await import("edge-functions");
out.root = { capabilities: [...root.capabilities], prefix: root.PROBLEM_TYPE_PREFIX };

// Anonymize: text, JSON, NDJSON, analyze, every operator, de-anonymize.
{
  const { Anonymizer } = await import("edge-functions/anonymize");
  const anonymizer = new Anonymizer({ secrets });
  const text = "mail ann@example.com from 203.0.113.7, card 4111 1111 1111 1111, call +49 30 1234567";
  const json = JSON.stringify({
    user: { email: "ann@example.com", birthdate: "1990-04-17", age: 34, password: "hunter2" },
    note: "from 203.0.113.7",
  });
  const ndjson = `{"email":"ann@example.com"}\n{"ip":"203.0.113.7"}\n`;
  // A policy naming every operator: keep, redact, tag, mask, hash,
  // truncate, generalize_date, range, grid, encrypt.
  const policy = `
[anonymize.entities]
email = "encrypt"
ipv4 = "truncate(24,48)"
phone = "mask(2)"
card = "redact"
iban = "tag"
jwt = "hash"
[anonymize.fields]
"$.public" = "keep"
"$.birthdate" = "generalize_date"
"$.age" = "range(10)"
"$.lat" = "grid(0.01)"
"$.email" = "encrypt"
"$.name" = "hash"
"$.iban" = "tag"
`;
  const every = attempt(() => new Anonymizer({ vars: { POLICY: policy }, secrets }));
  const operators = every.ok
    ? {
        json: attempt(() =>
          every.ok.json(
            JSON.stringify({
              public: "ann@example.com",
              birthdate: "1990-04-17",
              age: 34,
              lat: 52.520008,
              email: "ann@example.com",
              name: "Ann Example",
              iban: "DE89 3704 0044 0532 0130 00",
            }),
          ),
        ),
        text: attempt(() => every.ok.text(text)),
      }
    : { error: every.error };
  if (operators.json?.ok) {
    const email = JSON.parse(operators.json.ok).email;
    operators.deanonymized = attempt(() => every.ok.deanonymize(email));
  }
  out.anonymize = {
    text: attempt(() => anonymizer.text(text)),
    json: attempt(() => anonymizer.json(json)),
    ndjson: attempt(() => anonymizer.ndjson(ndjson)),
    analyze: attempt(() => anonymizer.analyze(text)),
    badJson: attempt(() => anonymizer.json('{"user": {"email": ')),
    badPolicy: attempt(() => new Anonymizer({ vars: { POLICY: "[anonymize.entities]\nemail = \"explode\"\n" } })),
    noKey: attempt(() => new Anonymizer({ secrets: { GDPR_ANONYMIZATION_SALT: secrets.GDPR_ANONYMIZATION_SALT } }).deanonymize("x")),
    operators,
  };
}

// Spatial query: GeoJSON and NDJSON, every query type.
{
  const { SpatialIndex } = await import("edge-functions/spatial-query");
  const geojson = await readFile(arg("--geojson"), "utf8");
  const ndjson = JSON.parse(geojson)
    .features.map((f) => JSON.stringify(f))
    .join("\n");
  const fromGeojson = new SpatialIndex(geojson, "geojson");
  const fromNdjson = new SpatialIndex(ndjson, "ndjson");
  const ids = (text) => JSON.parse(text).features.map((f) => f.id);
  const queries = {
    radius: { type: "radius", lon: 13.405, lat: 52.52, radius_m: 5000, min_confidence: 0 },
    bbox: { type: "bbox", bbox: [13.3, 52.4, 13.5, 52.6], min_confidence: 0 },
    polygon: {
      type: "polygon",
      geometry: {
        type: "Polygon",
        coordinates: [[[13.39, 52.5], [13.47, 52.5], [13.47, 52.53], [13.39, 52.53], [13.39, 52.5]]],
      },
      min_confidence: 0,
    },
    nearest: { type: "nearest", lon: 2.3, lat: 48.86, k: 2, max_distance_m: 1000000, min_confidence: 0 },
    confident: { type: "bbox", bbox: "-180,-90,180,90", min_confidence: 0.9 },
    deforming: { type: "bbox", bbox: "-180,-90,180,90", min_confidence: 0, min_magnitude: 3 },
    window: {
      type: "bbox",
      bbox: "-180,-90,180,90",
      min_confidence: 0,
      from: "2026-10-01T12:00:00Z",
      to: "2026-10-03T12:00:00Z",
    },
  };
  const answers = {};
  for (const [name, q] of Object.entries(queries)) {
    answers[name] = {
      geojson: attempt(() => ids(fromGeojson.query(q))),
      // The same query as JSON text, on the NDJSON-built index.
      ndjson: attempt(() => ids(fromNdjson.query(JSON.stringify(q)))),
    };
  }
  out.spatial = {
    report: JSON.parse(fromGeojson.report),
    answers,
    badQuery: attempt(() => fromGeojson.query({ type: "radius", lon: 13.4, lat: 95, radius_m: 10 })),
    badFormat: attempt(() => new SpatialIndex(geojson, "csv")),
  };
}

// Auth check: RS256, ES256, EdDSA tokens against a JWKS object, and a URL.
{
  const { JwtVerifier } = await import("edge-functions/auth-check");
  const b64u = (bytes) => Buffer.from(bytes).toString("base64url");
  const keys = {
    RS256: { pair: crypto.generateKeyPairSync("rsa", { modulusLength: 2048 }), sign: (k, d) => crypto.sign("sha256", d, k) },
    ES256: {
      pair: crypto.generateKeyPairSync("ec", { namedCurve: "P-256" }),
      sign: (k, d) => crypto.sign("sha256", d, { key: k, dsaEncoding: "ieee-p1363" }),
    },
    EdDSA: { pair: crypto.generateKeyPairSync("ed25519"), sign: (k, d) => crypto.sign(null, d, k) },
  };
  const jwks = {
    keys: Object.entries(keys).map(([alg, { pair }]) => ({
      ...pair.publicKey.export({ format: "jwk" }),
      kid: alg,
      alg,
      use: "sig",
    })),
  };
  const now = Math.floor(Date.now() / 1000);
  const claims = { iss: "https://issuer.test", aud: "api", sub: "alice", iat: now, exp: now + 900, scope: "api:read" };
  const token = (alg, body = claims) => {
    const input = `${b64u(JSON.stringify({ alg, kid: alg, typ: "JWT" }))}.${b64u(JSON.stringify(body))}`;
    return `${input}.${b64u(keys[alg].sign(keys[alg].pair.privateKey, Buffer.from(input)))}`;
  };
  const options = { issuer: "https://issuer.test", audience: "api" };
  const verifier = new JwtVerifier(jwks, options);
  const results = {};
  for (const alg of Object.keys(keys)) {
    const good = token(alg);
    const [h, p, s] = good.split(".");
    const flipped = Buffer.from(s, "base64url");
    flipped[flipped.length >> 1] ^= 1;
    const forged = `${h}.${b64u(JSON.stringify({ ...claims, sub: "mallory" }))}.${s}`;
    results[alg] = {
      valid: attempt(() => verifier.verify(good)),
      tampered: attempt(() => verifier.verify(`${h}.${p}.${b64u(flipped)}`)),
      forged: attempt(() => verifier.verify(forged)),
    };
  }
  results.expired = attempt(() => verifier.verify(token("ES256", { ...claims, iat: now - 7200, exp: now - 3600 })));
  results.wrongAudience = attempt(() => verifier.verify(token("ES256", { ...claims, aud: "other" })));
  results.none = attempt(() =>
    verifier.verify(`${b64u(JSON.stringify({ alg: "none" }))}.${b64u(JSON.stringify(claims))}.`),
  );
  results.badOptions = attempt(() => new JwtVerifier(jwks, { algorithms: ["none"] }));
  results.keyCount = verifier.keyCount;
  // A JWKS URL, only because the caller asks.
  const server = http.createServer((req, res) => {
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify(jwks));
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  const url = `http://127.0.0.1:${server.address().port}/jwks.json`;
  results.fromUrl = await attemptAsync(async () => (await JwtVerifier.fromUrl(url, options)).verify(token("RS256")));
  server.close();
  results.fromDeadUrl = await attemptAsync(() => JwtVerifier.fromUrl("http://127.0.0.1:9/jwks.json", options));
  out.auth = results;
}

// Rate limit: every algorithm, the IETF fields, a server's 429 honoured.
{
  const { Throttle, parseRateLimit, RateLimitFunction } = await import("edge-functions/rate-limit");
  const algorithms = {};
  for (const algorithm of ["fixed_window", "sliding_window", "token_bucket", "gcra"]) {
    const throttle = new Throttle({ algorithm, limit: 3, period: "1m" });
    const decisions = Array.from({ length: 5 }, () => throttle.acquire("me"));
    algorithms[algorithm] = {
      allowed: decisions.filter((d) => d.allowed).length,
      last: decisions[4],
      other: throttle.acquire("someone else").allowed,
    };
  }
  const parsed = parseRateLimit(
    new Headers({ ratelimit: '"API_GENERAL";r=0;t=30, "GLOBAL_DDOS";r=990;t=60', "ratelimit-policy": '"API_GENERAL";q=100;w=60, "GLOBAL_DDOS";q=1000;w=60' }),
  );
  // The rate-limit function itself, in this process, answering 429s with
  // its fields; a throttle that observes them holds the client back.
  const fn = new RateLimitFunction({ secrets });
  const statuses = [];
  let refused;
  for (let i = 0; i < 6; i++) {
    const response = await fn.fetch(new Request("http://localhost/auth/login", { method: "POST" }));
    statuses.push(response.status);
    if (response.status === 429) refused = response;
  }
  const client = new Throttle({ scope: "AUTH_LOGIN" });
  const before = client.acquire("login");
  client.observe(refused, "login");
  out.rateLimit = {
    algorithms,
    parsed,
    badField: attempt(() => parseRateLimit({ RateLimit: '"x";r=lots' })),
    badOptions: attempt(() => new Throttle({ algorithm: "leaky", limit: 1, period: "1s" })),
    // A function without its secrets: the same kind of error as the classes'.
    missingSecret: attempt(() => new RateLimitFunction({})),
    server: {
      statuses,
      fields: refused && parseRateLimit(refused.headers),
      retryAfter: refused?.headers.get("retry-after"),
      before,
      after: client.acquire("login"),
    },
  };
}

// Metrics: the latency sketch.
{
  const { LatencySketch } = await import("edge-functions/metrics");
  const a = new LatencySketch();
  for (let i = 1; i <= 1000; i++) a.record(i / 1000);
  const b = new LatencySketch();
  b.recordAll(Float64Array.from({ length: 1000 }, (_, i) => (1001 + i) / 1000));
  a.merge(b);
  const wire = JSON.stringify(a);
  const back = LatencySketch.fromJSON(wire);
  const q = (s) => [0.5, 0.95, 0.99].map((x) => s.quantile(x));
  out.metrics = {
    count: a.count,
    sum: a.sum,
    min: a.min,
    max: a.max,
    quantiles: q(a),
    roundTrip: { wire, count: back.count, quantiles: q(back), sameWire: JSON.stringify(back) === wire },
    empty: { quantile: new LatencySketch().quantile(0.5) ?? null, min: new LatencySketch().min ?? null },
    batch: a.toBatch({ source: "npm-smoke", route: "/api/items", method: "GET", status: 200 }),
    badWire: attempt(() => LatencySketch.fromJSON({ n: 5, sum: 1, counts: [1] })),
  };
}

// Every function's fetch.
{
  out.fetch = {};
  for (const [name, className] of functions) {
    out.fetch[name] = await attemptAsync(async () => {
      const mod = await import(`edge-functions/${name}`);
      const fn = new mod[className]({ secrets });
      const response = await fn.fetch(new Request("http://localhost/health"));
      return { status: response.status, body: await response.text() };
    });
  }
  out.fetch.anonymizePost = await attemptAsync(async () => {
    const { AnonymizeFunction } = await import("edge-functions/anonymize");
    const response = await new AnonymizeFunction({ secrets }).fetch(
      new Request("http://localhost/", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: '{"user": {"email": ',
      }),
    );
    return { status: response.status, body: await response.json() };
  });
}

// To a file: the functions log to the console (stdout).
await writeFile(arg("--out"), JSON.stringify(out));
