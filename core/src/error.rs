//! The one error type: a message that points at `FILE:LINE:COL`.

use std::fmt;

/// A config problem, located in its file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: String,
    /// 1-based line and column; 0 when the problem is the file itself.
    pub line: usize,
    pub col: usize,
    pub msg: String,
}

impl ConfigError {
    /// An error about the file as a whole (unreadable, not a regular file ...).
    pub fn file(file: &str, msg: impl Into<String>) -> Self {
        ConfigError {
            file: file.to_string(),
            line: 0,
            col: 0,
            msg: msg.into(),
        }
    }

    /// An error at byte offset `at` of `text`.
    pub fn at(file: &str, text: &str, at: usize, msg: impl Into<String>) -> Self {
        let (line, col) = line_col(text, at);
        ConfigError {
            file: file.to_string(),
            line,
            col,
            msg: msg.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "forkguard: {}: {}", self.file, self.msg)
        } else {
            write!(
                f,
                "forkguard: {}:{}:{}: {}",
                self.file, self.line, self.col, self.msg
            )
        }
    }
}

impl std::error::Error for ConfigError {}

/// 1-based line and column (in characters) of byte offset `at` in `text`.
pub fn line_col(text: &str, at: usize) -> (usize, usize) {
    let mut at = at.min(text.len());
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    let before = &text[..at];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let col = before[line_start..].chars().count() + 1;
    (line, col)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_col_counts_from_one() {
        let t = "ab\ncd\n";
        assert_eq!(line_col(t, 0), (1, 1));
        assert_eq!(line_col(t, 1), (1, 2));
        assert_eq!(line_col(t, 3), (2, 1));
        assert_eq!(line_col(t, 100), (3, 1));
    }

    #[test]
    fn display_has_location() {
        let e = ConfigError::at("f.toml", "x\ny", 2, "bad");
        assert_eq!(e.to_string(), "forkguard: f.toml:2:1: bad");
        assert_eq!(
            ConfigError::file("f", "gone").to_string(),
            "forkguard: f: gone"
        );
    }
}
