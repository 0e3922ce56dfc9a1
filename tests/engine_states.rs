//! Rollouts as the engines really end them, against the stateful fakes in `tests/common/fakes`
//! (each documents the engine source it follows): a re-run that finds an unfinished, failed or
//! paused rollout of the image it would send; a paused Kubernetes Deployment; pods a quota
//! forbids; a StatefulSet pod the controller never replaces; Nomad's auto-revert to the last
//! stable version, a revert that fails too, canaries that wait for promotion and jobs without
//! deployments; Marathon's task counts.

mod common;

use std::time::{Duration, Instant};

use common::fakes::kubernetes::FakeKubernetes;
use common::fakes::marathon::FakeMarathon;
use common::fakes::nomad::FakeNomad;
use common::fakes::{image, ms};
use common::rollout::{json, Setup};
use common::*;

const KUBERNETES: &str = "kind: kubernetes\ncontext: team/deploy:prod-agent\n";
const NOMAD: &str = "kind: nomad\nendpoint: ${NOMAD}\nservices: [shop]\n";

fn nomad_deploy(setup: &Setup, fake: &FakeNomad) -> Run {
    run(setup
        .deploy()
        .env("NOMAD", fake.server.url())
        .env("NOMAD_TOKEN", "nomad-secret"))
}

#[test]
fn a_rerun_reports_a_failed_kubernetes_rollout_instead_of_already_running() {
    let fake = FakeKubernetes::start(&[("api", &image("0.9.0"))]);
    fake.state.lock().unwrap().failing = vec!["api".into()];
    let setup = Setup::new(&format!(
        "{KUBERNETES}services: [api]\non_failure: fail\ntimeout: 60s\n"
    ));
    let kubeconfig = fake.kubeconfig(setup.work.path());
    let first = run(setup.deploy().env("KUBECONFIG", &kubeconfig));
    assert_eq!(first.code, 3, "{}", first.stderr);
    assert_eq!(fake.image("api"), image("1.0.0"), "left as it is");

    // The spec already names the image, but its rollout failed: the re-run says so.
    let again = run(setup.deploy().env("KUBECONFIG", &kubeconfig));
    assert_eq!(again.code, 3, "{}", again.stderr);
    let service = &json(&again)["rollout"]["services"][0];
    assert_eq!(service["state"], "failed", "{service}");
    assert_eq!(service["resumed"], true, "{service}");
    assert!(
        service["reason"]
            .as_str()
            .unwrap()
            .contains("ProgressDeadlineExceeded"),
        "{service}"
    );
    assert_eq!(fake.state.lock().unwrap().puts, 1, "nothing sent again");
}

#[test]
fn a_paused_deployment_is_said_at_once_and_a_rerun_after_resume_finishes_it() {
    let fake = FakeKubernetes::start(&[("api", &image("0.9.0"))]);
    fake.set_paused("api", true);
    let setup = Setup::new(&format!("{KUBERNETES}services: [api]\ntimeout: 30s\n"));
    let kubeconfig = fake.kubeconfig(setup.work.path());
    let started = Instant::now();
    let paused = run(setup.deploy().env("KUBECONFIG", &kubeconfig));
    assert_eq!(paused.code, 3, "{}", paused.stderr);
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "did not wait out the timeout"
    );
    let service = &json(&paused)["rollout"]["services"][0];
    assert_eq!(service["state"], "paused", "{service}");
    assert!(
        service["reason"]
            .as_str()
            .unwrap()
            .contains("kubectl rollout resume deployment/api -n apps"),
        "{service}"
    );
    assert_eq!(
        fake.image("api"),
        image("1.0.0"),
        "a paused Deployment is not rolled back"
    );

    // Still paused: the re-run says so again, and does not call it already running.
    let again = run(setup.deploy().env("KUBECONFIG", &kubeconfig));
    assert_eq!(again.code, 3, "{}", again.stderr);
    assert_eq!(json(&again)["rollout"]["services"][0]["state"], "paused");

    // Resumed: the re-run watches the rollout to its end.
    fake.set_paused("api", false);
    let done = run(setup.deploy().env("KUBECONFIG", &kubeconfig)).ok();
    let rollout = &json(&done)["rollout"];
    assert_eq!(rollout["outcome"], "succeeded", "{}", done.stderr);
    assert_eq!(rollout["services"][0]["resumed"], true, "{rollout}");
    assert!(done.stderr.contains("watching it"), "{}", done.stderr);
    assert!(
        done.stderr.contains("3/3 updated, 3/3 ready"),
        "{}",
        done.stderr
    );

    // Done now: the next run sends nothing and says so.
    let settled = run(setup.deploy().env("KUBECONFIG", &kubeconfig)).ok();
    assert_eq!(json(&settled)["rollout"]["outcome"], "already_running");
}

