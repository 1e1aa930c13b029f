//! forkguard's text log (SPEC §5): `fork` and `child` lines parsed into
//! phase summaries.

use std::fs;
use std::path::Path;

/// One phase's summary: `prepare 3 ok, 1 failed (lock x: ETIMEDOUT) 4.1us`.
#[derive(Debug, Clone, PartialEq)]
pub struct PhaseSummary {
    pub name: String,
    pub ok: u32,
    pub failed: u32,
    pub detail: Option<String>,
    pub time: String,
}

#[derive(Debug, Clone, PartialEq)]
pub enum LogLine {
    /// `forkguard[PID] fork -> CHILD [(ERRNO)] via VIA: PHASE, PHASE`
    Fork {
        pid: i64,
        child: i64,
        errno: Option<String>,
        via: String,
        phases: Vec<PhaseSummary>,
    },
    /// `forkguard[PID] child of PARENT: N ok[, K failed (...)] T`
    Child {
        pid: i64,
        parent: i64,
        summary: PhaseSummary,
    },
    /// Any other line (config errors and so on).
    Other(String),
}

/// Parse `[NAME ]N ok[, K failed (DETAIL)] TIME`.
fn parse_summary(s: &str, with_name: bool) -> Option<PhaseSummary> {
    let s = s.trim();
    let (name, rest) = if with_name {
        s.split_once(' ')?
    } else {
        ("", s)
    };
    let (ok, rest) = rest.split_once(" ok")?;
    let ok: u32 = ok.trim().parse().ok()?;
    let mut rest = rest.trim_start();
    let (mut failed, mut detail) = (0, None);
    if let Some(r) = rest.strip_prefix(',') {
        let r = r.trim_start();
        let (k, r) = r.split_once(" failed")?;
        failed = k.trim().parse().ok()?;
        let r = r.trim_start();
        if let Some(r) = r.strip_prefix('(') {
            // The detail may itself contain parentheses: match them.
            let mut depth = 1;
            let mut end = None;
            for (i, c) in r.char_indices() {
                match c {
                    '(' => depth += 1,
                    ')' => {
                        depth -= 1;
                        if depth == 0 {
                            end = Some(i);
                            break;
                        }
                    }
                    _ => {}
                }
            }
            let end = end?;
            detail = Some(r[..end].to_string());
            rest = r[end + 1..].trim_start();
        } else {
            rest = r;
        }
    }
    let time = rest.trim().to_string();
    if !is_duration(&time) {
        return None;
    }
    Some(PhaseSummary {
        name: name.to_string(),
        ok,
        failed,
        detail,
        time,
    })
}

/// `4.1us`, `12ns`, `3.0ms`, `1.2s`.
fn is_duration(t: &str) -> bool {
    let num_end = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    num_end > 0
        && t[..num_end].parse::<f64>().is_ok()
        && matches!(&t[num_end..], "ns" | "us" | "µs" | "ms" | "s")
}

/// Split a comma-separated list of phase summaries, ignoring commas inside
/// parentheses (failure details).
fn split_phases(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut depth = 0i32;
    let mut cur = String::new();
    for c in s.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            _ => {}
        }
        cur.push(c);
        // A summary ends at its duration: "... 4.1us" followed by ", ".
        if depth == 0 && c == ',' {
            let before = cur[..cur.len() - 1].trim_end();
            if before.rsplit(' ').next().is_some_and(is_duration) {
                cur.pop();
                out.push(cur.trim().to_string());
                cur.clear();
            }
        }
    }
    if !cur.trim().is_empty() {
        out.push(cur.trim().to_string());
    }
    out
}

pub fn parse_log_line(line: &str) -> LogLine {
    let other = || LogLine::Other(line.to_string());
    let Some(rest) = line.strip_prefix("forkguard[") else {
        return other();
    };
    let Some((pid, rest)) = rest.split_once("] ") else {
        return other();
    };
    let Ok(pid) = pid.parse::<i64>() else {
        return other();
    };
    if let Some(rest) = rest.strip_prefix("fork -> ") {
        let Some((head, phases)) = rest.split_once(": ") else {
            return other();
        };
        let Some((left, via)) = head.split_once(" via ") else {
            return other();
        };
        let (child, errno) = match left.split_once(' ') {
            Some((c, e)) => (
                c,
                Some(e.trim_matches(|c| c == '(' || c == ')').to_string()),
            ),
            None => (left, None),
        };
        let Ok(child) = child.parse::<i64>() else {
            return other();
        };
        let mut ps = Vec::new();
        for p in split_phases(phases) {
            match parse_summary(&p, true) {
                Some(s) => ps.push(s),
                None => return other(),
            }
        }
        return LogLine::Fork {
            pid,
            child,
            errno,
            via: via.to_string(),
            phases: ps,
        };
    }
    if let Some(rest) = rest.strip_prefix("child of ") {
        let Some((parent, summary)) = rest.split_once(": ") else {
            return other();
        };
        let Ok(parent) = parent.parse::<i64>() else {
            return other();
        };
        let Some(summary) = parse_summary(summary, false) else {
            return other();
        };
        return LogLine::Child {
            pid,
            parent,
            summary,
        };
    }
    other()
}

/// `forkguard[PID] fork ...` or `forkguard[PID] child ...`.
fn is_fork_or_child_event(line: &str) -> bool {
    let Some(rest) = line.strip_prefix("forkguard[") else {
        return false;
    };
    let Some((_, rest)) = rest.split_once("] ") else {
        return false;
    };
    rest.starts_with("fork") || rest.starts_with("child")
}

/// A parsed text log.
#[derive(Debug, Default)]
pub struct Log {
    pub lines: Vec<LogLine>,
    pub raw: String,
}

impl Log {
    pub fn parse(text: &str) -> Log {
        Log {
            lines: text.lines().map(parse_log_line).collect(),
            raw: text.to_string(),
        }
    }

    pub fn read(p: &Path) -> Log {
        Log::parse(&fs::read_to_string(p).unwrap_or_default())
    }

    /// Only the lines that start with `forkguard[` (e.g. from a stderr mixed
    /// with a program's own output).
    pub fn parse_forkguard_lines(text: &str) -> Log {
        let kept: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("forkguard["))
            .collect();
        Log::parse(&(kept.join("\n") + "\n"))
    }

    pub fn forks(&self) -> Vec<&LogLine> {
        self.lines
            .iter()
            .filter(|l| matches!(l, LogLine::Fork { .. }))
            .collect()
    }

    pub fn children(&self) -> Vec<&LogLine> {
        self.lines
            .iter()
            .filter(|l| matches!(l, LogLine::Child { .. }))
            .collect()
    }

    /// Fork and child event lines that did not parse. Other events (a
    /// `config` line, errors) have no fixed text form and are not checked.
    pub fn unparsed(&self) -> Vec<&str> {
        self.lines
            .iter()
            .filter_map(|l| match l {
                LogLine::Other(s) if is_fork_or_child_event(s) => Some(s.as_str()),
                _ => None,
            })
            .collect()
    }

    /// Asserts every `forkguard[` line parsed.
    pub fn assert_all_parse(&self) {
        let bad = self.unparsed();
        assert!(
            bad.is_empty(),
            "log lines that do not follow SPEC §5:\n{}\n--- whole log ---\n{}",
            bad.join("\n"),
            self.raw
        );
    }
}

/// A phase summary by name from a `Fork` line.
pub fn phase<'a>(line: &'a LogLine, name: &str) -> Option<&'a PhaseSummary> {
    match line {
        LogLine::Fork { phases, .. } => phases.iter().find(|p| p.name == name),
        _ => None,
    }
}
