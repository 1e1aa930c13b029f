//! Shared helpers for forkguard's integration tests.
//!
//! The root package is a cdylib, so these tests cannot link it: they load
//! the real `libforkguard.so` into real processes (C fixtures compiled from
//! `tests/c`, Python, bash) and read what those processes report.
//!
//! Every process is started in its own process group and waited for with a
//! deadline; on timeout the whole group is killed and the test fails, so a
//! deadlock is a failure, never a hang.

#![allow(dead_code)]

use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Default deadline for one fixture run.
pub const TIMEOUT: Duration = Duration::from_secs(30);

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(d) => {
            let d = PathBuf::from(d);
            if d.is_absolute() {
                d
            } else {
                root().join(d)
            }
        }
        None => root().join("target"),
    }
}

/// The preload library under test: `$FORKGUARD_LIB`, else
/// `target/release/libforkguard.so`. Panics with a clear message if missing.
pub fn lib() -> PathBuf {
    static LIB: OnceLock<PathBuf> = OnceLock::new();
    LIB.get_or_init(|| {
        let p = match std::env::var_os("FORKGUARD_LIB") {
            Some(p) if !p.is_empty() => PathBuf::from(p),
            _ => target_dir().join("release/libforkguard.so"),
        };
        assert!(
            p.is_file(),
            "forkguard library not found at {}: run `cargo build --release --workspace` \
             first, or point FORKGUARD_LIB at the built libforkguard.so",
            p.display()
        );
        fs::canonicalize(&p).expect("canonicalize library path")
    })
    .clone()
}

/// The `forkguard` command, next to the library.
pub fn cli() -> PathBuf {
    lib().with_file_name("forkguard")
}

// ---------------------------------------------------------------------------
// C fixtures

/// Executables built from `tests/c/NAME.c`.
const PROGRAMS: &[&str] = &["forker", "childcheck", "pdeath", "handshake", "allocfix"];
/// Shared objects built from `tests/c/NAME.c`.
const LIBRARIES: &[&str] = &["alloccount"];

fn compile(out_dir: &Path, name: &str, shared: bool) -> PathBuf {
    let src = root().join("tests/c").join(format!("{name}.c"));
    let out = if shared {
        out_dir.join(format!("lib{name}.so"))
    } else {
        out_dir.join(name)
    };
    // Build next to the final name, then rename: test binaries (or a second
    // checkout sharing the target dir) never see a half-written file.
    let tmp = out_dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let mut cmd = Command::new("gcc");
    cmd.args([
        "-O1",
        "-g",
        "-Wall",
        "-Wextra",
        "-Wno-unused-parameter",
        "-pthread",
    ]);
    if shared {
        cmd.args(["-shared", "-fPIC"]);
    } else {
        cmd.arg("-rdynamic");
    }
    cmd.arg("-I").arg(root().join("tests/c"));
    // No -lutil: forkpty is in libc since glibc 2.34.
    cmd.arg("-o").arg(&tmp).arg(&src);
    let out_put = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run gcc (install gcc): {e}"));
    assert!(
        out_put.status.success(),
        "gcc failed for {}:\n{}",
        src.display(),
        String::from_utf8_lossy(&out_put.stderr)
    );
    fs::rename(&tmp, &out).expect("rename fixture");
    out
}

fn fixtures() -> &'static HashMap<&'static str, PathBuf> {
    static BUILT: OnceLock<HashMap<&'static str, PathBuf>> = OnceLock::new();
    BUILT.get_or_init(|| {
        let dir = target_dir().join("fixtures");
        fs::create_dir_all(&dir).expect("create target/fixtures");
        let mut m = HashMap::new();
        for &p in PROGRAMS {
            m.insert(p, compile(&dir, p, false));
        }
        for &l in LIBRARIES {
            m.insert(l, compile(&dir, l, true));
        }
        m
    })
}

/// Path of a compiled C fixture (program or `lib*.so`), built once per test binary.
pub fn fixture(name: &str) -> PathBuf {
    fixtures()
        .get(name)
        .unwrap_or_else(|| panic!("no fixture named {name}"))
        .clone()
}

// ---------------------------------------------------------------------------
// Scratch directories

/// A fresh directory under the system temp dir, removed on drop (kept when
/// `FGT_KEEP=1`, for debugging).
pub struct Scratch {
    pub dir: PathBuf,
    runs: AtomicU32,
}