#[test]
fn pods_a_quota_forbids_fail_the_rollout_with_the_reason_before_the_timeout() {
    let fake = FakeKubernetes::start(&[("api", &image("0.9.0"))]);
    fake.state.lock().unwrap().over_quota = vec!["api".into()];
    // A quarter of the timeout (at most 30 s) is the grace a surge's quota shortfall gets.
    let setup = Setup::new(&format!("{KUBERNETES}services: [api]\ntimeout: 12s\n"));
    let kubeconfig = fake.kubeconfig(setup.work.path());
    let started = Instant::now();
    let failed = run(setup.deploy().env("KUBECONFIG", &kubeconfig));
    assert_eq!(
        failed.code, 3,
        "a failure, not a timeout: {}",
        failed.stderr
    );
    assert!(
        started.elapsed() < Duration::from_secs(12),
        "did not wait out the timeout"
    );
    for shown in [
        "pods cannot be created (FailedCreate: pods",
        "exceeded quota: compute",
        "event on api-5d8: FailedCreate: Error creating",
    ] {
        assert!(failed.stderr.contains(shown), "{shown}: {}", failed.stderr);
    }
    assert_eq!(fake.image("api"), image("0.9.0"), "rolled back");
    assert!(setup.recorded().contains(&image("0.9.0")));
}

#[test]
fn a_statefulset_rollback_past_a_broken_pod_says_which_pod_to_delete() {
    let fake = FakeKubernetes::start(&[]);
    fake.add("statefulsets", "db", &image("0.9.0"));
    fake.state.lock().unwrap().failing = vec!["db".into()];
    let setup = Setup::new(&format!(
        "{KUBERNETES}services: [{{ name: db, kind: statefulset }}]\ntimeout: 8s\n"
    ));
    let kubeconfig = fake.kubeconfig(setup.work.path());
    let started = Instant::now();
    let timed_out = run(setup.deploy().env("KUBECONFIG", &kubeconfig));
    assert_eq!(timed_out.code, 4, "{}", timed_out.stderr);
    assert!(
        started.elapsed() < Duration::from_secs(14),
        "no second full timeout for the rollback: {:?}",
        started.elapsed()
    );
    let service = &json(&timed_out)["rollout"]["services"][0];
    let reason = service["reason"].as_str().unwrap();
    for said in [
        "the rollback failed too: pod db-2 is stuck in ImagePullBackOff",
        "kubernetes/kubernetes#67250",
        "kubectl delete pod -n apps db-2",
    ] {
        assert!(reason.contains(said), "{said}: {service}");
    }
    assert_eq!(service["state"], "timed_out");
    assert_eq!(fake.image("db"), image("0.9.0"), "the template went back");
}

