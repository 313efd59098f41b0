// The npm package's timings, the same in every JavaScript runtime: Node and
// Deno import this module from run.mjs, headless Chromium from a page
// (chromium.mjs). It times what a page does with the package — anonymizing
// NDJSON with `Anonymizer.ndjson`, indexing assets with `new SpatialIndex`,
// answering radius queries with `SpatialIndex.query` — and reports as
// `npm-bench run` does natively (bench/npm/src/main.rs), with the answers'
// sizes and hash so that the table can check every runtime computed the
// same. Strings cross into and out of the wasm as a page's would (UTF-16 to
// UTF-8 and back), which the native run does not pay.

/** The secrets the native run gives the anonymizer too. */
const SECRETS = {
  GDPR_ANONYMIZATION_SALT: "bench-salt-0123456789",
  GDPR_ANONYMIZATION_KEY: "bench-key-0123456789abcdef",
};

/** FNV-1a, 32 bits, of `bytes`, in hex (as the native program computes it). */
export function fnv(bytes) {
  let h = 0x811c9dc5;
  for (const b of bytes) {
    h ^= b;
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h.toString(16).padStart(8, "0");
}

/**
 * Times the workloads: `rounds` calls of `Anonymizer.ndjson(records)` after
 * two warm-up calls; a third as many index builds (at least 3) after one;
 * `rounds` rounds over every radius query after two (each round's time over
 * the queries is one sample).
 */
export async function measure({ Anonymizer, SpatialIndex, records, assets, radius, rounds, runtime, version, log = () => {} }) {
  const now = () => performance.now();
  const encoder = new TextEncoder();
  let sink = 0;

  const anonymizer = new Anonymizer({ secrets: SECRETS });
  const out = encoder.encode(anonymizer.ndjson(records));
  for (let i = 0; i < 2; i++) sink += anonymizer.ndjson(records).length;
  const anonymizeMs = [];
  for (let i = 0; i < rounds; i++) {
    const start = now();
    sink += anonymizer.ndjson(records).length;
    anonymizeMs.push(now() - start);
  }
  anonymizer.free();
  log(`${runtime} anonymize done`);

  let index = new SpatialIndex(assets, "ndjson");
  const accepted = JSON.parse(index.report).accepted;
  const buildMs = [];
  for (let i = 0; i < Math.max(3, Math.floor(rounds / 3)); i++) {
    index.free();
    const start = now();
    index = new SpatialIndex(assets, "ndjson");
    buildMs.push(now() - start);
  }
  log(`${runtime} build done`);

  let features = 0;
  for (const query of radius) features += JSON.parse(index.query(query)).features.length;
  const round = () => {
    const start = now();
    for (const query of radius) sink += index.query(query).length;
    return (now() - start) / radius.length;
  };
  round();
  round();
  const perQueryMs = [];
  for (let i = 0; i < rounds; i++) perQueryMs.push(round());
  index.free();
  log(`${runtime} radius done (${sink} characters answered)`);

  return {
    runtime,
    version,
    anonymize: {
      input_bytes: encoder.encode(records).length,
      output_bytes: out.length,
      output_fnv: fnv(out),
      ms: anonymizeMs,
    },
    build: { accepted, ms: buildMs },
    radius: { queries: radius.length, features, per_query_ms: perQueryMs },
  };
}
