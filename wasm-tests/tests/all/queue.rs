//! The anonymizer as a queue consumer on Cloudflare Queues under
//! `wrangler dev`: 10,000 records with personal data produced through the
//! worker's `POST /_anonymize/enqueue`, consumed in batches, anonymized and
//! delivered to an HTTP sink (a recording server on 127.0.0.1), with no raw
//! value among them, though the sink is down when the first batches come
//! (their deliveries retried, none lost); a poisoned message retried and
//! dead-lettered, its report at the dead-letter sink; every message counted
//! by outcome at a metrics worker. And the same batch path on the Spin
//! build in the wasmtime host (`POST /_anonymize/batch`), which has no
//! queue trigger.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::Value;
use wasm_tests::host::{App, AppConfig, KvStore};
use wasm_tests::origin::RecordingOrigin;
use wasm_tests::workerd::{DevRegistry, WranglerDev, agent};

const SALT: &str = "queue-test-salt-0123456789";
const ADMIN: &str = "queue-test-admin-token";
const MESSAGES: usize = 10_000;
/// The consumer's `max_retries` in wrangler.toml's `[env.anonymize]`.
const MAX_RETRIES: u64 = 3;
const INGEST_TOKEN: &str = "queue-test-ingest-token";
/// The aggregator's policy: tokens only.
const METRICS_POLICY: &str = "[metrics]\nretention = \"1h\"\nsummary_window = \"5m\"\n\
    ingest_token_secret = \"METRICS_INGEST_TOKEN\"\nadmin_token_secret = \"METRICS_ADMIN_TOKEN\"\n";

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// GETs `path` from `base` as text.
fn get(base: &str, path: &str) -> String {
    let response = agent(Duration::from_secs(60))
        .get(&format!("{base}{path}"))
        .call()
        .unwrap();
    assert_eq!(response.status(), 200, "GET {path}");
    response.into_body().read_to_string().unwrap()
}

/// A small deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn digits(&mut self, n: usize) -> String {
        (0..n)
            .map(|_| char::from(b'0' + self.below(10) as u8))
            .collect()
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}

/// The personal values of one record, which must not reach the sink.
struct Person {
    email: String,
    contact: String,
    phone: String,
    ip: String,
    card: String,
}

/// A Visa number that passes Luhn, grouped in fours.
fn card(rng: &mut Rng) -> String {
    let mut digits: Vec<u32> = std::iter::once(4)
        .chain((0..14).map(|_| rng.below(10) as u32))
        .collect();
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, d)| {
            if i % 2 == 0 {
                let d = d * 2;
                if d > 9 { d - 9 } else { d }
            } else {
                *d
            }
        })
        .sum();
    digits.push((10 - sum % 10) % 10);
    let text: String = digits
        .iter()
        .map(|d| char::from_digit(*d, 10).unwrap())
        .collect();
    format!(
        "{} {} {} {}",
        &text[0..4],
        &text[4..8],
        &text[8..12],
        &text[12..16]
    )
}

fn person(rng: &mut Rng, i: usize) -> Person {
    let first = rng.pick(&[
        "anna", "jonas", "maria", "lukas", "sofia", "noah", "emma", "liam",
    ]);
    let last = rng.pick(&[
        "schmidt", "müller", "smith", "jones", "garcia", "rossi", "dubois",
    ]);
    let domain = rng.pick(&[
        "example.com",
        "mail.example.org",
        "example.net",
        "corp.example",
    ]);
    Person {
        email: format!("{first}.{last}{i}@{domain}"),
        contact: format!("{last}.{i}@{}", rng.pick(&["example.de", "example.fr"])),
        phone: match rng.below(2) {
            0 => format!("+49 30 {}", rng.digits(7)),
            _ => format!("+44 20 7{} {}", rng.digits(3), rng.digits(4)),
        },
        ip: format!(
            "{}.{}.{}.{}",
            11 + rng.below(180),
            rng.below(256),
            rng.below(256),
            1 + rng.below(254)
        ),
        card: card(rng),
    }
}

fn record(i: usize, p: &Person) -> String {
    serde_json::json!({
        "id": i,
        "user": { "email": p.email, "name": "N. N." },
        "card": p.card,
        "note": format!("write to {} or call {} (seen from {})", p.contact, p.phone, p.ip),
    })
    .to_string()
}

/// Every string in `value`.
fn strings<'a>(value: &'a Value, out: &mut Vec<&'a str>) {
    match value {
        Value::String(s) => out.push(s),
        Value::Array(items) => items.iter().for_each(|v| strings(v, out)),
        Value::Object(map) => map.values().for_each(|v| strings(v, out)),
        _ => {}
    }
}

