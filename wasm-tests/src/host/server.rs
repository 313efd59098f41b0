//! A hyper server that routes requests to several [`App`]s.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use bytes::Bytes;
use http::StatusCode;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use super::App;

/// The most request body the host buffers for a guest. Functions enforce
/// their own, smaller limit; this only keeps the host's memory bounded.
pub const MAX_HOST_BODY_BYTES: usize = 16 * 1024 * 1024;

/// How long one request may run in a guest before the host answers 504.
pub const REQUEST_DEADLINE: std::time::Duration = std::time::Duration::from_secs(30);

/// Serves `apps` on `listener` until an accept error occurs.
///
/// Each request goes to the app with the longest route that matches its
/// path (segment-wise, so `/counterx` does not match `/counter`); no match
/// gives `404`. HTTP/1.1 only. A failing request (trap, guest error code) gives `500` with
/// the error chain as body. Connections are served concurrently.
pub async fn serve(listener: TcpListener, apps: Vec<App>) -> anyhow::Result<()> {
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
                async move { Ok::<_, std::convert::Infallible>(route(&apps, req, client_addr).await) }
            });
            let conn = http1::Builder::new().serve_connection(TokioIo::new(stream), service);
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
) -> http::Response<Full<Bytes>> {
    let Some(app) = apps
        .iter()
        .find(|app| app.path_info(req.uri().path()).is_some())
    else {
        return plain(StatusCode::NOT_FOUND, "not found\n".to_owned());
    };
    let (parts, body) = req.into_parts();
    let body = match Limited::new(body, MAX_HOST_BODY_BYTES).collect().await {
        Ok(body) => body.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            return plain(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("request body exceeds the host's {MAX_HOST_BODY_BYTES} bytes\n"),
            );
        }
        Err(e) => {
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

fn plain(status: StatusCode, body: String) -> http::Response<Full<Bytes>> {
    let mut response = http::Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
}
