//! `[settings] log_exits = true` (SPEC 8.5, issue 13): each forked child's
//! exit is logged once, with the status the program's own wait call got,
//! and the program's view is unchanged (statuses exact, zombies left for
//! it, SIGCHLD handlers and `waitpid(-1)` loops working). The `exits_fix`
//! fixture (tests/c/exits_fix.c) prints what its own wait calls returned
//! and waits until the log has its exit lines.
//!
//! Run: `cargo build --release -p forkguard && cargo test --release --test exits`.
//! Every run has a deadline (`TIMEOUT`); controls run the same fixture
//! without `log_exits` (no exit line) to show the lines come from it.

mod common;

use common::{Json, JsonExt, Scratch};
use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

const TIMEOUT: Duration = Duration::from_secs(90);

fn exits_fix() -> PathBuf {
    static P: OnceLock<PathBuf> = OnceLock::new();
    P.get_or_init(|| {
        let dir = common::lib().parent().expect("dir").join("exits-fixtures");
        std::fs::create_dir_all(&dir).expect("fixture dir");
        let out = dir.join("exits_fix");
        let tmp = dir.join(format!(".exits_fix.{}.tmp", std::process::id()));
        let o = Command::new("gcc")
            .args(["-O1", "-g", "-Wall", "-Wextra", "-o"])
            .arg(&tmp)
            .arg(common::root().join("tests/c/exits_fix.c"))
            .output()
            .expect("run gcc");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        std::fs::rename(&tmp, &out).expect("rename");
        out
    })
    .clone()
}

/// What a child's exit looked like: exit code or signal, and core dumped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    Code(i32),
    Signal(&'static str, bool),
    Unknown,
}

fn from_status(st: i32) -> End {
    if st & 0x7f == 0 {
        End::Code((st >> 8) & 0xff)
    } else {
        let name = match st & 0x7f {
            6 => "ABRT",
            9 => "KILL",
            11 => "SEGV",
            15 => "TERM",
            _ => "?",
        };
        End::Signal(name, st & 0x80 != 0)
    }
}

struct Run {
    out: common::Outcome,
    /// The program's own view: pid -> status.
    program: HashMap<i64, i32>,
    /// Exit lines: (pid of the logger, child, end, lifetime in seconds).
    exits: Vec<(i64, i64, End, f64)>,
    log: String,
}

impl Run {
    fn dump(&self) -> String {
        format!("{}\n--- log ---\n{}", self.out.dump(), self.log)
    }
}

fn run(s: &Scratch, args: &[&str], settings: &str) -> Run {
    let log = s.path("log");
    let _ = std::fs::remove_file(&log);
    let cfg = s.config(
        "exits.toml",
        &format!(
            "version = 1\n[settings]\nlog = \"{}\"\n{settings}\n",
            log.display()
        ),
    );
    let mut cmd = common::guarded(s, exits_fix(), &cfg);
    cmd.args(args);
    if settings.contains("log_exits = true") {
        cmd.env("FGT_EXITS_LOG", &log);
    }
    let out = common::run(s, cmd, TIMEOUT);
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let mut program = HashMap::new();
    for l in out.stdout.lines() {
        let w: Vec<&str> = l.split_whitespace().collect();
        if let ["child" | "zombie", pid, st] = w.as_slice() {
            let st = i32::from_str_radix(st.trim_start_matches("0x"), 16).unwrap_or(-1);
            program.insert(pid.parse().unwrap_or(-1), st);
        }
    }
    let exits = text.lines().filter_map(parse_exit).collect();
    Run {
        out,
        program,
        exits,
        log: text,
    }
}

