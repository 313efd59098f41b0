// The local-first demo: the npm package's modules (served beside this page,
// at /edge-functions/) run every capability in the page, and the page shows
// that nothing leaves it — a live count of the requests it made beyond its
// own origin (PerformanceObserver), and a CSP that allows none.
//
// Panels: anonymize (live, findings highlighted), spatial queries drawn on an
// SVG map (no tiles), JWT verification against a pasted JWKS, and a latency
// histogram drawn from a LatencySketch's own buckets. Nothing here
// reimplements what the modules do: the map's circle and the histogram's
// axis are drawing, the answers come from the wasm.
//
// wasm-tests/tests/all/demo.rs drives it in headless Chromium; it waits for
// `document.body.dataset.ready === "true"` and reads the data-* attributes.

import { Anonymizer } from "../edge-functions/anonymize.js";
import { SpatialIndex } from "../edge-functions/spatial-query.js";
import { JwtVerifier } from "../edge-functions/auth-check.js";
import { LatencySketch } from "../edge-functions/metrics.js";

const $ = (id) => document.getElementById(id);
const SVG = "http://www.w3.org/2000/svg";
const svg = (name, attrs = {}, parent = null) => {
  const el = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  if (parent) parent.appendChild(el);
  return el;
};
const problemText = (e) =>
  e && e.type ? `${e.type.replace("urn:edge-functions:problem:", "")} (${e.status} ${e.title}): ${e.detail}` : String(e);

// --- Nothing leaves the page -------------------------------------------------

const foreign = [];
let own = 0;
function countRequests(entries) {
  for (const e of entries) {
    if (new URL(e.name, location.href).origin === location.origin) own += 1;
    else foreign.push(e.name);
  }
  $("foreign-count").textContent = String(foreign.length);
  $("own-count").textContent = String(own);
  $("network").dataset.foreign = String(foreign.length);
  $("network").dataset.own = String(own);
  $("network").classList.toggle("leak", foreign.length > 0);
  $("foreign-list").replaceChildren(
    ...foreign.map((url) => Object.assign(document.createElement("li"), { textContent: url })),
  );
}
new PerformanceObserver((list) => countRequests(list.getEntries())).observe({ type: "resource", buffered: true });
countRequests(performance.getEntriesByType("navigation"));

// --- Anonymize ---------------------------------------------------------------

const saltBytes = crypto.getRandomValues(new Uint8Array(16));
const salt = [...saltBytes].map((b) => b.toString(16).padStart(2, "0")).join("");
$("anon-salt").textContent = salt;
const anonymizer = new Anonymizer({ secrets: { GDPR_ANONYMIZATION_SALT: salt } });

const SAMPLE_TEXT = `Hi, this is Ann Smith (ann.smith@example.com, +49 30 1234567).
Please refund to IBAN DE89 3704 0044 0532 0130 00 or card 4111 1111 1111 1111.
Logged in from 203.0.113.7 with api key sk_live_51H8cQ2eZvKYlo2C0aXb9QmPz.`;
const SAMPLE_JSON = JSON.stringify(
  {
    user: { name: "Ann Smith", email: "ann.smith@example.com", phone: "+49 30 1234567" },
    payment: { iban: "DE89 3704 0044 0532 0130 00" },
    request: { ip: "203.0.113.7", path: "/api/orders" },
  },
  null,
  2,
);

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** The input with each finding marked (analyze gives UTF-8 byte offsets). */
function highlight(text, findings) {
  const bytes = encoder.encode(text);
  const out = [];
  let at = 0;
  for (const f of [...findings].sort((a, b) => a.start - b.start)) {
    if (f.start < at) continue;
    out.push(document.createTextNode(decoder.decode(bytes.slice(at, f.start))));
    const mark = document.createElement("mark");
    mark.className = `entity-${f.entity}`;
    mark.dataset.entity = f.entity;
    mark.title = f.entity;
    mark.textContent = decoder.decode(bytes.slice(f.start, f.end));
    out.push(mark);
    at = f.end;
  }
  out.push(document.createTextNode(decoder.decode(bytes.slice(at))));
  return out;
}

