//! Anonymize: GDPR anonymization at the edge and in the browser.

pub mod detect;
pub mod entity;
pub mod json;
pub mod kanon;
pub mod operators;
