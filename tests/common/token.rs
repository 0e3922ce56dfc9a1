//! A token issuer for registry tests, playing the part GitLab's `/jwt/auth` plays: it checks
//! the Basic login, then signs a JWT (RS256, certificate in `x5c`) granting pull and push on the
//! requested repository, which the real registry verifies against its `rootcertbundle`.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use base64::Engine;

pub const SERVICE: &str = "tagpilot-test-registry";
pub const ISSUER: &str = "tagpilot-test-issuer";

pub struct TokenIssuer {
    pub port: u16,
    /// Tokens to hand out that allow only `pull` before the real ones: the registry then
    /// answers 401 in the middle of a push, as it does when a token expires.
    pub pull_only_first: Arc<AtomicUsize>,
    pub issued: Arc<AtomicUsize>,
    pub refused: Arc<AtomicUsize>,
    pub certificate: PathBuf,
}

fn b64url(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

impl TokenIssuer {
    /// Starts the issuer; only `user`/`password` get tokens.
    pub fn start(dir: &Path, user: &'static str, password: &'static str) -> TokenIssuer {
        let key = dir.join("issuer.key");
        let certificate = dir.join("issuer.crt");
        super::sh(
            Command::new("openssl")
                .args([
                    "req",
                    "-x509",
                    "-newkey",
                    "rsa:2048",
                    "-nodes",
                    "-days",
                    "2",
                    "-subj",
                    "/CN=tagpilot-test-issuer",
                    "-keyout",
                ])
                .arg(&key)
                .arg("-out")
                .arg(&certificate),
        );
        let der = super::sh_bytes(
            Command::new("openssl")
                .args(["x509", "-outform", "DER", "-in"])
                .arg(&certificate),
        );
        let x5c = base64::engine::general_purpose::STANDARD.encode(der);
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let issued = Arc::new(AtomicUsize::new(0));
        let refused = Arc::new(AtomicUsize::new(0));
        let pull_only_first = Arc::new(AtomicUsize::new(0));
        let (issued_count, refused_count) = (Arc::clone(&issued), Arc::clone(&refused));
        let weak_tokens = Arc::clone(&pull_only_first);
        let expected = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
        );
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut request_line = String::new();
                let _ = reader.read_line(&mut request_line);
                let mut authorization = String::new();
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    if let Some((name, value)) = line.split_once(':') {
                        if name.eq_ignore_ascii_case("authorization") {
                            authorization = value.trim().to_string();
                        }
                    }
                }
                if authorization != expected {
                    refused_count.fetch_add(1, Ordering::Relaxed);
                    let _ = stream.write_all(b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
                    continue;
                }
                let repository = query_scope(&request_line).unwrap_or_default();
                let weak = weak_tokens
                    .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
                    .is_ok();
                let actions: &[&str] = if weak { &["pull"] } else { &["pull", "push"] };
                let token = sign(&key, &x5c, user, &repository, actions);
                issued_count.fetch_add(1, Ordering::Relaxed);
                let body = format!(r#"{{"token":"{token}","expires_in":300}}"#);
                let _ = stream.write_all(
                    format!("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len()).as_bytes(),
                );
            }
        });
        TokenIssuer {
            port,
            pull_only_first,
            issued,
            refused,
            certificate,
        }
    }

    pub fn realm(&self) -> String {
        format!("http://127.0.0.1:{}/token", self.port)
    }
}

/// The repository in `scope=repository:NAME:pull,push` of the request line.
fn query_scope(request_line: &str) -> Option<String> {
    let target = request_line.split_whitespace().nth(1)?;
    let query = target.split_once('?')?.1;
    query.split('&').find_map(|pair| {
        let value = pair.strip_prefix("scope=")?;
        let decoded = percent_decode(value);
        decoded
            .strip_prefix("repository:")?
            .rsplit_once(':')
            .map(|(name, _)| name.to_string())
    })
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| u8::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (b'+', _) => {
                out.push(b' ');
                i += 1;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn sign(key: &Path, x5c: &str, user: &str, repository: &str, actions: &[&str]) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let header = serde_json::json!({ "alg": "RS256", "typ": "JWT", "x5c": [x5c] });
    let claims = serde_json::json!({
        "iss": ISSUER, "sub": user, "aud": SERVICE,
        "iat": now, "nbf": now - 10, "exp": now + 300, "jti": format!("{now}-{repository}"),
        "access": [{ "type": "repository", "name": repository, "actions": actions }],
    });
    let signing_input = format!(
        "{}.{}",
        b64url(header.to_string().as_bytes()),
        b64url(claims.to_string().as_bytes())
    );
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("input");
    std::fs::write(&input, &signing_input).unwrap();
    let signature = super::sh_bytes(
        Command::new("openssl")
            .args(["dgst", "-sha256", "-sign"])
            .arg(key)
            .arg(&input),
    );
    format!("{signing_input}.{}", b64url(&signature))
}