function anonymize() {
  const text = $("anon-input").value;
  const kind = $("anon-kind").value;
  const started = performance.now();
  $("anon-error").textContent = "";
  try {
    const output = kind === "json" ? anonymizer.json(text) : kind === "ndjson" ? anonymizer.ndjson(text) : anonymizer.text(text);
    $("anon-output").textContent = kind === "json" ? JSON.stringify(JSON.parse(output), null, 2) : output;
  } catch (e) {
    $("anon-output").textContent = "";
    $("anon-error").textContent = problemText(e);
  }
  const findings = anonymizer.analyze(text);
  const took = performance.now() - started;
  $("anon-time").textContent = `${took.toFixed(1)} ms, in this page`;
  $("anon-highlight").replaceChildren(...highlight(text, findings));
  const byEntity = {};
  for (const f of findings) byEntity[f.entity] = (byEntity[f.entity] ?? 0) + 1;
  $("anon-summary").textContent = Object.keys(byEntity).length
    ? Object.entries(byEntity).map(([k, n]) => `${k} ×${n}`).join(" · ")
    : "none";
  $("anon-summary").dataset.findings = JSON.stringify(byEntity);
}

$("anon-input").addEventListener("input", anonymize);
$("anon-kind").addEventListener("change", anonymize);
$("anon-sample-text").addEventListener("click", () => {
  $("anon-kind").value = "text";
  $("anon-input").value = SAMPLE_TEXT;
  anonymize();
});
$("anon-sample-json").addEventListener("click", () => {
  $("anon-kind").value = "json";
  $("anon-input").value = SAMPLE_JSON;
  anonymize();
});

// --- Spatial -----------------------------------------------------------------

let index = null;
let shape = { polygon: [], corner: null };
const WORLD = [-180, -90, 360, 180];

function drawGraticule() {
  const g = $("graticule");
  for (let lon = -150; lon <= 150; lon += 30) svg("line", { x1: lon, y1: -90, x2: lon, y2: 90 }, g);
  for (let lat = -60; lat <= 60; lat += 30) svg("line", { x1: -180, y1: -lat, x2: 180, y2: -lat }, g);
  svg("line", { x1: -180, y1: 0, x2: 180, y2: 0, class: "equator" }, g);
}

/** Point radius in map units for the current zoom. */
const dotRadius = () => $("map").viewBox.baseVal.width / 260;

/** Every asset the index holds, read back through the index itself (whole-world pages). */
function allAssets() {
  const out = [];
  let cursor;
  do {
    const page = JSON.parse(
      index.query({ type: "bbox", bbox: [-180, -90, 180, 90], limit: 1000, ...(cursor ? { cursor } : {}) }),
    );
    for (const f of page.features) out.push(f.geometry.coordinates);
    cursor = page.next;
  } while (cursor && out.length < 200_000);
  return out;
}

function drawAll() {
  const g = $("all-points");
  const r = dotRadius();
  g.replaceChildren();
  for (const [lon, lat] of allAssets()) svg("circle", { cx: lon, cy: -lat, r }, g);
}

function loadAssets(text, format, name) {
  const started = performance.now();
  index?.free();
  index = new SpatialIndex(text, format);
  const report = JSON.parse(index.report);
  $("assets-name").textContent = `${name}: ${report.accepted.toLocaleString("en")} assets indexed${report.rejected ? `, ${report.rejected} rejected` : ""} in ${(performance.now() - started).toFixed(0)} ms`;
  $("assets-name").dataset.accepted = String(report.accepted);
  drawAll();
}

function numbers(id) {
  return $(id).value.split(",").map((s) => Number(s.trim()));
}

/** The query the controls describe, as `POST /assets/query` takes it. */
function currentQuery() {
  const type = $("q-type").value;
  const q = { type, limit: 1000, min_confidence: Number($("q-conf").value) || 0 };
  const lon = Number($("q-lon").value);
  const lat = Number($("q-lat").value);
  if (type === "radius") Object.assign(q, { lon, lat, radius_m: Number($("q-radius").value) * 1000 });
  if (type === "nearest") {
    Object.assign(q, { lon, lat, k: Number($("q-k").value), max_distance_m: Number($("q-within").value) * 1000 });
  }
  if (type === "bbox") q.bbox = numbers("q-bbox");
  if (type === "polygon") {
    const ring = shape.polygon.length ? shape.polygon : JSON.parse($("q-polygon").value || "[]");
    q.geometry = { type: "Polygon", coordinates: [[...ring, ring[0]]] };
  }
  return q;
}