/// `forkguard[P] exit C: status N after 1.5s`, `...: signal SEGV (core
/// dumped) after 0.012s`, or the JSON `exit` event.
fn parse_exit(l: &str) -> Option<(i64, i64, End, f64)> {
    if l.starts_with('{') {
        let j = Json::parse(l).ok()?;
        if j.get("event")?.as_str()? != "exit" {
            return None;
        }
        let status = j.get("status")?.as_i64()?;
        let end = match j.get("signal")?.as_str() {
            Some(name) => {
                let core = matches!(j.get("core_dumped"), Some(Json::Bool(true)));
                End::Signal(static_name(name), core)
            }
            None if status >= 0 => End::Code(status as i32),
            None => End::Unknown,
        };
        return Some((
            j.get("pid")?.as_i64()?,
            j.get("child")?.as_i64()?,
            end,
            j.get("lifetime_s")?.as_f64()?,
        ));
    }
    let rest = l.strip_prefix("forkguard[")?;
    let (pid, rest) = rest.split_once("] exit ")?;
    let (child, rest) = rest.split_once(": ")?;
    let (what, life) = rest.rsplit_once(" after ")?;
    let life: f64 = life.strip_suffix('s')?.parse().ok()?;
    let end = if let Some(code) = what.strip_prefix("status ") {
        End::Code(code.parse().ok()?)
    } else if let Some(sig) = what.strip_prefix("signal ") {
        let (name, core) = match sig.strip_suffix(" (core dumped)") {
            Some(n) => (n, true),
            None => (sig, false),
        };
        End::Signal(static_name(name), core)
    } else {
        End::Unknown
    };
    Some((pid.parse().ok()?, child.parse().ok()?, end, life))
}

fn static_name(n: &str) -> &'static str {
    ["ABRT", "KILL", "SEGV", "TERM"]
        .into_iter()
        .find(|k| *k == n)
        .unwrap_or("?")
}

/// Every child the program saw is logged exactly once, with its status.
fn assert_each_once(r: &Run, n: usize) {
    assert_eq!(r.program.len(), n, "the program's own view: {}", r.dump());
    let mut seen: HashMap<i64, usize> = HashMap::new();
    for (_, child, end, _) in &r.exits {
        *seen.entry(*child).or_default() += 1;
        let st = r.program.get(child).unwrap_or_else(|| {
            panic!(
                "exit line for {child}, not a child the program saw: {}",
                r.dump()
            )
        });
        assert_eq!(*end, from_status(*st), "child {child}: {}", r.dump());
    }
    for pid in r.program.keys() {
        assert_eq!(
            seen.get(pid),
            Some(&1),
            "child {pid} logged {:?} times: {}",
            seen.get(pid),
            r.dump()
        );
    }
}

const ON: &str = "log_exits = true";

/// Normal exit, a signal, a core dump, a lifetime: text and JSON.
#[test]
fn exit_status_signal_core_and_lifetime() {
    let s = Scratch::new("exits-basic");
    let r = run(&s, &["basic"], ON);
    assert!(r.out.status.success(), "{}", r.dump());
    assert_each_once(&r, 4);
    let ends: Vec<End> = r.exits.iter().map(|e| e.2).collect();
    assert!(ends.contains(&End::Code(7)), "{}", r.dump());
    assert!(ends.contains(&End::Signal("SEGV", false)), "{}", r.dump());
    assert!(ends.contains(&End::Code(3)), "{}", r.dump());
    // abort() with a core allowed: dumped, unless the machine's
    // core_pattern discards it; either way the log matches the program.
    assert!(
        ends.iter().any(|e| matches!(e, End::Signal("ABRT", _))),
        "{}",
        r.dump()
    );
    let long = r.exits.iter().find(|e| e.2 == End::Code(3)).map(|e| e.3);
    assert!(
        long.is_some_and(|t| (0.29..5.0).contains(&t)),
        "lifetime of the 300 ms child: {}",
        r.dump()
    );
    assert!(
        r.log.lines().any(|l| l.contains(": signal SEGV after ")),
        "SPEC text form: {}",
        r.dump()
    );

    let j = run(&s, &["basic"], &format!("{ON}\nlog_format = \"json\""));
    assert!(j.out.status.success(), "{}", j.dump());
    assert_each_once(&j, 4);
    let line = j
        .log
        .lines()
        .find(|l| l.contains("\"event\":\"exit\"") && l.contains("\"SEGV\""))
        .unwrap_or_else(|| panic!("no SEGV exit event: {}", j.dump()));
    let v = Json::parse(line).expect("json");
    assert_eq!(v.get("status").and_then(Json::as_i64), Some(-1));
    assert!(v.get("ts").and_then(Json::as_f64).is_some());
    let code = j
        .log
        .lines()
        .find(|l| l.contains("\"event\":\"exit\"") && l.contains("\"status\":7"))
        .unwrap_or_else(|| panic!("no status 7 event: {}", j.dump()));
    assert!(code.contains("\"signal\":null"), "{code}");

    // Control: without log_exits there is no exit line.
    let off = run(&s, &["basic"], "");
    assert!(off.out.status.success(), "{}", off.dump());
    assert!(off.exits.is_empty(), "{}", off.dump());
}

