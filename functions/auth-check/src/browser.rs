//! The browser entry point (feature `browser`): the `AuthCheckFunction`
//! class (verify tokens and route rules client-side, e.g. in a service
//! worker; keys from JWKS through the page's `fetch`).

edge_browser::export_function!(AuthCheckFunction, crate::AuthCheck);