/** A geodesic circle's outline (spherical destination formula), for drawing. */
function circleOutline(lon, lat, radiusM) {
  const R = 6371008.8;
  const d = radiusM / R;
  const φ1 = (lat * Math.PI) / 180;
  const λ1 = (lon * Math.PI) / 180;
  const points = [];
  for (let i = 0; i <= 96; i++) {
    const θ = (i / 96) * 2 * Math.PI;
    const φ2 = Math.asin(Math.sin(φ1) * Math.cos(d) + Math.cos(φ1) * Math.sin(d) * Math.cos(θ));
    const λ2 = λ1 + Math.atan2(Math.sin(θ) * Math.sin(d) * Math.cos(φ1), Math.cos(d) - Math.sin(φ1) * Math.sin(φ2));
    points.push([((((λ2 * 180) / Math.PI + 540) % 360) - 180), (φ2 * 180) / Math.PI]);
  }
  return points;
}

function drawShape(q, hits) {
  const g = $("shape");
  g.replaceChildren();
  const pts = (ring) => ring.map(([x, y]) => `${x},${-y}`).join(" ");
  let extent = [];
  if (q.type === "radius") {
    const ring = circleOutline(q.lon, q.lat, q.radius_m);
    svg("polygon", { points: pts(ring), class: "query" }, g);
    extent = ring;
  } else if (q.type === "bbox") {
    const [w, s, e, n] = q.bbox;
    const spans = w <= e ? [[w, e]] : [[w, 180], [-180, e]];
    for (const [a, b] of spans) svg("rect", { x: a, y: -n, width: b - a, height: n - s, class: "query" }, g);
    extent = [[w, s], [e, n]];
  } else if (q.type === "polygon") {
    const ring = q.geometry.coordinates[0];
    svg("polygon", { points: pts(ring), class: "query" }, g);
    for (const [x, y] of shape.polygon) svg("circle", { cx: x, cy: -y, r: dotRadius() * 1.6, class: "vertex" }, g);
    extent = ring;
  } else if (q.type === "nearest") {
    for (const f of hits) {
      const [x, y] = f.geometry.coordinates;
      svg("line", { x1: q.lon, y1: -q.lat, x2: x, y2: -y, class: "link" }, g);
    }
    extent = [[q.lon, q.lat], ...hits.map((f) => f.geometry.coordinates)];
  }
  if (q.lon !== undefined) svg("circle", { cx: q.lon, cy: -q.lat, r: dotRadius() * 1.3, class: "centre" }, g);
  return extent;
}

/** Zooms the map onto `extent` ([lon, lat] points), 2:1, padded. */
function fit(extent) {
  if (!extent.length) return setView(WORLD);
  const xs = extent.map((p) => p[0]);
  const ys = extent.map((p) => -p[1]);
  let [x0, x1, y0, y1] = [Math.min(...xs), Math.max(...xs), Math.min(...ys), Math.max(...ys)];
  let w = Math.max((x1 - x0) * 1.5, (y1 - y0) * 3, 0.5);
  w = Math.min(w, 360);
  const h = w / 2;
  const cx = (x0 + x1) / 2;
  const cy = (y0 + y1) / 2;
  setView([Math.max(-180, Math.min(180 - w, cx - w / 2)), Math.max(-90, Math.min(90 - h, cy - h / 2)), w, h]);
}

function setView(box) {
  $("map").setAttribute("viewBox", box.join(" "));
  const r = dotRadius();
  for (const c of $("all-points").children) c.setAttribute("r", r);
  for (const c of $("hit-points").children) c.setAttribute("r", r * 1.5);
  $("map").classList.toggle("zoomed", box[2] < 360);
}

/** Runs the controls' query and draws it; `refit` zooms onto it (not while
 * the user is clicking shapes on the map). */
