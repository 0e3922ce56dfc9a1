//! The functions a template can call: Go's builtins (`and`, `or`, `not`, `len`, `index`,
//! `print*`, comparisons) and ContainerPilot's own.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::Value;

pub(super) fn want_str(value: &Value, function: &str) -> std::result::Result<String, String> {
    match value {
        Value::Str(s) => Ok(s.clone()),
        other => Err(format!(
            "wrong type for value; expected string; got {} (in {function})",
            other.kind()
        )),
    }
}

pub(super) fn want_int(value: &Value) -> std::result::Result<i64, String> {
    match value {
        Value::Int(i) => Ok(*i),
        Value::Str(s) => s
            .trim()
            .parse()
            .map_err(|_| format!("loop: {s:?} is not a number")),
        other => Err(format!("expected integer; found {}", other.print())),
    }
}

pub(super) fn arity(name: &str, args: &[Value], n: usize) -> std::result::Result<(), String> {
    if args.len() == n {
        Ok(())
    } else {
        Err(format!(
            "wrong number of args for {name}: want {n} got {}",
            args.len()
        ))
    }
}

pub(super) fn call(
    name: &str,
    args: Vec<Value>,
    env: &BTreeMap<String, String>,
) -> std::result::Result<Value, String> {
    match name {
        "default" | "env" | "split" | "join" | "replaceAll" | "regexReplaceAll" | "loop" => {
            containerpilot(name, args, env)
        }
        _ => builtin(name, args),
    }
}

/// Go's own template functions.
fn builtin(name: &str, args: Vec<Value>) -> std::result::Result<Value, String> {
    match name {
        "and" => Ok(args
            .iter()
            .find(|a| !a.truthy())
            .or(args.last())
            .cloned()
            .unwrap_or(Value::Nil)),
        "or" => Ok(args
            .iter()
            .find(|a| a.truthy())
            .or(args.last())
            .cloned()
            .unwrap_or(Value::Nil)),
        "not" => {
            arity(name, &args, 1)?;
            Ok(Value::Bool(!args[0].truthy()))
        }
        "len" => {
            arity(name, &args, 1)?;
            match &args[0] {
                Value::Str(s) => Ok(Value::Int(s.len() as i64)),
                Value::List(l) => Ok(Value::Int(l.len() as i64)),
                Value::Map(m) => Ok(Value::Int(m.len() as i64)),
                other => Err(format!("len of type {}", other.kind())),
            }
        }
        "index" => {
            let (first, keys) = args.split_first().ok_or("index of nothing")?;
            let mut current = first.clone();
            for key in keys {
                current = match (&current, key) {
                    (Value::List(l), Value::Int(i)) => l
                        .get(usize::try_from(*i).map_err(|_| "index out of range")?)
                        .cloned()
                        .ok_or(format!("index out of range: {i}"))?,
                    (Value::Map(m), Value::Str(k)) => {
                        Value::Str(m.get(k).cloned().unwrap_or_default())
                    }
                    _ => return Err(format!("can't index item of type {}", current.kind())),
                };
            }
            Ok(current)
        }
        "print" => Ok(Value::Str(go_print(&args))),
        "println" => {
            let items: Vec<String> = args.iter().map(Value::print).collect();
            Ok(Value::Str(items.join(" ") + "\n"))
        }
        "printf" => {
            let (format, rest) = args.split_first().ok_or("printf needs a format")?;
            Ok(Value::Str(go_printf(&want_str(format, name)?, rest)))
        }
        "eq" | "ne" | "lt" | "le" | "gt" | "ge" => compare(name, &args),
        "html" | "urlquery" => Ok(Value::Str(go_print(&args))),
        _ => Err(format!("function {name:?} not defined")),
    }
}

