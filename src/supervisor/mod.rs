//! tagpilot's process supervisor for autopilot-pattern images: a ContainerPilot v3
//! replacement that reads the same config (`config`) and runs it (`run`), shipped as the
//! `tagpilot-supervisor` binary, which answers to `containerpilot` too.

pub mod cli;
pub mod config;
pub mod run;

pub use config::Config;

/// An inline config (from tagpilot.yaml) as the JSON file embedded in the image.
pub fn render_inline(config: &serde_json::Value) -> String {
    serde_json::to_string_pretty(config).expect("a JSON value prints") + "\n"
}
