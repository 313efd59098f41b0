//! A real HTTP origin on 127.0.0.1 for the tests of functions in front of
//! one (the gateway, the middleware functions): it answers every request
//! with `200` and a small JSON body, records what it received (method,
//! URI, headers, body), and can be stopped and started again on the same
//! port, to show a function's answers while its origin is down.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use anyhow::{Context as _, Result};
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;

/// One request as the origin received it.
#[derive(Debug, Clone)]
pub struct Received {
    /// The method.
    pub method: String,
    /// The path and query.
    pub uri: String,
    /// The headers, names lower-case, repeated values joined with `, `.
    pub headers: BTreeMap<String, String>,
    /// The body, as text.
    pub body: String,
}

/// The running origin; stopped on drop.
pub struct RecordingOrigin {
    addr: SocketAddr,
    received: Arc<Mutex<Vec<Received>>>,
    runtime: tokio::runtime::Runtime,
    server: Option<tokio::task::JoinHandle<()>>,
    /// Open connections (clients keep them alive): closed by `stop` too.
    connections: Arc<Mutex<Vec<tokio::task::AbortHandle>>>,
}

impl RecordingOrigin {
    /// Starts an origin on a free port.
    pub fn start() -> Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()?;
        let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
        let addr = listener.local_addr()?;
        let mut origin = RecordingOrigin {
            addr,
            received: Arc::default(),
            runtime,
            server: None,
            connections: Arc::default(),
        };
        origin.serve(listener);
        Ok(origin)
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request received so far.
    pub fn received(&self) -> Vec<Received> {
        self.received
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Stops listening: connections are refused until [`Self::restart`].
    pub fn stop(&mut self) {
        if let Some(server) = self.server.take() {
            server.abort();
            // Wait for the listener to be dropped.
            let _ = self.runtime.block_on(server);
        }
        let open = std::mem::take(
            &mut *self
                .connections
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        for connection in open {
            connection.abort();
        }
    }

    /// Listens again on the same port.
    pub fn restart(&mut self) -> Result<()> {
        self.stop();
        let listener = self
            .runtime
            .block_on(tokio::net::TcpListener::bind(self.addr))
            .with_context(|| format!("binding {} again", self.addr))?;
        self.serve(listener);
        Ok(())
    }

    fn serve(&mut self, listener: tokio::net::TcpListener) {
        let received = self.received.clone();
        let connections = self.connections.clone();
        self.server = Some(self.runtime.spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let received = received.clone();
                let connection = tokio::spawn(async move {
                    let service = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                        let received = received.clone();
                        async move {
                            let (parts, body) = req.into_parts();
                            let body = body.collect().await?.to_bytes();
                            let mut headers = BTreeMap::<String, String>::new();
                            for (name, value) in &parts.headers {
                                let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
                                headers
                                    .entry(name.as_str().to_owned())
                                    .and_modify(|v| {
                                        v.push_str(", ");
                                        v.push_str(&value);
                                    })
                                    .or_insert(value);
                            }
                            received
                                .lock()
                                .unwrap_or_else(PoisonError::into_inner)
                                .push(Received {
                                    method: parts.method.to_string(),
                                    uri: parts.uri.to_string(),
                                    headers,
                                    body: String::from_utf8_lossy(&body).into_owned(),
                                });
                            let response = http::Response::builder()
                                .header("content-type", "application/json")
                                .header("x-origin", "recording")
                                .body(Full::new(Bytes::from_static(b"{\"origin\":\"ok\"}")));
                            Ok::<_, hyper::Error>(response.unwrap_or_default())
                        }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
                connections
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(connection.abort_handle());
            }
        }));
    }
}

impl Drop for RecordingOrigin {
    fn drop(&mut self) {
        self.stop();
    }
}
