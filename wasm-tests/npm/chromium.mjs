// The installed `edge-functions` package in headless Chromium: a page on
// 127.0.0.1 imports every export (no bundler, no import map: the modules'
// own relative imports and their .wasm beside them), calls each capability
// and reports what it answered, with every request the page made. The
// Rust side (wasm-tests/tests/all/npm_package.rs) checks the answers and
// that no request left the page's origin.
//   node chromium.mjs --package SCRATCH/node_modules --geojson sample.geojson --out answers.json
import { readFile, writeFile } from "node:fs/promises";
import { arg, launch } from "../chromium/launch.mjs";
import { serve } from "../chromium/serve.mjs";
import { functions, secrets } from "./fixtures.mjs";

const geojson = await readFile(arg("--geojson"), "utf8");
const { server, url } = await serve({ root: arg("--package") });
const { browser, deadline } = await launch("npm package in chromium");
try {
  const page = await browser.newPage();
  const errors = [];
  const requests = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  page.on("request", (r) => requests.push(r.url()));
  // Any document of the origin: the modules are imported from the page.
  await page.goto(`${url}/edge-functions/package.json`);
  const answers = await page.evaluate(async ({ geojson, functions, secrets }) => {
    const problem = (e) => ({
      isError: e instanceof Error,
      name: e?.name,
      type: e?.type,
      title: e?.title,
      status: e?.status,
      detail: e?.detail,
      message: e?.message,
    });
    const attempt = async (f) => {
      try {
        return { ok: await f() };
      } catch (e) {
        return { error: problem(e) };
      }
    };
    const out = {};
    const root = await import("/edge-functions/index.js");
    out.capabilities = root.capabilities;

    const { Anonymizer } = await import("/edge-functions/anonymize.js");
    const anonymizer = new Anonymizer({ secrets });
    out.anonymized = await attempt(() => anonymizer.text("mail ann@example.com from 203.0.113.7"));
    out.badJson = await attempt(() => anonymizer.json("{"));

    const { SpatialIndex } = await import("/edge-functions/spatial-query.js");
    const index = new SpatialIndex(geojson, "geojson");
    out.radius = await attempt(() =>
      JSON.parse(index.query({ type: "radius", lon: 13.405, lat: 52.52, radius_m: 5000, min_confidence: 0 }))
        .features.map((f) => f.id),
    );

    // An ES256 token signed by the page's WebCrypto.
    const { JwtVerifier } = await import("/edge-functions/auth-check.js");
    const pair = await crypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, true, ["sign", "verify"]);
    const jwk = { ...(await crypto.subtle.exportKey("jwk", pair.publicKey)), kid: "k", alg: "ES256", use: "sig" };
    const b64u = (bytes) => btoa(String.fromCharCode(...new Uint8Array(bytes))).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
    const text = (s) => b64u(new TextEncoder().encode(s));
    const now = Math.floor(Date.now() / 1000);
    const input = `${text(JSON.stringify({ alg: "ES256", kid: "k" }))}.${text(JSON.stringify({ sub: "alice", aud: "api", iat: now, exp: now + 900 }))}`;
    const signature = await crypto.subtle.sign({ name: "ECDSA", hash: "SHA-256" }, pair.privateKey, new TextEncoder().encode(input));
    const verifier = new JwtVerifier({ keys: [jwk] }, { audience: "api" });
    out.verified = await attempt(() => verifier.verify(`${input}.${b64u(signature)}`));
    const flipped = new Uint8Array(signature);
    flipped[10] ^= 1;
    out.tampered = await attempt(() => verifier.verify(`${input}.${b64u(flipped)}`));

    const { Throttle, parseRateLimit } = await import("/edge-functions/rate-limit.js");
    const throttle = new Throttle({ algorithm: "sliding_window", limit: 3, period: "1m" });
    out.throttled = Array.from({ length: 5 }, () => throttle.acquire("k").allowed);
    out.parsed = parseRateLimit(new Headers({ ratelimit: '"API_GENERAL";r=0;t=30' }));

    const { LatencySketch } = await import("/edge-functions/metrics.js");
    const sketch = new LatencySketch();
    for (let i = 1; i <= 100; i++) sketch.record(i / 100);
    const back = LatencySketch.fromJSON(JSON.stringify(sketch));
    out.sketch = { count: back.count, p50: back.quantile(0.5), same: JSON.stringify(back) === JSON.stringify(sketch) };

    out.health = {};
    for (const [name, cls] of functions) {
      const mod = await import(`/edge-functions/${name}.js`);
      out.health[name] = await attempt(async () => {
        const response = await new mod[cls]({ secrets }).fetch(new Request("http://function.local/health"));
        return response.status;
      });
    }
    return out;
  }, { geojson, functions, secrets });
  await writeFile(arg("--out"), JSON.stringify({ origin: url, answers, requests, errors }));
} finally {
  clearTimeout(deadline);
  await browser.close();
  server.close();
}
