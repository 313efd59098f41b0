//! The anonymizer served natively on the in-memory platform: bodies of each
//! kind, field rules, content types, errors, the reversible form and its
//! endpoint, k-anonymity, an origin, and streaming in chunks.
#![allow(clippy::unwrap_used)] // a panic here is a failed test

use anonymize::{Anonymize, BodyKind, FINDINGS_HEADER};
use edge_core::function::{Context, Instance, instantiate};
use edge_core::memory::TestPlatform;
use edge_core::stream::{BodyTransform, StreamingFunction};
use edge_core::{Config, EdgeFunction, Request, Response, Timestamp};
use futures::executor::block_on;
use serde_json::{Value, json};

const SALT: &str = "test-salt-0123456789";
const KEY: &str = "test-key-0123456789abcdef";
const ADMIN: &str = "test-admin-token";

fn platform() -> TestPlatform {
    TestPlatform::at(Timestamp::from_millis(1_795_305_600_000))
}

fn config(policy: &str) -> Config {
    Config::new(Anonymize::DEFAULT_POLICY)
        .with_var("POLICY", policy)
        .with_secret("GDPR_ANONYMIZATION_SALT", SALT)
        .with_secret("GDPR_ANONYMIZATION_KEY", KEY)
        .with_secret("ANONYMIZE_ADMIN_TOKEN", ADMIN)
}

fn instance(policy: &str) -> Instance<Anonymize> {
    instantiate::<Anonymize>(&config(policy))
}

fn post(path: &str, content_type: &str, body: &str) -> Request {
    http::Request::builder()
        .method("POST")
        .uri(path)
        .header("content-type", content_type)
        .body(body.to_owned().into())
        .unwrap()
}

fn serve(instance: &Instance<Anonymize>, req: Request) -> Response {
    block_on(platform().serve(instance, req))
}

fn text(response: &Response) -> String {
    String::from_utf8(response.body().to_vec()).unwrap()
}

fn pseudonym(value: &str) -> String {
    let keys = anonymize::operators::Keys::new(SALT.as_bytes(), None);
    anonymize::operators::pseudonym(&keys, "email", value)
}

#[test]
fn text_bodies_get_each_entitys_operator() {
    let f = instance("");
    let body = "Mail Ann@Example.com from 203.0.113.77, card 4111 1111 1111 1111, \
                IBAN DE89 3704 0044 0532 0130 00, key AKIAIOSFODNN7EXAMPLE. Order 12345.";
    let response = serve(&f, post("/", "text/plain; charset=utf-8", body));
    assert_eq!(response.status(), 200);
    let out = text(&response);
    assert!(out.contains(&pseudonym("ann@example.com")), "{out}");
    assert!(out.contains("203.0.113.0"), "{out}");
    assert!(out.contains("**** **** **** 1111"), "{out}");
    assert!(!out.contains("AKIAIOSFODNN7EXAMPLE"), "{out}");
    assert!(
        !out.contains("4111 1111 1111 1111") && !out.contains("DE89"),
        "{out}"
    );
    assert!(out.ends_with("Order 12345."), "{out}");
    let findings = response.headers()[FINDINGS_HEADER].to_str().unwrap();
    for kind in ["email=1", "ipv4=1", "card=1", "iban=1", "api_key=1"] {
        assert!(findings.contains(kind), "{findings}");
    }
}

#[test]
fn json_field_rules_apply_to_whole_values_and_the_rest_is_scanned() {
    let f = instance("");
    let body = json!({
        "user": {"email": "ann@example.com", "password": "hunter2", "birthdate": "1990-04-17",
                 "age": 37, "name": "Ann"},
        "events": [{"ip": "198.51.100.23", "ua": "curl"}, {"ip": "2001:db8:85a3:8d3:1319:8a2e:370:7348"}],
        "note": "call me at bob@example.org",
        "count": 3
    });
    let response = serve(&f, post("/", "application/json", &body.to_string()));
    assert_eq!(response.status(), 200, "{}", text(&response));
    let out: Value = serde_json::from_slice(response.body()).unwrap();
    assert_eq!(out["user"]["email"], pseudonym("ann@example.com"));
    assert_eq!(out["user"]["password"], Value::Null);
    assert_eq!(out["user"]["birthdate"], "1990-04");
    // A number stays a number (issue 16): the range's lower bound.
    assert_eq!(out["user"]["age"], 30);
    assert_eq!(out["user"]["name"], "Ann");
    assert_eq!(out["events"][0]["ip"], "198.51.100.0");
    assert_eq!(out["events"][0]["ua"], "curl");
    assert_eq!(out["events"][1]["ip"], "2001:db8:85a3::");
    assert_eq!(
        out["note"],
        format!("call me at {}", pseudonym("bob@example.org"))
    );
    assert_eq!(out["count"], 3);
}

