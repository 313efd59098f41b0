//! The browser entry point (feature `browser`): the `RateLimitFunction` class
//! (client-side throttling, state in memory). A page is one client, its own
//! device, and has no address of its own: `ip` key parts read `127.0.0.1`
//! ([`crate::identity::BROWSER_CLIENT`]) there, so a policy keyed by address
//! — the built-in one — limits the page as it would one client.

edge_browser::export_function!(RateLimitFunction, crate::RateLimit);
