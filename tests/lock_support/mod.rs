//! Helpers for the `[[lock]]` and `[[zero]]` tests: the C fixtures
//! `tests/c/lock_*.c` (built here, with the flags each needs: the static
//! symbol tests need a program without `-rdynamic`), configs, the
//! `result k=v ...` line every fixture prints, and the runs every test
//! repeats: without forkguard (must hang), and with a config (all children
//! must take the lock).

#![allow(dead_code)]

use crate::common::{self, Log, Outcome, Scratch};
use std::collections::HashMap;
use std::fs;
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

/// Deadline for one fixture run (every fixture also has its own per-child
/// watchdog, so a hung child is counted, not waited for).
pub const TIMEOUT: Duration = Duration::from_secs(60);

/// How a fixture is built.
#[derive(Clone, Copy)]
pub enum Kind {
    /// Exports its globals (`-rdynamic`): found with `dlsym`.
    Exported,
    /// Exports nothing: its globals are only in `.symtab`.
    Private,
    /// A shared library.
    Shared,
}

fn fixture_dir() -> PathBuf {
    let dir = common::fixture_dir().join("lock");
    fs::create_dir_all(&dir).expect("create fixture dir");
    dir
}

/// Compile `tests/c/{srcs}` into `out_name` in the fixture directory.
pub fn build(out_name: &str, srcs: &[&str], kind: Kind) -> PathBuf {
    let dir = fixture_dir();
    let out = dir.join(out_name);
    let tmp = dir.join(format!(".{out_name}.{}.tmp", std::process::id()));
    let mut cmd = Command::new("gcc");
    cmd.args(["-O1", "-g", "-Wall", "-Wextra", "-Werror", "-pthread"]);
    match kind {
        Kind::Exported => {
            cmd.arg("-rdynamic");
        }
        Kind::Private => {}
        Kind::Shared => {
            cmd.args(["-shared", "-fPIC"]);
        }
    }
    cmd.arg("-o").arg(&tmp);
    for s in srcs {
        cmd.arg(common::root().join("tests/c").join(s));
    }
    let o = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run gcc (install gcc): {e}"));
    assert!(
        o.status.success(),
        "gcc failed for {srcs:?}:\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    fs::rename(&tmp, &out).expect("rename fixture");
    out
}

macro_rules! fixture {
    ($fn:ident, $out:literal, [$($src:literal),*], $kind:expr) => {
        pub fn $fn() -> PathBuf {
            static P: OnceLock<PathBuf> = OnceLock::new();
            P.get_or_init(|| build($out, &[$($src),*], $kind)).clone()
        }
    };
}

fixture!(lock_types, "lock_types", ["lock_types.c"], Kind::Exported);
fixture!(
    lock_matrix,
    "lock_matrix",
    ["lock_matrix.c"],
    Kind::Exported
);
fixture!(lock_alloc, "lock_alloc", ["lock_alloc.c"], Kind::Exported);
fixture!(lock_static, "lock_static", ["lock_static.c"], Kind::Private);
fixture!(
    lock_static_dup,
    "lock_static_dup",
    ["lock_static.c", "lock_dup.c"],
    Kind::Private
);
fixture!(lock_lib, "liblock_lib.so", ["lock_lib.c"], Kind::Shared);

/// A stripped copy of `lock_static`: no `.symtab`.
pub fn lock_static_stripped() -> PathBuf {
    static P: OnceLock<PathBuf> = OnceLock::new();
    P.get_or_init(|| {
        let out = fixture_dir().join("lock_static_stripped");
        let tmp = fixture_dir().join(format!(".lock_static_stripped.{}.tmp", std::process::id()));
        let o = Command::new("strip")
            .arg("-o")
            .arg(&tmp)
            .arg(lock_static())
            .output()
            .expect("run strip (binutils)");
        assert!(
            o.status.success(),
            "strip failed: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        fs::rename(&tmp, &out).expect("rename stripped fixture");
        out
    })
    .clone()
}

/// `version = 1`, a text log to `log`, then `body`.
pub fn config(log: &Path, body: &str) -> String {
    format!(
        "version = 1\n\n[settings]\nlog = \"{}\"\n\n{body}\n",
        log.display()
    )
}

/// One `[[lock]]` table; `extra` lines are added as they are.
pub fn lock(symbol: &str, ty: &str, strategy: &str, extra: &str) -> String {
    format!(
        "[[lock]]\nsymbol = \"{symbol}\"\ntype = \"{ty}\"\nstrategy = \"{strategy}\"\n{extra}\n"
    )
}

/// The `result k=v ...` line a fixture printed.
pub struct Result_ {
    pub kv: HashMap<String, String>,
    pub out: Outcome,
}

impl Result_ {
    pub fn get(&self, k: &str) -> &str {
        self.kv
            .get(k)
            .map(String::as_str)
            .unwrap_or_else(|| panic!("no {k}= in the result line\n{}", self.out.dump()))
    }

    pub fn num(&self, k: &str) -> f64 {
        self.get(k)
            .parse()
            .unwrap_or_else(|_| panic!("{k} is not a number\n{}", self.out.dump()))
    }

    pub fn int(&self, k: &str) -> i64 {
        self.num(k) as i64
    }
}

/// Run `cmd` to completion and read its result line.
pub fn result(s: &Scratch, cmd: Command) -> Result_ {
    let out = common::run(s, cmd, TIMEOUT);
    out.assert_success();
    assert!(
        out.stdout.contains("result "),
        "no result line\n{}",
        out.dump()
    );
    Result_ {
        kv: out.kv("result "),
        out,
    }
}

/// `program args` with forkguard preloaded and `config_text` as its config
/// (written to the scratch dir as `name`).
pub fn guarded(
    s: &Scratch,
    name: &str,
    config_text: &str,
    program: &Path,
    args: &[&str],
) -> Command {
    let cfg = s.config(name, config_text);
    let mut cmd = common::guarded(s, program, &cfg);
    cmd.args(args);
    cmd
}

/// `program args` without forkguard.
pub fn plain(s: &Scratch, program: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(program);
    common::clean_env(&mut cmd);
    cmd.args(args).current_dir(&s.dir);
    cmd
}

/// The `forkguard: ...` lines a run printed on stderr.
pub fn config_errors(out: &Outcome) -> Vec<String> {
    out.stderr
        .lines()
        .filter(|l| l.starts_with("forkguard:"))
        .map(str::to_string)
        .collect()
}

/// Runs `program args` without forkguard and asserts that both children
/// hung (`ok=0 hung=2`; `args` ask for two forks and a watchdog): the
/// fixture reproduces the deadlock, so the checks with forkguard can fail.
#[track_caller]
pub fn assert_hangs_without_forkguard(s: &Scratch, program: &Path, args: &[&str], what: &str) {
    let r = result(s, plain(s, program, args));
    assert_eq!(
        (r.get("ok"), r.get("hung")),
        ("0", "2"),
        "{what}: the fixture must hang without forkguard\n{}",
        r.out.dump()
    );
}

/// A run with forkguard: its result line (through `Deref`) and the log
/// file its config names.
pub struct Guarded {
    pub r: Result_,
    pub log_path: PathBuf,
}

impl Deref for Guarded {
    type Target = Result_;

    fn deref(&self) -> &Result_ {
        &self.r
    }
}

/// Runs `program args` to completion with forkguard and `config(log, body)`
/// as its config, written as `{tag}.toml` and logging to `{tag}.log` in the
/// scratch dir.
pub fn run_guarded(s: &Scratch, tag: &str, body: &str, program: &Path, args: &[&str]) -> Guarded {
    let log_path = s.path(&format!("{tag}.log"));
    let text = config(&log_path, body);
    let r = result(s, guarded(s, &format!("{tag}.toml"), &text, program, args));
    Guarded { r, log_path }
}

/// `run_guarded`, and forkguard must have accepted the config.
#[track_caller]
pub fn run_accepted(s: &Scratch, tag: &str, body: &str, program: &Path, args: &[&str]) -> Guarded {
    let g = run_guarded(s, tag, body, program, args);
    g.out.assert_config_accepted();
    g
}

impl Guarded {
    /// Asserts every one of `n` children took the lock: `ok=n hung=0
    /// failed=0`. `what` names the case in the message.
    #[track_caller]
    pub fn assert_all_ok(&self, n: &str, what: &str) {
        let first = self
            .kv
            .get("first")
            .map(|f| format!(" (first failure {f})"))
            .unwrap_or_default();
        assert_eq!(
            (self.get("ok"), self.get("hung"), self.get("failed")),
            (n, "0", "0"),
            "{what}{first}\n{}\n--- log ---\n{}",
            self.out.dump(),
            self.log().raw
        );
    }

    /// forkguard's log of the run, as written (nothing checked).
    pub fn log(&self) -> Log {
        Log::read(&self.log_path)
    }

    /// `log`, asserting every fork and child line in it parses (SPEC §5).
    #[track_caller]
    pub fn parsed_log(&self) -> Log {
        let l = self.log();
        l.assert_all_parse();
        l
    }

    /// The one `forkguard:` line the run printed; panics unless there is
    /// exactly one.
    #[track_caller]
    pub fn only_config_error(&self) -> String {
        let mut errs = config_errors(&self.out);
        assert_eq!(errs.len(), 1, "{}", self.out.dump());
        errs.remove(0)
    }
}
