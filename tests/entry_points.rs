//! Each way of duplicating a process gets the phases SPEC §1 promises, exactly
//! once, and the caller sees the real call's result.

mod common;

use common::*;
use std::time::Duration;

/// Config: the three trace calls, text log to `fg.log`, plus `extra` settings.
fn setup(s: &Scratch, extra_settings: &str, extra: &str) -> std::path::PathBuf {
    let text = format!(
        "{}{}{extra}",
        header(&s.path("fg.log"), extra_settings),
        trace_calls()
    );
    s.config("fg.toml", &text)
}

/// The one `Fork` line of the log, checked against pid/via and, when given,
/// the child's pid.
fn one_fork_line(log: &Log, pid: i64, child: Option<i64>, via: &str) -> LogLine {
    log.assert_all_parse();
    let forks = log.forks();
    assert_eq!(forks.len(), 1, "expected one fork line:\n{}", log.raw);
    let l = forks[0].clone();
    let LogLine::Fork {
        pid: p,
        child: c,
        via: v,
        ..
    } = &l
    else {
        unreachable!()
    };
    assert_eq!((*p, v.as_str()), (pid, via), "fork line:\n{}", log.raw);
    if let Some(child) = child {
        assert_eq!(*c, child, "child pid in the fork line:\n{}", log.raw);
    }
    l
}

/// The child pid of the only fork line.
fn logged_child(log: &Log) -> i64 {
    match log.forks()[0] {
        LogLine::Fork { child, .. } => *child,
        _ => unreachable!(),
    }
}

fn one_child_line(log: &Log, pid: i64, parent: i64) -> PhaseSummary {
    let children = log.children();
    assert_eq!(children.len(), 1, "expected one child line:\n{}", log.raw);
    let LogLine::Child {
        pid: p,
        parent: pp,
        summary,
    } = children[0]
    else {
        unreachable!()
    };
    assert_eq!((*p, *pp), (pid, parent), "child line:\n{}", log.raw);
    summary.clone()
}

fn assert_phase(line: &LogLine, name: &str, ok: u32, failed: u32) {
    let p = phase(line, name).unwrap_or_else(|| panic!("no {name} phase in {line:?}"));
    assert_eq!((p.ok, p.failed), (ok, failed), "{name} phase of {line:?}");
}

/// Checks of a successful fork-like call through the fixture `forker MODE`:
/// each phase exactly once, in the right process, in the right order, and
/// the caller's errno and signal mask as before. Returns (parent, child).
fn check_plain_fork(s: &Scratch, via: &str, mode: &str) -> (i64, i64) {
    let cfg = setup(s, "", "");
    let out = run(s, fixture_cmd(s, "forker", &[mode], &cfg), TIMEOUT);
    out.assert_success().assert_config_accepted();
    let t = s.trace();
    let parent = t.one("main-before").pid();
    let pm = t.one("parent-main");
    let child = pm.nums[1];
    assert!(child > 0, "fork failed:\n{}", t.raw);
    let cm = t.one("child-main");
    assert_eq!(cm.nums[..2], [child, parent], "child-main line:\n{}", t.raw);

    assert_eq!(
        t.one("prepare").pid(),
        parent,
        "prepare ran in the wrong process:\n{}",
        t.raw
    );
    assert_eq!(
        t.one("parent").pid(),
        parent,
        "parent phase ran in the wrong process:\n{}",
        t.raw
    );
    assert_eq!(
        t.one("child").pid(),
        child,
        "child phase ran in the wrong process:\n{}",
        t.raw
    );

    let idx = |w: &str, pid| {
        t.index_of(w, pid)
            .unwrap_or_else(|| panic!("no {w} {pid}:\n{}", t.raw))
    };
    assert!(
        idx("prepare", parent) < idx("parent", parent),
        "prepare after parent:\n{}",
        t.raw
    );
    assert!(
        idx("parent", parent) < idx("parent-main", parent),
        "parent phase after fork returned:\n{}",
        t.raw
    );
    assert!(
        idx("prepare", parent) < idx("child", child),
        "child phase before prepare:\n{}",
        t.raw
    );
    assert!(
        idx("child", child) < idx("child-main", child),
        "child phase after fork returned:\n{}",
        t.raw
    );

    assert_eq!(
        pm.nums[2], 1,
        "errno changed in the parent across {mode}:\n{}",
        t.raw
    );
    assert_eq!(
        cm.nums[2], 1,
        "errno changed in the child across {mode}:\n{}",
        t.raw
    );
    assert_eq!(
        pm.nums[3], 1,
        "caller's signal mask not restored in the parent:\n{}",
        t.raw
    );
    assert_eq!(
        cm.nums[3], 1,
        "caller's signal mask not restored in the child:\n{}",
        t.raw
    );

    let log = Log::read(&s.path("fg.log"));
    // The atfork fallback's child pid is checked by its own test, last.
    let line = one_fork_line(&log, parent, (via != "atfork").then_some(child), via);
    assert_phase(&line, "prepare", 1, 0);
    assert_phase(&line, "parent", 1, 0);
    let c = one_child_line(&log, child, parent);
    assert_eq!((c.ok, c.failed), (1, 0), "child summary:\n{}", log.raw);
    (parent, child)
}

