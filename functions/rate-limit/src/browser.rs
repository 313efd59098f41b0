//! The browser entry point (feature `browser`): the `RateLimitFunction` class
//! (client-side throttling, state in memory).

edge_browser::export_function!(RateLimitFunction, crate::RateLimit);