function runQuery(refit = true) {
  if (!index) return;
  $("q-error").textContent = "";
  const q = currentQuery();
  if (q.type === "polygon" && q.geometry.coordinates[0].length < 4) {
    $("shape").replaceChildren();
    for (const [x, y] of shape.polygon) svg("circle", { cx: x, cy: -y, r: dotRadius() * 1.6, class: "vertex" }, $("shape"));
    $("hit-points").replaceChildren();
    $("q-result").dataset.matched = "";
    $("q-result").dataset.drawn = "";
    $("q-result").textContent = "Click the map to add the polygon's vertices (3 or more).";
    return;
  }
  const started = performance.now();
  let page;
  try {
    page = JSON.parse(index.query(q));
  } catch (e) {
    $("q-error").textContent = problemText(e);
    return;
  }
  const took = performance.now() - started;
  const g = $("hit-points");
  g.replaceChildren();
  for (const f of page.features) {
    const [lon, lat] = f.geometry.coordinates;
    const c = svg("circle", { cx: lon, cy: -lat, r: dotRadius() * 1.5, class: "hit" }, g);
    svg("title", {}, c).textContent = f.id;
  }
  const extent = drawShape(q, page.features);
  if (refit) fit(extent);
  const matched = page.numberMatched ?? page.features.length;
  $("q-result").textContent =
    `${matched} matched · ${page.features.length} drawn · ${took.toFixed(2)} ms in this page` +
    (matched > page.features.length ? " (the first page)" : "");
  $("q-result").dataset.matched = String(matched);
  $("q-result").dataset.drawn = String(g.querySelectorAll("circle.hit").length);
  $("q-list").replaceChildren(
    ...page.features.slice(0, 8).map((f) => {
      const li = document.createElement("li");
      const p = f.properties ?? {};
      const [lon, lat] = f.geometry.coordinates;
      li.textContent = `${f.id.slice(0, 8)}… ${lat.toFixed(3)}, ${lon.toFixed(3)}` +
        (p.distance_m !== undefined ? ` · ${(p.distance_m / 1000).toFixed(2)} km` : "") +
        (p.fusion_confidence !== undefined ? ` · confidence ${Number(p.fusion_confidence).toFixed(2)}` : "");
      return li;
    }),
  );
}

function showControls() {
  const type = $("q-type").value;
  for (const t of ["radius", "nearest", "bbox", "polygon"]) {
    for (const el of document.querySelectorAll(`.for-${t}`)) el.hidden = t !== type;
  }
  for (const id of ["q-lon", "q-lat"]) $(id).parentElement.hidden = type === "bbox" || type === "polygon";
  $("q-hint").textContent = {
    radius: "Click the map to move the centre.",
    nearest: "Click the map to move the point whose nearest assets are wanted.",
    bbox: "Click two opposite corners on the map.",
    polygon: "Click the map to add vertices; the query runs from the third one.",
  }[type];
}

$("map").addEventListener("click", (event) => {
  const m = $("map");
  const at = new DOMPoint(event.clientX, event.clientY).matrixTransform(m.getScreenCTM().inverse());
  const lon = Math.round(at.x * 1000) / 1000;
  const lat = Math.round(-at.y * 1000) / 1000;
  const type = $("q-type").value;
  if (type === "radius" || type === "nearest") {
    $("q-lon").value = lon;
    $("q-lat").value = lat;
  } else if (type === "bbox") {
    if (!shape.corner) {
      shape.corner = [lon, lat];
      $("q-hint").textContent = "Now the opposite corner.";
      return;
    }
    const [a, b] = [shape.corner, [lon, lat]];
    shape.corner = null;
    $("q-bbox").value = [Math.min(a[0], b[0]), Math.min(a[1], b[1]), Math.max(a[0], b[0]), Math.max(a[1], b[1])].join(",");
    showControls();
  } else if (type === "polygon") {
    shape.polygon.push([lon, lat]);
    $("q-polygon").value = JSON.stringify(shape.polygon);
  }
  runQuery(false);
});
$("q-type").addEventListener("change", () => {
  showControls();
  runQuery();
});
for (const id of ["q-lon", "q-lat", "q-radius", "q-k", "q-within", "q-bbox", "q-conf"]) $(id).addEventListener("change", () => runQuery());
$("q-polygon").addEventListener("change", () => {
  shape.polygon = [];
  runQuery();
});
$("q-run").addEventListener("click", () => runQuery());
$("q-clear").addEventListener("click", () => {
  shape = { polygon: [], corner: null };
  $("q-polygon").value = "";
  $("shape").replaceChildren();
  $("hit-points").replaceChildren();
  $("q-result").textContent = "";
});
$("q-world").addEventListener("click", () => setView(WORLD));

