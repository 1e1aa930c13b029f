//! Config text for the tests' configs.

use std::path::Path;

/// `[[call]]` tables for `(phase, symbol)` pairs, in order.
pub fn calls(list: &[(&str, &str)]) -> String {
    let mut s = String::new();
    for (phase, symbol) in list {
        s.push_str(&format!(
            "\n[[call]]\nphase = \"{phase}\"\nsymbol = \"{symbol}\"\n"
        ));
    }
    s
}

/// The usual three calls: fgt_prepare, fgt_parent, fgt_child.
pub fn trace_calls() -> String {
    calls(&[
        ("prepare", "fgt_prepare"),
        ("parent", "fgt_parent"),
        ("child", "fgt_child"),
    ])
}

/// `version = 1` and a `[settings]` table logging (text) to `log`, plus `extra` settings lines.
pub fn header(log: &Path, extra: &str) -> String {
    format!(
        "version = 1\n\n[settings]\nlog = \"{}\"\n{extra}\n",
        log.display()
    )
}
