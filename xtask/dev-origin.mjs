// The gateway's origin under `cargo xtask dev`: answers every request with
// what it received, as JSON (method, path, headers, body), so a caller sees
// what the gateway forwarded: the verified identity in x-auth-sub and
// x-auth-scopes, traceparent, x-correlation-id, and the body as the
// anonymizer left it (emails and IP addresses pseudonymized).
//
//   node xtask/dev-origin.mjs [--port 8901] [--exit-with-stdin]
//
// Bound to 127.0.0.1. Stops on SIGTERM/SIGINT or, with --exit-with-stdin,
// when its parent closes its stdin.

import * as http from 'node:http';
import { parseArgs } from 'node:util';

const { values: flags } = parseArgs({
  options: {
    port: { type: 'string', default: '8901' },
    'exit-with-stdin': { type: 'boolean', default: false },
  },
});

const server = http.createServer(async (req, res) => {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  const text = Buffer.concat(chunks).toString('utf8');
  let body = text === '' ? null : text;
  if (text !== '') {
    try {
      body = JSON.parse(text);
    } catch {
      // Not JSON: shown as the text it is.
    }
  }
  const answer = `${JSON.stringify(
    {
      origin: 'cargo xtask dev echo origin (xtask/dev-origin.mjs)',
      method: req.method,
      path: req.url,
      headers: req.headers,
      body,
    },
    null,
    2,
  )}\n`;
  res.writeHead(200, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(answer),
  });
  res.end(answer);
});

server.listen(Number(flags.port), '127.0.0.1', () => {
  const { port } = server.address();
  process.stdout.write(`${JSON.stringify({ ready: true, port })}\n`);
});

for (const signal of ['SIGTERM', 'SIGINT']) process.on(signal, () => process.exit(0));
if (flags['exit-with-stdin']) {
  process.stdin.on('end', () => process.exit(0));
  process.stdin.on('error', () => process.exit(0));
  process.stdin.resume();
}