async function loadFile(file) {
  const text = await file.text();
  let format = "ndjson";
  if (!/\.ndjson$/i.test(file.name)) {
    try {
      if (JSON.parse(text).type === "FeatureCollection") format = "geojson";
    } catch {
      // Not one JSON document: NDJSON.
    }
  }
  try {
    loadAssets(text, format, file.name);
    runQuery();
  } catch (e) {
    $("q-error").textContent = problemText(e);
  }
}
$("assets-file").addEventListener("change", (e) => e.target.files[0] && loadFile(e.target.files[0]));
$("drop").addEventListener("dragover", (e) => {
  e.preventDefault();
  $("drop").classList.add("over");
});
$("drop").addEventListener("dragleave", () => $("drop").classList.remove("over"));
$("drop").addEventListener("drop", (e) => {
  e.preventDefault();
  $("drop").classList.remove("over");
  if (e.dataTransfer.files[0]) loadFile(e.dataTransfer.files[0]);
});

// --- JWT ---------------------------------------------------------------------

const b64u = (bytes) =>
  btoa(String.fromCharCode(...new Uint8Array(bytes))).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
const b64uText = (s) => b64u(encoder.encode(s));
const unb64u = (s) => decoder.decode(Uint8Array.from(atob(s.replace(/-/g, "+").replace(/_/g, "/")), (c) => c.charCodeAt(0)));
let signingKey = null;

async function sampleToken(expiresIn) {
  if (!signingKey) {
    const pair = await crypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, false, ["sign", "verify"]);
    const jwk = { ...(await crypto.subtle.exportKey("jwk", pair.publicKey)), kid: "demo-key-1", alg: "ES256", use: "sig" };
    delete jwk.key_ops;
    delete jwk.ext;
    signingKey = { privateKey: pair.privateKey, jwks: { keys: [jwk] } };
  }
  const now = Math.floor(Date.now() / 1000);
  const claims = {
    iss: "https://id.demo.invalid",
    sub: "alice",
    aud: "demo-api",
    scope: "api:read api:write",
    roles: ["viewer", "editor"],
    iat: now + Math.min(0, expiresIn) - 60,
    exp: now + expiresIn,
  };
  const input = `${b64uText(JSON.stringify({ alg: "ES256", typ: "JWT", kid: "demo-key-1" }))}.${b64uText(JSON.stringify(claims))}`;
  const signature = await crypto.subtle.sign({ name: "ECDSA", hash: "SHA-256" }, signingKey.privateKey, encoder.encode(input));
  $("jwt-jwks").value = JSON.stringify(signingKey.jwks, null, 2);
  $("jwt-token").value = `${input}.${b64u(signature)}`;
  $("jwt-jwks").scrollTop = 0;
  $("jwt-token").scrollTop = 0;
  $("jwt-aud").value = claims.aud;
  $("jwt-iss").value = claims.iss;
  verify();
}

function verify() {
  const verdict = $("jwt-verdict");
  const token = $("jwt-token").value.trim();
  const jwks = $("jwt-jwks").value.trim();
  if (!token || !jwks) {
    verdict.textContent = "Paste a JWKS and a token, or make a sample.";
    verdict.dataset.outcome = "";
    $("jwt-claims").textContent = "";
    return;
  }
  const options = {};
  if ($("jwt-aud").value.trim()) options.audience = $("jwt-aud").value.trim();
  if ($("jwt-iss").value.trim()) options.issuer = $("jwt-iss").value.trim();
  try {
    const verifier = new JwtVerifier(jwks, options);
    try {
      const claims = verifier.verify(token);
      verdict.textContent = `✓ valid — signed by a key of the set (${verifier.keyCount} usable)`;
      verdict.dataset.outcome = "valid";
      verdict.dataset.type = "";
      verdict.dataset.detail = "";
      const shown = { ...claims };
      for (const k of ["iat", "exp", "nbf"]) {
        if (typeof claims[k] === "number") shown[k] = `${claims[k]} (${new Date(claims[k] * 1000).toISOString()})`;
      }
      $("jwt-claims").textContent = JSON.stringify(shown, null, 2);
      $("jwt-claims").dataset.claims = JSON.stringify(claims);
    } finally {
      verifier.free();
    }
  } catch (e) {
    verdict.textContent = `✗ refused — ${problemText(e)}`;
    verdict.dataset.outcome = "refused";
    verdict.dataset.type = e?.type ?? "";
    verdict.dataset.detail = e?.detail ?? String(e);
    $("jwt-claims").dataset.claims = "";
    // What the token says, for reading only: nothing of it is trusted.
    let unverified = "";
    try {
      const [head, body] = token.split(".");
      unverified = `Not trusted — the token as sent:\n${JSON.stringify(JSON.parse(unb64u(head)))}\n${JSON.stringify(JSON.parse(unb64u(body)), null, 2)}`;
    } catch {
      unverified = "The token does not decode.";
    }
    $("jwt-claims").textContent = unverified;
  }
}

