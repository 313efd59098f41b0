// What the Chromium scripts share: their command-line arguments,
// Debian's Chromium started headless by playwright-core (a fresh temporary
// profile, nothing fetched in the background) with a deadline after which
// the script exits with status 3 instead of hanging a test, and a page's
// errors and requests collected.
import { chromium } from "playwright-core";

export const arg = (name) => {
  const i = process.argv.indexOf(name);
  if (i < 0) throw new Error(`missing ${name}`);
  return process.argv[i + 1];
};

export async function launch(label) {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    args: [
      "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync",
    ],
    timeout: 60_000,
  });
  const deadline = setTimeout(() => {
    console.error(`${label}: deadline exceeded`);
    process.exit(3);
  }, 120_000);
  return { browser, deadline };
}

/** Collects `page`'s errors (uncaught, and console errors) and the URL of
 * every request it makes, for the Rust side to check. */
export function watch(page) {
  const errors = [];
  const requests = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  page.on("console", (m) => {
    if (m.type() === "error") errors.push(m.text());
  });
  page.on("request", (r) => requests.push(r.url()));
  return { errors, requests };
}
