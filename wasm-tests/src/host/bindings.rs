//! Host bindings generated from `wasm-tests/wit` for the non-WASI imports of
//! Spin components (`wasi:keyvalue` draft2 and `spin:variables`).

wasmtime::component::bindgen!({
    path: "wit",
    world: "edge:host/spin-imports",
    imports: { default: trappable },
    with: {
        "wasi:keyvalue/store.bucket": crate::host::kv::BucketHandle,
        "wasi:keyvalue/atomics.cas": crate::host::kv::CasHandle,
    },
});
