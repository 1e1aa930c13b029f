//! Order of actions (SPEC §4), forks inside forks, forks inside phases, and
//! forks from several threads at once.

mod common;

use common::*;

/// Runs `forker MODE` with `call_tables` as its config (logging to
/// `fg.log`); it must succeed with the config accepted. Returns its trace.
fn forker(s: &Scratch, mode: &str, call_tables: &str) -> Trace {
    let text = format!("{}{call_tables}", header(&s.path("fg.log"), ""));
    let cfg = s.config("fg.toml", &text);
    run(s, fixture_cmd(s, "forker", &[mode], &cfg), TIMEOUT)
        .assert_success()
        .assert_config_accepted();
    s.trace()
}

#[test]
fn calls_run_in_declaration_order_then_reverse() {
    let s = Scratch::new("order");
    // Interleaved on purpose: the order is per phase, in declaration order.
    let t = forker(
        &s,
        "fork",
        &calls(&[
            ("prepare", "fgt_prepare"),
            ("child", "fgt_child"),
            ("parent", "fgt_parent"),
            ("prepare", "fgt_prepare2"),
            ("parent", "fgt_parent2"),
            ("child", "fgt_child2"),
            ("child", "fgt_child3"),
            ("prepare", "fgt_prepare3"),
            ("parent", "fgt_parent3"),
        ]),
    );
    let parent = t.one("main-before").pid();
    let child = t.one("parent-main").nums[1];
    let phase_words = |pid| -> Vec<&str> {
        t.words_of(pid)
            .into_iter()
            .filter(|w| {
                w.starts_with("prepare") || w.starts_with("parent") || w.starts_with("child")
            })
            .filter(|w| !w.ends_with("-main"))
            .collect()
    };
    assert_eq!(
        phase_words(parent),
        ["prepare", "prepare2", "prepare3", "parent3", "parent2", "parent"],
        "parent-side order:\n{}",
        t.raw
    );
    assert_eq!(
        phase_words(child),
        ["child3", "child2", "child"],
        "child-side order:\n{}",
        t.raw
    );
    let log = Log::read(&s.path("fg.log"));
    log.assert_all_parse();
    let f = log.forks();
    assert_eq!(f.len(), 1, "{}", log.raw);
    assert_eq!(phase(f[0], "prepare").map(|p| p.ok), Some(3), "{}", log.raw);
    assert_eq!(phase(f[0], "parent").map(|p| p.ok), Some(3), "{}", log.raw);
}

/// Runs `childcheck MODE` with a child-phase probe call plus `actions`;
/// returns the probe's LOCK_FREE ZEROED FD_CLOSED NAME_SET flags.
fn probe_child_phase(tag: &str, mode: &str, actions: &str) -> Vec<i64> {
    let s = Scratch::new(tag);
    let text = format!(
        "{}{}{actions}\n[child]\nname = \"fgtworker\"\n",
        header(&s.path("fg.log"), ""),
        calls(&[("child", "fgt_child_probe")])
    );
    let cfg = s.config("fg.toml", &text);
    let out = run(&s, fixture_cmd(&s, "childcheck", &[mode], &cfg), TIMEOUT);
    out.assert_success().assert_config_accepted();
    assert_eq!(out.get("child:", "name"), "fgtworker", "{}", out.dump());
    let t = s.trace();
    assert_eq!(
        t.count("probe"),
        1,
        "child call did not run:\n{}\n{}",
        t.raw,
        out.dump()
    );
    t.one("probe").nums[1..].to_vec()
}

const ZERO_AND_FD: &str = "
[[zero]]
symbol = \"fgt_zero_me\"

[[fd]]
select = { fd = 50 }
action = \"close\"
";

#[test]
fn child_phase_runs_zero_fds_settings_then_calls() {
    let probe = probe_child_phase("childorder", "settings", ZERO_AND_FD);
    assert_eq!(
        probe[1..],
        [1, 1, 1],
        "when the child call ran: object zeroed, fd 50 closed, name set (1 = done)"
    );
}

#[test]
fn child_phase_reinitialises_locks_before_calls() {
    // Another thread holds fgt_lock at the fork: without re-initialising,
    // the child could never take it.
    let lock = "
[[lock]]
symbol = \"fgt_lock\"
type = \"mutex\"
strategy = \"reinit\"
";
    let probe = probe_child_phase("childlock", "order", &format!("{lock}{ZERO_AND_FD}"));
    assert_eq!(
        probe,
        [1, 1, 1, 1],
        "when the child call ran: lock re-initialised, object zeroed, fd 50 closed, name set (1 = done)"
    );
}

