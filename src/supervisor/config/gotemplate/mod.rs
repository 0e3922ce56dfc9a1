//! Go `text/template` over the environment, the way ContainerPilot renders its config before it
//! parses it: `{{ .VAR }}`, pipelines, `if`/`else`/`with`/`range`, variables, trim markers,
//! Go's builtins (`and`, `or`, `not`, `len`, `index`, `eq`…, `print*`) and ContainerPilot's own
//! functions `default`, `env`, `split`, `join`, `replaceAll`, `regexReplaceAll` and `loop`.
//!
//! Hand-written: no maintained crate implements Go's template language (the Rust template
//! engines are Jinja- or Handlebars-like and disagree on syntax and on printing), and the
//! subset a config file uses is small.

mod exec;
mod functions;
mod parse;

use std::collections::BTreeMap;

use exec::Exec;
use parse::{Parser, Token};

/// A template error, with Go's `LINE:COL` where it happened.
#[derive(Debug, Clone, PartialEq)]
pub struct TemplateError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

pub(super) type Result<T> = std::result::Result<T, TemplateError>;

/// Renders `text` with `env` as the data (`.VAR`); `env "VAR"` reads `whole` (the values as
/// the process has them: `.VAR` keeps only the text up to a second `=`, as ContainerPilot's
/// environment map does).
pub fn render(text: &str, env: &BTreeMap<String, String>) -> Result<String> {
    let nodes = Parser::new(text).parse_all()?;
    let dot: BTreeMap<String, String> = env
        .iter()
        .map(|(k, v)| (k.clone(), v.split('=').next().unwrap_or("").to_string()))
        .collect();
    let mut run = Exec {
        env,
        vars: vec![("$".into(), Value::Map(dot.clone()))],
        out: String::new(),
    };
    run.nodes(&nodes, &Value::Map(dot))?;
    Ok(run.out)
}

/// Whether a `{{ }}` action holds `\"`: a JSON-escaped quote the template parser refuses.
pub fn has_escaped_quotes(text: &str) -> bool {
    text.split("{{")
        .skip(1)
        .any(|after| after.split("}}").next().is_some_and(|a| a.contains("\\\"")))
}

/// The environment variables a template reads (`.VAR` and `env "VAR"`), in order, once each.
pub fn variables(text: &str) -> Vec<String> {
    let mut found: Vec<String> = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let end = rest[start..].find("}}").map_or(rest.len(), |e| start + e);
        let action = &rest[start + 2..end];
        let Ok(tokens) = Parser::new(action).tokens(action, 0) else {
            break;
        };
        for pair in tokens.windows(2).map(|w| (w[0].clone(), w[1].clone())) {
            if let (Token::Ident(f), Token::Literal(Value::Str(name))) = &pair {
                if f == "env" && !found.contains(name) {
                    found.push(name.clone());
                }
            }
        }
        for token in tokens {
            if let Token::Field(path) = token {
                let name = path.split('.').next().unwrap_or_default().to_string();
                if !found.contains(&name) {
                    found.push(name);
                }
            }
        }
        rest = &rest[end.min(rest.len())..];
        if rest.len() < 2 {
            break;
        }
        rest = &rest[2..];
    }
    found
}

#[derive(Clone, Debug, PartialEq)]
pub(super) enum Value {
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    List(Vec<Value>),
    Map(BTreeMap<String, String>),
    Nil,
}

impl Value {
    fn truthy(&self) -> bool {
        match self {
            Value::Str(s) => !s.is_empty(),
            Value::Int(i) => *i != 0,
            Value::Float(f) => *f != 0.0,
            Value::Bool(b) => *b,
            Value::List(l) => !l.is_empty(),
            Value::Map(m) => !m.is_empty(),
            Value::Nil => false,
        }
    }

