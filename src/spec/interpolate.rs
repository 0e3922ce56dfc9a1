//! `${VAR}` and `${VAR:-default}` from the environment in spec strings; `$$` is a literal `$`.
//! Done after parsing, on values only: a variable can never change the YAML's structure, and a
//! comment that mentions `${X}` is not an error.

/// Where variables come from: the process environment in production, a map in tests.
pub type Lookup<'a> = &'a dyn Fn(&str) -> Option<String>;

pub fn interpolate(text: &str, lookup: Lookup) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(dollar) = rest.find('$') {
        out.push_str(&rest[..dollar]);
        let after = &rest[dollar + 1..];
        if let Some(after_escape) = after.strip_prefix('$') {
            out.push('$');
            rest = after_escape;
        } else if let Some(body_and_rest) = after.strip_prefix('{') {
            let close = body_and_rest
                .find('}')
                .ok_or_else(|| format!("`${{` without a closing `}}` in `{text}`"))?;
            let body = &body_and_rest[..close];
            let (name, default) = match body.split_once(":-") {
                Some((name, default)) => (name, Some(default)),
                None => (body, None),
            };
            if !is_variable_name(name) {
                return Err(format!(
                    "`${{{body}}}` is not a variable reference: write ${{NAME}} or ${{NAME:-default}} (use $$ for a literal $)"
                ));
            }
            match (lookup(name), default) {
                (Some(value), _) => out.push_str(&value),
                (None, Some(default)) => out.push_str(default),
                (None, None) => {
                    return Err(format!(
                        "environment variable {name} is not set (write ${{{name}:-default}} to give a default)"
                    ))
                }
            }
            rest = &body_and_rest[close + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

fn is_variable_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        (name == "CI_REGISTRY_IMAGE").then(|| "registry.example.org/lhcb/dirac".to_string())
    }

    #[test]
    fn expands_defaults_and_escapes() {
        assert_eq!(
            interpolate("${CI_REGISTRY_IMAGE}/dirac", &env).unwrap(),
            "registry.example.org/lhcb/dirac/dirac"
        );
        assert_eq!(
            interpolate("${UNSET:-local/dirac}", &env).unwrap(),
            "local/dirac"
        );
        assert_eq!(
            interpolate("cost $$5 and $HOME", &env).unwrap(),
            "cost $5 and $HOME"
        );
    }

    #[test]
    fn errors_name_the_variable() {
        assert!(interpolate("${UNSET}", &env)
            .unwrap_err()
            .contains("UNSET is not set"));
        assert!(interpolate("${UNCLOSED", &env)
            .unwrap_err()
            .contains("closing"));
        assert!(interpolate("${1BAD}", &env)
            .unwrap_err()
            .contains("not a variable"));
    }
}
