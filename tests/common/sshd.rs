//! An SSH server for tests: OpenSSH's `sshd` on a free loopback port with its own host key,
//! letting in one generated key (as a GitLab deploy key with write access). Needs root (sshd
//! runs as root here, as on a CI machine); skips on a laptop without it, fails in CI.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

pub struct Sshd {
    child: Child,
    pub port: u16,
    pub dir: tempfile::TempDir,
}

impl Sshd {
    pub fn start() -> Option<Sshd> {
        let usable = Path::new("/usr/sbin/sshd").exists()
            && Command::new("id")
                .arg("-u")
                .output()
                .is_ok_and(|o| o.stdout.starts_with(b"0\n"));
        if !usable {
            assert!(
                std::env::var("CI").is_err(),
                "sshd (as root) is required in CI (.ci/run installs openssh-server)"
            );
            eprintln!("SKIPPED: no sshd here (apt-get install openssh-server, run as root)");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for key in ["host", "client"] {
            super::sh(
                Command::new("ssh-keygen")
                    .args(["-q", "-t", "ed25519", "-N", "", "-f"])
                    .arg(d.join(key)),
            );
        }
        std::fs::copy(d.join("client.pub"), d.join("authorized_keys")).unwrap();
        std::fs::create_dir_all("/run/sshd").unwrap();
        let port = super::registry::free_port();
        std::fs::write(
            d.join("sshd_config"),
            format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {}\nAuthorizedKeysFile {}\nPidFile {}\nUsePAM no\nStrictModes no\nPermitRootLogin prohibit-password\nPasswordAuthentication no\n",
                d.join("host").display(),
                d.join("authorized_keys").display(),
                d.join("sshd.pid").display()
            ),
        )
        .unwrap();
        let child = Command::new("/usr/sbin/sshd")
            .args(["-D", "-e", "-f"])
            .arg(d.join("sshd_config"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(d.join("sshd.log")).unwrap())
            .spawn()
            .expect("sshd starts");
        super::registry::wait_for_port(port);
        Some(Sshd { child, port, dir })
    }

    /// The private key the server lets in.
    pub fn client_key(&self) -> PathBuf {
        self.dir.path().join("client")
    }

    /// An `ssh://` URL for a repository path on this machine.
    pub fn url(&self, repository: &Path) -> String {
        format!("ssh://root@127.0.0.1:{}{}", self.port, repository.display())
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
