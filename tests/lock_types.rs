//! `[[lock]]` for every lock type and strategy (issue 3): another thread
//! holds the lock at the moment of the fork (a barrier makes it certain),
//! and the child takes it. Without forkguard the child hangs (proved with
//! the fixture's per-child watchdog); with forkguard it takes the lock at
//! once, 200 forks in a row. Also the timeout and `on_timeout` paths.

mod common;
mod lock_support;

use common::{LogLine, Scratch};
use lock_support::*;

/// `(fixture TYPE, symbol, config type)`.
const TYPES: &[(&str, &str, &str)] = &[
    ("mutex", "g_mutex", "mutex"),
    ("rwlock_w", "g_rwlock", "rwlock"),
    ("rwlock_r", "g_rwlock", "rwlock"),
    ("spin", "g_spin", "spinlock"),
    ("sem", "g_sem", "semaphore"),
    ("stdio", "g_file", "stdio"),
];

const ITER: &str = "200";

#[test]
fn without_forkguard_every_type_hangs_the_child() {
    let s = Scratch::new("lock-plain");
    for (ty, _, _) in TYPES {
        assert_hangs_without_forkguard(&s, &lock_types(), &[ty, "hold", "2", "300"], ty);
    }
}

/// `reinit`: the parent is left alone, the child finds the lock free.
#[test]
fn reinit_frees_every_type_in_the_child() {
    let s = Scratch::new("lock-reinit");
    for (ty, sym, cty) in TYPES {
        let body = lock(sym, cty, "reinit", "");
        let r = run_accepted(&s, ty, &body, &lock_types(), &[ty, "hold", ITER]);
        r.assert_all_ok(ITER, ty);
        let l = r.parsed_log();
        assert_eq!(
            l.children().len(),
            200,
            "{ty}: one child line per fork\n{}",
            l.raw
        );
        assert!(
            !l.raw.contains("failed"),
            "{ty}: no action may fail\n{}",
            l.raw
        );
    }
}

/// `acquire`: prepare waits for the holder (which lets go 2 ms after the
/// fork started), so no other thread is inside the lock at the fork; the
/// parent releases it, the child finds it free.
#[test]
fn acquire_takes_every_type_in_prepare() {
    let s = Scratch::new("lock-acquire");
    for (ty, sym, cty) in TYPES {
        let body = lock(sym, cty, "acquire", "timeout_ms = 2000");
        let r = run_accepted(&s, ty, &body, &lock_types(), &[ty, "brief", ITER]);
        r.assert_all_ok(ITER, ty);
        // fork() waited for the holder: at least its 2 ms, far less than the timeout.
        let max = r.num("max_fork_ms");
        assert!(
            (1.5..1500.0).contains(&max),
            "{ty}: fork took {max} ms at most\n{}",
            r.out.dump()
        );
        let l = r.parsed_log();
        let forks = l.forks();
        assert_eq!(forks.len(), 200, "{ty}\n{}", l.raw);
        for f in forks {
            let p = common::phase(f, "prepare").expect("prepare summary");
            let q = common::phase(f, "parent").expect("parent summary");
            assert_eq!(
                (p.ok, p.failed, q.ok, q.failed),
                (1, 0, 1, 0),
                "{ty}: lock taken and released\n{}",
                l.raw
            );
        }
    }
}

/// The holder keeps the lock through the fork: prepare gives up after
/// `timeout_ms`, the fork goes on (reported), and the child still finds
/// the lock free.
#[test]
fn acquire_timeout_is_reported_and_the_child_still_gets_the_lock() {
    let s = Scratch::new("lock-timeout");
    for (ty, sym, cty) in TYPES {
        let body = lock(sym, cty, "acquire", "timeout_ms = 30");
        let r = run_accepted(&s, ty, &body, &lock_types(), &[ty, "hold", "5"]);
        assert_eq!(
            (r.get("ok"), r.get("hung"), r.get("forkfail")),
            ("5", "0", "0"),
            "{ty}\n{}",
            r.out.dump()
        );
        let max = r.num("max_fork_ms");
        assert!(
            max >= 29.0,
            "{ty}: prepare must wait timeout_ms before giving up ({max} ms)"
        );
        let l = r.parsed_log();
        for f in l.forks() {
            let p = common::phase(f, "prepare").expect("prepare summary");
            assert_eq!(p.failed, 1, "{ty}\n{}", l.raw);
            let d = p.detail.as_deref().unwrap_or("");
            assert!(
                d.contains(&format!("lock {sym}: timed out")),
                "{ty}: {d:?}\n{}",
                l.raw
            );
        }
    }
}

