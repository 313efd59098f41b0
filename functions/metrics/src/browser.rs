//! The browser entry point (feature `browser`): the `MetricsFunction` class.

edge_browser::export_function!(MetricsFunction, crate::Metrics);
