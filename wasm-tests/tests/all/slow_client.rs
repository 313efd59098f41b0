//! Slow and stalled clients (slow-loris) against the Spin host's server:
//! a body that stops, a body that trickles past the whole-body bound and
//! headers that never end are each cut off within the host's `Timeouts`
//! (408 problem+json for bodies, a closed connection for headers), while
//! other clients are still served. Short bounds here; the defaults are 10 s
//! and 30 s.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use wasm_tests::host::{GuestLogs, KvStore, Timeouts, serve_with};

const TIMEOUTS: Timeouts = Timeouts {
    headers: Duration::from_secs(1),
    body_idle: Duration::from_secs(1),
    body_total: Duration::from_secs(3),
};
/// Slack on top of a bound before the test calls it missed.
const SLACK: Duration = Duration::from_secs(3);

/// Reads until the server closes the connection or `within` passes;
/// returns what came and when the read ended.
fn read_answer(stream: &mut TcpStream, within: Duration) -> (String, Duration) {
    let started = Instant::now();
    stream.set_read_timeout(Some(within)).unwrap();
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                answer.extend_from_slice(&buf[..n]);
                // A whole problem answer: headers and a JSON body.
                if answer.ends_with(b"}") {
                    break;
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                panic!(
                    "no answer and no close within {within:?}; got {:?}",
                    String::from_utf8_lossy(&answer)
                )
            }
            // A reset after the server gave up counts as a close.
            Err(_) => break,
        }
    }
    (
        String::from_utf8_lossy(&answer).into_owned(),
        started.elapsed(),
    )
}

fn healthy(addr: SocketAddr) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .write_all(b"GET /counter/health HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

fn assert_timeout_problem(answer: &str, detail: &str) {
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    let lower = answer.to_ascii_lowercase();
    assert!(
        lower.contains("content-type: application/problem+json"),
        "{answer}"
    );
    assert!(
        answer.contains("urn:edge-functions:problem:request-timeout"),
        "{answer}"
    );
    assert!(answer.contains(detail), "{answer}");
}

#[test]
fn slow_and_stalled_clients_are_cut_off_and_others_still_served() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let app = crate::counter_app("admin", KvStore::new(), GuestLogs::new(1 << 20));
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    runtime.spawn(serve_with(listener, vec![app], TIMEOUTS));
    healthy(addr);

    let post = |length: usize| {
        let mut stream = TcpStream::connect(addr).unwrap();
        write!(
            stream,
            "POST /counter/counters/slow HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {length}\r\n\r\n"
        )
        .unwrap();
        stream
    };

    // A body that stops after 10 of its 100 bytes.
    let mut stalled = post(100);
    stalled.write_all(b"{\"by\": 1, ").unwrap();
    let (answer, took) = read_answer(&mut stalled, TIMEOUTS.body_idle + SLACK);
    assert_timeout_problem(&answer, "stalled: nothing arrived for 1s (10 bytes read)");
    assert!(took >= TIMEOUTS.body_idle / 2, "answered after {took:?}");

    // A body that keeps moving, a byte every 300 ms, but never ends in time;
    // meanwhile another client is served.
    let mut trickle = post(100);
    let started = Instant::now();
    let mut sent = 0;
    while started.elapsed() < TIMEOUTS.body_total + SLACK && sent < 100 {
        if trickle.write_all(b" ").is_err() {
            break;
        }
        sent += 1;
        if sent == 3 {
            healthy(addr);
        }
        std::thread::sleep(Duration::from_millis(300));
        // The answer may already be waiting.
        trickle.set_nonblocking(true).unwrap();
        let mut peek = [0u8; 1];
        let waiting = matches!(trickle.peek(&mut peek), Ok(n) if n > 0);
        trickle.set_nonblocking(false).unwrap();
        if waiting {
            break;
        }
    }
    let (answer, _) = read_answer(&mut trickle, SLACK);
    let took = started.elapsed();
    assert_timeout_problem(&answer, "did not end within 3s");
    assert!(
        took >= TIMEOUTS.body_total - Duration::from_millis(500)
            && took <= TIMEOUTS.body_total + SLACK,
        "answered after {took:?}"
    );

    // Headers that never end: the connection is closed.
    let mut headers = TcpStream::connect(addr).unwrap();
    headers
        .write_all(b"POST /counter/counters/slow HTTP/1.1\r\nhost: x\r\n")
        .unwrap();
    let (answer, took) = read_answer(&mut headers, TIMEOUTS.headers + SLACK);
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
        "{answer}"
    );
    assert!(took >= TIMEOUTS.headers / 2, "closed after {took:?}");

    // Nothing was held: the server still answers.
    healthy(addr);
}
