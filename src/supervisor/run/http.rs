//! The smallest HTTP/1.1 server the control socket and `/metrics` need: one request per
//! connection, its head parsed by `httparse`, a bounded body, then `Connection: close`.

use std::io::{Read, Write};
use std::time::Duration;

pub struct Request {
    pub method: String,
    pub path: String,
    pub body: Vec<u8>,
}

pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
}

impl Response {
    pub fn new(status: u16, content_type: &'static str, body: impl Into<Vec<u8>>) -> Response {
        Response {
            status,
            content_type,
            body: body.into(),
        }
    }

    pub fn empty(status: u16) -> Response {
        Response::new(status, "text/plain", Vec::new())
    }
}

const LIMIT: usize = 1 << 20;

/// Reads one request; `None` when the peer sent nothing usable.
pub fn read_request(stream: &mut impl Read) -> Option<Request> {
    let mut raw = Vec::new();
    let mut block = [0u8; 8192];
    loop {
        let n = stream.read(&mut block).ok()?;
        if n == 0 {
            return None;
        }
        raw.extend_from_slice(&block[..n]);
        let mut slots = [httparse::EMPTY_HEADER; 32];
        let mut head = httparse::Request::new(&mut slots);
        match head.parse(&raw) {
            Ok(httparse::Status::Complete(at)) => {
                let length = head
                    .headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                    .and_then(|h| std::str::from_utf8(h.value).ok()?.trim().parse().ok())
                    .unwrap_or(0usize)
                    .min(LIMIT);
                let method = head.method?.to_string();
                let path = head.path?.to_string();
                let mut body = raw[at..].to_vec();
                while body.len() < length {
                    let n = stream.read(&mut block).ok()?;
                    if n == 0 {
                        break;
                    }
                    body.extend_from_slice(&block[..n]);
                }
                body.truncate(length);
                return Some(Request { method, path, body });
            }
            Ok(httparse::Status::Partial) if raw.len() < LIMIT => continue,
            _ => return None,
        }
    }
}

pub fn write_response(stream: &mut impl Write, response: &Response) {
    let reason = match response.status {
        200 => "OK",
        204 => "No Content",
        404 => "Not Found",
        405 => "Method Not Allowed",
        422 => "Unprocessable Entity",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "",
    };
    let head = format!(
        "HTTP/1.1 {} {reason}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        response.status,
        response.content_type,
        response.body.len()
    );
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(&response.body);
}

/// Serves each connection `accept` gives on its own thread with `handle`.
pub fn serve<S>(
    mut accept: impl FnMut() -> std::io::Result<S> + Send + 'static,
    handle: impl Fn(Request) -> Response + Send + Sync + 'static,
) where
    S: Read + Write + Send + 'static + TimeoutStream,
{
    let handle = std::sync::Arc::new(handle);
    std::thread::spawn(move || {
        while let Ok(mut stream) = accept() {
            let handle = handle.clone();
            std::thread::spawn(move || {
                stream.set_timeouts(Duration::from_secs(10));
                if let Some(request) = read_request(&mut stream) {
                    write_response(&mut stream, &handle(request));
                }
            });
        }
    });
}

/// A stream that can be given read and write deadlines.
pub trait TimeoutStream {
    fn set_timeouts(&self, timeout: Duration);
}

impl TimeoutStream for std::net::TcpStream {
    fn set_timeouts(&self, timeout: Duration) {
        let _ = self.set_read_timeout(Some(timeout));
        let _ = self.set_write_timeout(Some(timeout));
    }
}

impl TimeoutStream for std::os::unix::net::UnixStream {
    fn set_timeouts(&self, timeout: Duration) {
        let _ = self.set_read_timeout(Some(timeout));
        let _ = self.set_write_timeout(Some(timeout));
    }
}
