//! HTTP/1.1 over a unix socket (the Docker engine's `/var/run/docker.sock`), which ureq does
//! not speak: the request written by hand, the reply parsed by `httparse`, and read up to a
//! bound so a hostile peer cannot make tagpilot hold without end.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use super::api::{Reply, REPLY_LIMIT};

/// HTTP/1.1 over a unix socket, one request per connection (`Connection: close`), so the
/// reply ends where the stream ends.
pub fn request(
    socket: &std::path::Path,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<(&str, &[u8])>,
    deadline: Duration,
) -> std::io::Result<Reply> {
    let started = Instant::now();
    let mut stream = UnixStream::connect(socket)?;
    stream.set_read_timeout(Some(deadline))?;
    stream.set_write_timeout(Some(deadline))?;
    let payload = body.map_or(&[][..], |(_, b)| b);
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: docker\r\nConnection: close\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str(&format!("Content-Length: {}\r\n\r\n", payload.len()));
    stream.write_all(head.as_bytes())?;
    stream.write_all(payload)?;
    // Read in blocks, so a peer that trickles its reply is cut at the deadline too.
    let mut raw = Vec::new();
    let mut block = vec![0u8; 64 << 10];
    loop {
        let n = stream.read(&mut block)?;
        if n == 0 {
            break;
        }
        raw.extend_from_slice(&block[..n]);
        if raw.len() as u64 > REPLY_LIMIT {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("the reply is larger than {} MiB", REPLY_LIMIT >> 20),
            ));
        }
        if started.elapsed() > deadline {
            return Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("no whole reply within {} s", deadline.as_secs()),
            ));
        }
    }
    parse_reply(&raw)
}

/// A whole HTTP/1.1 reply as read off the socket, parsed by `httparse` (head and chunk
/// sizes); the body is the rest, or its chunks joined.
fn parse_reply(raw: &[u8]) -> std::io::Result<Reply> {
    let bad = |why: String| std::io::Error::new(std::io::ErrorKind::InvalidData, why);
    let mut slots = [httparse::EMPTY_HEADER; 64];
    let mut head = httparse::Response::new(&mut slots);
    let body_start = match head.parse(raw) {
        Ok(httparse::Status::Complete(at)) => at,
        Ok(httparse::Status::Partial) => return Err(bad("the reply ends inside its head".into())),
        Err(e) => return Err(bad(format!("the reply is not HTTP: {e}"))),
    };
    let status = head
        .code
        .ok_or_else(|| bad("the reply has no status".into()))?;
    let headers: Vec<(String, String)> = head
        .headers
        .iter()
        .map(|h| {
            let value = String::from_utf8_lossy(h.value).trim().to_string();
            (h.name.to_string(), value)
        })
        .collect();
    let rest = &raw[body_start..];
    let chunked = headers.iter().any(|(n, v)| {
        n.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked")
    });
    let body = if chunked {
        dechunk(rest).ok_or_else(|| bad("the reply's chunked body is cut short".into()))?
    } else {
        rest.to_vec()
    };
    Ok(Reply {
        status,
        body,
        headers,
    })
}

fn dechunk(mut rest: &[u8]) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let (after_size, size) = match httparse::parse_chunk_size(rest).ok()? {
            httparse::Status::Complete(found) => found,
            httparse::Status::Partial => return None,
        };
        let size = usize::try_from(size).ok()?;
        rest = &rest[after_size..];
        if size == 0 {
            return Some(body);
        }
        body.extend_from_slice(rest.get(..size)?);
        rest = rest.get(size..)?.strip_prefix(b"\r\n")?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_with_length_and_chunks() {
        let plain = parse_reply(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}").unwrap();
        assert_eq!((plain.status, plain.body.as_slice()), (200, &b"{}"[..]));
        let chunked = parse_reply(
            b"HTTP/1.1 500 Internal Server Error\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n{\"me\r\ne;x=1\r\nssage\":\"boom\"}\r\n0\r\n\r\n",
        )
        .unwrap();
        assert_eq!(chunked.status, 500);
        assert_eq!(chunked.reason(), "boom");
        assert!(
            parse_reply(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n9\r\nabc").is_err()
        );
    }
}
