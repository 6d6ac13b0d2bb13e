//! `~` and `$VAR` expansion for `command`, `working_dir`, `env` values and `volumes`.
//!
//! Rules (decisions.md): `~` or `~/…` at the start of a word is the home directory; `$NAME`,
//! `${NAME}` and `${NAME:-default}` are looked up by the caller (the supervisor passes the
//! daemon's environment plus `PORT` and `SERVICE_NAME`); `$$` is a literal `$`; a `$` that
//! starts no name is kept as is. An undefined variable is an error naming it, never a silent
//! empty string: an empty `DATABASE_URL` is much harder to debug than a refusal to start.
//! [`check`] validates the syntax without looking anything up, for `aurelia check`.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExpandError {
    /// `${` without a closing `}`, or `${}`.
    Syntax(String),
    /// A variable that is not defined and has no default.
    Undefined(String),
}

impl fmt::Display for ExpandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExpandError::Syntax(m) => f.write_str(m),
            ExpandError::Undefined(v) => write!(f, "environment variable `{v}` is not set"),
        }
    }
}

impl std::error::Error for ExpandError {}

fn is_name_start(c: char) -> bool {
    c == '_' || c.is_ascii_alphabetic()
}

fn is_name_char(c: char) -> bool {
    c == '_' || c.is_ascii_alphanumeric()
}

/// Expands `$` references in `s` using `lookup`.
pub fn expand_vars(
    s: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<String, ExpandError> {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if c != '$' {
            out.push(c);
            continue;
        }
        match chars.peek().map(|&(_, c)| c) {
            Some('$') => {
                chars.next();
                out.push('$');
            }
            Some('{') => {
                chars.next();
                let rest = &s[i + 2..];
                let Some(end) = rest.find('}') else {
                    let mut open: String = s[i..].chars().take(40).collect();
                    if open.len() < s.len() - i {
                        open.push('…');
                    }
                    return Err(ExpandError::Syntax(format!("`{open}` has no closing `}}`")));
                };
                let inner = &rest[..end];
                let (name, default) = match inner.find(":-") {
                    Some(p) => (&inner[..p], Some(&inner[p + 2..])),
                    None => (inner, None),
                };
                if name.is_empty()
                    || !name.starts_with(is_name_start)
                    || !name.chars().all(is_name_char)
                {
                    return Err(ExpandError::Syntax(format!(
                        "`${{{inner}}}` is not a valid variable reference (use ${{NAME}} or ${{NAME:-default}})"
                    )));
                }
                match (lookup(name), default) {
                    (Some(v), _) if !(v.is_empty() && default.is_some()) => out.push_str(&v),
                    (_, Some(d)) => out.push_str(&expand_vars(d, lookup)?),
                    (None, None) => return Err(ExpandError::Undefined(name.to_string())),
                    (Some(v), None) => out.push_str(&v),
                }
                // skip the consumed characters
                let consumed_to = i + 2 + end + 1;
                while let Some(&(j, _)) = chars.peek() {
                    if j >= consumed_to {
                        break;
                    }
                    chars.next();
                }
            }
            Some(c) if is_name_start(c) => {
                let start = i + 1;
                let mut end = start;
                while let Some(&(j, c)) = chars.peek() {
                    if !is_name_char(c) {
                        break;
                    }
                    end = j + c.len_utf8();
                    chars.next();
                }
                let name = &s[start..end];
                match lookup(name) {
                    Some(v) => out.push_str(&v),
                    None => return Err(ExpandError::Undefined(name.to_string())),
                }
            }
            _ => out.push('$'),
        }
    }
    Ok(out)
}

/// Checks the syntax of `$` references without resolving them.
pub fn check(s: &str) -> Result<(), ExpandError> {
    expand_vars(s, &|_| Some(String::new())).map(|_| ())
}

/// Expands a leading `~` (alone or followed by `/`) to `home`.
pub fn expand_tilde(s: &str, home: &str) -> String {
    if s == "~" {
        home.to_string()
    } else if let Some(rest) = s.strip_prefix("~/") {
        format!("{}/{rest}", home.trim_end_matches('/'))
    } else {
        s.to_string()
    }
}

/// Tilde then variables: the full expansion for one word or value.
pub fn expand(
    s: &str,
    home: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<String, ExpandError> {
    expand_vars(&expand_tilde(s, home), lookup)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(n: &str) -> Option<String> {
        match n {
            "PORT" => Some("8080".into()),
            "HOME" => Some("/home/u".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn expands_forms() {
        assert_eq!(expand_vars("a$PORT-b", &env).unwrap(), "a8080-b");
        assert_eq!(expand_vars("${PORT}x", &env).unwrap(), "8080x");
        assert_eq!(expand_vars("$$PORT", &env).unwrap(), "$PORT");
        assert_eq!(expand_vars("cost: 5$", &env).unwrap(), "cost: 5$");
        assert_eq!(expand_vars("$1", &env).unwrap(), "$1");
        assert_eq!(expand_vars("${NOPE:-dflt}", &env).unwrap(), "dflt");
        assert_eq!(expand_vars("${EMPTY:-dflt}", &env).unwrap(), "dflt");
        assert_eq!(expand_vars("${NOPE:-$PORT}", &env).unwrap(), "8080");
        assert_eq!(expand_vars("é$PORTé", &env).unwrap(), "é8080é");
    }

    #[test]
    fn errors_name_the_problem() {
        assert_eq!(
            expand_vars("$NOPE", &env),
            Err(ExpandError::Undefined("NOPE".into()))
        );
        assert!(matches!(
            expand_vars("${PORT", &env),
            Err(ExpandError::Syntax(_))
        ));
        assert!(matches!(
            expand_vars("${}", &env),
            Err(ExpandError::Syntax(_))
        ));
        assert!(matches!(
            expand_vars("${1A}", &env),
            Err(ExpandError::Syntax(_))
        ));
    }

    #[test]
    fn tilde() {
        assert_eq!(expand_tilde("~", "/h"), "/h");
        assert_eq!(expand_tilde("~/x", "/h/"), "/h/x");
        assert_eq!(expand_tilde("a/~", "/h"), "a/~");
        assert_eq!(expand_tilde("~user", "/h"), "~user");
    }
}
