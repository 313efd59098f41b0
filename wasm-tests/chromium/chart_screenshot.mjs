// Loads the metrics function's chart page in headless Chromium, waits until
// it has drawn (`document.body.dataset.ready === "true"`), drives it as an
// operator would — sorts the overview by requests and back, picks a route
// (`--pick "FUNCTION ROUTE"`) — then saves a PNG screenshot of the whole
// page and prints what it drew as JSON on stdout:
//   node chart_screenshot.mjs --url http://127.0.0.1:8792/_metrics/chart \
//     --out chart.png --pick "rate-limit /api/*"
//   {"ready":"true","status":"…","alerts":[…],"rows":[…],"by_requests":[…],
//    "panels_before":[…],"panels":[{"route":"…","quantiles":{"p50":{…}},…}],…}
// The assertions happen in Rust (wasm-tests/tests/all/metrics.rs).
import { arg, launch, watch } from "./launch.mjs";

const url = arg("--url");
const out = arg("--out");
const pick = process.argv.includes("--pick") ? arg("--pick") : null;
const { browser, deadline } = await launch("chart screenshot");
try {
  const page = await browser.newPage({ viewport: { width: 1240, height: 900 } });
  const { errors, requests } = watch(page);
  const response = await page.goto(url, { waitUntil: "load", timeout: 30_000 });
  if (!response || !response.ok()) {
    throw new Error(`GET ${url} answered ${response ? response.status() : "nothing"}`);
  }
  // "true" once drawn, "error" when the data could not be loaded.
  await page.waitForFunction(
    () => ["true", "error"].includes(document.body.dataset.ready),
    null,
    { timeout: 30_000 },
  );
  const rows = () =>
    page.evaluate(() =>
      [...document.querySelectorAll("#overview tbody tr")].map((tr) => {
        const cells = {};
        const heads = [...document.querySelectorAll("#overview th")].map((th) => th.dataset.key);
        [...tr.children].forEach((td, i) => {
          cells[heads[i]] = td.textContent;
        });
        return {
          route: tr.dataset.route,
          alerting: tr.classList.contains("alerting"),
          picked: tr.classList.contains("picked"),
          error_rate: Number(tr.querySelector("td[data-value]")?.dataset.value ?? "0"),
          rate: Number(tr.querySelector("td[data-rate]")?.dataset.rate ?? "NaN"),
          cells,
        };
      }),
    );
  const panelRoutes = () =>
    page.evaluate(() => [...document.querySelectorAll("#panels .panel")].map((p) => p.dataset.route));

  const drawn = await page.evaluate(() => ({
    ready: document.body.dataset.ready,
    status: document.getElementById("status")?.textContent ?? "",
    alerts: [...document.querySelectorAll("#alerts .banner.firing li")].map((li) => ({
      name: li.dataset.alert,
      text: li.textContent,
    })),
    banner: [...document.querySelectorAll("#alerts .banner")].map((b) => b.className),
    hidden: document.getElementById("hidden")?.textContent ?? "",
    // The rate column's minutes (epoch seconds) and heading.
    rate_column: (() => {
      const th = document.querySelector('#overview th[data-key="rate"]');
      return { from: Number(th?.dataset.from), to: Number(th?.dataset.to), heading: th?.textContent ?? "", title: th?.title ?? "" };
    })(),
  }));
  drawn.rows = await rows();
  drawn.panels_before = await panelRoutes();

  // Sorting: by requests (most first), then back to worst first (the
  // third click on a heading).
  const requestsHead = page.locator('#overview th[data-key="requests"]');
  await requestsHead.click();
  drawn.by_requests = (await rows()).map((r) => r.route);
  await requestsHead.click();
  await requestsHead.click();
  drawn.resorted = (await rows()).map((r) => r.route);

  if (pick !== null) {
    await page.locator(`#overview tbody tr[data-route="${pick.replace(/"/g, '\\"')}"]`).click();
    await page.waitForFunction(
      (key) => [...document.querySelectorAll("#panels .panel")].some((p) => p.dataset.route === key),
      pick,
      { timeout: 10_000 },
    );
  }
  drawn.address = await page.evaluate(() => location.hash);
  drawn.panels = await page.evaluate(() =>
    [...document.querySelectorAll("#panels .panel")].map((panel) => {
      const quantiles = {};
      for (const q of ["p50", "p95", "p99"]) {
        const line = panel.querySelector(`svg polyline.${q}`);
        const style = line ? getComputedStyle(line) : null;
        const coords = (line?.getAttribute("points") ?? "").trim();
        quantiles[q] = {
          lines: panel.querySelectorAll(`svg polyline.${q}`).length,
          points: coords ? coords.split(/\s+/).length : 0,
          coords,
          stroke: style?.stroke ?? "",
          dash: style?.strokeDasharray ?? "",
        };
      }
      const bars = {};
      for (const c of ["req", "err", "lim"]) bars[c] = panel.querySelectorAll(`svg rect.${c}`).length;
      return {
        route: panel.dataset.route ?? "",
        heading: panel.querySelector("h2")?.textContent ?? "",
        charts: [...panel.querySelectorAll(".chart h3")].map((h) => h.textContent),
        quantiles,
        bars,
      };
    }),
  );
  // Clicking a row scrolled the table to it: show its top, the worst rows.
  await page.evaluate(() => {
    document.getElementById("table")?.scrollTo(0, 0);
  });
  await page.screenshot({ path: out, fullPage: true });
  drawn.errors = errors;
  const origin = new URL(url).origin;
  drawn.foreign_requests = requests.filter((r) => new URL(r).origin !== origin);
  process.stdout.write(JSON.stringify(drawn));
} finally {
  clearTimeout(deadline);
  await browser.close();
}
