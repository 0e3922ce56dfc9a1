//! Rollouts on Marathon, Kubernetes and Nomad, against the stateful fakes in
//! `tests/common/fakes` (no real server of these can run here): slow deployments, a lock, a
//! stale status right after the write, deadlines, engine-side rollbacks, superseded
//! deployments, several services in order, and bad input. The deployment repository is a real
//! bare repository; `tagpilot deploy` commits to it, rolls out, and records the image that runs
//! again after a rollback.

mod common;

use std::time::{Duration, Instant};

use common::fakes::kubernetes::FakeKubernetes;
use common::fakes::marathon::FakeMarathon;
use common::fakes::nomad::FakeNomad;
use common::fakes::{image, ms};
use common::rollout::{json, Setup};
use common::*;
use serde_json::Value;

#[test]
fn kubernetes_waits_out_the_stale_status_and_retries_a_conflict() {
    let fake = FakeKubernetes::start(&[("api", &image("0.9.0"))]);
    fake.state.lock().unwrap().conflicts = 1;
    let setup = Setup::new("kind: kubernetes\ncontext: team/deploy:prod-agent\nservices: [api]\n");
    let kubeconfig = fake.kubeconfig(setup.work.path());
    let done = run(setup.deploy().env("KUBECONFIG", &kubeconfig)).ok();
    let result = json(&done);
    assert_eq!(result["rollout"]["outcome"], "succeeded", "{}", done.stderr);
    assert_eq!(fake.image("api"), image("1.0.0"));
    let state = fake.state.lock().unwrap();
    assert_eq!(
        state.puts, 2,
        "a 409 is answered by reading again, not by overwriting"
    );
    assert!(
        state.reads_complete.contains(&false),
        "the stale status was seen"
    );
    assert_eq!(
        state.reads_complete.last(),
        Some(&true),
        "success only when done"
    );
    assert!(
        done.stderr.contains("waiting for the engine"),
        "{}",
        done.stderr
    );
    assert!(
        done.stderr.contains("3/3 updated, 3/3 ready"),
        "{}",
        done.stderr
    );
    assert!(setup.recorded().contains(&image("1.0.0")));
}

#[test]
fn a_partitioned_statefulset_is_done_when_the_pods_above_the_partition_are() {
    // A canary: partition 2 of 3 updates only db-2; `currentRevision` never moves.
    let fake = FakeKubernetes::start(&[]);
    fake.add("statefulsets", "db", &image("0.9.0"));
    fake.strategy("db", 2, false);
    let setup = Setup::new(
        "kind: kubernetes\ncontext: team/deploy:prod-agent\nservices: [{ name: db, kind: statefulset }]\ntimeout: 20s\n",
    );
    let kubeconfig = fake.kubeconfig(setup.work.path());
    let started = Instant::now();
    let done = run(setup.deploy().env("KUBECONFIG", &kubeconfig)).ok();
    assert_eq!(
        json(&done)["rollout"]["outcome"],
        "succeeded",
        "{}",
        done.stderr
    );
    assert!(done.stderr.contains("partitioned at 2"), "{}", done.stderr);
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "it did not wait out the timeout"
    );
    assert_eq!(fake.image("db"), image("1.0.0"), "not rolled back");
}

#[test]
fn an_on_delete_workload_is_reported_at_once_not_rolled_back() {
    for (resource, kind) in [("statefulsets", "statefulset"), ("daemonsets", "daemonset")] {
        let fake = FakeKubernetes::start(&[]);
        fake.add(resource, "db", &image("0.9.0"));
        fake.strategy("db", 0, true);
        let setup = Setup::new(&format!(
            "kind: kubernetes\ncontext: team/deploy:prod-agent\nservices: [{{ name: db, kind: {kind} }}]\ntimeout: 20s\n"
        ));
        let kubeconfig = fake.kubeconfig(setup.work.path());
        let started = Instant::now();
        let done = run(setup.deploy().env("KUBECONFIG", &kubeconfig)).ok();
        let rollout = &json(&done)["rollout"];
        assert_eq!(rollout["outcome"], "not_watched", "{kind}: {}", done.stderr);
        assert_eq!(rollout["services"][0]["state"], "not_watched");
        assert!(
            rollout["services"][0]["reason"]
                .as_str()
                .unwrap()
                .contains("updateStrategy OnDelete"),
            "{rollout}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "{kind}: waited out the timeout"
        );
        assert_eq!(
            fake.image("db"),
            image("1.0.0"),
            "{kind}: the template keeps the release"
        );
        assert!(setup.recorded().contains(&image("1.0.0")), "{kind}");
    }
}

