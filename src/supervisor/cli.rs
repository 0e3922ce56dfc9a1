//! `tagpilot-supervisor`'s command line, ContainerPilot's flags (Go's `-flag value` and
//! `-flag=value`, one or two dashes): `-config`, `-version`, `-template` with `-out`,
//! and the control-socket clients `-reload`, `-maintenance`, `-putenv`, `-putmetric`, `-ping`.
//! Ours: `-health` (exit 0 when every service job is healthy: the image's HEALTHCHECK) and
//! `-check` (load the config as start-up does and say ACCEPT or why not).
//!
//! Hand-written rather than clap: the flags must be spelled as ContainerPilot's are, which
//! clap does not parse (single-dash long flags), and configs call them that way.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::json;

use super::config::Config;
use super::run::{self, control, log::Log};

const USAGE: &str = "usage: tagpilot-supervisor [-config FILE] [-template [-out FILE]] [-check] [-version]
       tagpilot-supervisor -reload | -maintenance enable|disable | -putenv K=V | -putmetric K=V | -ping | -health

Runs a ContainerPilot v3 config (FILE, or $CONTAINERPILOT): its jobs, health checks, Consul
registration, watches, control socket and telemetry. The other flags talk to a running one.";

#[derive(Default)]
struct Flags {
    config: Option<String>,
    version: bool,
    template: bool,
    out: Option<String>,
    check: bool,
    reload: bool,
    maintenance: Option<String>,
    putenv: Vec<String>,
    putmetric: Vec<String>,
    ping: bool,
    health: bool,
}

fn parse(args: &[String]) -> Result<Flags, String> {
    let mut flags = Flags::default();
    let mut i = 0;
    while i < args.len() {
        let arg = args[i].trim_start_matches('-');
        if arg.len() == args[i].len() {
            return Err(format!("unexpected argument {:?}", args[i]));
        }
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (arg, None),
        };
        let mut value = || -> Result<String, String> {
            if let Some(v) = inline.clone() {
                return Ok(v);
            }
            i += 1;
            args.get(i)
                .cloned()
                .ok_or(format!("flag needs an argument: -{name}"))
        };
        match name {
            "config" => flags.config = Some(value()?),
            "out" => flags.out = Some(value()?),
            "maintenance" => flags.maintenance = Some(value()?),
            "putenv" => flags.putenv.push(value()?),
            "putmetric" => flags.putmetric.push(value()?),
            "version" => flags.version = true,
            "template" => flags.template = true,
            "check" => flags.check = true,
            "reload" => flags.reload = true,
            "ping" => flags.ping = true,
            "health" => flags.health = true,
            "h" | "help" => return Err(String::new()),
            _ => return Err(format!("flag provided but not defined: -{name}")),
        }
        i += 1;
    }
    Ok(flags)
}

/// Runs the command line; the process's exit status.
pub fn main(args: &[String]) -> i32 {
    let flags = match parse(args) {
        Ok(flags) => flags,
        Err(message) => {
            if !message.is_empty() {
                eprintln!("{message}");
            }
            eprintln!("{USAGE}");
            return 2;
        }
    };
    if flags.version {
        println!(
            "Version: {} (tagpilot-supervisor, ContainerPilot v3 compatible)",
            env!("CARGO_PKG_VERSION")
        );
        return 0;
    }
    let env: BTreeMap<String, String> = std::env::vars().collect();
    let path = flags
        .config
        .clone()
        .or_else(|| env.get("CONTAINERPILOT").cloned());
    let client = flags.reload
        || flags.ping
        || flags.health
        || flags.maintenance.is_some()
        || !flags.putenv.is_empty()
        || !flags.putmetric.is_empty();
    if client {
        return client_main(&flags, path.as_deref(), &env);
    }
    let Some(path) = path else {
        eprintln!("-config flag is required (or set CONTAINERPILOT to the config file)");
        return 2;
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) => {
            eprintln!("could not read config file {path}: {e}");
            return 1;
        }
    };
    if flags.template {
        return render_template(&text, &env, flags.out.as_deref());
    }
    let config = match Config::load(&text, &env) {
        Ok(config) => config,
        Err(problems) => {
            let shown: Vec<String> = problems.iter().map(|p| format!("{path}:{p}")).collect();
            if flags.check {
                println!("REJECT\t{}", shown.join("; "));
            } else {
                Log::bootstrap().error(&format!("config: {}", shown.join("; ")));
            }
            return 1;
        }
    };
    for warning in &config.warnings {
        eprintln!("warning: {path}: {warning}");
    }
    if flags.check {
        println!("ACCEPT");
        return 0;
    }
    supervise(config, env, PathBuf::from(path))
}

