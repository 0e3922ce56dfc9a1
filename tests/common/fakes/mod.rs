//! Stateful fakes of the services no real server of can run here (Marathon, the Kubernetes
//! API server, Nomad, GitLab, Consul). They follow the published APIs' paths, status codes and fields, and move
//! through their real state machines as time passes. They are fakes: they model only what
//! tagpilot reads and writes.

pub mod consul;
pub mod gitlab;
pub mod kubernetes;
pub mod marathon;
pub mod nomad;

use std::time::Duration;

/// The digest-pinned image `registry.example.org/team/app:<version>`, with a digest derived
/// from the version so that each version has its own.
pub fn image(version: &str) -> String {
    let hex: String = version
        .bytes()
        .map(|b| format!("{:x}", b % 16))
        .cycle()
        .take(64)
        .collect();
    format!("registry.example.org/team/app:{version}@sha256:{hex}")
}

pub fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}
