// Drives the local-first demo (packages/demo) in headless Chromium as a
// user would: serves it as `cargo xtask dev` does (serve.mjs, the demo at
// /demo/ and the npm package at /edge-functions/), waits until the page says
// it is ready, types text into the anonymizer, runs a radius, box, nearest
// and a polygon query (the polygon clicked on the map), verifies a sample
// token, a tampered and an expired one, records latencies, saves
// screenshots to --out-dir (demo-*.png) and prints what the page showed as
// JSON, with every request it made: demo-page.png is the page as it opens,
// demo-final.png after the whole drive. Then a page on another origin
// imports the modules from the same server, as from a package server (CORS).
// The assertions are in Rust (wasm-tests/tests/all/demo.rs).
//   node demo.mjs --demo packages/demo --package target/edge/npm/edge-functions \
//     --browser target/edge/browser --out-dir target/test-artefacts --input input.json
import { readFile } from "node:fs/promises";
import { createServer } from "node:http";
import { join } from "node:path";
import { arg, launch, watch } from "./launch.mjs";
import { serve } from "./serve.mjs";

const input = JSON.parse(await readFile(arg("--input"), "utf8"));
const outDir = arg("--out-dir");
const { server, url } = await serve({
  root: arg("--browser"),
  mounts: { "/demo": arg("--demo"), "/edge-functions": arg("--package") },
});
const { browser, deadline } = await launch("demo");
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  const { errors, requests } = watch(page);
  const shot = (name, locator = null) =>
    (locator ?? page).screenshot({ path: join(outDir, `demo-${name}.png`), ...(locator ? {} : { fullPage: true }) });
  const data = (selector, key) => page.locator(selector).evaluate((el, k) => el.dataset[k] ?? "", key);
  const text = (selector) => page.locator(selector).evaluate((el) => el.textContent);
  const out = {};

  const response = await page.goto(`${url}/demo/`, { waitUntil: "load", timeout: 30_000 });
  if (!response || !response.ok()) throw new Error(`GET /demo/ answered ${response ? response.status() : "nothing"}`);
  await page.waitForFunction(() => ["true", "error"].includes(document.body.dataset.ready), null, { timeout: 60_000 });
  out.ready = await page.evaluate(() => document.body.dataset.ready);
  out.status = await text("#status");
  out.banner = await text("#banner");
  out.csp = await page.evaluate(() => document.querySelector('meta[http-equiv="Content-Security-Policy"]')?.content ?? "");
  out.salt = await text("#anon-salt");
  // The page as it opens: the sample text, the default radius query, a
  // sample token verified and simulated latencies.
  out.initial = {
    matched: await data("#q-result", "matched"),
    verdict: await data("#jwt-verdict", "outcome"),
    bars: Number(await data("#histogram", "bars")),
  };
  await shot("page");

  // Anonymize: typed as a user types, key by key; the output follows live.
  await page.locator("#anon-kind").selectOption("text");
  await page.locator("#anon-input").fill("");
  await page.locator("#anon-input").pressSequentially(input.text, { delay: 2 });
  await page.waitForFunction(
    (t) => document.getElementById("anon-highlight").textContent === t,
    input.text,
    { timeout: 10_000 },
  );
  out.anonymize = {
    output: await text("#anon-output"),
    error: await text("#anon-error"),
    marks: await page.locator("#anon-highlight mark").evaluateAll((ms) =>
      ms.map((m) => ({ entity: m.dataset.entity, text: m.textContent, color: getComputedStyle(m).backgroundColor })),
    ),
    summary: await text("#anon-summary"),
  };
  await shot("anonymize", page.locator("#anonymize"));

  // Spatial: each query type from the controls, then a polygon clicked on the map.
  const spatial = {};
  out.allPoints = await page.locator("#all-points circle").count();
  out.accepted = await data("#assets-name", "accepted");
  // What the page says and drew for the query it last ran.
  const answered = async () => ({
    matched: await data("#q-result", "matched"),
    drawn: await data("#q-result", "drawn"),
    hits: await page.locator("#hit-points circle.hit").count(),
    shapes: await page.locator("#shape > *").count(),
    result: await text("#q-result"),
    error: await text("#q-error"),
  });
  const runQuery = async (name, fields) => {
    await page.locator("#q-type").selectOption(fields.type);
    for (const [id, value] of Object.entries(fields)) {
      if (id !== "type") await page.locator(`#q-${id}`).fill(String(value));
    }
    await page.locator("#q-run").click();
    spatial[name] = await answered();
  };
  for (const [name, fields] of Object.entries(input.queries)) {
    await runQuery(name, fields);
    await shot(`spatial-${name}`, page.locator("#spatial"));
  }
  await page.locator("#q-world").click();
  await page.locator("#q-clear").click();
  await page.locator("#q-type").selectOption("polygon");
  const map = await page.locator("#map").boundingBox();
  for (const [fx, fy] of input.polygonClicks) {
    await page.mouse.click(map.x + fx * map.width, map.y + fy * map.height);
  }
  spatial.polygon = { ring: JSON.parse(await page.locator("#q-polygon").inputValue()), ...(await answered()) };
  await shot("spatial-polygon", page.locator("#spatial"));
  out.spatial = spatial;

  // JWT: a sample signed in the page, then tampered, then expired.
  const verdict = async () => ({
    outcome: await data("#jwt-verdict", "outcome"),
    type: await data("#jwt-verdict", "type"),
    detail: await data("#jwt-verdict", "detail"),
    text: await text("#jwt-verdict"),
    claims: await data("#jwt-claims", "claims"),
    token: await page.locator("#jwt-token").inputValue(),
    jwks: await page.locator("#jwt-jwks").inputValue(),
    audience: await page.locator("#jwt-aud").inputValue(),
    issuer: await page.locator("#jwt-iss").inputValue(),
  });
  const waitFor = (outcome) =>
    page.waitForFunction((o) => document.getElementById("jwt-verdict").dataset.outcome === o, outcome, { timeout: 10_000 });
  await page.locator("#jwt-sample").click();
  await waitFor("valid");
  out.jwt = { valid: await verdict() };
  await shot("jwt-valid", page.locator("#jwt"));
  await page.locator("#jwt-tamper").click();
  await waitFor("refused");
  out.jwt.tampered = await verdict();
  await shot("jwt-tampered", page.locator("#jwt"));
  await page.locator("#jwt-expired").click();
  await page.waitForFunction(() => document.getElementById("jwt-verdict").dataset.type?.endsWith("expired"), null, {
    timeout: 10_000,
  });
  out.jwt.expired = await verdict();
  // A pasted pair: the JWKS and token from the test, typed into the fields.
  if (input.pasted) {
    await page.locator("#jwt-jwks").fill(input.pasted.jwks);
    await page.locator("#jwt-token").fill(input.pasted.token);
    await page.locator("#jwt-aud").fill(input.pasted.audience ?? "");
    await page.locator("#jwt-iss").fill(input.pasted.issuer ?? "");
    await page.locator("#jwt-verify").click();
    out.jwt.pasted = await verdict();
  }
  // Back to the sample for the last screenshot.
  await page.locator("#jwt-sample").click();
  await waitFor("valid");

  // Latency sketch: the test's values, recorded into an empty sketch.
  await page.locator("#sk-reset").click();
  await page.locator("#sk-values").fill(input.latenciesMs.join(", "));
  await page.locator("#sk-record").click();
  out.sketch = {
    stats: await page.locator("#sk-stats tr").evaluateAll((rows) =>
      Object.fromEntries(rows.map((r) => [r.dataset.stat, { value: r.dataset.value, text: r.querySelector("td").textContent }])),
    ),
    bars: Number(await data("#histogram", "bars")),
    total: Number(await data("#histogram", "total")),
    rects: await page.locator("#histogram rect.bar").count(),
    quantileLines: await page.locator("#histogram line.q").count(),
    labels: await page.locator("#histogram text.qlabel").allTextContents(),
    wire: await text("#sk-wire"),
  };
  await shot("sketch", page.locator("#sketch"));

  // The first query again (the radius one) for the last screenshot.
  const [last, fields] = Object.entries(input.queries).find(([name]) => name === "radius") ?? Object.entries(input.queries)[0];
  await runQuery(last, fields);
  await page.evaluate(() => window.scrollTo(0, 0));
  out.network = {
    foreign: await data("#network", "foreign"),
    own: await data("#network", "own"),
    text: await text("#network"),
    listed: await page.locator("#foreign-list li").count(),
  };
  await shot("final");
  out.errors = errors;
  out.origin = url;
  out.requests = requests;
  out.crossOrigin = await crossOrigin(browser, url, input.text, out.salt);
  process.stdout.write(JSON.stringify(out));
} finally {
  clearTimeout(deadline);
  await browser.close();
  server.close();
}