    /// Go's `fmt` `%v`.
    fn print(&self) -> String {
        match self {
            Value::Str(s) => s.clone(),
            Value::Int(i) => i.to_string(),
            Value::Float(f) => format!("{f}"),
            Value::Bool(b) => b.to_string(),
            Value::List(l) => {
                let items: Vec<String> = l.iter().map(Value::print).collect();
                format!("[{}]", items.join(" "))
            }
            Value::Map(m) => {
                let items: Vec<String> = m.iter().map(|(k, v)| format!("{k}:{v}")).collect();
                format!("map[{}]", items.join(" "))
            }
            Value::Nil => "<nil>".into(),
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Value::Str(_) => "string",
            Value::Int(_) => "int",
            Value::Float(_) => "float64",
            Value::Bool(_) => "bool",
            Value::List(_) => "[]string",
            Value::Map(_) => "map[string]string",
            Value::Nil => "nil",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> BTreeMap<String, String> {
        [("X", "p=q=r"), ("HOME", "/root"), ("LIST", "a,b")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    // Each expected output is what ContainerPilot's `-template` printed for the same input.
    #[test]
    fn renders_as_containerpilot_does() {
        let cases = [
            ("a {{ .HOME }}", "a /root"),
            ("{{ split \",\" \"a,b,c\" }}", "[a b c]"),
            ("{{ join \"-\" (split \",\" \"a,b\") }}", "a-b"),
            ("{{ split \",\" .LIST | join \"-\" }}", "a-b"),
            ("{{ replaceAll \"a\" \"b\" \"aaa\" }}", "bbb"),
            ("{{ regexReplaceAll \"a+\" \"X\" \"baaac\" }}", "bXc"),
            (
                "{{ loop 1 4 }}|{{ loop 3 }}|{{ loop \"2\" \"5\" }}",
                "[1 2 3]|[0 1 2]|[2 3 4]",
            ),
            ("{{ loop 0 }}|{{ loop 5 2 }}", "[]|[5 4 3]"),
            ("{{ env \"X\" }}|{{ .X }}", "p=q=r|p"),
            (
                "{{ .NOPE | default \"d\" }}{{ default \"e\" .HOME }}",
                "d/root",
            ),
            ("{{ range loop 3 }}[{{ . }}]{{ end }}", "[0][1][2]"),
            ("{{ if and .HOME .NOPE }}y{{ else if .X }}x{{ end }}", "x"),
            ("{{ with .NOPE }}a{{ else }}b{{ end }}", "b"),
            ("{{- \"a\" -}}  x  {{- \"b\" }}", "axb"),
            ("{{ $x := \"v\" }}{{ $x }}", "v"),
            (
                "{{ range $i, $v := split \",\" \"a,b\" }}{{ $i }}={{ $v }};{{ end }}",
                "0=a;1=b;",
            ),
            (
                "{{ print 1 \"a\" 2 }}|{{ printf \"%s-%v\" \"a\" 3 }}",
                "1a2|a-3",
            ),
            (
                "{{ default 5 .NOPE }}|{{ .HOME | printf \"%q\" }}",
                "5|\"/root\"",
            ),
            ("{{ not .NOPE }}{{ or .NOPE \"z\" }}", "truez"),
            ("{{ index (split \",\" \"a,b\") 1 }}{{/* c */}}", "b"),
            ("port: {{ .NOPE }},", "port: ,"),
        ];
        for (template, expected) in cases {
            assert_eq!(render(template, &env()).unwrap(), expected, "{template}");
        }
    }

    #[test]
    fn errors_as_containerpilot_does() {
        for (template, needle) in [
            ("{{ nope }}", "function \"nope\" not defined"),
            ("{{ .HOME ", "unclosed action"),
            ("{{ .X.Y }}", "can't evaluate field Y"),
            ("{{ nil }}", "nil is not a command"),
            ("{{ .X | default \\\"y\\\" }}", "unexpected"),
            ("{{ if .X }}a", "unexpected EOF"),
            ("{{ join (split \",\" \"a,b\") \"-\" }}", "wrong type"),
        ] {
            let error = render(template, &env()).unwrap_err();
            assert!(error.message.contains(needle), "{template}: {error:?}");
        }
    }
}
