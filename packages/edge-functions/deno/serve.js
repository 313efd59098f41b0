// edge-functions/deno/serve: serves one function's `fetch` under Deno, as a
// `deno serve` entry (Deno Deploy, or a machine of yours):
//
//   EDGE_FUNCTION=counter COUNTER_ADMIN_TOKEN=… \
//     deno serve --allow-read --allow-env node_modules/edge-functions/deno/serve.js
//
// or, in a project of your own, a `main.js` of one line:
//   export { default } from "npm:edge-functions/deno/serve";
//
// The function is EDGE_FUNCTION (or the first script argument): anonymize,
// spatial-query, auth-check, rate-limit, metrics, gateway or counter. Its
// variables (POLICY, …) and secrets are read from the environment by the
// names the function declares, as a Worker reads its bindings; nothing else
// in the environment is used. State (counters, rate limits, spatial assets,
// metrics) lives in the isolate's memory, like the browser build's.
// `--allow-read` lets the module read its .wasm; `--allow-env` the
// configuration. A bad configuration does not stop the server: the reason
// (naming the field) goes to the log and every request, /health too, is
// answered with the 500 `misconfigured` problem, as on the other platforms.

import { capabilities } from "../index.js";

const name = Deno.env.get("EDGE_FUNCTION") ?? Deno.args[0];
if (!capabilities.includes(name)) {
  throw new Error(
    `EDGE_FUNCTION=${JSON.stringify(name ?? "")}: must be one of ${capabilities.join(", ")}`,
  );
}
const module = await import(`../${name}.js`);
const className = name
  .split("-")
  .map((part) => part[0].toUpperCase() + part.slice(1))
  .join("") + "Function";

// The function reads only the names it declares, vars and secrets alike;
// secrets never appear in its logs, errors or responses.
// (A plain object: Deno's has no prototype, which the options check refuses.)
const environment = { ...Deno.env.toObject() };
let instance;
try {
  instance = new module[className]({ vars: environment, secrets: environment });
} catch (error) {
  console.error(`edge-functions/${name}: ${error.message}`);
}

/**
 * The answer to every request when the configuration is invalid: the
 * problem the other platforms send (the reason goes to the log, not to
 * the client).
 */
function misconfigured(request) {
  const body = {
    type: "urn:edge-functions:problem:misconfigured",
    title: "Function misconfigured",
    status: 500,
    detail: "the function's policy or variables are invalid; see its logs",
    instance: new URL(request.url).pathname,
  };
  return new Response(JSON.stringify(body), {
    status: 500,
    headers: { "content-type": "application/problem+json", "cache-control": "no-store" },
  });
}

export default {
  /** @param {Request} request */
  fetch(request) {
    return instance ? instance.fetch(request) : misconfigured(request);
  },
};
