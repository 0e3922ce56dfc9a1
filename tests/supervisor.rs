//! tagpilot-supervisor as real processes: jobs, events, restarts, timeouts and signals on this
//! machine, Consul through the stateful fake (no Consul can be installed here), the control
//! socket through the supervisor's own client flags, telemetry over HTTP.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::fakes::consul::Consul;

const SUPERVISOR: &str = env!("CARGO_BIN_EXE_tagpilot-supervisor");

/// A supervisor running a config in a folder of its own, its log in `log.txt`.
struct Running {
    child: Child,
    dir: tempfile::TempDir,
}

impl Running {
    /// `config` may use `DIR` for the folder, and `SOCKET` for the control socket.
    fn start(config: &str) -> Running {
        let dir = tempfile::tempdir().unwrap();
        let text = config
            .replace("SOCKET", &dir.path().join("cp.sock").display().to_string())
            .replace("DIR", &dir.path().display().to_string());
        std::fs::write(dir.path().join("cp.json5"), text).unwrap();
        let log = std::fs::File::create(dir.path().join("log.txt")).unwrap();
        let child = Command::new(SUPERVISOR)
            .arg("-config")
            .arg(dir.path().join("cp.json5"))
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap();
        Running { child, dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.path("log.txt")).unwrap_or_default()
    }

    fn lines_of(&self, name: &str) -> usize {
        std::fs::read_to_string(self.path(name))
            .map(|t| t.lines().count())
            .unwrap_or(0)
    }

