// Runs queries through spatial-query's browser class `SpatialIndex` in
// headless Chromium and prints each answer (GeoJSON text) as a JSON array:
//   node spatial_index.mjs --root target/edge/browser --input assets.ndjson --queries queries.json
// The comparison with the native engine happens in Rust
// (wasm-tests/tests/all/spatial_query.rs).
import { readFile } from "node:fs/promises";
import { arg, launch } from "./launch.mjs";
import { serve } from "./serve.mjs";

const input = await readFile(arg("--input"), "utf8");
const queries = JSON.parse(await readFile(arg("--queries"), "utf8"));
const { server, url } = await serve({ root: arg("--root") });
const { browser, deadline } = await launch("spatial index runner");
try {
  const page = await browser.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  await page.goto(`${url}/`);
  const results = await page.evaluate(
    async ({ input, queries }) => {
      const mod = await import("/spatial-query/spatial-query.js");
      await mod.default();
      const index = new mod.SpatialIndex(input, "ndjson");
      const out = { report: JSON.parse(index.report), answers: [] };
      for (const q of queries) {
        try {
          // The text as the engine wrote it (a JSON round trip in JS would
          // turn 2505.0 into 2505).
          out.answers.push(index.query(JSON.stringify(q)));
        } catch (e) {
          out.answers.push(JSON.stringify({ error: String(e) }));
        }
      }
      return out;
    },
    { input, queries },
  );
  if (errors.length) console.error(`page errors: ${errors.join("; ")}`);
  process.stdout.write(JSON.stringify(results));
} finally {
  clearTimeout(deadline);
  await browser.close();
  server.close();
}
