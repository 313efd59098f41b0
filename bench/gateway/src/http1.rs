//! Just enough HTTP/1.1 for the benchmark's two ends, on std sockets: the
//! load generator's keep-alive client and the local origin server. Bodies
//! are framed by `Content-Length` or chunked; nothing else is supported.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// A message head: the start line and the headers (names lower-cased).
#[derive(Debug, Clone)]
pub struct Head {
    /// `POST /x HTTP/1.1` or `HTTP/1.1 200 OK`.
    pub start: String,
    /// Names lower-cased, in order.
    pub headers: Vec<(String, String)>,
}

impl Head {
    /// The first header called `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// A response's status code.
    pub fn status(&self) -> Option<u16> {
        self.start.split(' ').nth(1)?.parse().ok()
    }

    /// A request's path.
    pub fn path(&self) -> &str {
        self.start.split(' ').nth(1).unwrap_or("")
    }
}

fn invalid(what: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.into())
}

/// Reads messages off a stream, keeping what it read ahead.
pub struct Reader<S> {
    stream: S,
    buf: Vec<u8>,
}

impl<S: Read> Reader<S> {
    /// Reads from `stream`.
    pub fn new(stream: S) -> Self {
        Reader {
            stream,
            buf: Vec::with_capacity(4096),
        }
    }

    /// The stream.
    pub fn stream(&mut self) -> &mut S {
        &mut self.stream
    }

    /// Reads more; `false` at the end of the stream.
    fn fill(&mut self) -> io::Result<bool> {
        let mut chunk = [0u8; 8192];
        let n = self.stream.read(&mut chunk)?;
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(n > 0)
    }

    /// The next line (without CRLF), consumed.
    fn line(&mut self) -> io::Result<String> {
        loop {
            if let Some(end) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let line = String::from_utf8_lossy(&self.buf[..end]).into_owned();
                self.buf.drain(..end + 2);
                return Ok(line);
            }
            if !self.fill()? {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
        }
    }

    /// The next `n` bytes, consumed.
    fn exact(&mut self, n: usize) -> io::Result<Vec<u8>> {
        while self.buf.len() < n {
            if !self.fill()? {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
        }
        Ok(self.buf.drain(..n).collect())
    }

    /// The next message head; `None` when the stream ends cleanly first.
    pub fn head(&mut self) -> io::Result<Option<Head>> {
        if self.buf.is_empty() && !self.fill()? {
            return Ok(None);
        }
        let start = self.line()?;
        let mut headers = Vec::new();
        loop {
            let line = self.line()?;
            if line.is_empty() {
                break;
            }
            let (name, value) = line
                .split_once(':')
                .ok_or_else(|| invalid(format!("header line {line:?}")))?;
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
        }
        Ok(Some(Head { start, headers }))
    }

    /// The body after `head` (`Content-Length` or chunked; none otherwise).
    pub fn body(&mut self, head: &Head) -> io::Result<Vec<u8>> {
        let chunked = head
            .header("transfer-encoding")
            .is_some_and(|te| te.eq_ignore_ascii_case("chunked"));
        if chunked {
            let mut body = Vec::new();
            loop {
                let line = self.line()?;
                let size = line.split(';').next().unwrap_or("").trim();
                let size = usize::from_str_radix(size, 16)
                    .map_err(|_| invalid(format!("chunk size {line:?}")))?;
                if size == 0 {
                    // Trailers, then the empty line.
                    while !self.line()?.is_empty() {}
                    return Ok(body);
                }
                body.extend(self.exact(size)?);
                self.exact(2)?;
            }
        }
        match head.header("content-length") {
            Some(len) => {
                let len = len
                    .parse()
                    .map_err(|_| invalid(format!("content-length {len:?}")))?;
                self.exact(len)
            }
            None => Ok(Vec::new()),
        }
    }
}

/// A keep-alive client of one server, reconnecting when the connection
/// was closed or broke.
pub struct Client {
    addr: SocketAddr,
    timeout: Duration,
    conn: Option<Reader<TcpStream>>,
}

impl Client {
    /// A client of `addr` (not connected yet).
    pub fn new(addr: SocketAddr, timeout: Duration) -> Self {
        Client {
            addr,
            timeout,
            conn: None,
        }
    }

    /// Sends the bytes of one whole request and reads the answer: its
    /// head and body. On an error the connection is dropped.
    pub fn exchange(&mut self, request: &[u8]) -> io::Result<(Head, Vec<u8>)> {
        let result = self.try_exchange(request);
        match &result {
            Ok((head, _)) if head.header("connection") == Some("close") => self.conn = None,
            Ok(_) => {}
            Err(_) => self.conn = None,
        }
        result
    }

    fn try_exchange(&mut self, request: &[u8]) -> io::Result<(Head, Vec<u8>)> {
        let conn = match &mut self.conn {
            Some(conn) => conn,
            None => {
                let stream = TcpStream::connect_timeout(&self.addr, self.timeout)?;
                stream.set_nodelay(true)?;
                stream.set_read_timeout(Some(self.timeout))?;
                stream.set_write_timeout(Some(self.timeout))?;
                self.conn.insert(Reader::new(stream))
            }
        };
        conn.stream().write_all(request)?;
        let head = conn
            .head()?
            .ok_or_else(|| io::Error::from(io::ErrorKind::UnexpectedEof))?;
        let body = conn.body(&head)?;
        Ok((head, body))
    }
}

/// The bytes of a request: `method path`, `headers`, `body` (with its
/// `Content-Length`).
pub fn request_bytes(
    method: &str,
    path: &str,
    host: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Vec<u8> {
    let mut out = format!("{method} {path} HTTP/1.1\r\nhost: {host}\r\n");
    for (name, value) in headers {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    out.push_str(&format!("content-length: {}\r\n\r\n", body.len()));
    let mut out = out.into_bytes();
    out.extend_from_slice(body);
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn reads_length_and_chunked_bodies_back_to_back() {
        let wire: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc\
            HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nde\r\n1;x=y\r\nf\r\n0\r\n\r\n";
        let mut reader = Reader::new(wire);
        let head = reader.head().unwrap().unwrap();
        assert_eq!(head.status(), Some(200));
        assert_eq!(reader.body(&head).unwrap(), b"abc");
        let head = reader.head().unwrap().unwrap();
        assert_eq!(head.status(), Some(201));
        assert_eq!(reader.body(&head).unwrap(), b"def");
        assert!(reader.head().unwrap().is_none());
    }
}
