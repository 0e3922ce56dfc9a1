//! `{placeholder}` templates in the spec (`"{name}-{version}/"`), filled from the release.
//! Distinct from `${VAR}` environment interpolation, which happens when the spec is loaded.

/// The placeholders a release can fill, in the order the docs list them.
pub const PLACEHOLDERS: [&str; 6] = ["name", "version", "tag", "major", "minor", "patch"];

/// Checks a template without filling it: every `{...}` must be a known placeholder.
pub fn check(template: &str) -> Result<(), String> {
    check_with(template, &[])
}

/// Like [`check`], where `extra` placeholders are known too.
pub fn check_with(template: &str, extra: &[&str]) -> Result<(), String> {
    render(template, &|name| {
        (PLACEHOLDERS.contains(&name) || extra.contains(&name)).then(String::new)
    })
    .map(|_| ())
}

/// Fills a template; `{{` and `}}` are literal braces.
pub fn render(template: &str, value_of: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(template.len() + 16);
    let mut rest = template;
    while let Some(open) = rest.find(['{', '}']) {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        if rest[open..].starts_with("{{") || rest[open..].starts_with("}}") {
            out.push_str(&rest[open..open + 1]);
            rest = &after[1..];
            continue;
        }
        if rest.as_bytes()[open] == b'}' {
            return Err(format!(
                "unmatched `}}` in `{template}` (write `}}}}` for a literal brace)"
            ));
        }
        let close = after
            .find('}')
            .ok_or_else(|| format!("unclosed `{{` in `{template}`"))?;
        let name = &after[..close];
        let value = value_of(name).ok_or_else(|| {
            format!(
                "unknown placeholder `{{{name}}}` in `{template}`; known: {}",
                PLACEHOLDERS.map(|p| format!("{{{p}}}")).join(", ")
            )
        })?;
        out.push_str(&value);
        rest = &after[close + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fills_and_checks() {
        let values = |n: &str| match n {
            "name" => Some("dirac".to_string()),
            "version" => Some("8.2.44".to_string()),
            _ => None,
        };
        assert_eq!(
            render("{name}-{version}/", &values).unwrap(),
            "dirac-8.2.44/"
        );
        assert_eq!(render("{{literal}}", &values).unwrap(), "{literal}");
        assert!(check("{name}-{verison}")
            .unwrap_err()
            .contains("unknown placeholder `{verison}`"));
        assert!(check("{name").unwrap_err().contains("unclosed"));
        assert!(check("{major}.{minor}.{patch}-{tag}").is_ok());
    }
}