$("jwt-sample").addEventListener("click", () => sampleToken(900));
$("jwt-expired").addEventListener("click", () => sampleToken(-3600));
$("jwt-tamper").addEventListener("click", () => {
  const [head, body, signature] = $("jwt-token").value.trim().split(".");
  if (!signature) return;
  const claims = JSON.parse(unb64u(body));
  claims.sub = "mallory";
  claims.roles = ["admin"];
  $("jwt-token").value = `${head}.${b64uText(JSON.stringify(claims))}.${signature}`;
  verify();
});
for (const id of ["jwt-jwks", "jwt-token", "jwt-aud", "jwt-iss"]) $(id).addEventListener("change", verify);
$("jwt-verify").addEventListener("click", verify);

// --- Latency sketch ----------------------------------------------------------

let sketch = new LatencySketch();
let seed = 17;
/** mulberry32: the simulation repeats from one load to the next. */
function random() {
  seed = (seed + 0x6d2b79f5) | 0;
  let t = seed;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
const normal = () => Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random());

/** The sketch's bucket index of `seconds`: a one-value sketch's offset. */
function bucketOf(seconds) {
  const one = new LatencySketch();
  one.record(seconds);
  const { offset } = one.toJSON();
  one.free();
  return offset;
}

const ms = (s) => (s === undefined ? "–" : s < 0.001 ? `${(s * 1e6).toPrecision(3)} µs` : s < 1 ? `${(s * 1e3).toPrecision(3)} ms` : `${s.toPrecision(3)} s`);

