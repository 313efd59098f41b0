//! The streaming JSON / NDJSON / text rewriter of anonymize
//! (`Anonymizer::body`), with chunk boundaries chosen by the fuzzer: for
//! any split, the output, the findings and any error (status, detail,
//! offset, path) equal those of the whole body pushed at once.
//! Input: kind byte, `edge_fuzz::chunked` cuts, body.
#![no_main]

use anonymize::{Anonymize, BodyKind};
use edge_core::function::Instance;
use edge_core::stream::BodyTransform;
use edge_fuzz::{chunked, pieces, suite_instance};
use libfuzzer_sys::fuzz_target;
use serde::de::IgnoredAny;

thread_local! {
    // Functions hold `RefCell`s (not `Sync`); libFuzzer runs on one thread.
    static INSTANCE: &'static Instance<Anonymize> =
        Box::leak(Box::new(suite_instance::<Anonymize>("anonymize")));
}

fn instance() -> &'static Anonymize {
    INSTANCE.with(|i| i.as_ref().expect("the conformance policy"))
}

/// Output, findings, and the error as its problem body.
fn rewrite(kind: BodyKind, chunks: &[&[u8]]) -> (Vec<u8>, String, Option<String>) {
    let mut body = instance().anonymizer().body(kind);
    let mut out = Vec::new();
    let mut result = Ok(());
    for chunk in chunks {
        result = body.push(chunk, &mut out);
        if result.is_err() {
            break;
        }
    }
    if result.is_ok() {
        result = body.finish(&mut out);
    }
    let error = result.err().map(|p| {
        let response = p.into_response(None);
        format!(
            "{} {}",
            response.status(),
            String::from_utf8_lossy(response.body())
        )
    });
    (out, body.findings().summary(), error)
}

fuzz_target!(|data: &[u8]| {
    let Some((&kind, rest)) = data.split_first() else {
        return;
    };
    let kind = match kind % 3 {
        0 => BodyKind::Json,
        1 => BodyKind::Ndjson,
        _ => BodyKind::Text,
    };
    let (cuts, body) = chunked(rest);
    let whole = rewrite(kind, &[body]);
    let split = rewrite(kind, &pieces(body, &cuts));
    assert_eq!(
        whole.2, split.2,
        "{kind:?}: errors differ for split {cuts:?}"
    );
    if whole.2.is_none() {
        assert_eq!(
            String::from_utf8_lossy(&whole.0),
            String::from_utf8_lossy(&split.0),
            "{kind:?}: output differs for split {cuts:?}"
        );
        assert_eq!(whole.1, split.1, "{kind:?}: findings differ");
        if kind != BodyKind::Text {
            // Rewritten JSON is still JSON (by its grammar: numbers past
            // f64's range are JSON too, so they are scanned, not converted).
            let text = String::from_utf8_lossy(&whole.0);
            match kind {
                BodyKind::Json => {
                    serde_json::from_slice::<IgnoredAny>(&whole.0)
                        .unwrap_or_else(|e| panic!("output is not JSON ({e}): {text}"));
                }
                _ => {
                    for line in whole.0.split(|&b| b == b'\n') {
                        if !line.trim_ascii().is_empty() {
                            serde_json::from_slice::<IgnoredAny>(line).unwrap_or_else(|e| {
                                panic!("output line is not JSON ({e}): {text}")
                            });
                        }
                    }
                }
            }
        }
    }
});