fn render_template(text: &str, env: &BTreeMap<String, String>, out: Option<&str>) -> i32 {
    match super::config::gotemplate::render(text, env) {
        Ok(rendered) => {
            let written = match out {
                None | Some("-") => {
                    print!("{rendered}");
                    Ok(())
                }
                Some(file) => std::fs::write(file, rendered),
            };
            match written {
                Ok(()) => 0,
                Err(e) => {
                    eprintln!("writing the rendered config: {e}");
                    1
                }
            }
        }
        Err(e) => {
            eprintln!(
                "could not apply template to config: {}:{}: {}",
                e.line, e.column, e.message
            );
            1
        }
    }
}

/// Runs the config; a reload asked through the control socket starts again from the file.
fn supervise(mut config: Config, env: BTreeMap<String, String>, path: PathBuf) -> i32 {
    loop {
        let log = match Log::open(&config.logging) {
            Ok(log) => log,
            Err(e) => {
                eprintln!("{e}");
                return 1;
            }
        };
        let outcome = match run::run(config, env.clone(), log.clone()) {
            Ok(outcome) => outcome,
            Err(e) => {
                log.error(&e);
                return 1;
            }
        };
        if !outcome.reload {
            return outcome.code;
        }
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        config = match Config::load(&text, &env) {
            Ok(config) => config,
            Err(problems) => {
                let shown: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
                log.error(&format!(
                    "reload: the config is not valid: {}",
                    shown.join("; ")
                ));
                return 1;
            }
        };
    }
}

/// The control-socket clients. The socket is the config's, or the default.
fn client_main(flags: &Flags, path: Option<&str>, env: &BTreeMap<String, String>) -> i32 {
    let socket = path
        .and_then(|p| std::fs::read_to_string(p).ok())
        .and_then(|text| Config::load(&text, env).ok())
        .map(|c| c.control.socket)
        .unwrap_or_else(|| "/var/run/containerpilot.socket".into());
    let socket = std::path::Path::new(&socket);
    let calls = match client_calls(flags) {
        Ok(calls) => calls,
        Err(e) => {
            eprintln!("{e}");
            return 2;
        }
    };
    for (method, path, body) in calls {
        match control::request(socket, method, &path, body.as_ref()) {
            Ok((200, body)) => print!("{body}"),
            // The health answer speaks for itself: Docker shows it as the check's output.
            Ok((503, body)) if path == "/v3/health" => {
                eprint!("{body}");
                return 1;
            }
            Ok((status, body)) => {
                eprint!("{path}: {status} {body}");
                if !body.ends_with('\n') {
                    eprintln!();
                }
                return 1;
            }
            Err(e) => {
                eprintln!("{e}");
                return 1;
            }
        }
    }
    0
}

/// A control request: method, path and JSON body.
type Call = (&'static str, String, Option<serde_json::Value>);

/// The requests the client flags ask for, in the order ContainerPilot sends them.
fn client_calls(flags: &Flags) -> Result<Vec<Call>, String> {
    let mut calls: Vec<Call> = Vec::new();
    if !flags.putenv.is_empty() {
        calls.push((
            "POST",
            "/v3/environ".into(),
            Some(pairs(&flags.putenv, false)?),
        ));
    }
    if !flags.putmetric.is_empty() {
        calls.push((
            "POST",
            "/v3/metric".into(),
            Some(pairs(&flags.putmetric, true)?),
        ));
    }
    if let Some(mode) = &flags.maintenance {
        if mode != "enable" && mode != "disable" {
            return Err(format!(
                "-maintenance takes enable or disable, not {mode:?}"
            ));
        }
        calls.push(("POST", format!("/v3/maintenance/{mode}"), None));
    }
    if flags.reload {
        calls.push(("POST", "/v3/reload".into(), None));
    }
    if flags.ping {
        calls.push(("GET", "/v3/ping".into(), None));
    }
    if flags.health {
        calls.push(("GET", "/v3/health".into(), None));
    }
    Ok(calls)
}

/// `K=V` flags as a JSON object; with `numbers`, each value must be one.
fn pairs(items: &[String], numbers: bool) -> Result<serde_json::Value, String> {
    let mut object = serde_json::Map::new();
    for item in items {
        let (k, v) = item
            .split_once('=')
            .ok_or(format!("{item:?}: expected key=value"))?;
        let value = if numbers {
            json!(v
                .parse::<f64>()
                .map_err(|_| format!("{item:?}: the value is not a number"))?)
        } else {
            json!(v)
        };
        object.insert(k.to_string(), value);
    }
    Ok(serde_json::Value::Object(object))
}