    /// The supervisor's client flags, against this one's config (and so its socket).
    fn client(&self, args: &[&str]) -> std::process::Output {
        Command::new(SUPERVISOR)
            .arg("-config")
            .arg(self.path("cp.json5"))
            .args(args)
            .output()
            .unwrap()
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for the exit; its code, and how long it took.
    fn wait(&mut self, limit: Duration) -> (i32, Duration) {
        let started = Instant::now();
        while started.elapsed() < limit {
            if let Some(status) = self.child.try_wait().unwrap() {
                return (status.code().unwrap_or(-1), started.elapsed());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        panic!(
            "the supervisor did not exit within {limit:?}:\n{}",
            self.log()
        );
    }

    fn wait_for(&self, what: &str, limit: Duration, test: impl Fn(&Running) -> bool) {
        let end = Instant::now() + limit;
        while Instant::now() < end {
            if test(self) {
                return;
            }
            std::thread::sleep(Duration::from_millis(30));
        }
        panic!("no {what} within {limit:?}:\n{}", self.log());
    }

    /// The event lines of the log, as `{Code source}`.
    fn events(&self) -> Vec<String> {
        self.log()
            .lines()
            .filter_map(|l| l.split_once(" event: ").map(|(_, e)| e.to_string()))
            .collect()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn hostname() -> String {
    let out = Command::new("hostname").output().unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

const SECONDS: Duration = Duration::from_secs(1);

#[test]
fn restarts_then_stop_events_then_exit_when_every_job_is_done() {
    let mut running = Running::start(
        r#"{ consul: "127.0.0.1:1", logging: { level: "DEBUG" }, control: { socket: "SOCKET" },
          jobs: [
            { name: "a", exec: ["sh", "-c", "echo run >> DIR/a; exit 3"], restarts: 2 },
            { name: "b", exec: ["touch", "DIR/b-ran"], when: { source: "a", once: "stopped" } },
          ] }"#,
    );
    let (code, _) = running.wait(10 * SECONDS);
    // ContainerPilot exits 0 when every job is done, whatever their status.
    assert_eq!(code, 0, "{}", running.log());
    assert_eq!(running.lines_of("a"), 3, "restarts: 2 is three runs");
    assert!(running.path("b-ran").exists(), "{}", running.log());
    let events = running.events();
    let of_a: Vec<&str> = events
        .iter()
        .filter(|e| e.ends_with(" a}"))
        .map(String::as_str)
        .collect();
    assert_eq!(
        of_a,
        [
            "{ExitFailed a}",
            "{ExitFailed a}",
            "{ExitFailed a}",
            "{Stopping a}",
            "{Stopped a}"
        ],
        "{events:?}"
    );
    assert_eq!(events[0], "{Startup global}");
    assert!(running.log().contains("a exited with error: exit status 3"));
}

#[test]
fn the_main_job_sets_the_exit_status_with_the_extension_only() {
    let config = |extension: &str| {
        format!(
            r#"{{ {extension} control: {{ socket: "SOCKET" }}, stopTimeout: 3,
              jobs: [
                {{ name: "app", exec: ["sh", "-c", "sleep 0.3; exit 7"] }},
                {{ name: "sidecar", exec: ["sleep", "30"] }},
              ] }}"#
        )
    };
    let mut with = Running::start(&config(
        r#"tagpilot: { consulOptional: true, mainJob: "app" },"#,
    ));
    let (code, took) = with.wait(10 * SECONDS);
    assert_eq!(code, 7, "{}", with.log());
    assert!(
        took < 3 * SECONDS,
        "the sidecar is stopped, not waited for: {took:?}"
    );

    // Without it, as ContainerPilot: the sidecar keeps the supervisor up, then SIGTERM is 0.
    let mut without = Running::start(&config(r#"consul: "127.0.0.1:1","#));
    std::thread::sleep(Duration::from_millis(800));
    assert!(
        without.child.try_wait().unwrap().is_none(),
        "{}",
        without.log()
    );
    without.signal("TERM");
    let (code, took) = without.wait(10 * SECONDS);
    assert_eq!(code, 0, "{}", without.log());
    assert!(took < 3 * SECONDS, "sleep ends at SIGTERM: {took:?}");
}

#[test]
fn a_timeout_kills_the_whole_process_group() {
    let mut running = Running::start(
        r#"{ consul: "127.0.0.1:1", control: { socket: "SOCKET" },
          jobs: [ { name: "slow", timeout: "500ms",
                    exec: ["sh", "-c", "sleep 30 & echo $! > DIR/child; wait"] } ] }"#,
    );
    let (code, took) = running.wait(10 * SECONDS);
    assert_eq!(code, 0);
    assert!(took < 5 * SECONDS, "{took:?}");
    let child = std::fs::read_to_string(running.path("child")).unwrap();
    let alive = Path::new(&format!("/proc/{}", child.trim())).exists()
        && !std::fs::read_to_string(format!("/proc/{}/stat", child.trim()))
            .unwrap_or_default()
            .contains(") Z ");
    assert!(
        !alive,
        "the job's background child {} survived",
        child.trim()
    );
    assert!(running
        .log()
        .contains("slow exited with error: signal: killed"));
}

#[test]
fn interval_jobs_run_again_and_sigterm_stops_within_the_stop_timeout() {
    let mut running = Running::start(
        r#"{ consul: "127.0.0.1:1", stopTimeout: 2, control: { socket: "SOCKET" },
          jobs: [
            { name: "tick", exec: ["sh", "-c", "echo tick >> DIR/ticks"], when: { interval: "200ms" } },
            { name: "stubborn", exec: ["sh", "-c", "trap '' TERM; sleep 30"] },
          ] }"#,
    );
    running.wait_for("four ticks", 5 * SECONDS, |r| r.lines_of("ticks") >= 4);
    running.signal("TERM");
    let (code, took) = running.wait(10 * SECONDS);
    assert_eq!(code, 0, "{}", running.log());
    // The stubborn job ignores SIGTERM: it is killed at the stop timeout, not before.
    assert!(took >= 2 * SECONDS && took < 4 * SECONDS, "{took:?}");
}

#[test]
fn services_register_with_a_ttl_check_heartbeat_and_deregister() {
    let consul = Consul::start();
    let mut running = Running::start(&format!(
        r#"{{ consul: "{}", control: {{ socket: "SOCKET" }},
          jobs: [ {{ name: "web", exec: ["sleep", "30"], port: 8080, tags: ["v1"],
                     interfaces: ["static:192.0.2.10"],
                     health: {{ exec: "true", interval: 1, ttl: 3 }} }} ] }}"#,
        consul.address()
    ));
    let id = format!("web-{}", hostname());
    consul.wait_for(10 * SECONDS, "two heartbeats", |c| {
        c.calls()
            .iter()
            .filter(|call| **call == format!("PUT /v1/agent/check/update/service:{id}"))
            .count()
            >= 2
    });
    let registration = &consul.registrations()[0];
    assert_eq!(registration["ID"], id.as_str());
    assert_eq!(registration["Name"], "web");
    assert_eq!(registration["Port"], 8080);
    assert_eq!(registration["Address"], "192.0.2.10");
    assert_eq!(registration["Tags"], serde_json::json!(["v1"]));
    assert_eq!(registration["Check"]["TTL"], "3s");
    assert_eq!(consul.services()[&id].status, "passing");
    running.signal("TERM");
    assert_eq!(running.wait(10 * SECONDS).0, 0);
    assert!(consul.services().is_empty(), "{:?}", consul.calls());
    assert!(consul
        .calls()
        .contains(&format!("PUT /v1/agent/service/deregister/{id}")));
}

#[test]
fn a_failing_check_lets_the_ttl_lapse_to_critical() {
    let consul = Consul::start();
    let running = Running::start(&format!(
        r#"{{ consul: "{}", logging: {{ level: "DEBUG" }}, control: {{ socket: "SOCKET" }},
          jobs: [ {{ name: "web", exec: ["sleep", "30"], port: 8080, interfaces: "static:192.0.2.10",
                     health: {{ exec: ["test", "-f", "DIR/ok"], interval: 1, ttl: 2 }} }} ] }}"#,
        consul.address()
    ));
    std::fs::write(running.path("ok"), "").unwrap();
    let id = format!("web-{}", hostname());
    consul.wait_for(10 * SECONDS, "a passing service", |c| {
        c.services().get(&id).is_some_and(|s| s.status == "passing")
    });
    std::fs::remove_file(running.path("ok")).unwrap();
    consul.wait_for(10 * SECONDS, "the TTL lapsed", |c| {
        c.services()
            .get(&id)
            .is_some_and(|s| s.status == "critical")
    });
    running.wait_for("unhealthy events", 5 * SECONDS, |r| {
        r.events().iter().any(|e| e == "{StatusUnhealthy web}")
    });
}

