//! The batch path natively: messages of each kind anonymized on their own,
//! poisoned ones failing alone with a reason that holds no content, delivery
//! to the sink (and its failure), dead-letter reports, and the
//! `POST /_anonymize/batch` endpoint.
#![allow(clippy::unwrap_used)] // a panic here is a failed test

use anonymize::Anonymize;
use anonymize::batch::{DeadLetter, Message};
use edge_core::function::{Context, Instance, instantiate};
use edge_core::memory::TestPlatform;
use edge_core::{Config, EdgeFunction, Request, Timestamp};
use futures::executor::block_on;
use serde_json::Value;

const SALT: &str = "test-salt-0123456789";
const SINK: &str = "http://sink.test/records";
const DLQ: &str = "http://sink.test/dead-letter";

fn platform() -> TestPlatform {
    TestPlatform::at(Timestamp::from_millis(1_795_305_600_000))
}

fn instance(policy: &str) -> Instance<Anonymize> {
    let config = Config::new(Anonymize::DEFAULT_POLICY)
        .with_var("POLICY", policy)
        .with_secret("GDPR_ANONYMIZATION_SALT", SALT);
    instantiate::<Anonymize>(&config)
}

fn with_sinks() -> Anonymize {
    instance(&format!(
        "[anonymize.queue]\nsink = \"{SINK}\"\ndead_letter_sink = \"{DLQ}\"\nmax_message_bytes = 4096\n"
    ))
    .unwrap()
}

fn ok(status: u16) -> edge_core::Response {
    http::Response::builder()
        .status(status)
        .body(Default::default())
        .unwrap()
}

fn sent(platform: &TestPlatform, url: &str) -> String {
    let request = platform.http.last_request(url).unwrap();
    String::from_utf8(request.body().to_vec()).unwrap()
}

const RAW: [&str; 4] = [
    "ann@example.com",
    "203.0.113.77",
    "+49 30 1234567",
    "4111 1111 1111 1111",
];

#[test]
fn each_message_is_anonymized_alone_and_a_poisoned_one_fails_alone() {
    let f = with_sinks();
    let a = f.anonymizer();
    let json = br#"{"user":{"email":"ann@example.com"},
        "note":"call +49 30 1234567 from 203.0.113.77"}"#;
    let out = a.message(Message::Json(json), 4096).unwrap();
    let text = String::from_utf8(out.ndjson.clone()).unwrap();
    assert_eq!(out.records, 1);
    assert_eq!(text.matches('\n').count(), 1, "one line per record: {text}");
    assert!(RAW.iter().all(|raw| !text.contains(raw)), "{text}");
    assert!(out.findings.contains("phone=1"), "{}", out.findings);

    let ndjson = b"{\"ip\":\"203.0.113.77\"}\n\n{\"card\":\"4111 1111 1111 1111\"}";
    let out = a.message(Message::Ndjson(ndjson), 4096).unwrap();
    assert_eq!(out.records, 2);
    let text = String::from_utf8(out.ndjson).unwrap();
    assert!(text.ends_with('\n') && !text.contains("203.0.113.77") && !text.contains("4111 1111"));

    // Poisoned: each fails with a kind, and the detail holds none of the content.
    let cases: [(Message<'_>, &str); 5] = [
        (
            Message::Ndjson(b"{\"email\":\"ann@example.com\""),
            "invalid-json",
        ),
        (Message::Json(b"ann@example.com"), "invalid-json"),
        (Message::Json(&[b' '; 5000]), "too-large"),
        (Message::Ndjson(b"  \n "), "empty"),
        (Message::Unreadable("a Map"), "unreadable"),
    ];
    for (message, kind) in cases {
        let failure = a.message(message, 4096).unwrap_err();
        assert_eq!(failure.kind, kind, "{failure}");
        assert!(failure.is_permanent());
        assert!(!failure.detail.contains("ann@"), "{failure}");
    }
}