impl Scratch {
    pub fn new(tag: &str) -> Scratch {
        static N: AtomicU32 = AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("fgt-{tag}-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("create scratch dir");
        Scratch {
            dir,
            runs: AtomicU32::new(0),
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Write a config file with mode 0644 (forkguard refuses group- or
    /// world-writable ones).
    pub fn config(&self, name: &str, text: &str) -> PathBuf {
        let p = self.path(name);
        write_mode(&p, text, 0o644);
        p
    }

    /// The trace file fixtures write to (`$FGT_TRACE`).
    pub fn trace_path(&self) -> PathBuf {
        self.path("trace")
    }

    /// Lines of the trace file, parsed (empty when it does not exist).
    pub fn trace(&self) -> Trace {
        Trace::read(&self.trace_path())
    }

    /// Remove the trace file (between runs in one scratch dir).
    pub fn reset_trace(&self) {
        let _ = fs::remove_file(self.trace_path());
    }

    fn next_run(&self) -> u32 {
        self.runs.fetch_add(1, Ordering::Relaxed)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if std::env::var_os("FGT_KEEP").is_none() {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

/// Write `text` to `p` with exactly `mode` (umask does not apply).
pub fn write_mode(p: &Path, text: &str, mode: u32) {
    let _ = fs::remove_file(p);
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(p)
        .unwrap_or_else(|e| panic!("create {}: {e}", p.display()));
    f.write_all(text.as_bytes()).expect("write file");
    fs::set_permissions(p, fs::Permissions::from_mode(mode)).expect("chmod");
}

// ---------------------------------------------------------------------------
// Running processes

/// A finished run.
#[derive(Debug)]
pub struct Outcome {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
    pub cmdline: String,
}

impl Outcome {
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    /// Panics (with everything the process printed) unless it exited 0.
    pub fn assert_success(&self) -> &Self {
        assert!(
            self.status.success(),
            "{} failed: {:?}\n{}",
            self.cmdline,
            self.status,
            self.dump()
        );
        self
    }

    /// Panics when forkguard reported a config problem on stderr (a rejected
    /// config runs unguarded, which would make many checks pass vacuously).
    pub fn assert_config_accepted(&self) -> &Self {
        let errs: Vec<&str> = self
            .stderr
            .lines()
            .filter(|l| l.starts_with("forkguard:"))
            .collect();
        assert!(
            errs.is_empty(),
            "forkguard rejected the config:\n{}\n{}",
            errs.join("\n"),
            self.dump()
        );
        self
    }

    pub fn dump(&self) -> String {
        format!(
            "--- stdout ---\n{}--- stderr ---\n{}--------------",
            self.stdout, self.stderr
        )
    }

    /// `key=value` pairs printed on stdout lines starting with `prefix`
    /// (`""` for every line).
    pub fn kv(&self, prefix: &str) -> HashMap<String, String> {
        let mut m = HashMap::new();
        for line in self.stdout.lines().filter(|l| l.starts_with(prefix)) {
            for word in line[prefix.len()..].split_whitespace() {
                if let Some((k, v)) = word.split_once('=') {
                    m.insert(k.to_string(), v.to_string());
                }
            }
        }
        m
    }

    /// The value of `key=` in stdout lines starting with `prefix`; panics when absent.
    pub fn get(&self, prefix: &str, key: &str) -> String {
        self.kv(prefix)
            .remove(key)
            .unwrap_or_else(|| panic!("{}: no {key}= in output\n{}", self.cmdline, self.dump()))
    }
}

/// Run `cmd` with stdin from /dev/null, stdout and stderr captured (through
/// files in `scratch`, so a process that outlives its parent cannot hold a
/// pipe open), in its own process group, for at most `timeout`. On timeout
/// the whole group is killed and the test fails. Leftover members of the
/// group are killed when the leader has exited.
///
/// Polling `try_wait` is the one wait with a deadline std offers; the
/// fixtures themselves synchronise with pipes and barriers, never sleeps.
pub fn run(scratch: &Scratch, cmd: Command, timeout: Duration) -> Outcome {
    let (out, pgid) = run_leaving_group(scratch, cmd, timeout);
    kill_group(pgid);
    out
}

/// `run`, but processes left in the group when the leader exited are not
/// killed (a daemon's child is still in it until it calls setsid): the
/// caller waits for them, then calls `kill_group` with the returned id.
pub fn run_leaving_group(
    scratch: &Scratch,
    mut cmd: Command,
    timeout: Duration,
) -> (Outcome, libc::pid_t) {
    let n = scratch.next_run();
    let out_p = scratch.path(&format!("run{n}.stdout"));
    let err_p = scratch.path(&format!("run{n}.stderr"));
    let open = |p: &Path| {
        fs::OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(p)
            .expect("create output file")
    };
    let cmdline = format!("{cmd:?}");
    cmd.stdin(Stdio::null())
        .stdout(open(&out_p))
        .stderr(open(&err_p))
        .process_group(0);
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {cmdline}: {e}"));
    let pgid = child.id() as libc::pid_t;
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(st) = child.try_wait().expect("wait for fixture") {
            break st;
        }
        if Instant::now() >= deadline {
            kill_group(pgid);
            let _ = child.wait();
            let stdout = fs::read_to_string(&out_p).unwrap_or_default();
            let stderr = fs::read_to_string(&err_p).unwrap_or_default();
            panic!(
                "TIMEOUT after {timeout:?} (deadlock?): {cmdline}\n--- stdout ---\n{stdout}--- stderr ---\n{stderr}"
            );
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    let out = Outcome {
        status,
        stdout: fs::read_to_string(&out_p).unwrap_or_default(),
        stderr: fs::read_to_string(&err_p).unwrap_or_default(),
        cmdline,
    };
    (out, pgid)
}

/// SIGKILL every process left in a group `run` created.
pub fn kill_group(pgid: libc::pid_t) {
    // SAFETY: kill(2) has no memory-safety preconditions; a negative pid
    // names the process group this helper created for the run.
    unsafe {
        libc::kill(-pgid, libc::SIGKILL);
    }
}

/// The signal that ended the process, if one did.
pub fn signal_of(st: &ExitStatus) -> Option<i32> {
    st.signal()
}

/// Wait (polling, with a deadline) until `cond` holds; false on timeout.
/// Only for processes the test cannot synchronise with otherwise, such as a
/// daemon that left the process group.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A command for a fixture with forkguard preloaded and `config` as
/// `FORKGUARD_CONFIG`; every other `FORKGUARD_*` variable removed, and
/// `FGT_TRACE` pointing at the scratch trace file.
pub fn guarded(scratch: &Scratch, program: impl AsRef<std::ffi::OsStr>, config: &Path) -> Command {
    let mut cmd = Command::new(program);
    clean_env(&mut cmd);
    cmd.env("LD_PRELOAD", lib())
        .env("FORKGUARD_CONFIG", config)
        .env("FGT_TRACE", scratch.trace_path())
        .current_dir(&scratch.dir);
    cmd
}

/// Drop every variable that would change what forkguard or a fixture does.
pub fn clean_env(cmd: &mut Command) {
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy().into_owned();
        if k.starts_with("FORKGUARD_") || k.starts_with("FGT_") || k == "LD_PRELOAD" {
            cmd.env_remove(&k);
        }
    }
}

/// Command words that run the rest of a command line as `nobody` (uid and
/// gid 65534, no supplementary groups): `setpriv` switches, then execs
/// `env`, so `NAME=VALUE` words may come first.
pub const AS_NOBODY: [&str; 6] = [
    "setpriv",
    "--reuid=65534",
    "--regid=65534",
    "--clear-groups",
    "--",
    "env",
];

/// `program arg` run as `nobody` through [`AS_NOBODY`], with forkguard
/// preloaded into `program` only (setpriv and env run unguarded). The
/// caller cleans and completes the environment.
pub fn preloaded_as_nobody(program: &Path, arg: &str) -> Command {
    let mut cmd = Command::new(AS_NOBODY[0]);
    cmd.args(&AS_NOBODY[1..])
        .arg(format!("LD_PRELOAD={}", lib().display()))
        .arg(program)
        .arg(arg);
    cmd
}

/// `guarded` for a compiled C fixture with its arguments.
pub fn fixture_cmd(scratch: &Scratch, name: &str, args: &[&str], config: &Path) -> Command {
    let mut cmd = guarded(scratch, fixture(name), config);
    cmd.args(args);
    cmd
}

// ---------------------------------------------------------------------------
// Trace files (tests/c/trace.h)

/// One trace line: a word and the numbers after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub word: String,
    pub nums: Vec<i64>,
}

impl Event {
    /// The first number: the pid of the process that wrote the line.
    pub fn pid(&self) -> i64 {
        self.nums[0]
    }
}

#[derive(Debug, Default)]
pub struct Trace {
    pub events: Vec<Event>,
    pub raw: String,
}

impl Trace {
    pub fn read(p: &Path) -> Trace {
        let raw = fs::read_to_string(p).unwrap_or_default();
        let events = raw
            .lines()
            .map(|l| {
                let mut it = l.split_whitespace();
                let word = it.next().unwrap_or("").to_string();
                let nums = it
                    .map(|n| n.parse().unwrap_or_else(|_| panic!("bad trace line {l:?}")))
                    .collect();
                Event { word, nums }
            })
            .collect();
        Trace { events, raw }
    }

    pub fn with(&self, word: &str) -> Vec<&Event> {
        self.events.iter().filter(|e| e.word == word).collect()
    }

    pub fn count(&self, word: &str) -> usize {
        self.with(word).len()
    }

    /// The only line with `word`; panics unless there is exactly one.
    pub fn one(&self, word: &str) -> &Event {
        let v = self.with(word);
        assert_eq!(
            v.len(),
            1,
            "expected exactly one {word:?} line in the trace:\n{}",
            self.raw
        );
        v[0]
    }

    /// Words of the lines written by `pid`, in file order.
    pub fn words_of(&self, pid: i64) -> Vec<&str> {
        self.events
            .iter()
            .filter(|e| e.nums.first() == Some(&pid))
            .map(|e| e.word.as_str())
            .collect()
    }

    /// Index of the first line with `word` written by `pid`.
    pub fn index_of(&self, word: &str, pid: i64) -> Option<usize> {
        self.events
            .iter()
            .position(|e| e.word == word && e.nums.first() == Some(&pid))
    }
}

// ---------------------------------------------------------------------------
// forkguard's text log (SPEC §5)

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

// ---------------------------------------------------------------------------
// A minimal JSON reader, for `log_format = "json"` (no serde in this package).

#[derive(Debug, Clone, PartialEq)]
pub enum Json {
    Null,
    Bool(bool),
    Num(f64),
    Str(String),
    Arr(Vec<Json>),
    Obj(Vec<(String, Json)>),
}

impl Json {
    pub fn parse(s: &str) -> Result<Json, String> {
        let b = s.as_bytes();
        let mut i = 0;
        let v = json_value(b, &mut i)?;
        skip_ws(b, &mut i);
        if i != b.len() {
            return Err(format!("trailing data at byte {i}"));
        }
        Ok(v)
    }

    pub fn get(&self, key: &str) -> Option<&Json> {
        match self {
            Json::Obj(m) => m.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Json::Num(n) => Some(*n),
            _ => None,
        }
    }

    pub fn as_i64(&self) -> Option<i64> {
        self.as_f64().filter(|n| n.fract() == 0.0).map(|n| n as i64)
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Json::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_arr(&self) -> Option<&[Json]> {
        match self {
            Json::Arr(a) => Some(a),
            _ => None,
        }
    }
}

fn skip_ws(b: &[u8], i: &mut usize) {
    while *i < b.len() && matches!(b[*i], b' ' | b'\t' | b'\n' | b'\r') {
        *i += 1;
    }
}

fn json_value(b: &[u8], i: &mut usize) -> Result<Json, String> {
    skip_ws(b, i);
    let c = *b.get(*i).ok_or("unexpected end")?;
    match c {
        b'{' => {
            *i += 1;
            let mut m = Vec::new();
            skip_ws(b, i);
            if b.get(*i) == Some(&b'}') {
                *i += 1;
                return Ok(Json::Obj(m));
            }
            loop {
                skip_ws(b, i);
                let Json::Str(k) = json_value(b, i)? else {
                    return Err("object key is not a string".into());
                };
                skip_ws(b, i);
                if b.get(*i) != Some(&b':') {
                    return Err(format!("expected ':' at byte {i}"));
                }
                *i += 1;
                let v = json_value(b, i)?;
                m.push((k, v));
                skip_ws(b, i);
                match b.get(*i) {
                    Some(b',') => *i += 1,
                    Some(b'}') => {
                        *i += 1;
                        return Ok(Json::Obj(m));
                    }
                    _ => return Err(format!("expected ',' or '}}' at byte {i}")),
                }
            }
        }
        b'[' => {
            *i += 1;
            let mut a = Vec::new();
            skip_ws(b, i);
            if b.get(*i) == Some(&b']') {
                *i += 1;
                return Ok(Json::Arr(a));
            }
            loop {
                a.push(json_value(b, i)?);
                skip_ws(b, i);
                match b.get(*i) {
                    Some(b',') => *i += 1,
                    Some(b']') => {
                        *i += 1;
                        return Ok(Json::Arr(a));
                    }
                    _ => return Err(format!("expected ',' or ']' at byte {i}")),
                }
            }
        }
        b'"' => {
            *i += 1;
            let mut s = Vec::new();
            loop {
                let c = *b.get(*i).ok_or("unterminated string")?;
                *i += 1;
                match c {
                    b'"' => {
                        return String::from_utf8(s)
                            .map(Json::Str)
                            .map_err(|e| e.to_string())
                    }
                    b'\\' => {
                        let e = *b.get(*i).ok_or("bad escape")?;
                        *i += 1;
                        match e {
                            b'"' | b'\\' | b'/' => s.push(e),
                            b'n' => s.push(b'\n'),
                            b't' => s.push(b'\t'),
                            b'r' => s.push(b'\r'),
                            b'b' => s.push(8),
                            b'f' => s.push(12),
                            b'u' => {
                                let h = b.get(*i..*i + 4).ok_or("bad \\u escape")?;
                                let h = std::str::from_utf8(h).map_err(|e| e.to_string())?;
                                let cp = u32::from_str_radix(h, 16).map_err(|e| e.to_string())?;
                                *i += 4;
                                let ch = char::from_u32(cp).unwrap_or('\u{fffd}');
                                let mut buf = [0u8; 4];
                                s.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                            }
                            _ => return Err("bad escape".into()),
                        }
                    }
                    c if c < 0x20 => return Err("control character in string".into()),
                    c => s.push(c),
                }
            }
        }
        b't' if b[*i..].starts_with(b"true") => {
            *i += 4;
            Ok(Json::Bool(true))
        }
        b'f' if b[*i..].starts_with(b"false") => {
            *i += 5;
            Ok(Json::Bool(false))
        }
        b'n' if b[*i..].starts_with(b"null") => {
            *i += 4;
            Ok(Json::Null)
        }
        _ => {
            let start = *i;
            while *i < b.len() && matches!(b[*i], b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9') {
                *i += 1;
            }
            let t = std::str::from_utf8(&b[start..*i]).map_err(|e| e.to_string())?;
            t.parse::<f64>()
                .map(Json::Num)
                .map_err(|_| format!("bad value at byte {start}"))
        }
    }
}

// ---------------------------------------------------------------------------
// Misc

/// Seconds since the epoch, as a float.
pub fn now_unix() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs_f64()
}

pub fn is_root() -> bool {
    // SAFETY: geteuid(2) cannot fail and touches no memory.
    unsafe { libc::geteuid() == 0 }
}

/// The real Python interpreter (not a pyenv shim, which is a bash script
/// that would fork on its own), or None when python3 is not installed.
pub fn python() -> Option<PathBuf> {
    static PY: OnceLock<Option<PathBuf>> = OnceLock::new();
    PY.get_or_init(|| {
        let out = Command::new("python3")
            .args(["-c", "import sys; print(sys.executable)"])
            .stdin(Stdio::null())
            .output()
            .ok()?;
        if !out.status.success() {
            return None;
        }
        let p = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        p.is_file().then_some(p)
    })
    .clone()
}

// ---------------------------------------------------------------------------
// Config text

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

// ---------------------------------------------------------------------------
// Extra fixtures (the torture suite)

/// Path of `tests/c/NAME.c` compiled like the fixtures above (a program, or
/// `libNAME.so` when `shared`), built once per test binary, on first use.
/// For fixtures only some test binaries need (not in `PROGRAMS`).
pub fn extra_fixture(name: &str, shared: bool) -> PathBuf {
    static BUILT: OnceLock<std::sync::Mutex<HashMap<(String, bool), PathBuf>>> = OnceLock::new();
    let built = BUILT.get_or_init(Default::default);
    let mut m = built.lock().unwrap_or_else(|e| e.into_inner());
    m.entry((name.to_string(), shared))
        .or_insert_with(|| {
            let dir = target_dir().join("fixtures");
            fs::create_dir_all(&dir).expect("create target/fixtures");
            compile(&dir, name, shared)
        })
        .clone()
}

/// `FGT_TORTURE_SCALE` (default 1): multiplies the iteration counts of the
/// torture tests, for longer manual runs.
pub fn torture_scale() -> u32 {
    std::env::var("FGT_TORTURE_SCALE")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n| n >= 1)
        .unwrap_or(1)
}