#[test]
fn ndjson_lines_are_anonymized_one_by_one() {
    let f = instance("");
    let body = "{\"user\":{\"email\":\"a@example.com\"}}\n\n{\"msg\":\"from 192.0.2.9\"}\r\n";
    let response = serve(&f, post("/", "application/x-ndjson", body));
    assert_eq!(response.status(), 200, "{}", text(&response));
    let out = text(&response);
    let lines: Vec<&str> = out.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 2);
    let second: Value = serde_json::from_str(lines[1]).unwrap();
    assert_eq!(second["msg"], "from 192.0.2.0");
}

#[test]
fn invalid_json_is_a_400_naming_where_never_the_content() {
    let f = instance("");
    let response = serve(
        &f,
        post(
            "/",
            "application/json",
            r#"{"user": {"email": "secret@example.com",}}"#,
        ),
    );
    assert_eq!(response.status(), 400);
    let problem: Value = serde_json::from_slice(response.body()).unwrap();
    assert!(
        problem["type"].as_str().unwrap().ends_with("invalid-json"),
        "{problem}"
    );
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("trailing comma"),
        "{problem}"
    );
    assert!(!text(&response).contains("secret@example.com"));
    let response = serve(&f, post("/", "application/x-ndjson", "{}\n{\"a\":1\n"));
    assert_eq!(response.status(), 400);
    let problem: Value = serde_json::from_slice(response.body()).unwrap();
    assert_eq!(problem["line"], 2, "{problem}");
}

#[test]
fn unknown_content_types_are_refused_or_passed_as_the_policy_says() {
    let refuse = instance("");
    let response = serve(&refuse, post("/", "application/pdf", "%PDF a@example.com"));
    assert_eq!(response.status(), 415);
    let mut gzipped = post("/", "application/json", "{}");
    gzipped
        .headers_mut()
        .insert("content-encoding", "gzip".parse().unwrap());
    assert_eq!(serve(&refuse, gzipped).status(), 415);
    let pass = instance("[anonymize]\nunknown_content = \"pass\"\n");
    let response = serve(
        &pass,
        post("/", "application/octet-stream", "raw a@example.com"),
    );
    assert_eq!(response.status(), 200);
    assert_eq!(text(&response), "raw a@example.com");
}

#[test]
fn encrypted_values_come_back_only_through_the_authorized_endpoint() {
    let f = instance(
        "[anonymize]\n[anonymize.entities]\nemail = \"encrypt\"\n[anonymize.fields]\n\"$.iban\" = \"encrypt\"\n",
    );
    let body = json!({"iban": "DE89370400440532013000", "note": "write to ann@example.com"});
    let first = serve(&f, post("/", "application/json", &body.to_string()));
    assert_eq!(first.status(), 200, "{}", text(&first));
    let again = serve(&f, post("/", "application/json", &body.to_string()));
    assert_eq!(first.body(), again.body(), "deterministic");
    let out = text(&first);
    assert!(
        out.contains("ENC2_") && !out.contains("ann@example.com") && !out.contains("DE89"),
        "{out}"
    );

    let reverse = |token: Option<&str>| {
        let mut req = post("/_anonymize/deanonymize", "application/json", &out);
        if let Some(token) = token {
            req.headers_mut()
                .insert("authorization", format!("Bearer {token}").parse().unwrap());
        }
        serve(&f, req)
    };
    assert_eq!(reverse(None).status(), 401);
    assert_eq!(reverse(Some("wrong")).status(), 401);
    let back = reverse(Some(ADMIN));
    assert_eq!(back.status(), 200);
    assert_eq!(back.headers()["x-deanonymized"], "2");
    let back: Value = serde_json::from_slice(back.body()).unwrap();
    assert_eq!(back, body);
}

