//! The fork torture suite (issue 6, docs/RELIABILITY.md): concurrent forks
//! under contention, forks from a signal handler, nested forks, failing
//! forks, other fork handlers, and the child phase under a seccomp
//! allow-list. Fixture: `tests/c/torture_fork.c`. Every run has a deadline
//! (`common::run`), and every check comes with a control run showing it can
//! fail. `FGT_TORTURE_SCALE=N` multiplies the iteration counts.

mod common;

use common::*;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

fn torture() -> PathBuf {
    extra_fixture("torture_fork", false)
}

fn cmd(s: &Scratch, cfg: &Path, args: &[&str]) -> std::process::Command {
    let mut c = guarded(s, torture(), cfg);
    c.args(args);
    c
}

/// The same program with no library at all (controls).
fn unguarded(s: &Scratch, args: &[&str]) -> std::process::Command {
    let mut c = std::process::Command::new(torture());
    clean_env(&mut c);
    c.args(args)
        .env("FGT_TRACE", s.trace_path())
        .current_dir(&s.dir);
    c
}

fn num(out: &Outcome, key: &str) -> i64 {
    out.get("", key)
        .parse()
        .unwrap_or_else(|_| panic!("{key} is not a number:\n{}", out.dump()))
}

/// prepare/parent/child counters in the fixture (`tort_*`).
const COUNTERS: &str = "
[[call]]
phase = \"prepare\"
symbol = \"tort_prepare\"

[[call]]
phase = \"parent\"
symbol = \"tort_parent\"

[[call]]
phase = \"child\"
symbol = \"tort_child\"
";

fn locks_config(s: &Scratch, log: bool, timeout_ms: u32) -> PathBuf {
    let log = if log {
        format!("log = \"{}\"", s.path("fg.log").display())
    } else {
        "log = \"off\"".to_string()
    };
    let text = format!(
        "version = 1\n\n[settings]\n{log}\n\n\
         [[lock]]\nsymbol = \"torture_lock\"\ntype = \"mutex\"\ntimeout_ms = {timeout_ms}\n\n\
         [[lock]]\nsymbol = \"stdout\"\ntype = \"stdio\"\ntimeout_ms = {timeout_ms}\n{COUNTERS}"
    );
    s.config("fg.toml", &text)
}

// ---- 1. concurrent forks ----------------------------------------------------

#[test]
fn concurrent_forks_under_contention() {
    let s = Scratch::new("tconc");
    let iter = 500 * torture_scale();
    let cfg = locks_config(&s, true, 1000);
    let out = run(
        &s,
        cmd(&s, &cfg, &["concurrent", "8", &iter.to_string()]),
        Duration::from_secs(90 * u64::from(torture_scale())),
    );
    out.assert_config_accepted();
    eprintln!("concurrent: {}", out.stdout.trim());
    let forks = 8 * i64::from(iter);
    assert_eq!(num(&out, "forks"), forks);
    assert_eq!(
        num(&out, "ok"),
        forks,
        "every child exits 0:\n{}",
        out.dump()
    );
    assert_eq!(num(&out, "hung"), 0, "hung children:\n{}", out.dump());
    assert_eq!(num(&out, "lock_free"), 1, "torture_lock left held");
    assert_eq!(num(&out, "stdout_free"), 1, "stdout lock left held");
    assert_eq!(num(&out, "prepare"), forks, "one prepare per fork");
    assert_eq!(num(&out, "parent"), forks, "one parent phase per fork");
    out.assert_success();
    let log = Log::read(&s.path("fg.log"));
    log.assert_all_parse();
    assert_eq!(log.forks().len() as i64, forks, "fork lines");
    assert_eq!(log.children().len() as i64, forks, "child lines");
    for l in log.forks() {
        for ph in ["prepare", "parent"] {
            let p = phase(l, ph).expect("phase summary");
            assert_eq!((p.ok, p.failed), (3, 0), "{l:?}");
        }
    }
}

