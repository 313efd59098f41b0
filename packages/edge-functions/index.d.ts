/** The prefix of every problem `type` the functions use (RFC 9457). */
export declare const PROBLEM_TYPE_PREFIX: "urn:edge-functions:problem:";

/**
 * The `Error` every module throws: the RFC 9457 problem the server side
 * would answer with (`type`, `title`, `status`, `detail`). Declared once, by
 * the modules' shared glue (the type only: no module loads).
 */
export type { ProblemError } from "./wasm/counter.js";

/**
 * Whether `error` is a `ProblemError` thrown by one of the modules, and, when
 * `kind` is given, whether its type is `urn:edge-functions:problem:KIND`.
 */
export declare function isProblemError(
  error: unknown,
  kind?: string,
): error is import("./wasm/counter.js").ProblemError;

/** The capabilities, each the subpath to import. */
export declare const capabilities: readonly [
  "anonymize",
  "spatial-query",
  "auth-check",
  "rate-limit",
  "metrics",
  "gateway",
  "counter",
];