#[test]
fn fork_runs_each_phase_once() {
    let s = Scratch::new("fork");
    check_plain_fork(&s, "fork", "fork");
}

#[test]
fn forkpty_runs_each_phase_once() {
    let s = Scratch::new("forkpty");
    check_plain_fork(&s, "forkpty", "forkpty");
}

#[test]
fn direct_dunder_fork_is_caught_by_atfork_fallback() {
    let s = Scratch::new("dunderfork");
    let (_, child) = check_plain_fork(&s, "atfork", "__fork");
    let log = Log::read(&s.path("fg.log"));
    assert_eq!(
        logged_child(&log),
        child,
        "phases ran once via atfork, but the fork line does not name the child (SPEC §5: `fork -> CHILDPID`):\n{}",
        log.raw
    );
}

#[test]
fn errno_set_inside_a_phase_does_not_reach_the_caller() {
    // The caller sets errno = EDOM before fork; a successful fork leaves it
    // alone, so the caller must still see EDOM whatever a phase did to it.
    let s = Scratch::new("errno");
    let mut leaks = Vec::new();
    for phase in ["prepare", "parent", "child"] {
        s.reset_trace();
        let text = format!(
            "{}{}",
            header(&s.path("fg.log"), ""),
            calls(&[(phase, "fgt_clobber"), (phase, "fgt_prepare")])
        );
        let cfg = s.config(&format!("{phase}.toml"), &text);
        run(&s, fixture_cmd(&s, "forker", &["fork"], &cfg), TIMEOUT)
            .assert_success()
            .assert_config_accepted();
        let t = s.trace();
        assert_eq!(t.count("prepare"), 1, "config not applied:\n{}", t.raw);
        for side in ["parent-main", "child-main"] {
            if t.one(side).nums[2] != 1 {
                leaks.push(format!(
                    "errno set by a {phase}-phase call reached the caller in the {side}"
                ));
            }
        }
    }
    assert!(leaks.is_empty(), "{}", leaks.join("\n"));
}

#[test]
fn signals_are_blocked_during_phases_and_mask_restored() {
    let s = Scratch::new("sigmask");
    let text = format!(
        "{}{}",
        header(&s.path("fg.log"), ""),
        calls(&[
            ("prepare", "fgt_probe_mask"),
            ("parent", "fgt_probe_mask"),
            ("child", "fgt_probe_mask")
        ])
    );
    let cfg = s.config("fg.toml", &text);
    run(&s, fixture_cmd(&s, "forker", &["fork"], &cfg), TIMEOUT)
        .assert_success()
        .assert_config_accepted();
    let t = s.trace();
    assert_eq!(
        t.one("parent-main").nums[3],
        1,
        "parent's signal mask not restored:\n{}",
        t.raw
    );
    assert_eq!(
        t.one("child-main").nums[3],
        1,
        "child's signal mask not restored:\n{}",
        t.raw
    );
    let masks = t.with("mask");
    assert_eq!(masks.len(), 3, "one mask probe per phase:\n{}", t.raw);
    for m in masks {
        assert_eq!(
            m.nums[1..],
            [1, 1, 1, 1],
            "INT TERM USR1 CHLD should be blocked during a phase:\n{}",
            t.raw
        );
    }
}