#[test]
fn lock_held_all_along_is_reinitialised_in_every_child() {
    // Another thread holds torture_lock for the whole run: prepare can never
    // take it, so every fork reports a timeout and the child still gets a
    // usable (re-initialised) lock.
    let s = Scratch::new("theld");
    let cfg = locks_config(&s, true, 2);
    let mut c = cmd(&s, &cfg, &["concurrent", "8", "20"]);
    c.env("TORTURE_HOLD_ITERS", "-1");
    let out = run(&s, c, TIMEOUT);
    out.assert_config_accepted().assert_success();
    assert_eq!(num(&out, "ok"), 160, "{}", out.dump());
    let log = Log::read(&s.path("fg.log"));
    let timeouts = log
        .forks()
        .iter()
        .filter(|l| {
            phase(l, "prepare")
                .and_then(|p| p.detail.as_deref())
                .is_some_and(|d| d.contains("torture_lock"))
        })
        .count();
    assert_eq!(timeouts, 160, "each fork reports the lock:\n{}", log.raw);

    // Control: without forkguard every child finds the lock taken.
    let ctl = run(
        &s,
        {
            let mut c = unguarded(&s, &["concurrent", "8", "20"]);
            c.env("TORTURE_HOLD_ITERS", "-1");
            c
        },
        TIMEOUT,
    );
    assert_eq!(num(&ctl, "ok"), 0, "control: {}", ctl.dump());
    assert_eq!(num(&ctl, "bad"), 160, "control: {}", ctl.dump());
}

// ---- 2. fork from a signal handler --------------------------------------------

#[test]
fn forks_from_a_sigalrm_handler_during_a_fork_loop() {
    let s = Scratch::new("tsig");
    let iter = 3000 * torture_scale();
    let cfg = locks_config(&s, false, 1000);
    let out = run(
        &s,
        cmd(&s, &cfg, &["sigalrm", &iter.to_string()]),
        Duration::from_secs(60 * u64::from(torture_scale())),
    );
    out.assert_config_accepted();
    eprintln!("sigalrm: {}", out.stdout.trim());
    assert_eq!(num(&out, "done"), i64::from(iter), "{}", out.dump());
    assert_eq!(num(&out, "bad"), 0, "{}", out.dump());
    assert_eq!(num(&out, "handler_bad"), 0, "{}", out.dump());
    assert!(num(&out, "handler_forks") > 0, "the handler never forked");
    // Every fork of the main loop got its phases once (exit 0 in the child
    // means its child phase ran exactly once).
    let total = i64::from(iter) + num(&out, "handler_forks");
    let unguarded = num(&out, "handler_unguarded");
    assert_eq!(num(&out, "prepare") + unguarded, total, "{}", out.dump());
    assert_eq!(num(&out, "parent") + unguarded, total, "{}", out.dump());
    out.assert_success();
}

/// Regression test for a bug found by this suite (docs/RELIABILITY.md): a
/// signal left pending while the phases ran was delivered when the caller's
/// mask was restored, before the thread was marked idle, so a fork made by
/// that handler passed through with no phase at all. `src/phases/mod.rs`
/// marks the thread idle before restoring the mask.
#[test]
fn forks_from_a_sigalrm_handler_all_get_their_phases() {
    let s = Scratch::new("tsig2");
    let cfg = locks_config(&s, false, 1000);
    let out = run(&s, cmd(&s, &cfg, &["sigalrm", "3000"]), TIMEOUT);
    assert_eq!(num(&out, "handler_unguarded"), 0, "{}", out.dump());
}

#[test]
fn sigalrm_counters_control() {
    // Control: the counters really count: without forkguard no phase runs,
    // and every child reports it (exit 30).
    let s = Scratch::new("tsigctl");
    let out = run(&s, unguarded(&s, &["sigalrm", "200"]), TIMEOUT);
    assert_eq!(num(&out, "prepare"), 0);
    assert_eq!(num(&out, "done"), 0, "{}", out.dump());
    assert_eq!(num(&out, "bad"), 200, "{}", out.dump());
    assert!(!out.status.success());
}

// ---- 3. nested forks -------------------------------------------------------------