#[test]
fn k_anonymity_reports_the_smallest_class_without_values() {
    let f = instance("");
    let records = [
        json!({"zip": "10115", "age": 31, "gender": "f"}),
        json!({"zip": "10115", "age": 35, "gender": "f"}),
        json!({"zip": "10115", "age": 52, "gender": "m"}),
    ];
    let body = records
        .iter()
        .map(Value::to_string)
        .collect::<Vec<_>>()
        .join("\n");
    let response = serve(
        &f,
        post("/_anonymize/k-anonymity?k=2", "application/x-ndjson", &body),
    );
    assert_eq!(response.status(), 200, "{}", text(&response));
    let report: Value = serde_json::from_slice(response.body()).unwrap();
    assert_eq!(report["records"], 3);
    assert_eq!(report["classes"], 2);
    assert_eq!(report["smallest_class"], 1);
    assert_eq!(report["satisfied"], false);
    assert!(!text(&response).contains("10115"));
}

#[test]
fn an_origin_gets_the_anonymized_body() {
    let p = platform();
    let f = instance("[anonymize]\norigin = \"https://origin.test\"\n");
    p.http.route(
        "https://origin.test/ingest",
        http::Response::new("ok".into()),
    );
    let response = block_on(p.serve(&f, post("/ingest", "text/plain", "from 203.0.113.9")));
    assert_eq!(response.status(), 200);
    let sent = p.http.last_request("https://origin.test/ingest").unwrap();
    assert_eq!(sent.body().as_ref(), b"from 203.0.113.0");
}

#[test]
fn the_streaming_plan_gives_the_same_bytes_whatever_the_chunks() {
    let f = Anonymize::from_config(&config("")).unwrap();
    let line = json!({"user": {"email": "ann@example.com"}, "msg": "ip 203.0.113.7 card 4111111111111111"}).to_string();
    let body: String = (0..200).map(|_| format!("{line}\n")).collect();
    let mut head = post("/", "application/x-ndjson", "").into_parts().0;
    let p = platform();
    let services = p.services();
    let ctx = Context::named(&services, "anonymize", "test");
    let mut whole = Vec::new();
    let mut t = f.anonymizer().body(BodyKind::Ndjson);
    t.push(body.as_bytes(), &mut whole).unwrap();
    t.finish(&mut whole).unwrap();
    for size in [1, 7, 4096] {
        let mut plan = block_on(f.stream_plan(&mut head, &ctx)).unwrap().unwrap();
        let mut out = Vec::new();
        for chunk in body.as_bytes().chunks(size) {
            plan.transform.push(chunk, &mut out).unwrap();
        }
        plan.transform.finish(&mut out).unwrap();
        assert_eq!(out, whole, "chunks of {size}");
    }
    assert!(
        !String::from_utf8(whole)
            .unwrap()
            .contains("ann@example.com")
    );
}

#[test]
fn a_missing_or_short_salt_stops_the_function_naming_it() {
    let no_salt = Config::new(Anonymize::DEFAULT_POLICY);
    let error = Anonymize::from_config(&no_salt).err().unwrap().to_string();
    assert!(error.contains("GDPR_ANONYMIZATION_SALT"), "{error}");
    let short =
        Config::new(Anonymize::DEFAULT_POLICY).with_secret("GDPR_ANONYMIZATION_SALT", "short");
    let error = Anonymize::from_config(&short).err().unwrap().to_string();
    assert!(
        error.contains("at least 16 bytes") && !error.contains("short\""),
        "{error}"
    );
    let bad = config("[anonymize.fields]\n\"$.x\" = \"hsah\"\n");
    let error = Anonymize::from_config(&bad).err().unwrap().to_string();
    assert!(
        error.contains("anonymize.fields") && error.contains("hsah"),
        "{error}"
    );
}