/// A program reaping with `waitpid(-1, WNOHANG)` in a SIGCHLD handler gets
/// every child, with its status; each exit is logged once.
#[test]
fn sigchld_handler_with_waitpid_minus_one() {
    let s = Scratch::new("exits-handler");
    let r = run(&s, &["handler", "60"], ON);
    assert!(r.out.status.success(), "{}", r.dump());
    assert_each_once(&r, 60);
}

/// A program that never reaps: its children stay zombies it can still
/// wait for (nothing reaped behind its back), and each exit is logged.
#[test]
fn never_reaped_children_stay_zombies() {
    let s = Scratch::new("exits-never");
    let r = run(&s, &["never", "40"], ON);
    assert!(r.out.status.success(), "{}", r.dump());
    assert!(r.out.stdout.contains("zombies-kept 40"), "{}", r.dump());
    assert_each_once(&r, 40);
}

/// 1,000 short-lived children reaped at once: most are gone before the
/// watcher looks, and still each is logged once with the exact status.
#[test]
fn a_thousand_short_lived_children() {
    let s = Scratch::new("exits-many");
    let t0 = Instant::now();
    let r = run(&s, &["many", "1000"], ON);
    assert!(r.out.status.success(), "{}", r.dump());
    assert_each_once(&r, 1000);
    eprintln!("1000 children with log_exits: {:?}", t0.elapsed());
}

/// `waitid(P_ALL)`, `wait` and `wait4` are seen too.
#[test]
fn waitid_wait_and_wait4() {
    let s = Scratch::new("exits-waitid");
    let r = run(&s, &["waitid", "30"], ON);
    assert!(r.out.status.success(), "{}", r.dump());
    assert_each_once(&r, 30);
}

/// A program that closes every descriptor after the watcher started keeps
/// working (new pipes reuse the numbers), and every exit is still logged.
#[test]
fn close_range_everything_breaks_nothing() {
    let s = Scratch::new("exits-closeall");
    let r = run(&s, &["closeall", "20"], ON);
    assert!(r.out.status.success(), "{}", r.dump());
    assert!(r.out.stdout.contains("pipes-ok"), "{}", r.dump());
    assert_each_once(&r, 21);
}

/// A child that outlives its parent: the parent exits at once (the watcher
/// holds nothing up), and the child's exit is not reported: no process is
/// left to watch it (documented limit).
#[test]
fn a_child_outliving_its_parent() {
    let s = Scratch::new("exits-orphan");
    let r = run(&s, &["orphan"], ON);
    assert!(r.out.status.success(), "{}", r.dump());
    let orphan: i64 = r
        .out
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("orphan "))
        .and_then(|p| p.trim().parse().ok())
        .unwrap_or_else(|| panic!("{}", r.dump()));
    // The orphan sees EOF once its parent is gone and exits.
    assert!(
        common::wait_until(Duration::from_secs(10), || {
            // SAFETY: kill with signal 0 only checks the process exists.
            unsafe { libc::kill(orphan as i32, 0) != 0 }
        }),
        "orphan still alive"
    );
    assert!(r.exits.iter().all(|e| e.1 != orphan), "{}", r.dump());
}

/// With `log_exits` off the library starts no thread: the process has one.
#[test]
fn no_watcher_without_log_exits() {
    let s = Scratch::new("exits-off");
    for (settings, want) in [("", 1), (ON, 2)] {
        let log = s.path("log");
        let cfg = s.config(
            "t.toml",
            &format!(
                "version = 1\n[settings]\nlog = \"{}\"\n{settings}\n",
                log.display()
            ),
        );
        let py = match common::python() {
            Some(p) => p,
            None => return,
        };
        let mut cmd = common::guarded(&s, &py, &cfg);
        cmd.args([
            "-c",
            "import os\npid = os.fork()\nif pid == 0: os._exit(0)\nos.waitpid(pid, 0)\nprint('threads', len(os.listdir('/proc/self/task')))",
        ]);
        let out = common::run(&s, cmd, TIMEOUT);
        assert!(out.status.success(), "{}", out.dump());
        assert!(
            out.stdout.contains(&format!("threads {want}")),
            "{settings:?}: {}",
            out.dump()
        );
    }
}