/// ContainerPilot's functions: default(default, value), env(name), split(sep, s),
/// join(sep, list), replaceAll(from, to, s), regexReplaceAll(re, to, s), loop(...).
fn containerpilot(
    name: &str,
    args: Vec<Value>,
    env: &BTreeMap<String, String>,
) -> std::result::Result<Value, String> {
    match name {
        "default" => {
            arity(name, &args, 2)?;
            Ok(if args[1].truthy() {
                args[1].clone()
            } else {
                args[0].clone()
            })
        }
        "env" => {
            arity(name, &args, 1)?;
            let key = want_str(&args[0], name)?;
            Ok(Value::Str(env.get(&key).cloned().unwrap_or_default()))
        }
        "split" => {
            arity(name, &args, 2)?;
            let sep = want_str(&args[0], name)?;
            let text = want_str(&args[1], name)?;
            let parts: Vec<Value> = if text.is_empty() {
                Vec::new()
            } else if sep.is_empty() {
                text.chars().map(|c| Value::Str(c.to_string())).collect()
            } else {
                text.split(sep.as_str())
                    .map(|p| Value::Str(p.into()))
                    .collect()
            };
            Ok(Value::List(parts))
        }
        "join" => {
            arity(name, &args, 2)?;
            let sep = want_str(&args[0], name)?;
            match &args[1] {
                Value::List(items) => {
                    let parts: Vec<String> = items.iter().map(Value::print).collect();
                    Ok(Value::Str(parts.join(&sep)))
                }
                other => Err(format!(
                    "wrong type for value; expected []string; got {}",
                    other.kind()
                )),
            }
        }
        "replaceAll" => {
            arity(name, &args, 3)?;
            let from = want_str(&args[0], name)?;
            let to = want_str(&args[1], name)?;
            Ok(Value::Str(want_str(&args[2], name)?.replace(&from, &to)))
        }
        "regexReplaceAll" => {
            arity(name, &args, 3)?;
            let pattern = want_str(&args[0], name)?;
            let re = regex_lite::Regex::new(&pattern).map_err(|e| e.to_string())?;
            let to = want_str(&args[1], name)?;
            Ok(Value::Str(
                re.replace_all(&want_str(&args[2], name)?, to.as_str())
                    .into_owned(),
            ))
        }
        "loop" => {
            let (start, end) = match args.as_slice() {
                [n] => (0, want_int(n)?),
                [a, b] => (want_int(a)?, want_int(b)?),
                _ => return Err("loop takes one or two integers".into()),
            };
            let items: Vec<Value> = if start <= end {
                (start..end).map(Value::Int).collect()
            } else {
                ((end + 1)..=start).rev().map(Value::Int).collect()
            };
            Ok(Value::List(items))
        }
        _ => Err(format!("function {name:?} not defined")),
    }
}

/// Go's `fmt.Sprint`: a space between operands when neither is a string.
pub(super) fn go_print(args: &[Value]) -> String {
    let mut out = String::new();
    for (i, arg) in args.iter().enumerate() {
        let is_string = matches!(arg, Value::Str(_));
        if i > 0 && !is_string && !matches!(args[i - 1], Value::Str(_)) {
            out.push(' ');
        }
        out.push_str(&arg.print());
    }
    out
}

/// `fmt.Sprintf` for the verbs a config uses: `%s %v %d %q %%`.
pub(super) fn go_printf(format: &str, args: &[Value]) -> String {
    let mut out = String::new();
    let mut args = args.iter();
    let mut chars = format.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('%') => out.push('%'),
            Some(verb) => match args.next() {
                Some(arg) => match verb {
                    'q' => {
                        let _ = write!(out, "{:?}", arg.print());
                    }
                    _ => out.push_str(&arg.print()),
                },
                None => {
                    let _ = write!(out, "%!{verb}(MISSING)");
                }
            },
            None => out.push_str("%!(NOVERB)"),
        }
    }
    out
}

pub(super) fn compare(name: &str, args: &[Value]) -> std::result::Result<Value, String> {
    let (first, rest) = args
        .split_first()
        .ok_or(format!("missing arguments for {name}"))?;
    if rest.is_empty() {
        return Err(format!("missing argument for comparison in {name}"));
    }
    let order = |a: &Value, b: &Value| -> std::result::Result<std::cmp::Ordering, String> {
        match (a, b) {
            (Value::Str(x), Value::Str(y)) => Ok(x.cmp(y)),
            (Value::Int(x), Value::Int(y)) => Ok(x.cmp(y)),
            (Value::Bool(x), Value::Bool(y)) if name == "eq" || name == "ne" => Ok(x.cmp(y)),
            _ => Err("incompatible types for comparison".into()),
        }
    };
    let result = match name {
        // eq is true when the first equals any of the others.
        "eq" => {
            let mut any = false;
            for other in rest {
                any |= order(first, other)?.is_eq();
            }
            any
        }
        _ => {
            let o = order(first, &rest[0])?;
            match name {
                "ne" => o.is_ne(),
                "lt" => o.is_lt(),
                "le" => o.is_le(),
                "gt" => o.is_gt(),
                _ => o.is_ge(),
            }
        }
    };
    Ok(Value::Bool(result))
}
