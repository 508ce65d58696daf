//! Nix literals for inventory values, and the rnix parse check every generated `.nix` passes
//! before it is written.

/// A Nix double-quoted string literal whose value is exactly `s`.
///
/// Escapes `\`, `"`, newlines, carriage returns, tabs, and every `$` (so neither `${` nor
/// `$${` can start an interpolation). Nix strings cannot hold NUL; validation keeps NUL out.
pub fn string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '$' => out.push_str("\\$"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `[ "a" "b" ]`
pub fn string_list<S: AsRef<str>>(items: &[S]) -> String {
    if items.is_empty() {
        return "[ ]".into();
    }
    let inner: Vec<String> = items.iter().map(|s| string(s.as_ref())).collect();
    format!("[ {} ]", inner.join(" "))
}

/// Parse with rnix; an error here is a template bug, never the operator's fault.
pub fn check_parses(template: &str, text: &str) -> Result<(), crate::render::RenderError> {
    let parse = rnix::Root::parse(text);
    let errors = parse.errors();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(crate::render::RenderError::NixParse {
            template: template.to_string(),
            errors: errors
                .iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("; "),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_interpolation_and_quotes() {
        assert_eq!(string("a\"b"), r#""a\"b""#);
        assert_eq!(string("${x}"), r#""\${x}""#);
        assert_eq!(string("$${x}"), r#""\$\${x}""#);
        assert_eq!(string("back\\slash\n"), r#""back\\slash\n""#);
        assert_eq!(string_list(&["a", "b"]), r#"[ "a" "b" ]"#);
    }

    #[test]
    fn parse_check_rejects_broken_nix() {
        assert!(check_parses("t", "{ a = 1; }").is_ok());
        let err = check_parses("broken.nix", "{ a = ; }").unwrap_err();
        assert!(err.to_string().contains("broken.nix"), "{err}");
    }
}
