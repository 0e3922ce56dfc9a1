//! A real registry for tests: Debian's `docker-registry` (CNCF distribution 2.8) on a free
//! loopback port, storage in a temporary folder, optionally with htpasswd (bcrypt) auth.
//! Stopped when dropped. On a machine without it the caller skips (in CI that is a failure).

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Registry {
    child: Option<Child>,
    pub dir: tempfile::TempDir,
    pub port: u16,
    config: PathBuf,
}

/// How the registry checks who is calling.
pub enum Auth {
    None,
    /// Basic auth against an htpasswd file with `USER`/`PASSWORD`.
    Htpasswd,
    /// Bearer tokens from an issuer whose certificate the registry trusts.
    Token {
        realm: String,
        certificate: PathBuf,
    },
}

pub const USER: &str = "releaser";
pub const PASSWORD: &str = "correct-horse-battery";

/// `true` if `docker-registry` can run here; in CI its absence fails the test.
pub fn available() -> bool {
    super::tool_available("docker-registry", "docker-registry apache2-utils")
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Registry {
    /// Starts a registry; with `auth`, only `USER`/`PASSWORD` may use it.
    pub fn start(auth: bool) -> Registry {
        Registry::start_with(if auth { Auth::Htpasswd } else { Auth::None })
    }

    pub fn start_with(auth: Auth) -> Registry {
        Registry::start_full(auth, false)
    }

    /// A registry serving HTTPS with a certificate for 127.0.0.1 from a throwaway CA, whose
    /// certificate is `ca.pem` in [`Registry::storage`].
    pub fn start_tls(auth: Auth) -> Registry {
        Registry::start_full(auth, true)
    }

    fn start_full(auth: Auth, tls: bool) -> Registry {
        let dir = tempfile::Builder::new()
            .prefix("tagpilot-registry-")
            .tempdir()
            .unwrap();
        let port = free_port();
        let mut config = format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n",
            dir.path().join("data").display()
        );
        match auth {
            Auth::None => {}
            Auth::Htpasswd => {
                let line = super::sh(Command::new("htpasswd").args(["-Bbn", USER, PASSWORD]));
                std::fs::write(dir.path().join("htpasswd"), line.trim_end().to_string() + "\n").unwrap();
                config.push_str(&format!(
                    "auth:\n  htpasswd:\n    realm: tagpilot-test\n    path: {}\n",
                    dir.path().join("htpasswd").display()
                ));
            }
            Auth::Token { realm, certificate } => config.push_str(&format!(
                "auth:\n  token:\n    realm: {realm}\n    service: {}\n    issuer: {}\n    rootcertbundle: {}\n",
                super::token::SERVICE,
                super::token::ISSUER,
                certificate.display()
            )),
        }
        if tls {
            let d = dir.path();
            let ssl = |args: &[&str]| super::sh(Command::new("openssl").current_dir(d).args(args));
            ssl(&[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "2",
                "-subj",
                "/CN=tagpilot test CA",
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
            ]);
            ssl(&[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-subj",
                "/CN=127.0.0.1",
                "-keyout",
                "server.key",
                "-out",
                "server.csr",
            ]);
            std::fs::write(d.join("san.ext"), "subjectAltName=IP:127.0.0.1\n").unwrap();
            ssl(&[
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "2",
                "-extfile",
                "san.ext",
                "-out",
                "server.pem",
            ]);
            // Under `http:`, which the config string opens first.
            let tls = format!(
                "http:\n  tls:\n    certificate: {}\n    key: {}\n",
                d.join("server.pem").display(),
                d.join("server.key").display()
            );
            config = config.replacen("http:\n", &tls, 1);
        }
        let config_path = dir.path().join("config.yml");
        std::fs::write(&config_path, config).unwrap();
        let mut registry = Registry {
            child: None,
            dir,
            port,
            config: config_path,
        };
        registry.run();
        registry
    }

    fn run(&mut self) {
        let log = std::fs::File::create(self.dir.path().join("registry.log")).unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&self.config)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("docker-registry starts");
        self.child = Some(child);
        wait_for_port(self.port);
    }

    /// Kills the registry process (its storage stays).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port and storage.
    pub fn restart(&mut self) {
        self.kill();
        self.run();
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// A Docker config folder holding this registry's login.
    pub fn docker_config(&self) -> PathBuf {
        self.docker_config_for(&[])
    }

    /// The same login, also for other `host:port`s that lead here (a proxy in front of it).
    pub fn docker_config_for(&self, also: &[String]) -> PathBuf {
        use base64::Engine;
        let auth = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"));
        let mut auths = serde_json::Map::new();
        for host in std::iter::once(self.host()).chain(also.iter().cloned()) {
            auths.insert(host, serde_json::json!({ "auth": auth }));
        }
        let folder = self.dir.path().join(format!("docker-{}", also.len()));
        std::fs::create_dir_all(&folder).unwrap();
        let config = serde_json::json!({ "auths": auths });
        std::fs::write(folder.join("config.json"), config.to_string()).unwrap();
        folder
    }

    pub fn storage(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.kill();
    }
}

pub fn wait_for_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on port {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A registry that takes Bearer tokens from a test issuer for `USER`/`PASSWORD` (the issuer's
/// keys live in the returned folder).
pub fn token_registry() -> (tempfile::TempDir, super::token::TokenIssuer, Registry) {
    let keys = tempfile::tempdir().unwrap();
    let issuer = super::token::TokenIssuer::start(keys.path(), USER, PASSWORD);
    let registry = Registry::start_with(Auth::Token {
        realm: issuer.realm(),
        certificate: issuer.certificate.clone(),
    });
    (keys, issuer, registry)
}