#[test]
fn daemon_runs_prepare_and_child_only() {
    let s = Scratch::new("daemon");
    let cfg = setup(&s, "", "");
    // The daemon's child stays in the fixture's process group until it calls
    // setsid, after the parent has exited: do not kill the group early.
    let (out, pgid) = run_leaving_group(&s, fixture_cmd(&s, "forker", &["daemon"], &cfg), TIMEOUT);
    let done = wait_until(Duration::from_secs(20), || {
        s.trace().count("daemon-done") > 0
    });
    kill_group(pgid);
    out.assert_success().assert_config_accepted();
    assert!(done, "the daemon never reported:\n{}", s.trace().raw);
    let t = s.trace();
    let parent = t.one("main-before").pid();
    let daemon = t.one("daemon-child").pid();
    assert_ne!(parent, daemon);
    assert_eq!(t.one("prepare").pid(), parent, "prepare:\n{}", t.raw);
    assert_eq!(
        t.count("parent"),
        0,
        "daemon has no parent phase:\n{}",
        t.raw
    );
    assert_eq!(
        t.one("child").pid(),
        daemon,
        "child phase must run in the daemon:\n{}",
        t.raw
    );
    assert!(t.index_of("child", daemon) < t.index_of("daemon-child", daemon));

    let log = Log::read(&s.path("fg.log"));
    log.assert_all_parse();
    let c = one_child_line(&log, daemon, parent);
    assert_eq!((c.ok, c.failed), (1, 0), "child summary:\n{}", log.raw);
    for f in log.forks() {
        let LogLine::Fork { via, .. } = f else {
            unreachable!()
        };
        assert_eq!(
            via, "daemon",
            "daemon's fork logged with the wrong via:\n{}",
            log.raw
        );
    }
}

#[test]
fn vfork_passthrough_runs_no_phase() {
    let s = Scratch::new("vforkpass");
    let cfg = setup(&s, "", "");
    run(&s, fixture_cmd(&s, "forker", &["vfork"], &cfg), TIMEOUT)
        .assert_success()
        .assert_config_accepted();
    let t = s.trace();
    assert!(t.one("parent-main").nums[1] > 0, "vfork failed:\n{}", t.raw);
    for w in ["prepare", "parent", "child"] {
        assert_eq!(
            t.count(w),
            0,
            "vfork passthrough ran a {w} phase:\n{}",
            t.raw
        );
    }
    let log = Log::read(&s.path("fg.log"));
    assert!(
        log.children().is_empty(),
        "child phase logged for a passthrough vfork:\n{}",
        log.raw
    );
}

#[test]
fn vfork_as_fork_runs_all_phases() {
    let s = Scratch::new("vforkfork");
    let cfg = setup(&s, "vfork = \"fork\"", "");
    run(&s, fixture_cmd(&s, "forker", &["vfork"], &cfg), TIMEOUT)
        .assert_success()
        .assert_config_accepted();
    let t = s.trace();
    let parent = t.one("main-before").pid();
    let child = t.one("parent-main").nums[1];
    assert!(child > 0, "vfork failed:\n{}", t.raw);
    assert_eq!(t.one("prepare").pid(), parent, "prepare:\n{}", t.raw);
    assert_eq!(t.one("parent").pid(), parent, "parent:\n{}", t.raw);
    assert_eq!(t.one("child").pid(), child, "child:\n{}", t.raw);
    let log = Log::read(&s.path("fg.log"));
    let line = one_fork_line(&log, parent, Some(child), "vfork");
    assert_phase(&line, "prepare", 1, 0);
    assert_phase(&line, "parent", 1, 0);
    one_child_line(&log, child, parent);
}

