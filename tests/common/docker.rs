//! A real Docker engine for tests: Debian's `dockerd` on a private socket, data root and exec
//! root, without touching the host's network (`--iptables=false --bridge=none`). Containers run
//! with `--network none`. Stopped when dropped. Skips on a laptop without it; fails in CI.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Docker {
    child: Child,
    pub dir: PathBuf,
}

impl Docker {
    /// Starts an engine, or `None` (saying why) where none can run outside CI.
    pub fn start() -> Option<Docker> {
        let installed = Command::new("dockerd")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
        let root = is_root();
        if !installed || !root {
            assert!(
                std::env::var("CI").is_err(),
                "dockerd (as root) is required in CI (.ci/run installs docker.io)"
            );
            eprintln!("SKIPPED: no Docker engine here (apt-get install docker.io, run as root)");
            return None;
        }
        // Short paths: the socket path must fit in sun_path.
        let dir = PathBuf::from(format!(
            "/tmp/tpd-{}-{}",
            std::process::id(),
            super::registry::free_port()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let log = std::fs::File::create(dir.join("dockerd.log")).unwrap();
        let child = Command::new("dockerd")
            .args(["--iptables=false", "--ip6tables=false", "--bridge=none"])
            .arg("--host")
            .arg(format!("unix://{}", dir.join("docker.sock").display()))
            .arg("--data-root")
            .arg(dir.join("data"))
            .arg("--exec-root")
            .arg(dir.join("exec"))
            .arg("--pidfile")
            .arg(dir.join("docker.pid"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("dockerd starts");
        let docker = Docker { child, dir };
        let deadline = Instant::now() + Duration::from_secs(60);
        while !docker
            .command()
            .arg("info")
            .output()
            .is_ok_and(|o| o.status.success())
        {
            assert!(
                Instant::now() < deadline,
                "dockerd did not come up; see {}",
                docker.dir.join("dockerd.log").display()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        Some(docker)
    }

    /// Makes this engine a single-node swarm manager bound to loopback.
    pub fn swarm_init(&self) {
        let listen = format!("127.0.0.1:{}", super::registry::free_port());
        super::sh(self.command().args([
            "swarm",
            "init",
            "--advertise-addr",
            "127.0.0.1",
            "--listen-addr",
            &listen,
        ]));
    }

    /// The engine's endpoint, as `DOCKER_HOST` names it.
    pub fn host(&self) -> String {
        format!("unix://{}", self.dir.join("docker.sock").display())
    }

    /// The image a service's spec names.
    pub fn service_image(&self, service: &str) -> String {
        super::sh(self.command().args([
            "service",
            "inspect",
            service,
            "--format",
            "{{.Spec.TaskTemplate.ContainerSpec.Image}}",
        ]))
        .trim()
        .to_string()
    }

    /// Images of a service's tasks that run now.
    pub fn running_images(&self, service: &str) -> Vec<String> {
        let out = super::sh(self.command().args([
            "service",
            "ps",
            service,
            "--no-trunc",
            "--filter",
            "desired-state=running",
            "--format",
            "{{.Image}} {{.CurrentState}}",
        ]));
        out.lines()
            .filter(|l| l.contains(" Running"))
            .map(|l| l.split(' ').next().unwrap().to_string())
            .collect()
    }

    /// Creates a two-task service on the host network that updates one task at a time and
    /// notices failing tasks within seconds, then waits until both tasks run.
    pub fn create_service(&self, service: &str, image: &str) {
        super::sh(self.command().args([
            "service",
            "create",
            "--detach",
            "--quiet",
            "--name",
            service,
            "--network",
            "host",
            "--replicas",
            "2",
            "--update-monitor",
            "2s",
            "--update-delay",
            "0s",
            "--rollback-monitor",
            "1s",
            "--restart-delay",
            "1s",
            image,
        ]));
        super::wait_for(
            || self.running_images(service).len() == 2,
            "the service's tasks to run",
        );
    }

    /// A `docker` client command for this engine.
    pub fn command(&self) -> Command {
        let mut cmd = Command::new("docker");
        cmd.env("DOCKER_HOST", self.host());
        cmd.env("DOCKER_CONFIG", self.dir.join("client"));
        cmd
    }
}

impl Drop for Docker {
    fn drop(&mut self) {
        // SIGTERM lets dockerd unmount its layers; then the folder can go.
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"))
}