#[test]
fn nested_forks_run_phases_at_every_level() {
    let s = Scratch::new("tnest");
    let text = format!(
        "{}{}",
        header(&s.path("fg.log"), ""),
        calls(&[
            ("prepare", "fgt_prepare"),
            ("prepare", "tort_fork_inside"),
            ("parent", "fgt_parent"),
            ("child", "fgt_child"),
        ])
    );
    let cfg = s.config("fg.toml", &text);
    let (depth, fanout) = (3usize, 3usize);
    let out = run(
        &s,
        cmd(
            &s,
            &cfg,
            &["nested", &depth.to_string(), &fanout.to_string()],
        ),
        TIMEOUT,
    );
    out.assert_config_accepted().assert_success();
    let t = s.trace();
    // Processes per level: 1, 3, 9, 27.
    let mut per_level: HashMap<i64, usize> = HashMap::new();
    let mut level_of: HashMap<i64, i64> = HashMap::new();
    for e in t.with("level") {
        *per_level.entry(e.nums[2]).or_default() += 1;
        level_of.insert(e.pid(), e.nums[2]);
    }
    for l in 0..=depth {
        assert_eq!(
            per_level.get(&(l as i64)).copied().unwrap_or(0),
            fanout.pow(l as u32),
            "processes at level {l}:\n{}",
            t.raw
        );
    }
    let forks: usize = (1..=depth).map(|l| fanout.pow(l as u32)).sum();
    // Each non-leaf process: exactly `fanout` prepare and parent phases;
    // each non-root process: exactly one child phase.
    for (&pid, &level) in &level_of {
        let words = t.words_of(pid);
        let count = |w: &str| words.iter().filter(|x| **x == w).count();
        let want = if (level as usize) < depth { fanout } else { 0 };
        assert_eq!(count("prepare"), want, "prepare of {pid}:\n{}", t.raw);
        assert_eq!(count("parent"), want, "parent of {pid}:\n{}", t.raw);
        assert_eq!(count("child"), usize::from(level > 0), "child of {pid}");
    }
    // The fork inside the prepare call passed straight through: one per
    // guarded fork, and its child ran no phase.
    assert_eq!(t.count("inner"), forks, "{}", t.raw);
    assert_eq!(t.count("inner-child"), forks);
    for e in t.with("inner-child") {
        assert!(
            t.words_of(e.pid()) == ["inner-child"],
            "the fork inside a phase ran phases in {}:\n{}",
            e.pid(),
            t.raw
        );
    }
    let log = Log::read(&s.path("fg.log"));
    log.assert_all_parse();
    assert_eq!(log.forks().len(), forks, "fork lines:\n{}", log.raw);
    assert_eq!(log.children().len(), forks, "child lines:\n{}", log.raw);
}

// ---- 4. fork failure -------------------------------------------------------------

fn every_lock_config(s: &Scratch) -> PathBuf {
    let text = format!(
        "{}\n\
         [[lock]]\nsymbol = \"torture_lock\"\ntype = \"mutex\"\n\n\
         [[lock]]\nsymbol = \"torture_rwlock\"\ntype = \"rwlock\"\n\n\
         [[lock]]\nsymbol = \"torture_sem\"\ntype = \"semaphore\"\n\n\
         [[lock]]\nsymbol = \"stdout\"\ntype = \"stdio\"\n{COUNTERS}",
        header(&s.path("fg.log"), "")
    );
    s.config("fg.toml", &text)
}

fn check_failed_fork(s: &Scratch, out: &Outcome, how: &str) {
    out.assert_config_accepted();
    assert_eq!(out.get("", "how"), how);
    assert_eq!(num(out, "fork"), -1, "{}", out.dump());
    assert_eq!(num(out, "errno"), i64::from(libc::EAGAIN), "errno kept");
    for k in ["mutex_free", "rwlock_free", "stdout_free"] {
        assert_eq!(
            num(out, k),
            1,
            "{k}: lock taken in prepare not released\n{}",
            out.dump()
        );
    }
    assert_eq!(num(out, "sem_value"), 1, "semaphore not posted back");
    assert_eq!(num(out, "prepare"), 1);
    assert_eq!(num(out, "parent"), 1, "parent phase must run on failure");
    out.assert_success();
    let log = Log::read(&s.path("fg.log"));
    log.assert_all_parse();
    let forks = log.forks();
    assert_eq!(forks.len(), 1, "{}", log.raw);
    let LogLine::Fork { child, errno, .. } = forks[0] else {
        unreachable!()
    };
    assert_eq!(
        (*child, errno.as_deref()),
        (-1, Some("EAGAIN")),
        "{}",
        log.raw
    );
    let p = phase(forks[0], "parent").expect("parent summary");
    assert_eq!(
        (p.ok, p.failed),
        (5, 0),
        "every lock released:\n{}",
        log.raw
    );
}

