//! AFL++ target: any byte string given to the config parser.
//!
//! What must hold (a violation aborts, which AFL records as a crash):
//! - no panic, whatever the input;
//! - every error points inside the input: line 1..=lines+1, column within
//!   that line (one past its end at most), and its text names the file;
//! - a valid config parses to the same plan twice (deterministic), and the
//!   lenient `on_error` reader never panics on it either.

use forkguard_core::{load, Plan};

const FILE: &str = "fuzz.toml";

fn check(text: &str) {
    let _ = load::sniff_on_error(text);
    match Plan::parse(FILE, text) {
        Ok(plan) => {
            let again = Plan::parse(FILE, text).expect("second parse of a valid config failed");
            assert_eq!(plan, again, "plan is not deterministic");
        }
        Err(e) => {
            assert_eq!(e.file, FILE);
            let lines: Vec<&str> = text.split('\n').collect();
            assert!(
                e.line >= 1 && e.line <= lines.len(),
                "error line {} outside the input ({} lines)",
                e.line,
                lines.len()
            );
            let width = lines[e.line - 1].chars().count();
            assert!(
                e.col >= 1 && e.col <= width + 1,
                "error column {} outside line {} ({} chars)",
                e.col,
                e.line,
                width
            );
            assert!(e.to_string().starts_with("forkguard: fuzz.toml:"));
        }
    }
}

fn main() {
    afl::fuzz!(|data: &[u8]| {
        if let Ok(text) = std::str::from_utf8(data) {
            check(text);
        }
    });
}
