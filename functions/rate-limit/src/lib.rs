//! Rate limit.
pub mod algorithm;