#[test]
fn ten_thousand_queued_records_are_anonymized_and_a_poisoned_one_is_dead_lettered() {
    let mut sink = RecordingOrigin::start().unwrap();
    let policy = format!(
        "[anonymize.queue]\nsink = \"{0}/records\"\ndead_letter_sink = \"{0}/dead-letter\"\n",
        sink.url()
    );
    // The anonymizer and the metrics worker it flushes to, on one registry
    // (declared first, dropped last).
    let registry = DevRegistry::new().unwrap();
    let (dev, metrics) = std::thread::scope(|s| {
        let metrics = s.spawn(|| {
            let secrets = map(&[
                ("METRICS_INGEST_TOKEN", INGEST_TOKEN),
                ("METRICS_ADMIN_TOKEN", "queue-test-metrics-admin"),
            ]);
            let vars = map(&[("POLICY", METRICS_POLICY)]);
            WranglerDev::start_in("metrics", &vars, &secrets, registry.path())
                .expect("wrangler dev --env metrics")
        });
        let dev = s.spawn(|| {
            let secrets = map(&[
                ("GDPR_ANONYMIZATION_SALT", SALT),
                ("ANONYMIZE_ADMIN_TOKEN", ADMIN),
                ("METRICS_INGEST_TOKEN", INGEST_TOKEN),
            ]);
            let vars = map(&[("POLICY", &policy)]);
            WranglerDev::start_in("anonymize", &vars, &secrets, registry.path())
                .expect("wrangler dev --env anonymize")
        });
        (dev.join().unwrap(), metrics.join().unwrap())
    });
    let http = agent(Duration::from_secs(60));
    let enqueue = format!("{}/_anonymize/enqueue", dev.url());

    // The producer endpoint wants the admin token.
    let response = http
        .post(&enqueue)
        .header("content-type", "application/x-ndjson")
        .send("{\"a\":1}\n")
        .unwrap();
    assert_eq!(response.status(), 401, "{}", dev.log_tail());

    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let people: Vec<Person> = (0..MESSAGES).map(|i| person(&mut rng, i)).collect();
    const POISON_EMAIL: &str = "poison.pill@example.com";
    let poison = format!("{{\"id\":\"poison\",\"user\":{{\"email\":\"{POISON_EMAIL}\"}}");
    // The sink is down when the first records come: it is back as soon as
    // the consumer has logged a failed delivery (retried a second later,
    // so no message runs out of attempts however slow the machine).
    sink.stop();
    let started = Instant::now();
    let (mut produced, mut as_json) = (0, 0);
    let mut outage = None;
    for (chunk_index, chunk) in people.chunks(1000).enumerate() {
        if chunk_index == 1 {
            let deadline = Instant::now() + Duration::from_secs(120);
            while !std::fs::read_to_string(dev.log_path())
                .unwrap_or_default()
                .contains("sink-failed")
            {
                assert!(
                    Instant::now() < deadline,
                    "no delivery failed\n{}",
                    dev.log_tail()
                );
                std::thread::sleep(Duration::from_millis(20));
            }
            sink.restart().unwrap();
            outage = Some(started.elapsed());
        }
        let mut body = String::new();
        for (j, p) in chunk.iter().enumerate() {
            body.push_str(&record(chunk_index * 1000 + j, p));
            body.push('\n');
            if chunk_index == 4 && j == 500 {
                body.push_str(&poison);
                body.push('\n');
            }
        }
        // Half the records go as `json` messages (JavaScript values), half
        // as `text` (NDJSON as sent); the poison, not JSON, as text either way.
        let content = if chunk_index % 2 == 0 { "json" } else { "text" };
        let response = http
            .post(&format!("{enqueue}?content={content}"))
            .header("authorization", format!("Bearer {ADMIN}"))
            .header("content-type", "application/x-ndjson")
            .send(&body)
            .unwrap();
        let status = response.status().as_u16();
        let text = response.into_body().read_to_string().unwrap();
        assert_eq!(status, 202, "{text}\n{}", dev.log_tail());
        let answer: Value = serde_json::from_str(&text).unwrap();
        produced += answer["enqueued"].as_u64().unwrap();
        as_json += answer["json"].as_u64().unwrap();
    }
    assert_eq!(as_json, MESSAGES as u64 / 2);
    let produce_time = started.elapsed();
    let outage = outage.unwrap();
    assert_eq!(produced, MESSAGES as u64 + 1);

    // Wait until every record is at the sink and the poison reported.
    let deadline = Instant::now() + Duration::from_secs(300);
    let (records, reports) = loop {
        let received = sink.received();
        let lines = |path: &str| -> Vec<String> {
            received
                .iter()
                .filter(|r| r.method == "POST" && r.uri == path)
                .flat_map(|r| r.body.lines().map(str::to_owned).collect::<Vec<_>>())
                .collect()
        };
        let (records, reports) = (lines("/records"), lines("/dead-letter"));
        if records.len() >= MESSAGES && !reports.is_empty() {
            break (records, reports);
        }
        assert!(
            Instant::now() < deadline,
            "{} records and {} dead-letter reports at the sink after 300 s\n{}",
            records.len(),
            reports.len(),
            dev.log_tail()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let drained = started.elapsed();
    let sink_requests = sink
        .received()
        .iter()
        .filter(|r| r.uri == "/records")
        .count();

    // Every record once, none with a raw value of its own or anyone's.
    let raw: HashSet<&str> = people
        .iter()
        .flat_map(|p| [&p.email, &p.contact, &p.phone, &p.ip, &p.card])
        .map(String::as_str)
        .collect();
    let mut seen = HashMap::new();
    let mut leaks = Vec::new();
    for line in &records {
        let value: Value = serde_json::from_str(line).unwrap();
        let id = value["id"].as_u64().unwrap() as usize;
        *seen.entry(id).or_insert(0) += 1;
        let p = &people[id];
        for own in [&p.email, &p.contact, &p.phone, &p.ip, &p.card] {
            if line.contains(own.as_str()) {
                leaks.push(format!("record {id}: {own}"));
            }
        }
        let mut found = Vec::new();
        strings(&value, &mut found);
        leaks.extend(
            found
                .into_iter()
                .filter(|s| raw.contains(s) || s.contains('@'))
                .map(|s| format!("record {id}: {s}")),
        );
    }
    assert_eq!(
        records.len(),
        MESSAGES,
        "duplicates: {}",
        records.len() - seen.len()
    );
    assert_eq!(seen.len(), MESSAGES, "every record delivered once");
    assert!(
        leaks.is_empty(),
        "{} raw values at the sink: {:?}",
        leaks.len(),
        &leaks[..leaks.len().min(10)]
    );
    let example: Value = serde_json::from_str(&records[0]).unwrap();
    let id = example["id"].as_u64().unwrap() as usize;
    assert_ne!(example["card"], people[id].card.as_str(), "{example}");

    // The poisoned message: reported once, with its reason, no raw value.
    assert_eq!(reports.len(), 1, "{reports:?}");
    let report: Value = serde_json::from_str(&reports[0]).unwrap();
    assert_eq!(report["queue"], "edge-anonymize-dlq", "{report}");
    assert_eq!(report["reason"]["type"], "invalid-json", "{report}");
    assert!(!reports[0].contains(POISON_EMAIL), "{report}");

    // The consumer's log: batches, acknowledged and retried messages, no value.
    let log = std::fs::read_to_string(dev.log_path()).unwrap();
    let (mut batches, mut acked, mut dead) = (0u64, 0u64, 0u64);
    let (mut poisoned, mut undelivered) = (0u64, 0u64);
    for line in log.lines() {
        let Some(start) = line.find('{') else {
            continue;
        };
        let Ok(entry) = serde_json::from_str::<Value>(&line[start..]) else {
            continue;
        };
        if entry["message"] != "queue batch" {
            continue;
        }
        let fields = &entry["fields"];
        let fields = if fields.is_object() { fields } else { &entry };
        if fields["dead_letter"] == true {
            dead += fields["acked"].as_u64().unwrap_or(0);
        } else {
            batches += 1;
            acked += fields["acked"].as_u64().unwrap_or(0);
            let reasons = fields["retry_reasons"].as_object();
            for reason in reasons.into_iter().flat_map(|r| r.values()) {
                match reason.as_str().unwrap_or("") {
                    r if r.starts_with("invalid-json") => poisoned += 1,
                    r if r.starts_with("sink-failed") => undelivered += 1,
                    r => panic!("retried for {r}"),
                }
            }
        }
    }
    assert_eq!(acked, MESSAGES as u64, "acknowledged in the log");
    assert_eq!(poisoned, MAX_RETRIES + 1, "the poison's attempts");
    assert!(
        undelivered > 0,
        "no delivery failed while the sink was down"
    );
    assert_eq!(dead, 1);
    for value in [
        POISON_EMAIL,
        people[0].email.as_str(),
        people[9999].phone.as_str(),
    ] {
        assert!(!log.contains(value), "{value} in the worker's log");
    }

    // The metrics: every message a record of its queue's route, by
    // outcome, and the isolate's totals as gauges, at the aggregator after
    // the cron's flush.
    dev.scheduled().unwrap();
    let route = |snapshot: &Value, route: &str| -> Value {
        snapshot["routes"]
            .as_array()
            .and_then(|routes| {
                routes
                    .iter()
                    .find(|r| r["function"] == "anonymize" && r["route"] == route)
            })
            .map_or(Value::Null, |r| r["statuses"].clone())
    };
    let expected = serde_json::json!({
        "200": MESSAGES,
        "422": poisoned,
        "503": undelivered,
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let snapshot: Value =
            serde_json::from_str(&get(&metrics.url(), "/_metrics/snapshot")).unwrap();
        let records = route(&snapshot, "queue:edge-anonymize-records");
        let dead = route(&snapshot, "queue:edge-anonymize-dlq");
        if records == expected && dead == serde_json::json!({ "200": 1 }) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "at the aggregator: {records} and {dead}, expected {expected}\n{}",
            dev.log_tail()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    let exposition = get(&metrics.url(), "/metrics");
    let gauge = |name: &str| -> f64 {
        let prefix = format!("edge_function_value{{function=\"anonymize\",name=\"{name}\"}} ");
        exposition
            .lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .unwrap_or_else(|| panic!("{name} missing from the exposition"))
            .parse()
            .unwrap()
    };
    assert_eq!(gauge("queue_acked"), MESSAGES as f64);
    assert_eq!(gauge("queue_dead_lettered"), 1.0);
    assert_eq!(gauge("queue_retried"), (poisoned + undelivered) as f64);
    assert_eq!(
        gauge("queue_messages"),
        (MESSAGES as u64 + poisoned + undelivered + 1) as f64
    );
    let all_batches = gauge("queue_batches");

    eprintln!(
        "queue on workerd: {MESSAGES} records + 1 poisoned produced in {:.1} s (10 POSTs), \
         the sink down for the first {:.2} s; all {MESSAGES} at the sink once {:.1} s after \
         the first POST ({sink_requests} sink requests from {batches} batches, {:.0} \
         records/s), 0 raw values; {undelivered} message deliveries failed and were \
         retried; the poisoned message failed {poisoned} attempts (1 + max_retries \
         {MAX_RETRIES}), then was dead-lettered and reported once; at the aggregator: {expected} \
         on queue:edge-anonymize-records, 1 on the DLQ's route, gauges queue_batches \
         {all_batches}, queue_acked {MESSAGES}, queue_retried {}, queue_dead_lettered 1",
        produce_time.as_secs_f64(),
        outage.as_secs_f64(),
        drained.as_secs_f64(),
        MESSAGES as f64 / drained.as_secs_f64(),
        poisoned + undelivered,
    );
}

#[test]
fn the_batch_endpoint_on_spin_answers_each_record() {
    let app = App::load(
        &wasm_tests::spin_component("anonymize"),
        AppConfig {
            variables: [("gdpr_anonymization_salt".to_owned(), SALT.to_owned())].into(),
            kv: KvStore::new(),
            route: "/anonymize".into(),
            guest_stderr: None,
        },
    )
    .expect("the Spin build of anonymize (run `cargo xtask build`)");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let post = |content_type: &str, body: String| {
        let req = http::Request::builder()
            .method("POST")
            .uri("/anonymize/_anonymize/batch")
            .header("content-type", content_type)
            .body(Bytes::from(body))
            .unwrap();
        runtime
            .block_on(app.handle(req, "127.0.0.1:4000".parse().unwrap()))
            .unwrap()
    };
    let mut rng = Rng(7);
    let people: Vec<Person> = (0..1000).map(|i| person(&mut rng, i)).collect();
    let mut body: String = people
        .iter()
        .enumerate()
        .map(|(i, p)| record(i, p) + "\n")
        .collect();
    body.push_str("{\"id\":\"poison\",\"email\":\"poison.pill@example.com\"\n");
    let response = post("application/x-ndjson", body);
    assert_eq!(response.status(), 200);
    let text = String::from_utf8(response.body().to_vec()).unwrap();
    let answer: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(answer["records"], 1001);
    assert_eq!(answer["anonymized"], 1000);
    assert_eq!(answer["results"][1000]["line"], 1001);
    assert_eq!(answer["results"][1000]["error"]["type"], "invalid-json");
    for (i, p) in people.iter().enumerate() {
        let out = answer["results"][i]["record"].to_string();
        for raw in [&p.email, &p.contact, &p.phone, &p.ip, &p.card] {
            assert!(!out.contains(raw.as_str()), "{raw} in {out}");
        }
    }
    assert!(!text.contains("poison.pill@example.com"));

    for (content_type, body, status) in [
        ("application/x-ndjson", "", 400),
        ("application/json", "{\"one\":\"record\"}", 400),
        ("text/plain", "x", 415),
    ] {
        let response = post(content_type, body.to_owned());
        assert_eq!(response.status(), status, "{content_type} {body:?}");
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json"
        );
    }
}