#[test]
fn a_watch_fires_changed_when_another_instance_registers() {
    let consul = Consul::start();
    let running = Running::start(&format!(
        r#"{{ consul: "{}", control: {{ socket: "SOCKET" }},
          watches: [ {{ name: "db", interval: 1 }} ],
          jobs: [ {{ name: "react", exec: ["sh", "-c", "echo changed >> DIR/changes"],
                     when: {{ source: "watch.db", each: "changed" }} }} ] }}"#,
        consul.address()
    ));
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(running.lines_of("changes"), 0, "an empty list is no change");
    consul.add_instance("db-1", "db", "10.0.0.1", 5432);
    running.wait_for("the first change", 5 * SECONDS, |r| {
        r.lines_of("changes") == 1
    });
    consul.add_instance("db-2", "db", "10.0.0.2", 5432);
    running.wait_for("the second change", 5 * SECONDS, |r| {
        r.lines_of("changes") == 2
    });
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(running.lines_of("changes"), 2, "no change, no event");
}

#[test]
fn maintenance_deregisters_and_only_the_extension_registers_again() {
    for reregister in [false, true] {
        let consul = Consul::start();
        let extension = if reregister {
            "tagpilot: { reregisterAfterMaintenance: true },"
        } else {
            ""
        };
        let running = Running::start(&format!(
            r#"{{ consul: "{}", {extension} control: {{ socket: "SOCKET" }},
              jobs: [ {{ name: "web", exec: ["sleep", "30"], port: 8080, interfaces: "static:192.0.2.10",
                         health: {{ exec: "true", interval: 1, ttl: 3 }} }} ] }}"#,
            consul.address()
        ));
        consul.wait_for(10 * SECONDS, "the service", |c| !c.services().is_empty());
        let enable = running.client(&["-maintenance", "enable"]);
        assert!(enable.status.success(), "{enable:?}");
        consul.wait_for(5 * SECONDS, "deregistration", |c| c.services().is_empty());
        let health = running.client(&["-health"]);
        assert_eq!(health.status.code(), Some(1), "in maintenance: not healthy");
        assert!(running
            .client(&["-maintenance", "disable"])
            .status
            .success());
        std::thread::sleep(Duration::from_millis(3000));
        assert_eq!(
            !consul.services().is_empty(),
            reregister,
            "registered again after maintenance: {:?}",
            consul.calls()
        );
    }
}

