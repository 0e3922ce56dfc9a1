//! Decoding a JSON5 object the way ContainerPilot's mapstructure decoder does: keys match
//! case-insensitively (an exact match first), unknown keys are errors, and scalars convert
//! weakly (a number where a string is expected and back, `"true"` for a bool), while a bare
//! string is not lifted into a list.
//!
//! Hand-written: serde's derive is strict about types and case, and these rules are
//! mapstructure's, which no Rust crate reproduces.

use serde_json::Value;

/// One decoding or validation problem, at a path such as `jobs[1].health.interval`.
#[derive(Debug, Clone, PartialEq)]
pub struct Issue {
    pub path: String,
    pub message: String,
}

impl Issue {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Issue {
        Issue {
            path: path.into(),
            message: message.into(),
        }
    }
}

/// The keys of one object, taken one by one; what is left over is unknown.
pub struct Obj<'a> {
    pub path: String,
    entries: Vec<(&'a str, &'a Value, bool)>,
}

impl<'a> Obj<'a> {
    /// `value` as an object at `path`; `null` is an empty one (mapstructure skips nil).
    pub fn new(path: impl Into<String>, value: &'a Value) -> Result<Obj<'a>, Issue> {
        let path = path.into();
        match value {
            Value::Object(map) => Ok(Obj {
                path,
                entries: map.iter().map(|(k, v)| (k.as_str(), v, false)).collect(),
            }),
            Value::Null => Ok(Obj {
                path,
                entries: Vec::new(),
            }),
            other => Err(Issue::new(
                path,
                format!("expected an object, got {}", kind(other)),
            )),
        }
    }

    pub fn issue(&self, key: &str, message: impl Into<String>) -> Issue {
        Issue::new(join(&self.path, key), message.into())
    }

    /// The value of `key`, matched exactly first and then ignoring case; `null` is absent.
    pub fn take(&mut self, key: &str) -> Option<&'a Value> {
        let index = self
            .entries
            .iter()
            .position(|(k, _, used)| !used && *k == key)
            .or_else(|| {
                self.entries
                    .iter()
                    .position(|(k, _, used)| !used && k.eq_ignore_ascii_case(key))
            })?;
        self.entries[index].2 = true;
        Some(self.entries[index].1).filter(|v| !v.is_null())
    }

    pub fn string(&mut self, key: &str) -> Result<Option<String>, Issue> {
        match self.take(key) {
            None => Ok(None),
            Some(v) => weak_string(v)
                .map(Some)
                .ok_or_else(|| self.issue(key, format!("expected a string, got {}", kind(v)))),
        }
    }

    pub fn int(&mut self, key: &str) -> Result<Option<i64>, Issue> {
        match self.take(key) {
            None => Ok(None),
            Some(v) => weak_int(v)
                .map(Some)
                .ok_or_else(|| self.issue(key, format!("expected an int, got {}", show(v)))),
        }
    }

    pub fn bool(&mut self, key: &str) -> Result<Option<bool>, Issue> {
        match self.take(key) {
            None => Ok(None),
            Some(v) => weak_bool(v)
                .map(Some)
                .ok_or_else(|| self.issue(key, format!("expected a bool, got {}", show(v)))),
        }
    }

    /// A list of strings; a bare string is refused, as mapstructure does.
    pub fn strings(&mut self, key: &str) -> Result<Option<Vec<String>>, Issue> {
        match self.take(key) {
            None => Ok(None),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| {
                    weak_string(v).ok_or_else(|| {
                        self.issue(key, format!("expected strings, got {}", kind(v)))
                    })
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            Some(v) => Err(self.issue(key, format!("expected a list, got {}", kind(v)))),
        }
    }

    pub fn object(&mut self, key: &str) -> Result<Option<Obj<'a>>, Issue> {
        let path = join(&self.path, key);
        self.take(key).map(|v| Obj::new(path, v)).transpose()
    }

    /// A list of objects, each with its index in the path.
    pub fn objects(&mut self, key: &str) -> Result<Vec<Obj<'a>>, Issue> {
        let path = join(&self.path, key);
        match self.take(key) {
            None => Ok(Vec::new()),
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(i, v)| Obj::new(format!("{path}[{i}]"), v))
                .collect(),
            Some(v) => Err(Issue::new(
                path,
                format!("expected a list, got {}", kind(v)),
            )),
        }
    }

    /// Every key not taken is unknown.
    pub fn finish(self) -> Result<(), Issue> {
        let unknown: Vec<&str> = self
            .entries
            .iter()
            .filter(|(_, _, used)| !used)
            .map(|(k, _, _)| *k)
            .collect();
        if unknown.is_empty() {
            Ok(())
        } else {
            Err(Issue::new(
                self.path.clone(),
                format!("unknown keys: {}", unknown.join(", ")),
            ))
        }
    }
}