#[test]
fn failed_fork_seccomp_releases_every_lock() {
    let s = Scratch::new("tfail");
    let cfg = every_lock_config(&s);
    let out = run(&s, cmd(&s, &cfg, &["failfork"]), TIMEOUT);
    check_failed_fork(&s, &out, "seccomp");
    // Control: without forkguard the counters stay at 0 and the fixture says so.
    let ctl = run(&s, unguarded(&s, &["failfork"]), TIMEOUT);
    assert_eq!(num(&ctl, "prepare"), 0);
    assert!(!ctl.status.success());
}

#[test]
fn failed_fork_rlimit_nproc_as_unprivileged_user() {
    let s = Scratch::new("tnproc");
    let cfg = every_lock_config(&s);
    let mut c = if is_root() {
        if std::process::Command::new("setpriv")
            .arg("--version")
            .output()
            .is_err()
        {
            eprintln!("SKIP failed_fork_rlimit_nproc_as_unprivileged_user: setpriv missing");
            return;
        }
        // nobody must be able to write the trace and the log; the config
        // stays root's (accepted: owned by root, not writable by others).
        std::fs::set_permissions(&s.dir, std::os::unix::fs::PermissionsExt::from_mode(0o1777))
            .expect("chmod scratch");
        // setpriv and env run unguarded; env execs the fixture with the
        // library preloaded.
        preloaded_as_nobody(&s, &torture(), "nproc")
    } else {
        let mut c = std::process::Command::new(torture());
        c.arg("nproc");
        c
    };
    clean_env(&mut c);
    if !is_root() {
        c.env("LD_PRELOAD", lib());
    }
    c.env("FORKGUARD_CONFIG", &cfg)
        .env("FGT_TRACE", s.trace_path())
        .current_dir(&s.dir);
    let out = run(&s, c, TIMEOUT);
    check_failed_fork(&s, &out, "nproc");
}

// ---- 6. other fork handlers --------------------------------------------------------

#[test]
fn phases_run_once_around_other_atfork_handlers() {
    check_atfork("atfork");
}

#[test]
fn phases_run_once_around_other_atfork_handlers_with_threads() {
    check_atfork("atfork_mt");
}