#[test]
fn marathon_counts_only_the_new_config_tasks_and_ignores_a_scale() {
    let fake = FakeMarathon::start(&[("/shop/web", &image("0.9.0"))]);
    fake.state.lock().unwrap().step = ms(700);
    let setup = Setup::new("kind: marathon\nendpoint: ${MARATHON}\nservices: [/shop/web]\n");
    let child = setup
        .deploy()
        .env("MARATHON", fake.server.url())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while fake.image("/shop/web") != image("1.0.0") {
        assert!(Instant::now() < deadline, "tagpilot never submitted");
        std::thread::sleep(ms(50));
    }
    std::thread::sleep(ms(300));
    // Someone scales the app mid-deployment: a new `version`, the same config.
    fake.scale("/shop/web", 3);
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    // `tasksRunning` counts old and new tasks together (2 of 2 from the start); none of the
    // new config's run yet.
    assert!(stderr.contains("0/2 updated, 0/2 ready"), "{stderr}");
    assert!(stderr.contains("3/3 updated, 3/3 ready"), "{stderr}");

    // An app without health checks is ready when its tasks run.
    let fake = FakeMarathon::start(&[("/shop/web", &image("0.9.0"))]);
    fake.state
        .lock()
        .unwrap()
        .apps
        .get_mut("/shop/web")
        .unwrap()
        .health_checks = false;
    let plain = run(setup.deploy().env("MARATHON", fake.server.url())).ok();
    assert_eq!(json(&plain)["rollout"]["outcome"], "succeeded");
}

#[test]
fn a_rerun_watches_a_marathon_deployment_still_retrying() {
    let fake = FakeMarathon::start(&[("/shop/web", &image("0.9.0"))]);
    fake.state.lock().unwrap().bad_images = vec![image("1.0.0")];
    let setup = Setup::new(
        "kind: marathon\nendpoint: ${MARATHON}\nservices: [/shop/web]\ntimeout: 2s\non_failure: fail\n",
    );
    let first = run(setup.deploy().env("MARATHON", fake.server.url()));
    assert_eq!(first.code, 4, "{}", first.stderr);
    let again = run(setup.deploy().env("MARATHON", fake.server.url()));
    assert_eq!(again.code, 4, "{}", again.stderr);
    let service = &json(&again)["rollout"]["services"][0];
    assert_eq!(service["state"], "timed_out", "{service}");
    assert_eq!(service["resumed"], true, "{service}");
    assert!(
        again
            .stderr
            .contains("has not finished (in progress): watching it"),
        "{}",
        again.stderr
    );
    assert!(
        again
            .stderr
            .contains("Container exited with non-zero exit code: 1"),
        "{}",
        again.stderr
    );
}

#[test]
fn a_rerun_reports_a_failed_nomad_deployment() {
    let fake = FakeNomad::start("shop", &image("0.9.0"));
    fake.state.lock().unwrap().bad_images = vec![image("1.0.0")];
    let setup = Setup::new(&format!("{NOMAD}on_failure: fail\n"));
    assert_eq!(nomad_deploy(&setup, &fake).code, 3);
    let again = nomad_deploy(&setup, &fake);
    assert_eq!(again.code, 3, "{}", again.stderr);
    let service = &json(&again)["rollout"]["services"][0];
    assert_eq!(service["state"], "failed", "{service}");
    assert!(
        service["reason"]
            .as_str()
            .unwrap()
            .contains("Failed due to unhealthy allocations"),
        "{service}"
    );
}

#[test]
fn nomad_auto_revert_records_the_last_stable_version_it_went_back_to() {
    // Version 1 (0.9.0) never became stable; auto_revert goes back to version 0 (0.8.0).
    let fake =
        FakeNomad::with_history("shop", &[(&image("0.8.0"), true), (&image("0.9.0"), false)]);
    {
        let mut state = fake.state.lock().unwrap();
        state.bad_images = vec![image("1.0.0")];
        state.auto_revert = true;
    }
    let setup = Setup::new(NOMAD);
    let failed = nomad_deploy(&setup, &fake);
    assert_eq!(failed.code, 3, "{}", failed.stderr);
    assert!(
        failed.stderr.contains("rolling back to job version 0"),
        "{}",
        failed.stderr
    );
    assert_eq!(fake.image(), image("0.8.0"));
    let service = &json(&failed)["rollout"]["services"][0];
    assert_eq!(service["restored"], image("0.8.0").as_str(), "{service}");
    let recorded = setup.recorded();
    assert!(recorded.contains(&image("0.8.0")), "{recorded}");
}