#[test]
fn kubernetes_statefulsets_and_daemonsets_finish_as_their_status_says() {
    let fake = FakeKubernetes::start(&[]);
    fake.add("statefulsets", "db", &image("0.9.0"));
    fake.add("daemonsets", "agent", &image("0.9.0"));
    let setup = Setup::new(
        "kind: kubernetes\ncontext: team/deploy:prod-agent\nservices:\n  - { name: db, kind: statefulset }\n  - { name: agent, kind: daemonset }\n",
    );
    let kubeconfig = fake.kubeconfig(setup.work.path());
    let done = run(setup.deploy().env("KUBECONFIG", &kubeconfig)).ok();
    let result = json(&done);
    assert_eq!(result["rollout"]["outcome"], "succeeded", "{}", done.stderr);
    assert_eq!(fake.image("db"), image("1.0.0"));
    assert_eq!(fake.image("agent"), image("1.0.0"));
    let state = fake.state.lock().unwrap();
    assert!(
        state.reads_complete.contains(&false),
        "the stale status was seen"
    );
    assert_eq!(
        state.reads_complete.last(),
        Some(&true),
        "success only when done"
    );
    assert!(
        done.stderr
            .contains("waiting for the new revision to become current"),
        "all replicas updated is not yet done for a StatefulSet: {}",
        done.stderr
    );
    drop(state);

    // A StatefulSet whose new pod never pulls has no progress deadline: it times out, the
    // pod's reason is shown, and it is rolled back.
    let fake = FakeKubernetes::start(&[]);
    fake.add("statefulsets", "db", &image("0.9.0"));
    fake.state.lock().unwrap().failing = vec!["db".into()];
    let stuck = Setup::new(
        "kind: kubernetes\ncontext: team/deploy:prod-agent\nservices: [{ name: db, kind: statefulset }]\ntimeout: 3s\n",
    );
    let kubeconfig = fake.kubeconfig(stuck.work.path());
    let timed_out = run(stuck.deploy().env("KUBECONFIG", &kubeconfig));
    assert_eq!(timed_out.code, 4, "{}", timed_out.stderr);
    assert!(
        timed_out.stderr.contains("ImagePullBackOff"),
        "{}",
        timed_out.stderr
    );
    assert_eq!(fake.image("db"), image("0.9.0"), "rolled back");

    // `kind` is for Kubernetes only.
    let wrong = Setup::new("kind: nomad\nservices: [{ name: db, kind: statefulset }]\n");
    run(tagpilot(wrong.repo.path()).arg("validate"))
        .fails_with(2, "`kind` is for Kubernetes workloads only");
}

#[test]
fn kubernetes_deadline_stops_the_order_and_rolls_back_every_service() {
    let fake = FakeKubernetes::start(&[("api", &image("0.9.0")), ("worker", &image("0.9.0"))]);
    fake.state.lock().unwrap().failing = vec!["worker".into()];
    let setup = Setup::new(
        "kind: kubernetes\ncontext: team/deploy:prod-agent\nservices: [api, { name: apps/worker, container: app }]\ntimeout: 60s\n",
    );
    let kubeconfig = fake.kubeconfig(setup.work.path());
    let failed = run(setup.deploy().env("KUBECONFIG", &kubeconfig));
    assert_eq!(failed.code, 3, "{}", failed.stderr);
    for shown in [
        "ProgressDeadlineExceeded",
        "ImagePullBackOff",
        "Failed to pull image",
        "api: rolling back",
    ] {
        assert!(failed.stderr.contains(shown), "{shown}: {}", failed.stderr);
    }
    let result = json(&failed);
    let services = &result["rollout"]["services"];
    assert_eq!(services[0]["state"], "rolled_back", "{result}");
    assert_eq!(services[1]["state"], "rolled_back", "{result}");
    assert_eq!(fake.image("api"), image("0.9.0"));
    assert_eq!(fake.image("worker"), image("0.9.0"));
    assert!(
        setup.recorded().contains(&image("0.9.0")),
        "the repo names what runs"
    );
    assert!(
        setup.log().starts_with("Roll back app in staging"),
        "{}",
        setup.log()
    );
}

#[test]
fn marathon_waits_for_a_lock_then_for_health() {
    let fake = FakeMarathon::start(&[("/shop/web", &image("0.9.0"))]);
    fake.lock("/shop/web", ms(1200));
    let setup = Setup::new("kind: marathon\nendpoint: ${MARATHON}\nservices: [/shop/web]\n");
    let done = run(setup.deploy().env("MARATHON", fake.server.url())).ok();
    assert_eq!(
        json(&done)["rollout"]["outcome"],
        "succeeded",
        "{}",
        done.stderr
    );
    assert!(fake.state.lock().unwrap().locked_answers >= 1);
    assert_eq!(fake.image("/shop/web"), image("1.0.0"));

    // Again: already runs it, nothing is sent.
    let again = run(setup.deploy().env("MARATHON", fake.server.url())).ok();
    assert_eq!(json(&again)["rollout"]["outcome"], "already_running");
}

