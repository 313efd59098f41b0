//! The browser entry point (feature `browser`): the `CounterFunction` class.

edge_browser::export_function!(CounterFunction, crate::Counter);