/// Found by fuzz/ policy (AddressSanitizer run): an operator or a field
/// that holds a secret's value by mistake was quoted in the error, which
/// reaches logs and the policy endpoint's 422.
#[test]
fn a_policy_error_never_quotes_a_secret_held_in_the_document() {
    for policy in [
        format!("[anonymize.fields]\n\"$.user.password\" = \"restri{SALT}ted\"\n"),
        format!("[anonymize.fields]\n\"$.{KEY}\" = \"hsah\"\n"),
        format!("[anonymize.entities]\nemail = \"{ADMIN}\"\n"),
    ] {
        let error = Anonymize::from_config(&config(&policy)).err().unwrap();
        let shown = format!("{error} {error:?}");
        for secret in [SALT, KEY, ADMIN] {
            assert!(!shown.contains(secret), "{shown}");
        }
        assert!(shown.contains("[REDACTED]"), "{shown}");
    }
}

/// Issue 16: a POST without a body is the client's mistake (400 naming it),
/// not a wrong method; a GET still gets 405 with `Allow`. Nesting past
/// `max_depth` is a 400 naming the limit, not a 413.
#[test]
fn an_empty_post_and_too_deep_nesting_are_400s_naming_what_is_wrong() {
    let f = instance("");
    let response = serve(&f, post("/", "application/json", ""));
    assert_eq!(response.status(), 400);
    let problem: Value = serde_json::from_slice(response.body()).unwrap();
    assert!(
        problem["type"].as_str().unwrap().ends_with("empty-body"),
        "{problem}"
    );
    let get = http::Request::builder()
        .method("GET")
        .uri("/")
        .body(Vec::new().into())
        .unwrap();
    let response = serve(&f, get);
    assert_eq!(response.status(), 405);
    assert!(response.headers().contains_key("allow"));

    let f = instance("[anonymize]\nmax_depth = 4\n");
    let deep = r#"{"a": {"b": {"c": {"d": {"e": 1}}}}}"#;
    let response = serve(&f, post("/", "application/json", deep));
    assert_eq!(response.status(), 400);
    let problem: Value = serde_json::from_slice(response.body()).unwrap();
    assert!(
        problem["detail"].as_str().unwrap().contains("max_depth"),
        "{problem}"
    );
    let response = serve(&f, post("/", "application/x-ndjson", &format!("{deep}\n")));
    assert_eq!(response.status(), 400);
}

/// Issue 16: a JSON number stays a number where the operator's output is
/// one — `range` gives the range's lower bound, `grid` the snapped
/// coordinate, `mask` the number with its hidden digits zero, `redact`
/// null — and becomes a string only where it cannot be a number (`hash`,
/// `tag`, `encrypt`…). A card sent as a number and found by the detectors
/// gets the same treatment; its digits never come back.
#[test]
fn json_numbers_stay_numbers_where_the_operator_output_is_numeric() {
    let policy = r#"
[anonymize.entities]
card = "mask(4)"
phone = "redact"
[anonymize.fields]
"$.age" = "range(10)"
"$.lat" = "grid(0.01)"
"$.account" = "mask(4)"
"$.gone" = "redact"
"$.id" = "hash"
"$.price" = "mask(1)"
"#;
    let f = instance(policy);
    let body = r#"{"age": 37, "lat": 52.5219, "account": 4111111111111111, "gone": 12,
        "id": 1234567, "price": -1234.56, "cc": 5555555555554444, "tel": 2025550143,
        "count": 3, "big": 12345678901234567890}"#;
    let response = serve(&f, post("/", "application/json", body));
    assert_eq!(response.status(), 200, "{}", text(&response));
    let raw = text(&response);
    let out: Value = serde_json::from_str(&raw).unwrap();
    assert_eq!(out["age"], json!(30), "{raw}");
    assert_eq!(out["lat"], json!(52.52), "{raw}");
    assert_eq!(out["account"], json!(1111), "{raw}");
    assert_eq!(out["gone"], Value::Null, "{raw}");
    assert!(out["id"].is_string(), "{raw}");
    assert_eq!(out["price"], json!(-0.06), "{raw}");
    assert_eq!(out["cc"], json!(4444), "{raw}");
    assert_eq!(out["tel"], Value::Null, "{raw}");
    assert_eq!(out["count"], json!(3), "{raw}");
    for digits in ["4111111111111111", "5555555555554444", "2025550143"] {
        assert!(!raw.contains(digits), "{raw}");
    }
}

