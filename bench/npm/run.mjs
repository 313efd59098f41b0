// The npm package's timings under Node or Deno (bench/npm/measure.mjs),
// run from a scratch project with the packed tarball installed, so that
// `edge-functions/...` resolves as it does for a user; the report (JSON)
// goes to --out. Run by `cargo xtask bench npm`:
//   node run.mjs --records R.ndjson --assets A.ndjson --radius Q.json --rounds N --out node.json
//   deno run --allow-read --allow-write=OUT_DIR run.mjs … --out deno.json
import { readFile, writeFile } from "node:fs/promises";
import { Anonymizer } from "edge-functions/anonymize";
import { SpatialIndex } from "edge-functions/spatial-query";
import { measure } from "./measure.mjs";

const deno = globalThis.Deno;
const argv = deno ? deno.args : process.argv.slice(2);
const arg = (name) => {
  const i = argv.indexOf(name);
  if (i < 0) throw new Error(`missing ${name}`);
  return argv[i + 1];
};
const [records, assets, radius] = await Promise.all([
  readFile(arg("--records"), "utf8"),
  readFile(arg("--assets"), "utf8"),
  readFile(arg("--radius"), "utf8").then(JSON.parse),
]);
const report = await measure({
  Anonymizer,
  SpatialIndex,
  records,
  assets,
  radius,
  rounds: Number(arg("--rounds")),
  runtime: deno ? "deno" : "node",
  version: deno
    ? `Deno ${deno.version.deno}, V8 ${deno.version.v8}`
    : `Node ${process.version.slice(1)}, V8 ${process.versions.v8}`,
  log: (line) => console.error(`npm bench: ${line}`),
});
await writeFile(arg("--out"), JSON.stringify(report, null, 2));