/** A page on another origin (a server of its own on another port) imports
 * the package's anonymize module and a raw browser build from `base`, the
 * way a page imports from unpkg, and sends a request that needs a preflight. */
async function crossOrigin(browser, base, text, salt) {
  const elsewhere = createServer((_, res) =>
    res.writeHead(200, { "content-type": "text/html" }).end("<!doctype html><title>another origin</title>"),
  );
  await new Promise((ok) => elsewhere.listen(0, "127.0.0.1", ok));
  try {
    const page = await browser.newPage();
    const { errors, requests } = watch(page);
    await page.goto(`http://127.0.0.1:${elsewhere.address().port}/`, { waitUntil: "load" });
    const result = await page.evaluate(
      async ({ base, text, salt }) => {
        const { Anonymizer } = await import(`${base}/edge-functions/anonymize.js`);
        const anonymized = new Anonymizer({ secrets: { GDPR_ANONYMIZATION_SALT: salt } }).text(text);
        const raw = await import(`${base}/counter/counter.js`);
        await raw.default();
        const counter = new raw.CounterFunction({ secrets: { COUNTER_ADMIN_TOKEN: "t" } });
        const health = await counter.fetch(new Request("http://localhost/health"));
        const preflighted = await fetch(`${base}/edge-functions/package.json`, { headers: { "x-probe": "1" } });
        return {
          origin: location.origin,
          anonymized,
          counterHealth: health.status,
          preflighted: preflighted.status,
          packageName: (await preflighted.json()).name,
        };
      },
      { base, text, salt },
    );
    return { ...result, errors, requests };
  } catch (e) {
    return { error: String(e) };
  } finally {
    elsewhere.close();
  }
}
