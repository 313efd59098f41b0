//! Auth check: JWT verification (RS256, PS256, ES256, ES384, EdDSA, HS256)
//! against static keys or JWKS (by URL or OIDC discovery, several issuers),
//! RBAC per route on `scope` and `roles`, verified claims forwarded to the
//! origin as headers (client copies stripped first), and API keys stored
//! only as keyed hashes, with rotation.

pub mod apikeys;
pub mod claims;
pub mod keys;
pub mod token;