#[test]
fn a_batch_goes_to_the_sink_in_one_request_and_a_sink_failure_fails_the_good_ones() {
    let f = with_sinks();
    let platform = platform();
    platform.http.route(SINK, ok(204));
    let services = platform.services();
    let ctx = Context::named(&services, "anonymize", "batch-1");
    let messages = [
        Message::Json(br#"{"email":"ann@example.com"}"#),
        Message::Ndjson(b"not json"),
        Message::Ndjson(b"{\"ip\":\"203.0.113.77\"}\n{\"ip\":\"198.51.100.9\"}\n"),
    ];
    let results = block_on(f.consume_batch(&messages, &ctx));
    assert_eq!(results[0], Ok(1));
    assert_eq!(results[1].as_ref().unwrap_err().kind, "invalid-json");
    assert_eq!(results[2], Ok(2));
    assert_eq!(platform.http.calls(SINK), 1);
    let body = sent(&platform, SINK);
    assert_eq!(body.lines().count(), 3, "{body}");
    assert!(!body.contains("ann@example.com") && !body.contains("203.0.113.77"));
    for line in body.lines() {
        serde_json::from_str::<Value>(line).unwrap();
    }

    platform.http.route(SINK, ok(503));
    let results = block_on(f.consume_batch(&messages, &ctx));
    assert!(results.iter().all(Result::is_err));
    assert_eq!(results[0].as_ref().unwrap_err().kind, "sink-failed");
    assert!(!results[0].as_ref().unwrap_err().is_permanent());
    assert_eq!(results[1].as_ref().unwrap_err().kind, "invalid-json");

    // No sink in the policy: nothing is acknowledged.
    let bare = instance("").unwrap();
    let results = block_on(bare.consume_batch(&messages[..1], &ctx));
    assert_eq!(results[0].as_ref().unwrap_err().kind, "no-sink");
}

#[test]
fn dead_letters_are_reported_without_raw_values() {
    let f = with_sinks();
    let platform = platform();
    platform.http.route(DLQ, ok(200));
    let services = platform.services();
    let ctx = Context::named(&services, "anonymize", "dlq-1");
    let letters = [DeadLetter {
        queue: "edge-anonymize-dlq",
        id: "m-1",
        timestamp_ms: 1,
        message: Message::Ndjson(b"{\"email\":\"ann@example.com\", card 4111 1111 1111 1111"),
    }];
    let results = block_on(f.report_dead_letters(&letters, &ctx));
    assert_eq!(results, vec![Ok(())]);
    let body = sent(&platform, DLQ);
    let report: Value = serde_json::from_str(body.trim()).unwrap();
    assert_eq!(report["id"], "m-1");
    assert_eq!(report["reason"]["type"], "invalid-json");
    assert!(RAW.iter().all(|raw| !body.contains(raw)), "{body}");
    let logs = platform.logs.lines().join("\n");
    assert!(
        logs.contains("dead-lettered message") && !logs.contains("ann@"),
        "{logs}"
    );

    platform.http.route(DLQ, ok(500));
    assert!(block_on(f.report_dead_letters(&letters, &ctx))[0].is_err());
}

fn post(path: &str, content_type: &str, body: &str) -> Request {
    http::Request::builder()
        .method("POST")
        .uri(path)
        .header("content-type", content_type)
        .body(body.to_owned().into())
        .unwrap()
}

#[test]
fn the_batch_endpoint_answers_each_record_and_refuses_bad_input() {
    let f = instance("");
    let platform = platform();
    let body = "{\"email\":\"ann@example.com\"}\n\n{\"ip\":\"203.0.113.77\"\n{\"n\":1}\n";
    let response =
        block_on(platform.serve(&f, post("/_anonymize/batch", "application/x-ndjson", body)));
    assert_eq!(response.status(), 200);
    let answer: Value = serde_json::from_slice(response.body()).unwrap();
    assert_eq!(answer["records"], 3);
    assert_eq!(answer["anonymized"], 2);
    assert_eq!(answer["failed"], 1);
    assert_eq!(answer["results"][0]["line"], 1);
    assert_eq!(answer["results"][1]["line"], 3);
    assert_eq!(answer["results"][1]["error"]["type"], "invalid-json");
    assert_eq!(answer["results"][2]["record"]["n"], 1);
    let text = answer.to_string();
    assert!(
        !text.contains("ann@example.com") && !text.contains("203.0.113.77"),
        "{text}"
    );

    let response = block_on(platform.serve(
        &f,
        post(
            "/_anonymize/batch",
            "application/json",
            r#"[{"ip":"203.0.113.77"},{"a":[1]}]"#,
        ),
    ));
    let answer: Value = serde_json::from_slice(response.body()).unwrap();
    assert_eq!(answer["anonymized"], 2, "{answer}");
    assert_eq!(answer["results"][0]["record"]["ip"], "203.0.113.0");
    assert_eq!(answer["results"][1]["index"], 1);

    for (content_type, body, status) in [
        ("application/x-ndjson", "", 400),
        ("application/json", "{\"not\":\"an array\"}", 400),
        ("application/json", "[1,", 400),
        ("text/plain", "x", 415),
        ("application/pdf", "x", 415),
    ] {
        let response = block_on(platform.serve(&f, post("/_anonymize/batch", content_type, body)));
        assert_eq!(response.status(), status, "{content_type} {body:?}");
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json"
        );
    }
    let get = http::Request::builder()
        .uri("/_anonymize/batch")
        .body(Default::default())
        .unwrap();
    assert_eq!(block_on(platform.serve(&f, get)).status(), 405);
    let many = "{}\n".repeat(anonymize::batch::MAX_BATCH_RECORDS + 1);
    let response =
        block_on(platform.serve(&f, post("/_anonymize/batch", "application/x-ndjson", &many)));
    assert_eq!(response.status(), 413);
}

#[test]
fn the_batch_endpoint_delivers_to_the_sink_and_a_failed_delivery_is_a_502() {
    let f = instance(&format!("[anonymize.queue]\nsink = \"{SINK}\"\n"));
    let platform = platform();
    platform.http.route(SINK, ok(200));
    let body = "{\"email\":\"ann@example.com\"}\n{\"email\":\"bob@example.com\"}\n";
    let response =
        block_on(platform.serve(&f, post("/_anonymize/batch", "application/x-ndjson", body)));
    assert_eq!(response.status(), 200);
    let answer: Value = serde_json::from_slice(response.body()).unwrap();
    assert_eq!(answer["delivered"], 2);
    assert!(answer["results"][0].get("record").is_none(), "{answer}");
    assert_eq!(sent(&platform, SINK).lines().count(), 2);
    platform.http.route(SINK, ok(500));
    let response =
        block_on(platform.serve(&f, post("/_anonymize/batch", "application/x-ndjson", body)));
    assert_eq!(response.status(), 502);
}

#[test]
fn a_bad_queue_section_is_refused_by_field() {
    let error = instance("[anonymize.queue]\nmax_message_bytes = 0\n")
        .err()
        .unwrap()
        .to_string();
    assert!(
        error.contains("anonymize.queue.max_message_bytes"),
        "{error}"
    );
    let error = instance("[anonymize.queue]\nsink = \"ftp://x\"\n")
        .err()
        .unwrap()
        .to_string();
    assert!(error.contains("sink"), "{error}");
}
