//! A hyper server that routes requests to several [`App`]s.
//!
//! It holds clients to time bounds as Spin's and workerd's servers do, so a
//! slow or stalled client (slow-loris) cannot hold a connection and a
//! buffered body forever: headers must arrive within [`Timeouts::headers`]
//! (else the connection is closed), and a body must keep moving
//! ([`Timeouts::body_idle`]) and end within [`Timeouts::body_total`] (else
//! `408` problem+json, before any guest runs).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use bytes::Bytes;
use bytes::BytesMut;
use edge_core::Problem;
use http::StatusCode;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::time::Instant;

use super::App;

/// The most request body the host buffers for a guest. Functions enforce
/// their own, smaller limit; this only keeps the host's memory bounded.
pub const MAX_HOST_BODY_BYTES: usize = 16 * 1024 * 1024;

/// How long one request may run in a guest before the host answers 504.
pub const REQUEST_DEADLINE: std::time::Duration = std::time::Duration::from_secs(30);

/// How long the host waits for a client.
#[derive(Clone, Copy, Debug)]
pub struct Timeouts {
    /// From the connection (or the previous response) to the end of the
    /// request's headers; so also how long an idle keep-alive connection
    /// is kept.
    pub headers: Duration,
    /// The longest pause between two pieces of a request body.
    pub body_idle: Duration,
    /// From the end of the headers to the end of the body.
    pub body_total: Duration,
}

impl Default for Timeouts {
    /// 20 s for headers (longer than clients keep idle connections:
    /// ureq 15 s, Node 4 s, so a client never reuses one being closed),
    /// 10 s between body pieces, 30 s for a whole body.
    fn default() -> Self {
        Timeouts {
            headers: Duration::from_secs(20),
            body_idle: Duration::from_secs(10),
            body_total: REQUEST_DEADLINE,
        }
    }
}

/// Serves `apps` on `listener` until an accept error occurs, with the
/// default [`Timeouts`].
pub async fn serve(listener: TcpListener, apps: Vec<App>) -> anyhow::Result<()> {
    serve_with(listener, apps, Timeouts::default()).await
}

/// Serves `apps` on `listener` until an accept error occurs.
///
/// Each request goes to the app with the longest route that matches its
/// path (segment-wise, so `/counterx` does not match `/counter`); no match
/// gives `404`. HTTP/1.1 only. A failing request (trap, guest error code) gives `500` with
/// the error chain as body. Connections are served concurrently.
pub async fn serve_with(
    listener: TcpListener,
    apps: Vec<App>,
    timeouts: Timeouts,
) -> anyhow::Result<()> {
    let mut apps = apps;
    // Longest route first, so the first match is the most specific one.
    apps.sort_by_key(|app| std::cmp::Reverse(app.route().len()));
    let apps: Arc<[App]> = apps.into();
    loop {
        let (stream, client_addr) = listener.accept().await.context("accept failed")?;
        let apps = apps.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let apps = apps.clone();
                async move {
                    Ok::<_, std::convert::Infallible>(
                        route(&apps, req, client_addr, timeouts).await,
                    )
                }
            });
            let conn = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(timeouts.headers)
                .serve_connection(TokioIo::new(stream), service);
            if let Err(e) = conn.await {
                eprintln!("edge-host: connection from {client_addr}: {e}");
            }
        });
    }
}

async fn route(
    apps: &[App],
    req: http::Request<Incoming>,
    client_addr: SocketAddr,
    timeouts: Timeouts,
) -> http::Response<Full<Bytes>> {
    let Some(app) = apps
        .iter()
        .find(|app| app.path_info(req.uri().path()).is_some())
    else {
        return plain(StatusCode::NOT_FOUND, "not found\n".to_owned());
    };
    let (parts, body) = req.into_parts();
    let body = match read_body(body, timeouts).await {
        Ok(body) => body,
        Err(BodyError::TooLarge) => {
            return plain(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("request body exceeds the host's {MAX_HOST_BODY_BYTES} bytes\n"),
            );
        }
        Err(BodyError::Stalled(detail)) => {
            let problem = Problem::new(
                StatusCode::REQUEST_TIMEOUT,
                "request-timeout",
                "Request Timeout",
            )
            .with_detail(detail)
            .with_header(
                http::header::CONNECTION,
                http::HeaderValue::from_static("close"),
            );
            return problem.into_response(Some(parts.uri.path())).map(Full::new);
        }
        Err(BodyError::Read(e)) => {
            return plain(
                StatusCode::BAD_REQUEST,
                format!("reading request body: {e}\n"),
            );
        }
    };
    let handled = tokio::time::timeout(
        REQUEST_DEADLINE,
        app.handle(http::Request::from_parts(parts, body), client_addr),
    )
    .await;
    match handled {
        Ok(Ok(response)) => response.map(Full::new),
        Err(_) => {
            eprintln!("edge-host: {} timed out", app.route());
            plain(
                StatusCode::GATEWAY_TIMEOUT,
                format!("the guest did not answer within {REQUEST_DEADLINE:?}\n"),
            )
        }
        Ok(Err(e)) => {
            eprintln!("edge-host: {} failed: {e:#}", app.route());
            plain(StatusCode::INTERNAL_SERVER_ERROR, format!("{e:#}\n"))
        }
    }
}

/// Why a request body could not be read whole.
enum BodyError {
    TooLarge,
    /// What the client failed to do in time.
    Stalled(String),
    Read(Box<dyn std::error::Error + Send + Sync>),
}

/// The whole body, at most [`MAX_HOST_BODY_BYTES`], within `timeouts`.
async fn read_body(body: Incoming, timeouts: Timeouts) -> Result<Bytes, BodyError> {
    let deadline = Instant::now() + timeouts.body_total;
    let mut body = Limited::new(body, MAX_HOST_BODY_BYTES);
    let mut bytes = BytesMut::new();
    loop {
        let idle = Instant::now() + timeouts.body_idle;
        let frame = match tokio::time::timeout_at(idle.min(deadline), body.frame()).await {
            Ok(frame) => frame,
            Err(_) if idle < deadline => {
                return Err(BodyError::Stalled(format!(
                    "the request body stalled: nothing arrived for {:?} ({} bytes read)",
                    timeouts.body_idle,
                    bytes.len()
                )));
            }
            Err(_) => {
                return Err(BodyError::Stalled(format!(
                    "the request body did not end within {:?} ({} bytes read)",
                    timeouts.body_total,
                    bytes.len()
                )));
            }
        };
        match frame {
            None => return Ok(bytes.freeze()),
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    bytes.extend_from_slice(&data);
                }
            }
            Some(Err(e)) if e.is::<http_body_util::LengthLimitError>() => {
                return Err(BodyError::TooLarge);
            }
            Some(Err(e)) => return Err(BodyError::Read(e)),
        }
    }
}

fn plain(status: StatusCode, body: String) -> http::Response<Full<Bytes>> {
    let mut response = http::Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
}