/// `torture_fork atfork` (single-threaded, with a handler that forks and
/// one that registers more handlers) or `atfork_mt` (a second thread alive).
fn check_atfork(mode: &str) {
    let threaded = mode == "atfork_mt";
    let s = Scratch::new("tatfork");
    let cfg = s.config(
        "fg.toml",
        &format!("{}{}", header(&s.path("fg.log"), ""), trace_calls()),
    );
    let mut c = cmd(&s, &cfg, &[mode]);
    c.env(
        "TORTURE_ATFORK_LIB",
        extra_fixture("torture_atfork_lib", true),
    );
    let out = run(&s, c, TIMEOUT);
    out.assert_config_accepted().assert_success();
    let t = s.trace();
    let ev = &t.events;
    let parent_pid = t.with("parent-main")[0].pid();
    // Split the trace into the two rounds (the main process's `round` lines).
    let starts: Vec<usize> = ev
        .iter()
        .enumerate()
        .filter(|(_, e)| e.word == "round")
        .map(|(i, _)| i)
        .collect();
    assert_eq!(starts.len(), 2, "{}", t.raw);
    let children: Vec<i64> = t.with("child-main").iter().map(|e| e.pid()).collect();
    assert_eq!(children.len(), 2, "{}", t.raw);
    for (r, &start) in starts.iter().enumerate() {
        let end = starts.get(r + 1).copied().unwrap_or(ev.len());
        let round = &ev[start..end];
        let idx = |word: &str, pid: i64| -> Vec<usize> {
            round
                .iter()
                .enumerate()
                .filter(|(_, e)| e.word == word && e.pid() == pid)
                .map(|(i, _)| i)
                .collect()
        };
        let child = children[r];
        let one = |word: &str, pid: i64| -> usize {
            let v = idx(word, pid);
            assert_eq!(
                v.len(),
                1,
                "round {r}: {word} of {pid} x{}:\n{}",
                v.len(),
                t.raw
            );
            v[0]
        };
        let prepare = one("prepare", parent_pid);
        let parent = one("parent", parent_pid);
        let child_phase = one("child", child);
        // The outer fork's prepare handlers run after forkguard's prepare,
        // its parent handlers before forkguard's parent phase, its child
        // handlers before forkguard's child phase.
        let prep_handlers = ["af-prep-1", "lib-prep", "af-prep-register", "af-prep-fork"];
        for w in prep_handlers {
            for i in idx(w, parent_pid) {
                assert!(
                    prepare < i,
                    "round {r}: {w} before forkguard's prepare:\n{}",
                    t.raw
                );
            }
        }
        for w in ["af-parent-1", "lib-parent", "af-parent-late"] {
            for i in idx(w, parent_pid) {
                assert!(
                    i < parent,
                    "round {r}: {w} after forkguard's parent:\n{}",
                    t.raw
                );
            }
        }
        for w in ["af-child-1", "lib-child", "af-child-late"] {
            let v = idx(w, child);
            if w != "af-child-late" || (r == 1 && !threaded) {
                assert_eq!(v.len(), 1, "round {r}: {w} in the child:\n{}", t.raw);
            }
            for i in v {
                assert!(
                    i < child_phase,
                    "round {r}: {w} after forkguard's child:\n{}",
                    t.raw
                );
            }
        }
    }
    if threaded {
        assert_eq!(t.count("af-prep-register") + t.count("af-inner"), 0);
    } else {
        // Handlers registered from inside a handler run from the next fork on.
        assert!(t.count("af-prep-late") >= 1, "{}", t.raw);
        // The fork made inside an atfork prepare handler (round 0) ran no phase.
        let inner = t.one("af-inner").nums[1];
        assert_eq!(
            t.words_of(inner),
            ["af-child-1", "lib-child", "af-inner-child"]
        );
    }
    assert_eq!(t.count("prepare"), 2, "{}", t.raw);
    assert_eq!(t.count("parent"), 2, "{}", t.raw);
    assert_eq!(t.count("child"), 2, "{}", t.raw);
    let log = Log::read(&s.path("fg.log"));
    log.assert_all_parse();
    assert_eq!(log.forks().len(), 2, "{}", log.raw);
    assert_eq!(log.children().len(), 2, "{}", log.raw);
}

// ---- 7. child phase under a seccomp allow-list ---------------------------------------

/// `settings`: more `[settings]` lines (e.g. `held_locks`).
fn seccomp_config(s: &Scratch, settings: &str) -> PathBuf {
    let d = s.dir.display();
    let text = format!(
        r#"version = 1

[settings]
log = "{d}/fg.log"
handshake_timeout_ms = 5000
libc_locks = "acquire"
{settings}

[[lock]]
symbol = "torture_lock"
type = "mutex"

[[lock]]
symbol = "torture_futex"
type = "futex"

[[zero]]
symbol = "torture_zero"
offset = 8
size = 16

[[lock]]
symbol = "torture_rwlock"
type = "rwlock"
strategy = "reinit"

[[lock]]
symbol = "torture_sem"
type = "semaphore"

[[lock]]
symbol = "stdout"
type = "stdio"

[[zero]]
symbol = "torture_zero"

[[call]]
phase = "prepare"
symbol = "fgt_prepare"

[[call]]
phase = "parent"
symbol = "fgt_parent"

[[call]]
phase = "child"
symbol = "fgt_child"

[[fd]]
select = {{ fd = 60 }}
action = "close"

[[fd]]
select = {{ fd = 61 }}
action = "devnull"

[[fd]]
select = {{ fd = 62 }}
action = "reopen"
path = "{d}/reopen.%p.%P.log"
flags = ["append", "create"]
mode = 0o640

[[fd]]
select = {{ fd = 63, kind = "eventfd" }}
action = "renew"

[[fd]]
select = {{ fd = 66, kind = "epoll" }}
action = "renew"

[[fd]]
select = {{ fd = 67, kind = "timerfd" }}
action = "renew"

[[fd]]
select = {{ fd = 68, kind = "inotify" }}
action = "renew"

[[fd]]
select = {{ fd = 64, kind = "socket" }}
action = "disconnect"

[[fd]]
select = {{ fd = 69, kind = "listen" }}
action = "close"

[[fd]]
select = {{ fd = 70, kind = "socket" }}
action = "disconnect"

[[fd]]
select = {{ fd = 65 }}
action = "cloexec"

[[fd]]
select = {{ path = "/dev/null", from = 71 }}
action = "close"

[[fd]]
select = {{ from = 72 }}
action = "close"

[child]
parent_death_signal = "TERM"
reset_signal_mask = true
reset_signal_handlers = true
new_session = true
oom_score_adj = 300
name = "fgtseccomp"
"#
    );
    s.config("fg.toml", &text)
}