/// `timeout_ms = 0`: one try, no wait.
#[test]
fn timeout_zero_tries_once() {
    let s = Scratch::new("lock-timeout0");
    let body = lock("g_mutex", "mutex", "acquire", "timeout_ms = 0");
    let r = run_guarded(&s, "fg", &body, &lock_types(), &["mutex", "hold", "20"]);
    assert_eq!(
        (r.get("ok"), r.get("hung")),
        ("20", "0"),
        "{}",
        r.out.dump()
    );
    assert!(r.num("max_fork_ms") < 25.0, "{}", r.out.dump());
    assert_eq!(r.log().raw.matches("timed out").count(), 20);
}

/// `on_timeout = "fail"`: fork returns -1 with EAGAIN, no child exists, the
/// parent phase runs and releases the lock prepare had already taken
/// (g_mutex2, declared first).
#[test]
fn on_timeout_fail_makes_fork_fail_with_eagain_and_releases_what_was_taken() {
    let s = Scratch::new("lock-fail");
    let body = lock("g_mutex2", "mutex", "acquire", "timeout_ms = 1000")
        + &lock(
            "g_mutex",
            "mutex",
            "acquire",
            "timeout_ms = 30\non_timeout = \"fail\"",
        );
    let r = run_accepted(&s, "fg", &body, &lock_types(), &["mutex", "fail", "10"]);
    assert_eq!(
        (r.get("forkfail"), r.get("errno"), r.get("released")),
        ("10", "EAGAIN", "1"),
        "{}",
        r.out.dump()
    );
    assert_eq!(
        (r.get("ok"), r.get("hung")),
        ("0", "0"),
        "no child may exist\n{}",
        r.out.dump()
    );
    assert!(r.num("max_fork_ms") >= 29.0, "{}", r.out.dump());
    let l = r.parsed_log();
    assert!(l.children().is_empty(), "{}", l.raw);
    let forks = l.forks();
    assert_eq!(forks.len(), 10, "{}", l.raw);
    for f in forks {
        let LogLine::Fork { child, errno, .. } = f else {
            unreachable!()
        };
        assert_eq!(
            (*child, errno.as_deref()),
            (-1, Some("EAGAIN")),
            "{}",
            l.raw
        );
        let p = common::phase(f, "prepare").expect("prepare");
        let q = common::phase(f, "parent").expect("parent");
        assert_eq!((p.ok, p.failed), (1, 1), "{}", l.raw);
        assert!(
            p.detail
                .as_deref()
                .unwrap_or("")
                .contains("lock g_mutex: timed out"),
            "{}",
            l.raw
        );
        // g_mutex2 released by the parent phase.
        assert_eq!((q.ok, q.failed), (1, 0), "{}", l.raw);
    }
}

/// `on_timeout = "fail"` only fails when the lock really cannot be taken.
#[test]
fn on_timeout_fail_forks_normally_when_the_lock_comes_free() {
    let s = Scratch::new("lock-fail-ok");
    let body = lock(
        "g_mutex",
        "mutex",
        "acquire",
        "timeout_ms = 2000\non_timeout = \"fail\"",
    );
    let r = run_guarded(&s, "fg", &body, &lock_types(), &["mutex", "brief", "50"]);
    assert_eq!(
        (r.get("ok"), r.get("forkfail"), r.get("hung")),
        ("50", "0", "0"),
        "{}",
        r.out.dump()
    );
}
