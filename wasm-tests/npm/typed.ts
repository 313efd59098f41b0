// Every export of the `edge-functions` package used as a TypeScript user
// would, checked (never run) by `tsc --strict` with the package's own
// declarations (wasm-tests/tests/all/npm_package.rs; tsconfig.json beside
// it). The `@ts-expect-error` lines are misuses the declarations must
// refuse: were a declaration to turn into `any`, they would fail the check.

import { PROBLEM_TYPE_PREFIX, capabilities, isProblemError } from "edge-functions";
import type { ProblemError } from "edge-functions";
import { AnonymizeFunction, Anonymizer } from "edge-functions/anonymize";
import type { EdgeFunctionOptions, Finding } from "edge-functions/anonymize";
import { SpatialIndex, SpatialQueryFunction } from "edge-functions/spatial-query";
import { AuthCheckFunction, JwtVerifier } from "edge-functions/auth-check";
import type { JwkSet, JwtVerifierOptions } from "edge-functions/auth-check";
import { RateLimitFunction, Throttle, parseRateLimit } from "edge-functions/rate-limit";
import type { ReportedLimit, ThrottleDecision, ThrottleOptions } from "edge-functions/rate-limit";
import { LatencySketch, MetricsFunction } from "edge-functions/metrics";
import type { SeriesLabels } from "edge-functions/metrics";
import { GatewayFunction } from "edge-functions/gateway";
import { CounterFunction } from "edge-functions/counter";
import serve from "edge-functions/deno/serve";

// The root module.
const prefix: "urn:edge-functions:problem:" = PROBLEM_TYPE_PREFIX;
const first: "anonymize" | "spatial-query" | "auth-check" | "rate-limit" | "metrics" | "gateway" | "counter" =
  capabilities[0];
function describe(error: unknown): string {
  if (isProblemError(error, "bad-signature")) {
    const problem: ProblemError = error;
    return `${problem.type} ${problem.title} ${problem.status} ${problem.detail ?? ""}`;
  }
  return String(error);
}

// Anonymize.
const options: EdgeFunctionOptions = {
  vars: { POLICY: "" },
  secrets: { GDPR_ANONYMIZATION_SALT: "salt" },
};
const anonymizer = new Anonymizer(options);
const text: string = anonymizer.text("mail ann@example.com");
const json: string = anonymizer.json('{"email":"ann@example.com"}');
const ndjson: string = anonymizer.ndjson('{"ip":"203.0.113.7"}\n');
const findings: Finding[] = anonymizer.analyze("ann@example.com");
const offsets: number[] = findings.map((f) => f.end - f.start);
const entities: string[] = findings.map((f) => f.entity);
const back: string = anonymizer.deanonymize(text, "text");
anonymizer.deanonymize(json);
// @ts-expect-error text takes a string
anonymizer.text(42);
// @ts-expect-error analyze answers findings, not a string
const wrong: string = anonymizer.analyze("x");
{
  using scoped = new Anonymizer(undefined);
  scoped.text("disposed at the end of the block");
}
anonymizer.free();

// Spatial query.
const index = new SpatialIndex('{"type":"FeatureCollection","features":[]}', "geojson");
const report: string = index.report;
const radius: string = index.query({ type: "radius", lon: 13.4, lat: 52.5, radius_m: 5000 });
const box: string = index.query('{"type":"bbox","bbox":[13,52,14,53]}');
// @ts-expect-error a query is an object or JSON text
index.query(7);
// @ts-expect-error report is read-only
index.report = "";

// Auth check.
const jwks: JwkSet = { keys: [{ kty: "EC", crv: "P-256", x: "", y: "", kid: "k" }] };
const verifierOptions: JwtVerifierOptions = {
  issuer: "https://issuer.example",
  audience: ["api"],
  algorithms: ["ES256"],
  leeway: 30,
  maxAge: 3600,
  requiredClaims: ["sub"],
  maxTokenBytes: 8192,
};
const verifier = new JwtVerifier(jwks, verifierOptions);
const claims: Record<string, unknown> = verifier.verify("a.b.c");
const keys: number = verifier.keyCount;
const skipped: { kid: string | null; reason: string }[] = verifier.skipped;
const fromUrl: Promise<JwtVerifier> = JwtVerifier.fromUrl("https://issuer.example/jwks", undefined);
// @ts-expect-error verify answers claims, not a boolean
const verified: boolean = verifier.verify("a.b.c");

// Rate limit.
const throttleOptions: ThrottleOptions[] = [
  { scope: "API_GENERAL" },
  { algorithm: "gcra", limit: 10, period: "1m", burst: 5 },
];
const throttle = new Throttle(throttleOptions[1]);
const decision: ThrottleDecision = throttle.acquire("k", 1);
const waits: number = decision.allowed ? 0 : decision.retryAfterMs;
throttle.acquire();
throttle.observe(new Response(null, { status: 429 }), "k");
throttle.observe(new Headers({ "retry-after": "3" }));
throttle.observe({ ratelimit: '"API_GENERAL";r=0;t=30' });
throttle.reset("k");
const throttleName: string = throttle.name;
const limits: ReportedLimit[] = parseRateLimit(new Headers());
const remaining: number | null = limits[0]?.remaining ?? null;
// @ts-expect-error no such algorithm
new Throttle({ algorithm: "leaky", limit: 1, period: "1s" });

// Metrics.
const sketch = new LatencySketch();
sketch.record(0.012);
sketch.recordAll([0.001, 0.002]);
sketch.recordAll(new Float64Array([0.003]));
sketch.merge(LatencySketch.fromJSON(JSON.stringify(sketch.toJSON())));
const p99: number | undefined = sketch.quantile(0.99);
// @ts-expect-error a quantile of an empty sketch is undefined
sketch.quantile(0.5).toFixed(3);
const stats: [number, number, number | undefined, number | undefined] = [sketch.count, sketch.sum, sketch.min, sketch.max];
const labels: SeriesLabels = { source: "page", function: "app", route: "/", method: "GET", status: 200, at: 0 };
const batch: string = sketch.toBatch(labels);

// Each function's own fetch.
const functions: { fetch(request: Request): Promise<Response> }[] = [
  new AnonymizeFunction(options),
  new SpatialQueryFunction(undefined),
  new AuthCheckFunction(undefined),
  new RateLimitFunction(undefined),
  new MetricsFunction(undefined),
  new GatewayFunction(undefined),
  new CounterFunction({ secrets: { COUNTER_ADMIN_TOKEN: "t" } }),
];
const answers: Promise<Response>[] = functions.map((f) => f.fetch(new Request("http://x/health")));
// @ts-expect-error fetch takes a Request
functions[0].fetch("http://x/health");

// The `deno serve` entry.
const served: Response | Promise<Response> = serve.fetch(new Request("http://x/health"));

export const used = [
  prefix, first, describe, text, json, ndjson, offsets, entities, back, wrong, report, radius, box,
  claims, keys, skipped, fromUrl, verified, waits, throttleName, remaining, p99, stats, batch,
  answers, served,
];
