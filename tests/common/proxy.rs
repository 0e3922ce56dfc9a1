//! A TCP proxy in front of a real registry that misbehaves on purpose: per connection it may
//! reset at once, answer `503`, forward, or forward and then cut the connection after some bytes
//! (a registry dying mid-upload). Connections are numbered in the order they arrive.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

#[derive(Clone, Debug)]
pub enum Fault {
    Forward,
    /// Close without answering.
    Reset,
    /// Answer `503 Service Unavailable` to the first request, then close.
    Unavailable,
    /// Forward, but cut both ways once this many bytes went to the registry.
    CutAfter(usize),
    /// Forward while a byte budget shared by all connections lasts, then cut: a registry
    /// that dies after taking that much, whichever connections it came on.
    Budget(Arc<AtomicUsize>),
    /// Forward while a shared byte budget lasts, then swallow what the client sends and never
    /// answer: a registry that hangs mid-upload, so the client can be killed right there.
    Stall(Arc<AtomicUsize>),
    /// Like a proxy with a body-size limit: a PUT with a larger body gets `413`. Every request
    /// is sent with `Connection: close`, so each arrives on a connection of its own.
    LimitBody(usize),
    /// Forward, pausing this long after every 16 KiB to the registry: a slow link.
    Slow(Duration),
}

pub struct Proxy {
    pub port: u16,
    pub faults: Arc<AtomicUsize>,
    /// The most connections that were open at once.
    pub most_open: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl Proxy {
    /// Proxies to `127.0.0.1:upstream`, choosing each connection's fate with `plan(n)`.
    pub fn start(upstream: u16, plan: impl Fn(usize) -> Fault + Send + 'static) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        listener.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let faults = Arc::new(AtomicUsize::new(0));
        let most_open = Arc::new(AtomicUsize::new(0));
        let open = Arc::new(AtomicUsize::new(0));
        let (stop_flag, fault_count) = (Arc::clone(&stop), Arc::clone(&faults));
        let most = Arc::clone(&most_open);
        std::thread::spawn(move || {
            let mut n = 0;
            while !stop_flag.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((client, _)) => {
                        client.set_nonblocking(false).unwrap();
                        let fault = plan(n);
                        n += 1;
                        if !matches!(fault, Fault::Forward | Fault::Slow(_)) {
                            fault_count.fetch_add(1, Ordering::Relaxed);
                        }
                        let now = open.fetch_add(1, Ordering::SeqCst) + 1;
                        most.fetch_max(now, Ordering::SeqCst);
                        let open = Arc::clone(&open);
                        std::thread::spawn(move || {
                            serve(client, upstream, fault);
                            open.fetch_sub(1, Ordering::SeqCst);
                        });
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Proxy {
            port,
            faults,
            most_open,
            stop,
        }
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn serve(mut client: TcpStream, upstream: u16, fault: Fault) {
    match fault {
        Fault::Reset => {
            let _ = client.shutdown(Shutdown::Both);
        }
        Fault::Unavailable => {
            let mut head = [0u8; 4096];
            let _ = client.read(&mut head);
            let _ = client.write_all(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            let _ = client.shutdown(Shutdown::Both);
        }
        Fault::Forward => forward(client, upstream, &AtomicUsize::new(usize::MAX), Vec::new()),
        Fault::Slow(pause) => forward_then(
            client,
            upstream,
            &AtomicUsize::new(usize::MAX),
            Vec::new(),
            Empty::Pause(pause),
        ),
        Fault::CutAfter(limit) => forward(client, upstream, &AtomicUsize::new(limit), Vec::new()),
        Fault::Budget(budget) => forward(client, upstream, &budget, Vec::new()),
        Fault::Stall(budget) => forward_then(client, upstream, &budget, Vec::new(), Empty::Stall),
        Fault::LimitBody(max) => limit_body(client, upstream, max),
    }
}

fn limit_body(mut client: TcpStream, upstream: u16, max: usize) {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match client.read(&mut byte) {
            // A TLS handshake (0x16) is not HTTP: hang up, as a plain HTTP server would.
            Ok(1) if head.is_empty() && byte[0] == 0x16 => return,
            Ok(1) => head.push(byte[0]),
            _ => return,
        }
    }
    let text = String::from_utf8_lossy(&head).to_string();
    let length: usize = text
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().parse().unwrap_or(0))
        })
        .unwrap_or(0);
    if text.starts_with("PUT ") && length > max {
        // Like nginx's lingering close: take the body, then answer, so the client reads the 413.
        let _ = std::io::copy(&mut (&client).take(length as u64), &mut std::io::sink());
        let _ = client.write_all(b"HTTP/1.1 413 Request Entity Too Large\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        let _ = client.shutdown(Shutdown::Both);
        return;
    }
    let head = text
        .replacen("\r\n", "\r\nConnection: close\r\n", 1)
        .into_bytes();
    forward(client, upstream, &AtomicUsize::new(usize::MAX), head)
}

/// What happens when the byte budget runs out (or, for `Pause`, after every read).
#[derive(Clone, Copy, PartialEq)]
enum Empty {
    Cut,
    Stall,
    Pause(Duration),
}

/// Forwards both ways, `first` (already read from the client) ahead of the rest, while the
/// byte `budget` for the way to the registry lasts (shared by connections, or this one's own);
/// then cuts the connection.
fn forward(client: TcpStream, upstream: u16, budget: &AtomicUsize, first: Vec<u8>) {
    forward_then(client, upstream, budget, first, Empty::Cut)
}

fn forward_then(
    client: TcpStream,
    upstream: u16,
    budget: &AtomicUsize,
    first: Vec<u8>,
    empty: Empty,
) {
    let Ok(mut server) = TcpStream::connect(("127.0.0.1", upstream)) else {
        let _ = client.shutdown(Shutdown::Both);
        return;
    };
    if server.write_all(&first).is_err() {
        return;
    }
    let (mut client_read, mut server_write) =
        (client.try_clone().unwrap(), server.try_clone().unwrap());
    let (mut server_read, mut client_write) = (server, client);
    let back = std::thread::spawn(move || {
        let _ = std::io::copy(&mut server_read, &mut client_write);
        let _ = client_write.shutdown(Shutdown::Both);
    });
    let mut buf = [0u8; 16384];
    loop {
        let n = match client_read.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let granted = budget
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| {
                Some(left.saturating_sub(n))
            })
            .unwrap_or(0)
            .min(n);
        if server_write.write_all(&buf[..granted]).is_err() {
            break;
        }
        if let Empty::Pause(pause) = empty {
            std::thread::sleep(pause);
        }
        if granted < n {
            if empty == Empty::Stall {
                // Take everything, answer nothing, until the client goes away.
                let _ = std::io::copy(&mut client_read, &mut std::io::sink());
            }
            break;
        }
    }
    let _ = server_write.shutdown(Shutdown::Both);
    let _ = client_read.shutdown(Shutdown::Both);
    let _ = back.join();
}