function drawSketch() {
  const chart = $("histogram");
  chart.replaceChildren();
  const wire = sketch.toJSON();
  const [W, H, left, bottom, top] = [900, 240, 50, 200, 28];
  const rows = [
    ["count", sketch.count, String(sketch.count)],
    ["min", sketch.min, ms(sketch.min)],
    ["mean", sketch.count ? sketch.sum / sketch.count : undefined, ms(sketch.count ? sketch.sum / sketch.count : undefined)],
    ["p50", sketch.quantile(0.5), ms(sketch.quantile(0.5))],
    ["p90", sketch.quantile(0.9), ms(sketch.quantile(0.9))],
    ["p95", sketch.quantile(0.95), ms(sketch.quantile(0.95))],
    ["p99", sketch.quantile(0.99), ms(sketch.quantile(0.99))],
    ["max", sketch.max, ms(sketch.max)],
  ];
  $("sk-stats").tBodies[0].replaceChildren(
    ...rows.map(([name, value, text]) => {
      const tr = document.createElement("tr");
      tr.dataset.stat = name;
      tr.dataset.value = value === undefined ? "" : String(value);
      tr.append(Object.assign(document.createElement("th"), { textContent: name }));
      tr.append(Object.assign(document.createElement("td"), { textContent: text }));
      return tr;
    }),
  );
  const json = JSON.stringify(sketch);
  $("sk-wire").textContent = sketch.count
    ? `Wire form: ${json.length.toLocaleString("en")} bytes for ${sketch.count.toLocaleString("en")} values, ${wire.counts.length} buckets — what POST /_metrics/ingest takes (toBatch), not sent.`
    : "Empty: simulate some requests or record values.";
  if (!sketch.count) {
    svg("text", { x: W / 2, y: H / 2, class: "empty", "text-anchor": "middle" }, chart).textContent = "no values yet";
    chart.dataset.bars = "0";
    chart.dataset.total = "0";
    return;
  }
  // One bar per bucket of the sketch, on its own (logarithmic) index axis.
  const first = wire.offset - 2;
  const last = wire.offset + wire.counts.length + 1;
  const x = (index) => left + ((index - first) / (last - first)) * (W - left - 10);
  const peak = Math.max(...wire.counts, wire.low ?? 0);
  const y = (n) => bottom - (n / peak) * (bottom - top);
  const bw = Math.max(1, x(1) - x(0) - 0.5);
  let bars = 0;
  let total = wire.low ?? 0;
  wire.counts.forEach((n, i) => {
    if (!n) return;
    bars += 1;
    total += n;
    const r = svg("rect", { x: x(wire.offset + i), y: y(n), width: bw, height: bottom - y(n), class: "bar" }, chart);
    r.dataset.count = String(n);
    svg("title", {}, r).textContent = `${n} values`;
  });
  chart.dataset.bars = String(bars);
  chart.dataset.total = String(total);
  svg("line", { x1: left, y1: bottom, x2: W - 10, y2: bottom, class: "axis" }, chart);
  // Ticks at round latencies, placed by the sketch's own bucket of each.
  for (const s of [1e-5, 2e-5, 5e-5, 1e-4, 2e-4, 5e-4, 1e-3, 2e-3, 5e-3, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100]) {
    const i = bucketOf(s);
    if (i < first || i > last) continue;
    svg("line", { x1: x(i), y1: bottom, x2: x(i), y2: bottom + 5, class: "axis" }, chart);
    const label = s < 1e-3 ? `${Math.round(s * 1e6)} µs` : s < 1 ? `${Math.round(s * 1e5) / 100} ms` : `${s} s`;
    svg("text", { x: x(i), y: bottom + 18, "text-anchor": "middle", class: "tick" }, chart).textContent = label;
  }
  svg("text", { x: 4, y: top - 10, class: "tick" }, chart).textContent = `peak ${peak} per bucket`;
  const marks = [["p50", 0.5], ["p95", 0.95], ["p99", 0.99]];
  marks.forEach(([name, q], k) => {
    const v = sketch.quantile(q);
    const i = bucketOf(v) + 0.5;
    svg("line", { x1: x(i), y1: top - 4, x2: x(i), y2: bottom, class: `q ${name}` }, chart);
    // Labels right of their line, or left of it near the right edge.
    const right = x(i) < W - 130;
    const label = svg(
      "text",
      { x: x(i) + (right ? 3 : -3), y: top + 8 + k * 13, class: `qlabel ${name}`, "text-anchor": right ? "start" : "end" },
      chart,
    );
    label.textContent = `${name} ${ms(v)}`;
  });
}

function recordTyped() {
  const values = $("sk-values").value.split(/[\s,;]+/).filter(Boolean).map(Number).filter((v) => Number.isFinite(v) && v >= 0);
  sketch.recordAll(values.map((v) => v / 1000));
  drawSketch();
}
$("sk-record").addEventListener("click", recordTyped);
$("sk-values").addEventListener("keydown", (e) => e.key === "Enter" && recordTyped());
$("sk-simulate").addEventListener("click", () => {
  const values = [];
  for (let i = 0; i < 2000; i++) {
    // Most requests around 12 ms, a slow tenth around 180 ms.
    values.push(random() < 0.9 ? 0.012 * Math.exp(0.5 * normal()) : 0.18 * Math.exp(0.4 * normal()));
  }
  sketch.recordAll(values);
  drawSketch();
});
$("sk-reset").addEventListener("click", () => {
  sketch.free();
  sketch = new LatencySketch();
  drawSketch();
});

// --- Start -------------------------------------------------------------------

async function start() {
  drawGraticule();
  $("anon-input").value = SAMPLE_TEXT;
  anonymize();
  showControls();
  const response = await fetch("assets.ndjson");
  if (!response.ok) throw new Error(`assets.ndjson: ${response.status}`);
  loadAssets(await response.text(), "ndjson", "assets.ndjson");
  runQuery();
  await sampleToken(900);
  $("sk-simulate").click();
  $("status").textContent = "Ready: every panel runs in this page.";
  document.body.dataset.ready = "true";
}

start().catch((e) => {
  $("status").textContent = `Failed: ${problemText(e)}`;
  document.body.dataset.ready = "error";
});
