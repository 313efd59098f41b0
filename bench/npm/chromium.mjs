// The npm package's timings in headless Chromium (bench/npm/measure.mjs in
// a page): the installed package, this directory and the data are served
// from one origin on 127.0.0.1 (wasm-tests/chromium/serve.mjs); the page
// imports the modules as a user's page would (each fetches its own .wasm),
// fetches the data and runs the measurement; the report (JSON) goes to
// --out. Run by `cargo xtask bench npm` with the npm Node 22:
//   node chromium.mjs --package SCRATCH/node_modules/edge-functions --data DIR \
//     --records records.ndjson --assets assets.ndjson --radius radius.json --rounds N --out chromium.json
import { writeFile } from "node:fs/promises";
import { dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { arg, launch } from "../../wasm-tests/chromium/launch.mjs";
import { serve } from "../../wasm-tests/chromium/serve.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const { server, url } = await serve({
  root: arg("--data"),
  mounts: { "/edge-functions": arg("--package"), "/bench": here },
});
const { browser, deadline } = await launch("npm bench in chromium");
// A benchmark runs longer than a test's page: ten minutes, not two.
clearTimeout(deadline);
const longer = setTimeout(() => {
  console.error("npm bench in chromium: deadline exceeded");
  process.exit(3);
}, 600_000);
try {
  const page = await browser.newPage();
  // Uncaught errors and failed requests (but the favicon the browser asks for).
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  page.on("response", (r) => {
    if (r.status() >= 400 && !r.url().endsWith("/favicon.ico")) errors.push(`${r.url()}: ${r.status()}`);
  });
  page.on("console", (m) => console.error(`page: ${m.text()}`));
  await page.goto(`${url}/edge-functions/package.json`);
  const report = await page.evaluate(
    async ({ files, rounds, version }) => {
      const [{ Anonymizer }, { SpatialIndex }, { measure }] = await Promise.all([
        import("/edge-functions/anonymize.js"),
        import("/edge-functions/spatial-query.js"),
        import("/bench/measure.mjs"),
      ]);
      const get = async (name) => {
        const response = await fetch(`/${name}`);
        if (!response.ok) throw new Error(`${name}: ${response.status}`);
        return response.text();
      };
      const [records, assets, radius] = await Promise.all([
        get(files.records),
        get(files.assets),
        get(files.radius).then(JSON.parse),
      ]);
      return measure({
        Anonymizer, SpatialIndex, records, assets, radius, rounds,
        runtime: "chromium", version, log: (line) => console.log(line),
      });
    },
    {
      files: { records: arg("--records"), assets: arg("--assets"), radius: arg("--radius") },
      rounds: Number(arg("--rounds")),
      version: `Chromium ${browser.version()}, headless`,
    },
  );
  if (errors.length) throw new Error(`page errors: ${errors.join("; ")}`);
  await writeFile(arg("--out"), JSON.stringify(report, null, 2));
} finally {
  clearTimeout(longer);
  await browser.close();
  server.close();
}