#[test]
fn control_socket_environment_metrics_ping_health_and_telemetry() {
    let consul = Consul::start();
    let port = free_port();
    let running = Running::start(&format!(
        r#"{{ consul: "{}", control: {{ socket: "SOCKET" }},
          telemetry: {{ port: {port}, interfaces: ["static:127.0.0.1"],
            metrics: [ {{ namespace: "tp", name: "requests", help: "requests served", type: "counter" }},
                       {{ namespace: "tp", name: "queue", help: "queue length", type: "gauge" }} ] }},
          jobs: [
            {{ name: "web", exec: ["sleep", "30"], port: 8080, interfaces: "static:192.0.2.10",
               health: {{ exec: ["test", "-f", "DIR/ok"], interval: 1, ttl: 3 }} }},
            {{ name: "on-hup", exec: ["sh", "-c", "echo $GREETING >> DIR/hup"], when: {{ source: "SIGHUP" }} }},
          ] }}"#,
        consul.address()
    ));
    running.wait_for("the socket", 5 * SECONDS, |r| r.path("cp.sock").exists());
    assert!(running.client(&["-ping"]).status.success());
    let health = running.client(&["-health"]);
    assert_eq!(health.status.code(), Some(1), "{health:?}");
    assert!(
        String::from_utf8_lossy(&health.stderr).contains("web: "),
        "{health:?}"
    );
    std::fs::write(running.path("ok"), "").unwrap();
    running.wait_for("healthy", 5 * SECONDS, |r| {
        r.client(&["-health"]).status.success()
    });

    for args in [
        &["-putmetric", "tp_requests=2"][..],
        &["-putmetric", "tp_requests=3", "-putmetric", "tp_queue=7"],
        &["-putenv", "GREETING=hello"],
    ] {
        let out = running.client(args);
        assert!(out.status.success(), "{args:?}: {out:?}");
    }
    let unknown = running.client(&["-putmetric", "nope=1"]);
    assert!(!unknown.status.success());
    running.signal("HUP");
    running.wait_for("the SIGHUP job", 5 * SECONDS, |r| r.lines_of("hup") == 1);
    assert_eq!(
        std::fs::read_to_string(running.path("hup")).unwrap(),
        "hello\n",
        "-putenv reaches processes started later"
    );

    let get = |path: &str| {
        let agent = ureq::Agent::new_with_defaults();
        agent
            .get(&format!("http://127.0.0.1:{port}{path}"))
            .call()
            .unwrap()
            .body_mut()
            .read_to_string()
            .unwrap()
    };
    let metrics = get("/metrics");
    assert!(
        metrics.contains("# TYPE tp_requests counter\ntp_requests 5\n"),
        "{metrics}"
    );
    assert!(metrics.contains("tp_queue 7\n"), "{metrics}");
    let status: serde_json::Value = serde_json::from_str(&get("/status")).unwrap();
    assert_eq!(status["Jobs"][0]["Name"], "web");
    assert_eq!(status["Jobs"][0]["Status"], "healthy");
    assert_eq!(status["Services"][0]["Address"], "192.0.2.10");
    // Telemetry is a service of its own in Consul, `containerpilot`, with a 15 s TTL.
    consul.wait_for(5 * SECONDS, "the telemetry service", |c| {
        c.registrations()
            .iter()
            .any(|r| r["Name"] == "containerpilot" && r["Check"]["TTL"] == "15s")
    });
}

#[test]
fn template_and_check_flags_match_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cp.json5");
    std::fs::write(
        &file,
        r#"{ consul: "{{ .CONSUL | default "localhost" }}:8500", jobs: [ { name: "{{ .NAME }}", exec: "x" } ] }"#,
    )
    .unwrap();
    let out = Command::new(SUPERVISOR)
        .args(["-template", "-config"])
        .arg(&file)
        .env("NAME", "app")
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        r#"{ consul: "localhost:8500", jobs: [ { name: "app", exec: "x" } ] }"#
    );
    let check = |name: &str| {
        let out = Command::new(SUPERVISOR)
            .args(["-check", "-config"])
            .arg(&file)
            .env("NAME", name)
            .output()
            .unwrap();
        (out.status.code(), String::from_utf8(out.stdout).unwrap())
    };
    assert_eq!(check("app"), (Some(0), "ACCEPT\n".into()));
    let (code, said) = check("");
    assert_eq!(code, Some(1));
    assert!(
        said.starts_with("REJECT\t") && said.contains("'name' must not be blank"),
        "{said}"
    );
}