#[test]
fn marathon_deployment_that_never_finishes_times_out_and_rolls_back() {
    let fake = FakeMarathon::start(&[("/shop/web", &image("0.9.0"))]);
    fake.state.lock().unwrap().bad_images = vec![image("1.0.0")];
    // The app id written without its leading `/`: the launch queue's `/shop/web` is still it.
    let setup =
        Setup::new("kind: marathon\nendpoint: ${MARATHON}\nservices: [shop/web]\ntimeout: 2s\n");
    let timed_out = run(setup.deploy().env("MARATHON", fake.server.url()));
    assert_eq!(timed_out.code, 4, "{}", timed_out.stderr);
    for shown in [
        "Container exited with non-zero exit code: 1",
        "backing off 17s",
        "rolled back",
    ] {
        assert!(
            timed_out.stderr.contains(shown),
            "{shown}: {}",
            timed_out.stderr
        );
    }
    assert_eq!(fake.image("/shop/web"), image("0.9.0"));
    assert!(setup.recorded().contains(&image("0.9.0")));
}

#[test]
fn nomad_auto_revert_is_a_failure_that_ends_rolled_back() {
    let fake = FakeNomad::start("shop", &image("0.9.0"));
    {
        let mut state = fake.state.lock().unwrap();
        state.bad_images = vec![image("1.0.0")];
        state.auto_revert = true;
    }
    let setup = Setup::new(
        "kind: nomad\nendpoint: ${NOMAD}\nservices: [shop]\ncredentials: { token: SHOP_NOMAD_TOKEN }\n",
    );
    let failed = run(setup
        .deploy()
        .env("NOMAD", fake.server.url())
        .env("SHOP_NOMAD_TOKEN", "nomad-secret"));
    assert_eq!(failed.code, 3, "{}", failed.stderr);
    for shown in [
        "rolling back to job version 0",
        "Exit Code: 1",
        "rolled back",
    ] {
        assert!(failed.stderr.contains(shown), "{shown}: {}", failed.stderr);
    }
    assert!(
        !failed.stderr.contains("nomad-secret"),
        "the token is never printed"
    );
    assert_eq!(fake.image(), image("0.9.0"));
    assert!(setup.recorded().contains(&image("0.9.0")));
}

#[test]
fn nomad_on_failure_pause_of_a_failed_deployment_is_a_failed_rollout() {
    let fake = FakeNomad::start("shop", &image("0.9.0"));
    fake.state.lock().unwrap().bad_images = vec![image("1.0.0")];
    let setup = Setup::new(
        "kind: nomad\nendpoint: ${NOMAD}\nservices: [shop]\non_failure: pause\ncredentials: { token: SHOP_NOMAD_TOKEN }\n",
    );
    let failed = run(setup
        .deploy()
        .env("NOMAD", fake.server.url())
        .env("SHOP_NOMAD_TOKEN", "nomad-secret"));
    assert_eq!(failed.code, 3, "{}", failed.stderr);
    let result = json(&failed);
    assert_eq!(result["rollout"]["outcome"], "failed", "{result}");
    assert_eq!(result["rollout"]["services"][0]["state"], "failed");
    assert!(failed.stderr.contains("cannot pause"), "{}", failed.stderr);
}

#[test]
fn a_403_says_what_it_means_on_each_engine() {
    // Nomad never answers 401: an unknown token is a 403 "ACL token not found", a refused
    // login (exit 2) that names where the token came from; one whose policy may not submit
    // the job is "Permission denied", with the hint that says what a 403 means on Nomad.
    let fake = FakeNomad::start("shop", &image("0.9.0"));
    fake.state.lock().unwrap().read_only_token = Some("read-only".into());
    let setup = Setup::new(
        "kind: nomad\nendpoint: ${NOMAD}\nservices: [shop]\ncredentials: { token: SHOP_NOMAD_TOKEN }\n",
    );
    let refused = run(setup
        .deploy()
        .env("NOMAD", fake.server.url())
        .env("SHOP_NOMAD_TOKEN", "not-the-token"));
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("ACL token not found")
            && refused.stderr.contains(
                "the credential from SHOP_NOMAD_TOKEN (orchestrator.credentials.token) was refused"
            ),
        "{}",
        refused.stderr
    );
    assert!(!refused.stderr.contains("not-the-token"));
    let denied = run(setup
        .deploy()
        .env("NOMAD", fake.server.url())
        .env("SHOP_NOMAD_TOKEN", "read-only"));
    assert_eq!(denied.code, 1, "{}", denied.stderr);
    assert!(
        denied
            .stderr
            .contains("403 for a missing or unknown ACL token"),
        "{}",
        denied.stderr
    );
    // Marathon answers 403 when it already runs as many deployments as it allows.
    let fake = FakeMarathon::start(&[("/shop/web", &image("0.9.0"))]);
    fake.state.lock().unwrap().max_running_deployments = Some(0);
    let setup = Setup::new("kind: marathon\nendpoint: ${MARATHON}\nservices: [/shop/web]\n");
    let refused = run(setup.deploy().env("MARATHON", fake.server.url()));
    assert_ne!(refused.code, 0);
    assert!(
        refused.stderr.contains("Max number of running deployments"),
        "{}",
        refused.stderr
    );
    assert!(
        refused.stderr.contains("--max_running_deployments"),
        "{}",
        refused.stderr
    );
}

