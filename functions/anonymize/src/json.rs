//! Streaming JSON and NDJSON rewriting in bounded memory. (Stub: being written.)
