//! Located problems in spec files.
//!
//! A [`Diagnostic`] is one problem at one place: line, column, the dotted key it concerns
//! (`health.interval`), what is wrong, and where it helps, what to do. Loading never stops at
//! the first problem; callers get the whole list, so `aurelia check` can report everything
//! in one pass.

use serde::Serialize;

use crate::yaml::Pos;

/// One problem in a spec file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    /// 1-based line; 0 when the problem concerns the whole file (unreadable, too large).
    pub line: usize,
    /// 1-based column; 0 when the problem concerns the whole file.
    pub col: usize,
    /// The dotted key the problem concerns, e.g. `health.interval`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

impl Diagnostic {
    /// A problem at a position.
    pub fn at(pos: Pos, message: String) -> Diagnostic {
        Diagnostic {
            line: pos.line,
            col: pos.col,
            key: None,
            message,
            hint: None,
        }
    }

    /// A problem with the file as a whole (no position).
    pub fn file(message: String) -> Diagnostic {
        Diagnostic {
            line: 0,
            col: 0,
            key: None,
            message,
            hint: None,
        }
    }

    /// Sets the key; an empty key (the file as a whole) leaves it unset, so nothing renders
    /// as `file:1:1: : message`.
    pub fn key(mut self, key: &str) -> Diagnostic {
        self.key = (!key.is_empty()).then(|| key.to_string());
        self
    }

    pub fn hint(mut self, hint: impl Into<String>) -> Diagnostic {
        self.hint = Some(hint.into());
        self
    }

    /// Formats the diagnostic as `file:line:col: key: message (hint: ...)`.
    pub fn render(&self, file: &std::path::Path) -> String {
        let mut s = if self.line > 0 {
            format!("{}:{}:{}: ", file.display(), self.line, self.col)
        } else {
            format!("{}: ", file.display())
        };
        if let Some(k) = &self.key {
            s.push_str(k);
            s.push_str(": ");
        }
        s.push_str(&self.message);
        if let Some(h) = &self.hint {
            s.push_str(" (hint: ");
            s.push_str(h);
            s.push(')');
        }
        s
    }
}