#[test]
fn nested_forks_get_phases_in_children_and_grandchildren() {
    let s = Scratch::new("nested");
    let t = forker(&s, "nested", &trace_calls());
    let top = t.one("main-before").pid();
    let child = t.one("child-main").pid();
    let grandchild = t.one("grandchild-main").pid();
    let pids = |w: &str| -> Vec<i64> {
        let mut v: Vec<i64> = t.with(w).iter().map(|e| e.pid()).collect();
        v.sort();
        v
    };
    let mut both = vec![top, child];
    both.sort();
    assert_eq!(
        pids("prepare"),
        both,
        "prepare in the top process and the child:\n{}",
        t.raw
    );
    assert_eq!(
        pids("parent"),
        both,
        "parent phase in the top process and the child:\n{}",
        t.raw
    );
    let mut kids = vec![child, grandchild];
    kids.sort();
    assert_eq!(
        pids("child"),
        kids,
        "child phase in the child and the grandchild:\n{}",
        t.raw
    );

    let log = Log::read(&s.path("fg.log"));
    log.assert_all_parse();
    assert_eq!(log.forks().len(), 2, "{}", log.raw);
    assert_eq!(log.children().len(), 2, "{}", log.raw);
}

#[test]
fn fork_inside_a_phase_passes_straight_through() {
    let s = Scratch::new("innerfork");
    let t = forker(
        &s,
        "fork",
        &calls(&[
            ("prepare", "fgt_prepare"),
            ("prepare", "fgt_inner_fork"),
            ("parent", "fgt_inner_fork"),
            ("parent", "fgt_parent"),
            ("child", "fgt_child"),
        ]),
    );
    let parent = t.one("main-before").pid();
    let child = t.one("parent-main").nums[1];
    assert_eq!(t.count("inner-child"), 2, "the two inner forks:\n{}", t.raw);
    for e in t.with("inner-parent") {
        assert!(e.nums[1] > 0, "inner fork failed:\n{}", t.raw);
        assert_eq!(e.nums[2], 0, "inner child did not exit 0:\n{}", t.raw);
    }
    // Exactly the outer fork's phases: none for the inner forks.
    assert_eq!(t.one("prepare").pid(), parent, "{}", t.raw);
    assert_eq!(t.one("parent").pid(), parent, "{}", t.raw);
    assert_eq!(
        t.one("child").pid(),
        child,
        "a phase ran for an inner fork:\n{}",
        t.raw
    );
    let log = Log::read(&s.path("fg.log"));
    log.assert_all_parse();
    assert_eq!(
        log.forks().len(),
        1,
        "only the outer fork is guarded:\n{}",
        log.raw
    );
    assert_eq!(
        log.children().len(),
        1,
        "only the outer fork is guarded:\n{}",
        log.raw
    );
}

fn threads_forking(tag: &str, extra_settings: &str, threads: u32, iterations: u32) {
    let s = Scratch::new(tag);
    let text = format!(
        "{}{}",
        header(&s.path("fg.log"), extra_settings),
        trace_calls()
    );
    let cfg = s.config("fg.toml", &text);
    let (th, it) = (threads.to_string(), iterations.to_string());
    let out = run(
        &s,
        fixture_cmd(&s, "forker", &["threads", &th, &it], &cfg),
        TIMEOUT * 3,
    );
    out.assert_success().assert_config_accepted();
    let n = (threads * iterations) as usize;
    assert!(
        out.stdout.contains(&format!("forks={n} failures=0")),
        "{}",
        out.dump()
    );
    let t = s.trace();
    assert_eq!(t.count("prepare"), n, "prepare calls");
    assert_eq!(t.count("parent"), n, "parent calls");
    assert_eq!(t.count("child"), n, "child calls");
    // Each child ran its child phase exactly once.
    let mut kids: Vec<i64> = t.with("child").iter().map(|e| e.pid()).collect();
    kids.sort();
    kids.dedup();
    assert_eq!(kids.len(), n, "child phases in distinct processes");
    let log = Log::read(&s.path("fg.log"));
    log.assert_all_parse();
    assert_eq!(
        log.forks().len(),
        n,
        "fork lines (one write per line, O_APPEND)"
    );
    assert_eq!(
        log.children().len(),
        n,
        "child lines (one write per line, O_APPEND)"
    );
}

#[test]
fn threads_fork_concurrently() {
    threads_forking("threads", "", 4, 150);
}

#[test]
fn threads_fork_concurrently_with_handshake() {
    threads_forking("threadshs", "handshake_timeout_ms = 5000", 3, 60);
}
