// Serves the browser builds (target/edge/browser/NAME/...) and a demo page
// on 127.0.0.1. Used by `cargo xtask dev` and by the Chromium runner.
// `--mount /PREFIX=DIR` (repeatable) serves DIR under /PREFIX/ as well
// (a directory's index.html for a path ending in "/"): `cargo xtask dev`
// mounts the local-first demo (packages/demo) and the npm package.
// Files are served as a package server (unpkg, jsDelivr) serves them, so a
// page on any other origin can import the modules and fetch their .wasm:
// `Access-Control-Allow-Origin: *` and `Cross-Origin-Resource-Policy:
// cross-origin` on every answer, preflights answered, GET and HEAD only.
//   node serve.mjs --port 8080 --root target/edge/browser \
//     --mount /demo=packages/demo --mount /edge-functions=target/edge/npm/edge-functions
import { createServer } from "node:http";
import { readFile } from "node:fs/promises";
import { extname, join, normalize, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const TYPES = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".mjs": "text/javascript; charset=utf-8",
  ".wasm": "application/wasm",
  ".ts": "text/plain; charset=utf-8",
  ".json": "application/json",
  ".css": "text/css; charset=utf-8",
  ".ndjson": "application/x-ndjson",
  ".geojson": "application/geo+json",
};
const HERE = fileURLToPath(new URL(".", import.meta.url));
const METHODS = "GET, HEAD, OPTIONS";
/** On every answer: readable from any origin, embeddable cross-origin. */
const SHARED = {
  "access-control-allow-origin": "*",
  "access-control-expose-headers": "content-length, content-type",
  "cross-origin-resource-policy": "cross-origin",
  "x-content-type-options": "nosniff",
};

/** Starts the server; resolves to { server, url }. `mounts` maps a path
 * prefix ("/demo") to a directory served under it. */
export function serve({ root, port = 0, mounts = {} }) {
  const bases = Object.entries(mounts).map(([prefix, dir]) => [prefix.replace(/\/+$/, ""), resolve(dir)]);
  const server = createServer(async (req, res) => {
    if (req.method === "OPTIONS") {
      res
        .writeHead(204, {
          ...SHARED,
          allow: METHODS,
          "access-control-allow-methods": METHODS,
          "access-control-allow-headers": req.headers["access-control-request-headers"] ?? "*",
          "access-control-max-age": "86400",
        })
        .end();
      return;
    }
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.writeHead(405, { ...SHARED, allow: METHODS, "content-type": "text/plain" }).end("method not allowed");
      return;
    }
    try {
      const path = decodeURIComponent(new URL(req.url, "http://x").pathname);
      const mounted = bases.find(([prefix]) => path === prefix || path.startsWith(`${prefix}/`));
      if (mounted && path === mounted[0]) {
        res.writeHead(301, { ...SHARED, location: `${path}/` }).end();
        return;
      }
      const [prefix, base] = mounted ?? ["", resolve(root)];
      const rest = path.slice(prefix.length);
      const file =
        path === "/"
          ? join(HERE, "index.html")
          : normalize(join(base, rest.endsWith("/") ? `${rest}index.html` : rest));
      if (path !== "/" && !file.startsWith(base)) {
        res.writeHead(403, SHARED).end("forbidden");
        return;
      }
      const body = await readFile(file);
      res
        .writeHead(200, {
          ...SHARED,
          "content-type": TYPES[extname(file)] ?? "application/octet-stream",
          "content-length": body.length,
          "cache-control": "no-store",
        })
        .end(req.method === "HEAD" ? undefined : body);
    } catch {
      res.writeHead(404, { ...SHARED, "content-type": "text/plain" }).end("not found");
    }
  });
  return new Promise((ok, fail) => {
    server.once("error", fail);
    server.listen(port, "127.0.0.1", () =>
      ok({ server, url: `http://127.0.0.1:${server.address().port}` }),
    );
  });
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const arg = (name, fallback) => {
    const i = process.argv.indexOf(name);
    return i > 0 ? process.argv[i + 1] : fallback;
  };
  const mounts = {};
  process.argv.forEach((a, i) => {
    if (a === "--mount") {
      const spec = process.argv[i + 1];
      const at = spec.indexOf("=");
      mounts[spec.slice(0, at)] = spec.slice(at + 1);
    }
  });
  const { url } = await serve({
    root: arg("--root", "target/edge/browser"),
    port: Number(arg("--port", "8080")),
    mounts,
  });
  console.log(`listening on ${url}`);
}
