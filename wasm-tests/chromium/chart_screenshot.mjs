// Loads the metrics function's chart page in headless Chromium, waits until
// it has drawn (`document.body.dataset.ready === "true"`), saves a PNG
// screenshot of the whole page and prints what it drew as JSON on stdout:
//   node chart_screenshot.mjs --url http://127.0.0.1:8792/_metrics/chart --out chart.png
//   {"ready":"true","status":"…","panels":[{"route":"counter /counters/{key}",
//     "heading":"…","polylines":{"p50":1,"p95":1,"p99":1},"points":{"p50":2,…}}]}
// The assertions happen in Rust (wasm-tests/tests/all/metrics.rs).
import { arg, launch } from "./launch.mjs";

const url = arg("--url");
const out = arg("--out");
const { browser, deadline } = await launch("chart screenshot");
try {
  const page = await browser.newPage({ viewport: { width: 1000, height: 800 } });
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  page.on("console", (m) => {
    if (m.type() === "error") errors.push(m.text());
  });
  const response = await page.goto(url, { waitUntil: "load", timeout: 30_000 });
  if (!response || !response.ok()) {
    throw new Error(`GET ${url} answered ${response ? response.status() : "nothing"}`);
  }
  // "true" once the series is drawn, "error" when it could not be loaded.
  await page.waitForFunction(
    () => ["true", "error"].includes(document.body.dataset.ready),
    null,
    { timeout: 30_000 },
  );
  const drawn = await page.evaluate(() => ({
    ready: document.body.dataset.ready,
    status: document.getElementById("status")?.textContent ?? "",
    panels: [...document.querySelectorAll(".panel")].map((panel) => {
      const polylines = {};
      const points = {};
      for (const q of ["p50", "p95", "p99"]) {
        const lines = [...panel.querySelectorAll(`svg polyline.${q}`)];
        polylines[q] = lines.length;
        // Points drawn, over every polyline of this quantile.
        points[q] = lines
          .map((l) => (l.getAttribute("points") ?? "").trim())
          .filter((p) => p.length > 0)
          .reduce((n, p) => n + p.split(/\s+/).length, 0);
      }
      return {
        route: panel.dataset.route ?? "",
        heading: panel.querySelector("h2")?.textContent ?? "",
        polylines,
        points,
      };
    }),
  }));
  await page.screenshot({ path: out, fullPage: true });
  drawn.errors = errors;
  process.stdout.write(JSON.stringify(drawn));
} finally {
  clearTimeout(deadline);
  await browser.close();
}