#[test]
fn nomad_deployment_cancelled_by_a_newer_version_is_superseded() {
    let fake = FakeNomad::start("shop", &image("0.9.0"));
    fake.state.lock().unwrap().step = ms(3000);
    let setup = Setup::new("kind: nomad\nendpoint: ${NOMAD}\nservices: [shop]\n");
    let child = setup
        .deploy()
        .env("NOMAD", fake.server.url())
        .env("NOMAD_TOKEN", "nomad-secret")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while fake.image() != image("1.0.0") {
        assert!(Instant::now() < deadline, "tagpilot never registered");
        std::thread::sleep(ms(50));
    }
    fake.register(&image("1.1.0"));
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    let result: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(
        result["rollout"]["outcome"], "superseded",
        "{result} {stderr}"
    );
    assert!(
        stderr.contains(&format!("superseded: it now runs {}", image("1.1.0"))),
        "{stderr}"
    );
}

#[test]
fn bad_input_names_the_engine_endpoint_and_object() {
    // An unknown app: exit 2, before anything is changed on the engine.
    let fake = FakeMarathon::start(&[("/shop/web", &image("0.9.0"))]);
    let setup = Setup::new("kind: marathon\nendpoint: ${MARATHON}\nservices: [/shop/nope]\n");
    let unknown = run(setup.deploy().env("MARATHON", fake.server.url()));
    assert_eq!(unknown.code, 2, "{}", unknown.stderr);
    assert!(
        unknown.stderr.contains(&format!(
            "Marathon at {} has no app `/shop/nope`",
            fake.server.url()
        )),
        "{}",
        unknown.stderr
    );
    assert!(
        unknown
            .stderr
            .contains("the deployment repository already records"),
        "what was done is said: {}",
        unknown.stderr
    );

    // A wrong token: Nomad's 403, a refused login (exit 2) naming NOMAD_TOKEN.
    let nomad = FakeNomad::start("shop", &image("0.9.0"));
    let setup = Setup::new("kind: nomad\nendpoint: ${NOMAD}\nservices: [shop]\n");
    let refused = run(setup
        .deploy()
        .env("NOMAD", nomad.server.url())
        .env("NOMAD_TOKEN", "wrong"));
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert!(refused.stderr.contains("Nomad at"), "{}", refused.stderr);
    assert!(
        refused
            .stderr
            .contains("the credential from NOMAD_TOKEN was refused"),
        "{}",
        refused.stderr
    );

    // Nothing listening.
    let port = common::registry::free_port();
    let setup = Setup::new(&format!(
        "kind: kubernetes\nendpoint: http://127.0.0.1:{port}\nservices: [api]\ncredentials: {{ token: K8S_TOKEN }}\n"
    ));
    let dir = setup.work.path().join("empty-kubeconfig");
    std::fs::write(
        &dir,
        "apiVersion: v1\ncurrent-context: c\nclusters: [{ name: k, cluster: { server: http://127.0.0.1:9 } }]\ncontexts: [{ name: c, context: { cluster: k, user: u } }]\nusers: [{ name: u, user: {} }]\n",
    )
    .unwrap();
    let down = run(setup.deploy().env("KUBECONFIG", &dir).env("K8S_TOKEN", "t"));
    assert_eq!(down.code, 1, "{}", down.stderr);
    assert!(
        down.stderr.contains(&format!(
            "Kubernetes at http://127.0.0.1:{port} could not be reached"
        )),
        "{}",
        down.stderr
    );

    // TLS to a server whose certificate nothing here trusts (the real registry, with TLS).
    if common::registry::available() {
        let tls_server = common::registry::Registry::start_tls(common::registry::Auth::None);
        let setup = Setup::new(&format!(
            "kind: marathon\nendpoint: https://{}\nservices: [/shop/web]\n",
            tls_server.host()
        ));
        let tls = run(&mut setup.deploy());
        assert_eq!(tls.code, 1, "{}", tls.stderr);
        assert!(
            tls.stderr.contains("could not be reached"),
            "{}",
            tls.stderr
        );
        assert!(
            tls.stderr.contains("orchestrator.ca_file"),
            "{}",
            tls.stderr
        );
    }
}
