// What the package tests give every function: its export and class, and
// test values for every secret a function reads.

/** [export, class] of each function. */
export const functions = [
  ["counter", "CounterFunction"],
  ["rate-limit", "RateLimitFunction"],
  ["auth-check", "AuthCheckFunction"],
  ["anonymize", "AnonymizeFunction"],
  ["spatial-query", "SpatialQueryFunction"],
  ["metrics", "MetricsFunction"],
  ["gateway", "GatewayFunction"],
];

/** Test values of every function's secrets. */
export const secrets = {
  COUNTER_ADMIN_TOKEN: "test-admin-token",
  RATE_LIMIT_HASH_KEY: "test-hash-key",
  RATE_LIMIT_ADMIN_TOKEN: "test-admin-token",
  AUTH_API_KEY_HASH_KEY: "test-api-key-hash-key",
  AUTH_ADMIN_TOKEN: "test-admin-token",
  GDPR_ANONYMIZATION_SALT: "test-anonymization-salt",
  GDPR_ANONYMIZATION_KEY: "test-anonymization-key-012345678",
  ANONYMIZE_ADMIN_TOKEN: "test-admin-token",
  SPATIAL_ADMIN_TOKEN: "test-admin-token",
  METRICS_ADMIN_TOKEN: "test-admin-token",
  METRICS_INGEST_TOKEN: "test-ingest-token",
};
