//! `check`: the syntax of `[[python]]` `code` entries, compiled by the
//! `python3` found on PATH (forkguard itself has no Python parser).

use forkguard_core::plan::{Plan, PyWhat};
use forkguard_core::ConfigError;
use std::io::Write;
use std::process::{Command, Stdio};

/// Compiles every code string read from stdin (NUL-separated) and prints
/// `INDEX<TAB>LINE<TAB>COL<TAB>MESSAGE` for each that does not compile.
const COMPILER: &str = r#"
import sys
for i, src in enumerate(sys.stdin.buffer.read().split(b"\0")[:-1]):
    try:
        compile(src.decode(), "<code>", "exec")
    except SyntaxError as e:
        msg = (e.msg or "invalid syntax").replace("\t", " ").replace("\n", " ")
        print(f"{i}\t{e.lineno or 1}\t{e.offset or 1}\t{msg}")
    except (ValueError, UnicodeError) as e:
        print(f"{i}\t1\t1\t{e}")
"#;

/// What became of the syntax check.
pub enum Outcome {
    /// No `code` entry.
    Nothing,
    /// Every entry compiled, with this interpreter.
    Compiled(usize, String),
    /// No interpreter could be run: the syntax was not checked.
    NotChecked(usize, String),
}

/// Compile each `code` entry; the first that does not compile is a config
/// error at its `code` string.
pub fn check(plan: &Plan) -> Result<Outcome, ConfigError> {
    let codes: Vec<_> = plan
        .python
        .iter()
        .filter_map(|e| match &e.what {
            PyWhat::Code(c) => Some((e, c)),
            PyWhat::Call { .. } => None,
        })
        .collect();
    if codes.is_empty() {
        return Ok(Outcome::Nothing);
    }
    let python = "python3".to_string();
    let child = Command::new(&python)
        .args(["-I", "-S", "-c", COMPILER])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => {
            return Ok(Outcome::NotChecked(
                codes.len(),
                format!("{python}: {}", crate::launch::strip_os(&e)),
            ))
        }
    };
    if let Some(mut stdin) = child.stdin.take() {
        for (_, c) in &codes {
            let _ = stdin.write_all(c.as_bytes());
            let _ = stdin.write_all(b"\0");
        }
    }
    let out = match child.wait_with_output() {
        Ok(o) if o.status.success() => o,
        Ok(o) => {
            let why = String::from_utf8_lossy(&o.stderr);
            let why = why.lines().last().unwrap_or("failed").to_string();
            return Ok(Outcome::NotChecked(codes.len(), format!("{python}: {why}")));
        }
        Err(e) => return Ok(Outcome::NotChecked(codes.len(), format!("{python}: {e}"))),
    };
    let text = String::from_utf8_lossy(&out.stdout);
    if let Some(line) = text.lines().next() {
        let mut f = line.splitn(4, '\t');
        let (i, l, c, msg) = (f.next(), f.next(), f.next(), f.next());
        let entry = i
            .and_then(|i| i.parse::<usize>().ok())
            .and_then(|i| codes.get(i));
        if let Some((e, _)) = entry {
            return Err(ConfigError {
                file: plan.file.clone(),
                line: e.value_loc.line,
                col: e.value_loc.col,
                msg: format!(
                    "code does not compile: {} (line {}, column {} of the code)",
                    msg.unwrap_or("invalid syntax"),
                    l.unwrap_or("1"),
                    c.unwrap_or("1")
                ),
            });
        }
    }
    Ok(Outcome::Compiled(codes.len(), python))
}