#[test]
fn a_nomad_revert_that_fails_too_is_reported_at_once() {
    // The revert to 0.9.0 fails as well; Nomad then says it is "not rolling back".
    let fake = FakeNomad::start("shop", &image("0.9.0"));
    {
        let mut state = fake.state.lock().unwrap();
        state.bad_images = vec![image("1.0.0"), image("0.9.0")];
        state.auto_revert = true;
    }
    let setup = Setup::new(&format!("{NOMAD}timeout: 30s\n"));
    let started = Instant::now();
    let failed = nomad_deploy(&setup, &fake);
    assert_eq!(failed.code, 3, "{}", failed.stderr);
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "the rollback was not waited out"
    );
    let reason = json(&failed)["rollout"]["services"][0]["reason"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        reason.contains("the revert's own deployment failed too")
            && reason.contains("not rolling back to stable job version 0"),
        "{reason}"
    );
}

#[test]
fn nomad_canaries_wait_for_promotion_unless_the_spec_promotes_them() {
    let fake = FakeNomad::start("shop", &image("0.9.0"));
    fake.state.lock().unwrap().canaries = 1;
    let setup = Setup::new(&format!("{NOMAD}timeout: 30s\n"));
    let started = Instant::now();
    let waiting = nomad_deploy(&setup, &fake).ok();
    assert!(started.elapsed() < Duration::from_secs(20));
    let rollout = &json(&waiting)["rollout"];
    assert_eq!(rollout["outcome"], "not_watched", "{rollout}");
    assert_eq!(rollout["services"][0]["state"], "not_watched");
    let reason = rollout["services"][0]["reason"].as_str().unwrap();
    assert!(
        reason.contains("requires manual promotion: `nomad deployment promote d1-"),
        "{reason}"
    );
    assert!(!fake.promoted(), "nobody asked tagpilot to promote");

    let fake = FakeNomad::start("shop", &image("0.9.0"));
    fake.state.lock().unwrap().canaries = 1;
    let setup = Setup::new(&format!("{NOMAD}promote_canaries: true\n"));
    let promoted = nomad_deploy(&setup, &fake).ok();
    assert_eq!(
        json(&promoted)["rollout"]["outcome"],
        "succeeded",
        "{}",
        promoted.stderr
    );
    assert!(fake.promoted());
    assert!(
        promoted.stderr.contains("canaries promoted"),
        "{}",
        promoted.stderr
    );

    // `promote_canaries` is for Nomad only.
    let wrong =
        Setup::new("kind: marathon\nendpoint: http://m\nservices: [/a]\npromote_canaries: true\n");
    run(tagpilot(wrong.repo.path()).arg("validate"))
        .fails_with(2, "`promote_canaries` is for Nomad only");
}

#[test]
fn nomad_jobs_without_deployments_are_watched_through_their_allocations() {
    for kind in ["service", "batch"] {
        let fake = FakeNomad::start("shop", &image("0.9.0"));
        {
            let mut state = fake.state.lock().unwrap();
            state.update_block = false;
            state.kind = kind;
        }
        let setup = Setup::new(&format!("{NOMAD}timeout: 30s\n"));
        let started = Instant::now();
        let done = nomad_deploy(&setup, &fake).ok();
        assert_eq!(
            json(&done)["rollout"]["outcome"],
            "succeeded",
            "{kind}: {}",
            done.stderr
        );
        assert!(started.elapsed() < Duration::from_secs(20), "{kind}");
        assert!(
            done.stderr.contains("watching its allocations"),
            "{kind}: {}",
            done.stderr
        );
    }

    // A bad image without a deployment: the failed allocation is the verdict.
    let fake = FakeNomad::start("shop", &image("0.9.0"));
    {
        let mut state = fake.state.lock().unwrap();
        state.update_block = false;
        state.bad_images = vec![image("1.0.0")];
    }
    let setup = Setup::new(&format!("{NOMAD}timeout: 30s\n"));
    let failed = nomad_deploy(&setup, &fake);
    assert_eq!(failed.code, 3, "{}", failed.stderr);
    assert!(
        failed
            .stderr
            .contains("of job version 1 failed (no update block"),
        "{}",
        failed.stderr
    );
    assert!(failed.stderr.contains("Exit Code: 1"), "{}", failed.stderr);
    assert_eq!(fake.image(), image("0.9.0"), "reverted");
}