fn seccomp_run(s: &Scratch, probe: Option<&str>, settings: &str) -> Outcome {
    let cfg = seccomp_config(s, settings);
    let mut c = cmd(s, &cfg, &["seccomp"]);
    c.env(
        "LD_PRELOAD",
        format!(
            "{} {}",
            lib().display(),
            extra_fixture("torture_seccomp", true).display()
        ),
    );
    if let Some(p) = probe {
        c.env("TORTURE_PROBE", p);
    }
    let out = run(s, c, TIMEOUT);
    out.assert_config_accepted();
    out
}

#[test]
fn child_phase_with_every_action_kind_stays_within_the_syscall_allow_list() {
    let s = Scratch::new("tseccomp");
    let out = seccomp_run(&s, None, "");
    assert_eq!(
        num(&out, "child_signal"),
        0,
        "the child phase made a system call outside the allow-list \
         (31 = SIGSYS; rerun under strace -f to see which):\n{}",
        out.dump()
    );
    out.assert_success();
    let t = s.trace();
    assert_eq!(t.count("child"), 1, "{}", t.raw);
    assert_eq!(t.count("child-after-fork"), 1, "{}", t.raw);
    let log = Log::read(&s.path("fg.log"));
    log.assert_all_parse();
    let kids = log.children();
    assert_eq!(kids.len(), 1, "the child's report:\n{}", log.raw);
    let LogLine::Child { summary, .. } = kids[0] else {
        unreachable!()
    };
    // 5 locks (one a futex), 2 zero (one by offset and size), 13 fd
    // actions, 6 settings, 1 call; and libc_locks' fork handlers, which
    // the child's report does not count.
    assert_eq!((summary.ok, summary.failed), (27, 0), "{}", log.raw);
}

/// `held_locks` (SPEC 8.4): the idle thread holds `torture_held` at the
/// fork; the child phase frees it, still inside the allow-list.
#[test]
fn child_phase_with_held_locks_stays_within_the_syscall_allow_list() {
    for held in ["reinit", "acquire"] {
        let s = Scratch::new("tseccompheld");
        let out = seccomp_run(
            &s,
            None,
            &format!("held_locks = \"{held}\"\nlock_timeout_ms = 1"),
        );
        assert_eq!(
            num(&out, "child_signal"),
            0,
            "{held}: the child phase made a system call outside the allow-list:\n{}",
            out.dump()
        );
        out.assert_success();
        let log = Log::read(&s.path("fg.log"));
        assert!(
            log.raw.contains("torture_held"),
            "{held}: the held lock is not named in the log:\n{}",
            log.raw
        );
    }
}

#[test]
fn seccomp_allow_list_control_kills_on_mmap_and_brk() {
    for probe in ["mmap", "brk"] {
        let s = Scratch::new("tseccompctl");
        let out = seccomp_run(&s, Some(probe), "");
        assert_eq!(
            num(&out, "child_signal"),
            i64::from(libc::SIGSYS),
            "{probe}: the filter did not kill:\n{}",
            out.dump()
        );
        // The child phase itself completed before the probe.
        assert_eq!(s.trace().count("child"), 1, "{probe}");
    }
}
