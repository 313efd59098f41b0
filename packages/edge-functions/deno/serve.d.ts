// edge-functions/deno/serve: a `deno serve` entry serving the function
// named by EDGE_FUNCTION (see serve.js).

/** The handler `deno serve` calls: the function's `fetch`, or the 500
 * `misconfigured` problem when its configuration is invalid. */
declare const handler: {
  fetch(request: Request): Response | Promise<Response>;
};
export default handler;
