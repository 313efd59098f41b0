//! Policy documents of every function (`EdgeFunction::from_config`, which
//! parses, validates and builds): the first byte picks the function, the
//! rest is the document. No document panics; the same document written in
//! the other format (JSON ↔ TOML, through one value) is accepted or refused
//! alike; and no error names a secret's value.
#![no_main]

use edge_core::{ConfigError, EdgeFunction};
use edge_fuzz::{config, secrets};
use libfuzzer_sys::fuzz_target;

fn build<F: EdgeFunction>(text: &str) -> Result<(), ConfigError> {
    F::from_config(&config::<F>(Some(text))).map(|_| ())
}

fn check<F: EdgeFunction>(text: &str) {
    let result = build::<F>(text);
    if let Err(e) = &result {
        let message = format!("{e} {e:?}");
        for (name, value) in secrets() {
            assert!(
                !message.contains(value.as_str()),
                "{}: the error names secret {name}: {message}",
                F::NAME
            );
        }
    }
    // The other format, through one value of the document.
    let (json, toml) = if text.trim_start().starts_with('{') {
        let Ok(value) = serde_json::from_str::<serde_json::Value>(text) else {
            return;
        };
        let Ok(toml) = toml::to_string(&value) else {
            return; // null, or an integer past i64: no TOML for it
        };
        (serde_json::to_string(&value).expect("a value"), toml)
    } else {
        let Ok(table) = toml::from_str::<toml::Table>(text) else {
            return;
        };
        if has_datetime(&toml::Value::Table(table.clone())) {
            return; // no JSON for it
        }
        let json = serde_json::to_string(&table).expect("a table");
        if !json.starts_with('{') {
            return;
        }
        (json, toml::to_string(&table).expect("a table"))
    };
    if toml.trim().is_empty() {
        return; // an empty POLICY means the built-in one
    }
    let (from_json, from_toml) = (build::<F>(&json), build::<F>(&toml));
    assert_eq!(
        from_json.is_ok(),
        from_toml.is_ok(),
        "{}: JSON {json} → {from_json:?}, TOML {toml} → {from_toml:?}",
        F::NAME
    );
}

fn has_datetime(value: &toml::Value) -> bool {
    match value {
        toml::Value::Datetime(_) => true,
        toml::Value::Array(a) => a.iter().any(has_datetime),
        toml::Value::Table(t) => t.values().any(has_datetime),
        _ => false,
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    match which % 7 {
        0 => check::<rate_limit::RateLimit>(text),
        1 => check::<auth_check::AuthCheck>(text),
        2 => check::<anonymize::Anonymize>(text),
        3 => check::<spatial_query::SpatialQuery>(text),
        4 => check::<metrics::Metrics>(text),
        5 => check::<gateway::Gateway>(text),
        _ => check::<counter::Counter>(text),
    }
});
