//! A TCP proxy in front of a real registry that misbehaves on purpose: per connection it may
//! reset at once, answer `503`, forward, or forward and then cut the connection after some bytes
//! (a registry dying mid-upload). Connections are numbered in the order they arrive.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

#[derive(Clone, Copy, Debug)]
pub enum Fault {
    Forward,
    /// Close without answering.
    Reset,
    /// Answer `503 Service Unavailable` to the first request, then close.
    Unavailable,
    /// Forward, but cut both ways once this many bytes went to the registry.
    CutAfter(usize),
}

pub struct Proxy {
    pub port: u16,
    pub faults: Arc<AtomicUsize>,
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
        let (stop_flag, fault_count) = (Arc::clone(&stop), Arc::clone(&faults));
        std::thread::spawn(move || {
            let mut n = 0;
            while !stop_flag.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((client, _)) => {
                        client.set_nonblocking(false).unwrap();
                        let fault = plan(n);
                        n += 1;
                        if !matches!(fault, Fault::Forward) {
                            fault_count.fetch_add(1, Ordering::Relaxed);
                        }
                        std::thread::spawn(move || serve(client, upstream, fault));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Proxy { port, faults, stop }
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
        Fault::Forward => forward(client, upstream, usize::MAX),
        Fault::CutAfter(limit) => forward(client, upstream, limit),
    }
}

fn forward(client: TcpStream, upstream: u16, limit: usize) {
    let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
        let _ = client.shutdown(Shutdown::Both);
        return;
    };
    let (mut client_read, mut server_write) =
        (client.try_clone().unwrap(), server.try_clone().unwrap());
    let (mut server_read, mut client_write) = (server, client);
    let back = std::thread::spawn(move || {
        let _ = std::io::copy(&mut server_read, &mut client_write);
        let _ = client_write.shutdown(Shutdown::Both);
    });
    let mut sent = 0usize;
    let mut buf = [0u8; 16384];
    loop {
        let n = match client_read.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let allowed = n.min(limit.saturating_sub(sent));
        if server_write.write_all(&buf[..allowed]).is_err() || allowed < n {
            break;
        }
        sent += n;
    }
    let _ = server_write.shutdown(Shutdown::Both);
    let _ = client_read.shutdown(Shutdown::Both);
    let _ = back.join();
}