/// Decodes each item of the top-level list `key` (ContainerPilot ignores a value that is not
/// a list there), collecting every item's problem.
pub fn each_item<T>(
    key: &str,
    value: &Value,
    decode: impl Fn(&str, &Value) -> Result<T, Issue>,
) -> Result<Vec<T>, Vec<Issue>> {
    let items = value.as_array().map(Vec::as_slice).unwrap_or_default();
    let (mut decoded, mut issues) = (Vec::new(), Vec::new());
    for (i, item) in items.iter().enumerate() {
        match decode(&format!("{key}[{i}]"), item) {
            Ok(one) => decoded.push(one),
            Err(issue) => issues.push(issue),
        }
    }
    if issues.is_empty() {
        Ok(decoded)
    } else {
        Err(issues)
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

pub fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a bool",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

fn show(value: &Value) -> String {
    match value {
        Value::String(s) => format!("{s:?}"),
        Value::Number(n) => n.to_string(),
        other => kind(other).into(),
    }
}

/// mapstructure's weak string: numbers in base 10, bools as "1"/"0".
pub fn weak_string(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(if *b { "1" } else { "0" }.into()),
        Value::Number(n) => Some(match n.as_f64() {
            Some(f) if f.fract() == 0.0 && f.abs() < 1e21 => format!("{}", f as i64),
            _ => n.to_string(),
        }),
        _ => None,
    }
}

/// mapstructure's weak int: floats truncate, bools are 1/0, strings parse as Go's
/// `strconv.ParseInt(s, 0, 64)` (so `0x10` and `010` are 16 and 8).
pub fn weak_int(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
        Value::Bool(b) => Some(i64::from(*b)),
        Value::String(s) => go_parse_int(s),
        _ => None,
    }
}

fn go_parse_int(text: &str) -> Option<i64> {
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let lower = digits.to_ascii_lowercase();
    let (radix, body) = if let Some(b) = lower.strip_prefix("0x") {
        (16, b.to_string())
    } else if let Some(b) = lower.strip_prefix("0o") {
        (8, b.to_string())
    } else if let Some(b) = lower.strip_prefix("0b") {
        (2, b.to_string())
    } else if lower.len() > 1 && lower.starts_with('0') {
        (8, lower[1..].to_string())
    } else {
        (10, lower)
    };
    if body.is_empty() || body.starts_with(['+', '-']) {
        return None;
    }
    let n = i64::from_str_radix(&body, radix).ok()?;
    Some(if negative { -n } else { n })
}

/// mapstructure's weak bool: numbers are true when not zero, strings as Go's
/// `strconv.ParseBool`.
pub fn weak_bool(value: &Value) -> Option<bool> {
    match value {
        Value::Bool(b) => Some(*b),
        Value::Number(n) => n.as_f64().map(|f| f != 0.0),
        Value::String(s) => match s.as_str() {
            "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
            "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

/// ContainerPilot's timeout parsing: a bare integer is seconds, anything else is a Go
/// duration (`300ms`, `1m30s`). Negative values parse; the callers bound them.
pub fn go_duration(text: &str) -> Option<std::time::Duration> {
    go_duration_nanos(text).map(|n| std::time::Duration::from_nanos(n.max(0) as u64))
}

/// Signed nanoseconds of a timeout string, as above.
pub fn go_duration_nanos(text: &str) -> Option<i128> {
    if let Ok(seconds) = text.parse::<i64>() {
        return Some(i128::from(seconds) * 1_000_000_000);
    }
    let (negative, mut rest) = match text.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    if rest == "0" {
        return Some(0);
    }
    if rest.is_empty() {
        return None;
    }
    let mut total: f64 = 0.0;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number: f64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let units: [(&str, f64); 8] = [
            ("ns", 1.0),
            ("us", 1e3),
            ("µs", 1e3),
            ("μs", 1e3),
            ("ms", 1e6),
            ("s", 1e9),
            ("m", 60e9),
            ("h", 3600e9),
        ];
        // Longest unit first, so `ms` is not read as `m`.
        let (unit, scale) = units
            .iter()
            .filter(|(u, _)| rest.starts_with(u))
            .max_by_key(|(u, _)| u.len())?;
        rest = &rest[unit.len()..];
        total += number * scale;
    }
    let nanos = total as i128;
    Some(if negative { -nanos } else { nanos })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keys_match_ignoring_case_exact_first() {
        let value = json!({"Port": 1, "port": 2, "NAME": "x"});
        let mut obj = Obj::new("", &value).unwrap();
        assert_eq!(obj.int("port").unwrap(), Some(2));
        assert_eq!(obj.string("name").unwrap(), Some("x".into()));
        let err = obj.finish().unwrap_err();
        assert_eq!(err.message, "unknown keys: Port");
    }

    #[test]
    fn weak_typing() {
        assert_eq!(weak_int(&json!("0x10")), Some(16));
        assert_eq!(weak_int(&json!("010")), Some(8));
        assert_eq!(weak_int(&json!(2.9)), Some(2));
        assert_eq!(weak_int(&json!("10s")), None);
        assert_eq!(weak_string(&json!(10)), Some("10".into()));
        assert_eq!(weak_string(&json!(true)), Some("1".into()));
        assert_eq!(weak_bool(&json!("T")), Some(true));
        assert_eq!(weak_bool(&json!("yes")), None);
    }

    #[test]
    fn durations() {
        let ms = |t: &str| go_duration(t).map(|d| d.as_millis());
        assert_eq!(ms("10"), Some(10_000));
        assert_eq!(ms("1m30s"), Some(90_000));
        assert_eq!(ms("500ms"), Some(500));
        assert_eq!(ms("1.5h"), Some(5_400_000));
        assert_eq!(ms("10sec"), None);
        assert_eq!(ms(""), None);
        assert_eq!(ms("1d"), None);
    }
}
