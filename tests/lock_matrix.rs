//! The mutex-kind matrix (issue 3): NORMAL, ERRORCHECK, RECURSIVE, ROBUST,
//! robust recursive, process-shared and priority-inheritance mutexes,
//! rwlocks read- and write-locked (and a writer-preferring, process-shared
//! one), and `stdout`; held by another thread, by the forking thread, or
//! both. The child unlocks what its thread held, locks and unlocks again,
//! and the lock keeps its kind: a recursive mutex can still be taken twice,
//! an error-checking one still reports EDEADLK, an unlock by a thread that
//! does not hold it still fails with EPERM (see tests/c/lock_matrix.c).
//!
//! Each case also runs without forkguard, and must fail there exactly where
//! FACTS.md says glibc fails, so the checks are known to bite.

mod common;
mod lock_support;

use common::Scratch;
use lock_support::*;

/// `(fixture KIND, symbol, config type)`.
fn target(kind: &str) -> (&'static str, &'static str) {
    match kind {
        k if k.starts_with("rw_") => ("g_rw", "rwlock"),
        "stdout" => ("stdout", "stdio"),
        _ => ("g_m", "mutex"),
    }
}

/// Cases glibc gets right without help: a NORMAL (or process-shared, also
/// NORMAL) mutex and an rwlock read-held only by the forking thread can be
/// unlocked in the child; stdout held by another thread is reset by glibc
/// itself (multi-threaded parent).
fn works_without_forkguard(kind: &str, who: &str) -> bool {
    matches!(
        (kind, who),
        ("normal" | "pshared" | "rw_read", "self") | ("stdout", "other")
    )
}

const ITER: &str = "50";

fn check(kind: &str, who: &str) {
    let s = Scratch::new(&format!("matrix-{kind}-{who}"));
    let prog = lock_matrix();

    let r = result(&s, plain(&s, &prog, &[kind, who, "2", "200"]));
    if works_without_forkguard(kind, who) {
        assert_eq!(
            r.get("ok"),
            "2",
            "{kind}/{who} without forkguard\n{}",
            r.out.dump()
        );
    } else {
        assert_eq!(
            r.get("ok"),
            "0",
            "{kind}/{who}: the check must fail without forkguard\n{}",
            r.out.dump()
        );
    }

    let (sym, ty) = target(kind);
    for (strategy, extra) in [("reinit", ""), ("acquire", "timeout_ms = 5")] {
        let body = lock(sym, ty, strategy, extra);
        let r = run_accepted(&s, strategy, &body, &prog, &[kind, who, ITER]);
        r.assert_all_ok(ITER, &format!("{kind}/{who} with strategy {strategy}"));
        let l = r.parsed_log();
        assert_eq!(l.children().len(), 50, "{kind}/{who}/{strategy}\n{}", l.raw);
        if who == "self" {
            // Held by the forking thread: never taken again (no timeout).
            assert!(
                !l.raw.contains("timed out"),
                "{kind}/{who}/{strategy}\n{}",
                l.raw
            );
        }
    }
}

macro_rules! cases {
    ($($name:ident: $kind:literal, $who:literal;)*) => {
        $(
            #[test]
            fn $name() {
                check($kind, $who);
            }
        )*
    };
}

cases! {
    normal_other: "normal", "other";
    normal_self: "normal", "self";
    errorcheck_other: "errorcheck", "other";
    errorcheck_self: "errorcheck", "self";
    recursive_other: "recursive", "other";
    recursive_self_twice: "recursive", "self";
    robust_other: "robust", "other";
    robust_self: "robust", "self";
    robust_recursive_other: "robust_recursive", "other";
    robust_recursive_self_twice: "robust_recursive", "self";
    pshared_other: "pshared", "other";
    pshared_self: "pshared", "self";
    priority_inherit_other: "pi", "other";
    priority_inherit_self: "pi", "self";
    rwlock_read_other: "rw_read", "other";
    rwlock_read_self_twice: "rw_read", "self";
    rwlock_read_self_and_other: "rw_read", "both";
    rwlock_write_other: "rw_write", "other";
    rwlock_write_self: "rw_write", "self";
    rwlock_writer_preferring_pshared_other: "rw_wpref", "other";
    rwlock_writer_preferring_pshared_self: "rw_wpref", "self";
    stdout_other: "stdout", "other";
    stdout_self_twice: "stdout", "self";
}