/// Issue 16: a JSON field's name is the context of its value, as a phone
/// word is in prose — a bare Norwegian number under `"tlf"` or in a
/// `"phones"` array is a phone number, under `"order_id"` it is not — in
/// JSON and in NDJSON.
#[test]
fn a_json_field_name_announces_the_number_in_it() {
    let f = instance("");
    let body = json!({
        "kunde": {"tlf": "21289693", "phones": ["85016753"], "mobileNumber": "41234567"},
        "order_id": "0612345678",
        "amount": "21289693",
        "note": "Ring oss på 85016753."
    })
    .to_string();
    for content_type in ["application/json", "application/x-ndjson"] {
        let response = serve(&f, post("/", content_type, &body));
        assert_eq!(response.status(), 200, "{}", text(&response));
        let out: Value = serde_json::from_str(text(&response).trim()).unwrap();
        for value in [
            &out["kunde"]["tlf"],
            &out["kunde"]["phones"][0],
            &out["kunde"]["mobileNumber"],
        ] {
            let v = value.as_str().unwrap();
            assert!(
                !v.contains("21289693") && !v.contains("85016753") && !v.contains("41234567"),
                "{out}"
            );
        }
        assert!(!out["note"].as_str().unwrap().contains("85016753"), "{out}");
        assert_eq!(out["order_id"], "0612345678");
        assert_eq!(out["amount"], "21289693");
    }
}

/// Issue 18: an encrypted value is found again by the de-anonymize
/// endpoint whatever touches it — `-`, `_`, a letter, a digit, or another
/// encrypted value — in text and in JSON strings, and a token of the first
/// format (`ENC1_`, no end mark) is still reversed.
#[test]
fn encrypted_values_come_back_whatever_touches_them() {
    let f = instance(
        "[anonymize]\n[anonymize.entities]\nemail = \"encrypt\"\nipv4 = \"encrypt\"\nipv6 = \"encrypt\"\nphone = \"encrypt\"\napi_key = \"encrypt\"\n",
    );
    let admin = |content_type: &str, body: &str| {
        let mut req = post("/_anonymize/deanonymize", content_type, body);
        req.headers_mut()
            .insert("authorization", format!("Bearer {ADMIN}").parse().unwrap());
        serve(&f, req)
    };
    // Values whose tokens touch `-`, `_`, `%` or letters.
    for original in [
        "-13.51.100.23",
        "203.0.113.7-198.51.100.2",
        "ann@example.com_13.51.100.23",
        "2001:db8::1-13.51.100.23",
        "13.51.100.23-x",
        "ann@example.com,bob@example.org",
        "fe80::1%eth0",
    ] {
        for (content_type, body) in [
            ("text/plain", original.to_owned()),
            ("application/json", json!({ "v": original }).to_string()),
        ] {
            let out = text(&serve(&f, post("/", content_type, &body)));
            assert!(out.contains("ENC2_"), "nothing encrypted in {out}");
            let back = admin(content_type, &out);
            assert_eq!(back.status(), 200);
            assert_eq!(back.headers()["x-deanonymize-failed"], "0", "{out}");
            assert_eq!(text(&back), body, "via {out}");
        }
    }
    // Tokens glued to letters, digits and each other.
    let token = text(&serve(&f, post("/", "text/plain", "ann@example.com")));
    let other = text(&serve(&f, post("/", "text/plain", "-13.51.100.23")));
    let other = &other[1..];
    let glued = format!("x{token}{other}9_{token}y{other}{token}");
    let back = admin("text/plain", &glued);
    assert_eq!(back.headers()["x-deanonymized"], "5", "{glued}");
    assert_eq!(
        text(&back),
        "xann@example.com13.51.100.239_ann@example.comy13.51.100.23ann@example.com"
    );
    // The text's own "ENC2_…" right before a token.
    let back = admin("text/plain", &format!("ENC2_x{token}"));
    assert_eq!(text(&back), "ENC2_xann@example.com");
    // A token of the first format, from before the end mark.
    let legacy = format!("ENC1_{}", &token[5..token.len() - 1]);
    let back = admin("text/plain", &format!("({legacy}) and {token}"));
    assert_eq!(back.headers()["x-deanonymized"], "2");
    assert_eq!(text(&back), "(ann@example.com) and ann@example.com");
}