#[test]
fn restart_on_unhealthy_and_a_job_stop_timeout_are_opt_in() {
    let config = |extension: &str| {
        format!(
            r#"{{ consul: "127.0.0.1:1", {extension} control: {{ socket: "SOCKET" }},
              jobs: [ {{ name: "web", restarts: "unlimited", stopTimeout: "300ms",
                         exec: ["sh", "-c", "echo start >> DIR/starts; trap '' TERM; sleep 30 & wait; sleep 30"],
                         health: {{ exec: ["test", "-f", "DIR/ok"], interval: 1, ttl: 5 }} }} ] }}"#
        )
    };
    // ContainerPilot's behaviour: an unhealthy job is left running.
    let plain = Running::start(&config(""));
    std::thread::sleep(Duration::from_millis(3500));
    assert_eq!(plain.lines_of("starts"), 1, "{}", plain.log());

    // With the extensions: after two failed checks in a row the job gets SIGTERM, which it
    // ignores, so its own stopTimeout (300 ms) kills it, and its restarts start it again.
    let opted = Running::start(&config(
        r#"tagpilot: { restartOnUnhealthy: ["web"], unhealthyAfter: 2, jobStopTimeout: true },"#,
    ));
    opted.wait_for("a restart", 10 * SECONDS, |r| r.lines_of("starts") >= 2);
    assert!(
        opted
            .log()
            .contains("failed 2 health checks in a row: restarting it"),
        "{}",
        opted.log()
    );
}

#[test]
fn reload_reads_the_config_again() {
    let running = Running::start(
        r#"{ consul: "127.0.0.1:1", control: { socket: "SOCKET" },
          jobs: [ { name: "app", exec: ["sh", "-c", "echo first >> DIR/runs; exec sleep 30"] } ] }"#,
    );
    running.wait_for("the first run", 5 * SECONDS, |r| r.lines_of("runs") == 1);
    let text = std::fs::read_to_string(running.path("cp.json5")).unwrap();
    std::fs::write(
        running.path("cp.json5"),
        text.replace("echo first", "echo second"),
    )
    .unwrap();
    let out = running.client(&["-reload"]);
    assert!(out.status.success(), "{out:?}");
    running.wait_for("the reloaded job", 10 * SECONDS, |r| {
        r.lines_of("runs") == 2
    });
    assert_eq!(
        std::fs::read_to_string(running.path("runs")).unwrap(),
        "first\nsecond\n"
    );
}

#[test]
fn processes_see_containerpilot_variables_and_logs_take_each_format() {
    for (format, expected) in [
        ("default", " show "),
        ("text", "job=show"),
        ("json", "\"job\":\"show\""),
    ] {
        let mut running = Running::start(&format!(
            r#"{{ consul: "127.0.0.1:1", logging: {{ format: "{format}" }}, control: {{ socket: "SOCKET" }},
              jobs: [
                {{ name: "web-app", exec: ["sleep", "2"], port: 80, interfaces: "static:192.0.2.7",
                   health: {{ exec: "true", interval: 1, ttl: 3 }} }},
                {{ name: "show", exec: ["sh", "-c", "sleep 0.3; env | grep ^CONTAINERPILOT_ | sort"] }},
              ] }}"#
        ));
        let pid = running.child.id();
        running.wait(10 * SECONDS);
        let log = running.log();
        assert!(log.contains(&format!("CONTAINERPILOT_PID={pid}")), "{log}");
        assert!(log.contains("CONTAINERPILOT_WEB_APP_IP=192.0.2.7"), "{log}");
        assert!(log.contains("CONTAINERPILOT_WEB_APP_PID="), "{log}");
        let line = log
            .lines()
            .find(|l| l.contains("CONTAINERPILOT_PID="))
            .unwrap();
        assert!(line.contains(expected), "{format}: {line}");
        if format == "json" {
            let parsed: serde_json::Value = serde_json::from_str(line).unwrap();
            assert_eq!(parsed["level"], "info");
        }
    }
}
