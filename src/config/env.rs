//! `${env:VAR}` and `${env:VAR:-default}` expansion, as the OpenTelemetry
//! Collector's config providers do. `$$` stands for a literal `$`.
//!
//! Expansion happens on the text before YAML parsing so that parse errors keep
//! pointing at the user's line numbers (values never span lines). Comments
//! are left alone, as the Collector does: a comment that mentions
//! `${env:VAR}` must not require VAR to be set.

/// Why expansion failed, and on which line.
#[derive(Debug)]
pub struct EnvError {
    pub line: usize,
    pub message: String,
}

/// Expands variables; an unset variable without a default is an error (a
/// silently empty endpoint or project id is worse than a refusal to start).
pub fn expand_env(text: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<String, EnvError> {
    let mut out = String::with_capacity(text.len());
    for (index, line) in text.split_inclusive('\n').enumerate() {
        expand_line(line, lookup, &mut out).map_err(|message| EnvError {
            line: index + 1,
            message,
        })?;
    }
    Ok(out)
}

fn expand_line(
    line: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
    out: &mut String,
) -> Result<(), String> {
    let (code, comment) = line.split_at(comment_start(line));
    let mut rest = code;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        if let Some(stripped) = after.strip_prefix('$') {
            out.push('$');
            rest = stripped;
        } else if let Some(body) = after.strip_prefix('{') {
            let end = body
                .find('}')
                .ok_or_else(|| "unterminated ${...} reference".to_string())?;
            let reference = &body[..end];
            let Some(spec) = reference.strip_prefix("env:") else {
                return Err(format!(
                    "unsupported reference ${{{reference}}}: only ${{env:VAR}} is supported"
                ));
            };
            let (name, default) = match spec.split_once(":-") {
                Some((name, default)) => (name, Some(default)),
                None => (spec, None),
            };
            if name.is_empty()
                || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                || name.starts_with(|c: char| c.is_ascii_digit())
            {
                return Err(format!("invalid environment variable name {name:?}"));
            }
            match (lookup(name), default) {
                (Some(value), _) => out.push_str(&value),
                (None, Some(default)) => out.push_str(default),
                (None, None) => {
                    return Err(format!(
                        "environment variable {name} is not set (use ${{env:{name}:-default}} for a fallback)"
                    ))
                }
            }
            rest = &body[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out.push_str(comment);
    Ok(())
}

/// Byte offset of a YAML comment (`#` at the start or after whitespace,
/// outside quotes), or the line's length when it has none.
fn comment_start(line: &str) -> usize {
    let mut quote: Option<u8> = None;
    let mut previous = b' ';
    for (i, &b) in line.as_bytes().iter().enumerate() {
        match quote {
            Some(q) if b == q => quote = None,
            Some(_) => {}
            None if b == b'"' || b == b'\'' => quote = Some(b),
            None if b == b'#' && (previous == b' ' || previous == b'\t') => return i,
            None => {}
        }
        previous = b;
    }
    line.len()
}
