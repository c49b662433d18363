//! Located messages about input files (the configuration and the policy files).
//!
//! Privacy officers and operators fix files by hand, so every error names the file, the line,
//! the column and what was expected, in the `file:line:col: message` form editors and CI logs
//! understand. Loaders collect all the diagnostics they can instead of stopping at the first.

use std::fmt;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Error,
    Warning,
}

/// One message about one place in one file. Line and column are 1-based; 0 means "the whole
/// file" (for example a file that cannot be read at all).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    pub file: PathBuf,
    pub line: u64,
    pub column: u64,
    pub message: String,
}

impl Diagnostic {
    pub fn error(file: &Path, line: u64, column: u64, message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Error,
            file: file.to_path_buf(),
            line,
            column,
            message: message.into(),
        }
    }

    pub fn warning(file: &Path, line: u64, column: u64, message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Warning,
            ..Self::error(file, line, column, message)
        }
    }

    /// About a whole file (unreadable, missing, a certificate in it expired): no position.
    pub fn file_error(file: &Path, message: impl Into<String>) -> Self {
        Self::error(file, 0, 0, message)
    }

    /// A warning about a whole file.
    pub fn file_warning(file: &Path, message: impl Into<String>) -> Self {
        Self::warning(file, 0, 0, message)
    }

    /// Located at a value that serde-saphyr recorded a position for.
    pub fn at(file: &Path, location: &serde_saphyr::Location, message: impl Into<String>) -> Self {
        Self::error(file, location.line(), location.column(), message)
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let severity = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        if self.line == 0 {
            // About the whole file (unreadable, missing, …): no position to give.
            return write!(f, "{}: {}: {}", self.file.display(), severity, self.message);
        }
        write!(
            f,
            "{}:{}:{}: {}: {}",
            self.file.display(),
            self.line,
            self.column,
            severity,
            self.message
        )
    }
}

/// A non-empty list of diagnostics of which at least one is an error.
#[derive(Debug, Clone)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostics {}

/// Turns a serde-saphyr parse error into a located diagnostic. The library's own message is
/// kept (it says what was expected), but its source snippet is dropped: the snippet could echo
/// a secret or a personal identifier from the file into logs.
pub fn from_yaml_error(file: &Path, error: &serde_saphyr::Error) -> Diagnostic {
    let (line, column) = error
        .location()
        .map(|l| (l.line(), l.column()))
        .unwrap_or((0, 0));
    let text = error.to_string();
    // The rendered form may span several lines (snippet, caret); the first line is the message.
    let first = text.lines().next().unwrap_or("invalid YAML").trim();
    // The library prefixes "error: line L column C: "; the diagnostic carries those already.
    let message = first
        .strip_prefix("error: ")
        .unwrap_or(first)
        .split_once(": ")
        .filter(|(prefix, _)| prefix.starts_with("line "))
        .map_or(first, |(_, rest)| rest)
        .to_string();
    Diagnostic::error(file, line, column, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Sample {
        name: String,
    }

    #[test]
    fn yaml_errors_are_located_without_repeating_the_location() {
        let err = serde_saphyr::from_str::<Sample>("name: a\nnmae: b\n").unwrap_err();
        let d = from_yaml_error(Path::new("f.yaml"), &err);
        assert_eq!((d.line, d.column), (2, 1), "{d}");
        assert!(d.message.contains("nmae"), "{d}");
        assert!(!d.message.contains("line 2"), "{d}");
        assert!(!d.message.starts_with("error"), "{d}");
    }

    #[test]
    fn whole_file_diagnostics_print_without_position() {
        let d = Diagnostic::error(Path::new("f.yaml"), 0, 0, "cannot read");
        assert_eq!(d.to_string(), "f.yaml: error: cannot read");
    }
}