#[test]
fn failed_fork_keeps_errno_and_still_runs_parent_phase() {
    let s = Scratch::new("forkfail");
    let cfg = setup(&s, "", "");
    let out = run(&s, fixture_cmd(&s, "forker", &["fail"], &cfg), TIMEOUT);
    out.assert_success().assert_config_accepted();
    assert!(
        out.stdout.contains("fork=-1 errno=11"),
        "fork did not fail with EAGAIN:\n{}",
        out.dump()
    );
    let t = s.trace();
    let parent = t.one("main-before").pid();
    let failed = t.one("fork-failed");
    assert_eq!(
        failed.nums[1..],
        [-1, libc::EAGAIN as i64, 1],
        "fork result, errno, mask:\n{}",
        t.raw
    );
    assert_eq!(t.one("prepare").pid(), parent, "prepare:\n{}", t.raw);
    assert_eq!(
        t.one("parent").pid(),
        parent,
        "parent phase must run when fork fails:\n{}",
        t.raw
    );
    assert_eq!(
        t.count("child"),
        0,
        "no child phase without a child:\n{}",
        t.raw
    );
    assert!(t.index_of("parent", parent) < t.index_of("fork-failed", parent));

    let log = Log::read(&s.path("fg.log"));
    let line = one_fork_line(&log, parent, Some(-1), "fork");
    let LogLine::Fork { errno, .. } = &line else {
        unreachable!()
    };
    assert_eq!(
        errno.as_deref(),
        Some("EAGAIN"),
        "failed fork line:\n{}",
        log.raw
    );
    assert!(
        log.raw.contains("fork -> -1 (EAGAIN) via fork: "),
        "failed fork line should read `fork -> -1 (EAGAIN) via fork: ...`:\n{}",
        log.raw
    );
    assert_phase(&line, "parent", 1, 0);
    assert!(log.children().is_empty());
}

/// The atfork fallback is not told the fork's result: it tells a failed
/// fork by the absence of a new child in /proc, and reports glibc's errno.
#[test]
fn failed_dunder_fork_is_reported_by_the_fallback() {
    let s = Scratch::new("dunderfail");
    let cfg = setup(&s, "", "");
    let out = run(
        &s,
        fixture_cmd(&s, "forker", &["fail__fork"], &cfg),
        TIMEOUT,
    );
    out.assert_success().assert_config_accepted();
    assert!(
        out.stdout.contains("fork=-1 errno=11"),
        "__fork did not fail with EAGAIN:\n{}",
        out.dump()
    );
    let t = s.trace();
    let parent = t.one("main-before").pid();
    assert_eq!(t.one("prepare").pid(), parent, "prepare:\n{}", t.raw);
    assert_eq!(t.one("parent").pid(), parent, "parent:\n{}", t.raw);
    assert_eq!(t.count("child"), 0, "no child phase:\n{}", t.raw);
    let log = Log::read(&s.path("fg.log"));
    assert!(
        log.raw.contains("fork -> -1 (EAGAIN) via atfork: "),
        "the fallback's line should read `fork -> -1 (EAGAIN) via atfork: ...`:\n{}",
        log.raw
    );
}

/// The wait family is exported (for `log_exits`), so every wait of every
/// process goes through it. A wait before the first fork — here the very
/// first one, in a SIGCHLD handler, of a child made with a raw clone — must
/// not look libc's function up (`dlsym` is not async-signal-safe): it makes
/// the system call itself, with the result, status and errno the kernel
/// gives. The first fork binds libc's functions; the same waits then go
/// through them. LD_DEBUG=symbols shows each look-up in libc.
#[test]
fn waits_before_the_first_fork_look_nothing_up() {
    let s = Scratch::new("waitfirst");
    let cfg = setup(&s, "", "");
    let mut cmd = guarded(&s, extra_fixture("wait_first", false), &cfg);
    cmd.env("LD_DEBUG", "symbols");
    let out = run(&s, cmd, TIMEOUT);
    out.assert_success();
    assert_eq!(out.stdout.trim(), "ok", "{}", out.stdout);
    let lookups = |text: &str| -> Vec<String> {
        text.lines()
            .filter(|l| {
                l.contains("symbol=wait") && l.contains("lookup in file=") && l.contains("libc.so")
            })
            .map(str::to_string)
            .collect()
    };
    let (before, after) = out
        .stderr
        .split_once("-- first fork")
        .unwrap_or_else(|| panic!("no fork marker:\n{}", out.stderr));
    assert_eq!(
        lookups(before),
        Vec::<String>::new(),
        "looked up before the first fork"
    );
    // The control: LD_DEBUG does show these look-ups, at the first fork.
    let bound = lookups(after);
    for name in ["waitpid", "wait", "wait3", "wait4", "waitid"] {
        let needle = format!("symbol={name};");
        assert!(
            bound.iter().any(|l| l.contains(&needle)),
            "{name} not bound at the first fork:\n{after}"
        );
    }
}
