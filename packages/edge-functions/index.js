// edge-functions: nothing heavy here. Import a capability by its own path
// (`edge-functions/anonymize`, `edge-functions/spatial-query`, …) so that a
// page loads only that capability's .wasm.

/** The prefix of every problem `type` the functions use (RFC 9457). */
export const PROBLEM_TYPE_PREFIX = "urn:edge-functions:problem:";

/**
 * Whether `error` is a `ProblemError` thrown by one of the modules, and, when
 * `kind` is given, whether its type is `urn:edge-functions:problem:KIND`.
 */
export function isProblemError(error, kind) {
  return (
    error instanceof Error &&
    error.name === "ProblemError" &&
    typeof error.type === "string" &&
    (kind === undefined || error.type === PROBLEM_TYPE_PREFIX + kind)
  );
}

/** The capabilities, each the subpath to import. */
export const capabilities = [
  "anonymize",
  "spatial-query",
  "auth-check",
  "rate-limit",
  "metrics",
  "gateway",
  "counter",
];
