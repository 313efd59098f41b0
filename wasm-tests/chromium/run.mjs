// Runs one conformance suite's requests against a function's browser build
// inside headless Chromium and prints the responses as JSON on stdout.
//   node run.mjs --root target/edge/browser --suite wasm-tests/conformance/counter.json
// The comparison with the expected answers happens in Rust (wasm-tests), the
// same code for every runtime.
import { readFile } from "node:fs/promises";
import { arg, launch } from "./launch.mjs";
import { serve } from "./serve.mjs";

const suite = JSON.parse(await readFile(arg("--suite"), "utf8"));
const { server, url } = await serve({ root: arg("--root") });
const { browser, deadline } = await launch("chromium runner");
try {
  const page = await browser.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  await page.goto(`${url}/`);
  const results = await page.evaluate(
    async ({ fn, cls, options, requests }) => {
      const mod = await import(`/${fn}/${fn}.js`);
      await mod.default();
      const instance = new mod[cls](options);
      const out = [];
      for (const r of requests) {
        const init = { method: r.method, headers: r.headers ?? {} };
        if (r.body_repeat) init.body = r.body_repeat.text.repeat(r.body_repeat.times);
        else if (r.body !== undefined && r.body !== null) init.body = r.body;
        const response = await instance.fetch(new Request(`http://function.local${r.path}`, init));
        out.push({
          status: response.status,
          headers: Object.fromEntries(response.headers.entries()),
          body: await response.text(),
        });
      }
      return out;
    },
    {
      fn: suite.function,
      cls: suite.browser_class,
      options: { vars: suite.vars ?? {}, secrets: suite.secrets ?? {} },
      requests: suite.cases.map((c) => c.request),
    },
  );
  if (errors.length) console.error(`page errors: ${errors.join("; ")}`);
  process.stdout.write(JSON.stringify(results));
} finally {
  clearTimeout(deadline);
  await browser.close();
  server.close();
}
