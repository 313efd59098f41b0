//! The browser entry point (feature `browser`): the `GatewayFunction` class.

edge_browser::export_function!(GatewayFunction, crate::Gateway);
