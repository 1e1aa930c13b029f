//! `[settings] held_locks` (SPEC 8.4): every pthread lock and binary
//! semaphore another thread holds at the fork, wherever it lives, is made
//! free in the child (`reinit`), or first taken by prepare (`acquire`).
//!
//! Real programs (`tests/c/held.c`, `tests/py/held.py`): threads hold the
//! locks at each fork, each child takes them. Every case has a control run
//! without forkguard (or with `held_locks = "off"`) that hangs (children
//! killed after a deadline) or fails; every run is bounded.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

#[derive(Debug, PartialEq)]
struct Tally {
    forks: u32,
    hung: u32,
    failed: u32,
}

/// The fixture's last `forks N hung H failed F` line.
fn tally(out: &Outcome) -> Tally {
    let (forks, hung, failed) = out.fork_tally();
    Tally {
        forks,
        hung,
        failed,
    }
}

fn config(s: &Scratch, name: &str, mode: &str, timeout_ms: u32) -> PathBuf {
    s.config(
        name,
        &format!(
            "version = 1\n[settings]\nheld_locks = \"{mode}\"\nlock_timeout_ms = {timeout_ms}\nlog = \"{}\"\n",
            s.path(&format!("{name}.log")).display()
        ),
    )
}

/// The C fixture, with forkguard and `cfg`, or bare.
fn c_run(s: &Scratch, cfg: Option<&Path>, scene: &str, forks: u32, child_ms: u32) -> Tally {
    let args = [scene.to_string(), forks.to_string(), child_ms.to_string()];
    let cmd = match cfg {
        Some(c) => {
            let mut cmd = guarded(s, fixture("held"), c);
            cmd.args(&args);
            cmd
        }
        None => {
            let mut cmd = Command::new(fixture("held"));
            clean_env(&mut cmd);
            cmd.args(&args).current_dir(&s.dir);
            cmd
        }
    };
    let out = run(s, cmd, Duration::from_secs(120));
    out.assert_success();
    tally(&out)
}

const OTHERS: [(&str, u32); 12] = [
    ("mutex-heap", 200),
    ("mutex-global", 50),
    ("mutex-array", 50),
    ("rwlock-readers", 200),
    ("rwlock-writer", 50),
    ("spin", 50),
    ("sem", 200),
    ("sem-other-post", 50),
    ("exit-holding", 50),
    ("many", 50),
    ("unordered", 50),
    ("reuse", 50),
];

#[test]
fn locks_other_threads_hold_hang_the_child_without_forkguard() {
    let s = Scratch::new("held-ctl");
    let off = config(&s, "off.toml", "off", 100);
    for (scene, _) in OTHERS {
        let t = c_run(&s, None, scene, 2, 200);
        assert_eq!(t.hung, 2, "{scene} without forkguard: {t:?}");
    }
    // held_locks = "off" changes nothing.
    let t = c_run(&s, Some(&off), "mutex-heap", 2, 200);
    assert_eq!(t.hung, 2, "held_locks = off: {t:?}");
}

#[test]
fn reinit_frees_every_lock_other_threads_hold() {
    let s = Scratch::new("held-reinit");
    let cfg = config(&s, "reinit.toml", "reinit", 100);
    for (scene, forks) in OTHERS {
        let t = c_run(&s, Some(&cfg), scene, forks, 5000);
        assert_eq!((t.forks, t.hung, t.failed), (forks, 0, 0), "{scene}");
    }
}

#[test]
fn acquire_frees_what_it_could_not_take() {
    // The holders keep their locks until the parent has forked: each is
    // waited for (1 ms), then freed in the child and reported.
    let s = Scratch::new("held-acquire");
    let cfg = config(&s, "acquire.toml", "acquire", 1);
    for (scene, forks) in OTHERS {
        let t = c_run(&s, Some(&cfg), scene, forks, 5000);
        assert_eq!((t.forks, t.hung, t.failed), (forks, 0, 0), "{scene}");
    }
    let log = std::fs::read_to_string(s.path("acquire.toml.log")).unwrap();
    assert!(log.contains(" timed out"), "{log}");
}

#[test]
fn acquire_takes_locks_held_briefly_so_the_child_sees_consistent_data() {
    // A thread updates two counters under a mutex, again and again. With
    // reinit the child finds them torn (the lock was freed mid-update);
    // acquire waits for the update to finish. A lock first taken in the
    // few microseconds between prepare and the real fork is still freed
    // as with reinit (docs/held-locks.md), hence the small allowance.
    let s = Scratch::new("held-consistent");
    let reinit = config(&s, "reinit.toml", "reinit", 100);
    let acquire = config(&s, "acquire.toml", "acquire", 200);
    let r = c_run(&s, Some(&reinit), "consistent", 100, 5000);
    assert_eq!(r.hung, 0);
    assert!(r.failed >= 50, "reinit should tear the data: {r:?}");
    let a = c_run(&s, Some(&acquire), "consistent", 200, 5000);
    assert_eq!(a.hung, 0);
    assert!(a.failed <= 10, "acquire: {a:?}");
    let log = std::fs::read_to_string(s.path("acquire.toml.log")).unwrap();
    assert!(log.contains(" taken"), "{log}");
}

#[test]
fn the_forking_threads_own_mutexes_stay_its_own_in_the_child() {
    // The child unlocks (twice for the recursive one) and locks again:
    // EPERM without forkguard for errorcheck, recursive and robust
    // mutexes; an rwlock stays busy.
    let s = Scratch::new("held-mine");
    let reinit = config(&s, "reinit.toml", "reinit", 100);
    let acquire = config(&s, "acquire.toml", "acquire", 5);
    for scene in [
        "recursive-mine",
        "errorcheck-mine",
        "robust-mine",
        "rwlock-mine",
    ] {
        let t = c_run(&s, None, scene, 2, 2000);
        assert_eq!(t.failed, 2, "{scene} without forkguard: {t:?}");
        for cfg in [&reinit, &acquire] {
            let t = c_run(&s, Some(cfg), scene, 50, 5000);
            assert_eq!((t.hung, t.failed), (0, 0), "{scene} {cfg:?}");
        }
    }
}

#[test]
fn a_counting_semaphore_is_left_alone() {
    // sem_init(s, 0, 3), one taken: the child must see 2.
    let s = Scratch::new("held-counting");
    let cfg = config(&s, "reinit.toml", "reinit", 100);
    let t = c_run(&s, Some(&cfg), "counting", 20, 5000);
    assert_eq!((t.hung, t.failed), (0, 0));
}

#[test]
fn the_log_names_each_lock() {
    let s = Scratch::new("held-names");
    let cfg = config(&s, "reinit.toml", "reinit", 100);
    for (scene, want) in [
        ("mutex-global", "held:g_lock"),
        ("mutex-array", "held:g_locks+200"),
        ("mutex-heap", "heap mutex taken in "),
        ("sem", "heap semaphore taken in "),
    ] {
        let _ = std::fs::remove_file(s.path("reinit.toml.log"));
        c_run(&s, Some(&cfg), scene, 2, 5000);
        let log = std::fs::read_to_string(s.path("reinit.toml.log")).unwrap();
        let parent = log
            .lines()
            .find(|l| l.contains("] fork -> ") && l.contains("held locks:"))
            .unwrap_or_else(|| panic!("{scene}: {log}"));
        assert!(parent.contains(want), "{scene}: {parent}");
        let child = log
            .lines()
            .find(|l| l.contains("] child of ") && l.contains("held locks freed: "))
            .unwrap_or_else(|| panic!("{scene}: {log}"));
        assert!(child.contains(want), "{scene}: {child}");
    }
}

#[test]
fn json_log_fields() {
    let s = Scratch::new("held-json");
    let cfg = s.config(
        "j.toml",
        &format!(
            "version = 1\n[settings]\nheld_locks = \"reinit\"\nlog_format = \"json\"\nlog = \"{}\"\n",
            s.path("j.log").display()
        ),
    );
    c_run(&s, Some(&cfg), "mutex-global", 1, 5000);
    let text = std::fs::read_to_string(s.path("j.log")).unwrap();
    let mut fork = None;
    let mut child = None;
    for l in text.lines() {
        let j = Json::parse(l).unwrap_or_else(|e| panic!("{e}: {l}"));
        match j.get("event").and_then(Json::as_str) {
            Some("fork") => fork = Some(j),
            Some("child") => child = Some(j),
            _ => {}
        }
    }
    let fork = fork.expect("fork event");
    let child = child.expect("child event");
    assert_eq!(fork.get("held_locks").and_then(Json::as_i64), Some(1));
    let names = fork.get("held").and_then(Json::as_arr).unwrap();
    assert_eq!(names[0].as_str(), Some("held:g_lock"));
    assert_eq!(child.get("held_freed").and_then(Json::as_i64), Some(1));
    let names = child.get("held").and_then(Json::as_arr).unwrap();
    assert_eq!(names[0].as_str(), Some("held:g_lock"));
}

// ---- Python (CPython 3.11: threading.Lock and buffered files are sem_t) ----

fn py_run(s: &Scratch, cfg: Option<&Path>, scene: &str, forks: u32, child_s: f64) -> Option<Tally> {
    let py = python()?;
    let args = [
        root().join("tests/py/held.py").display().to_string(),
        scene.to_string(),
        forks.to_string(),
        child_s.to_string(),
        s.dir.display().to_string(),
    ];
    let cmd = match cfg {
        Some(c) => {
            let mut cmd = guarded(s, &py, c);
            cmd.args(&args);
            cmd
        }
        None => {
            let mut cmd = Command::new(&py);
            clean_env(&mut cmd);
            cmd.args(&args).current_dir(&s.dir);
            cmd
        }
    };
    let out = run(s, cmd, Duration::from_secs(120));
    out.assert_success();
    Some(tally(&out))
}

const PY: [(&str, u32); 6] = [
    ("lock", 200),
    ("file", 200),
    ("stdout", 50),
    ("logging", 50),
    ("other-release", 50),
    ("pool", 10),
];

#[test]
fn python_children_hang_on_cpython_locks_without_forkguard() {
    let s = Scratch::new("held-py-ctl");
    // print() to sys.stdout (a file here) does not hang this control on
    // CPython 3.11 (see docs/held-locks.md): it is only run guarded below.
    for (scene, _) in PY.iter().filter(|(s, _)| *s != "stdout") {
        let Some(t) = py_run(&s, None, scene, 3, 0.5) else {
            eprintln!("SKIPPED: python3 is not installed");
            return;
        };
        // A loaded machine may let the other thread finish first now and
        // then: one hung child shows the bug.
        assert!(t.hung >= 1, "{scene} without forkguard: {t:?}");
    }
}

#[test]
fn python_children_finish_with_held_locks() {
    let s = Scratch::new("held-py");
    let reinit = config(&s, "reinit.toml", "reinit", 100);
    // A 60 s timeout: under CPython the forking thread holds the GIL, so
    // waiting for a Python thread's lock is futile and must be skipped; a
    // fork that waited it out would take a minute, and the run's 120 s
    // bound fails the test.
    let acquire = config(&s, "acquire.toml", "acquire", 60_000);
    for (scene, forks) in PY {
        for cfg in [&reinit, &acquire] {
            let Some(t) = py_run(&s, Some(cfg), scene, forks, 10.0) else {
                eprintln!("SKIPPED: python3 is not installed");
                return;
            };
            assert_eq!(
                (t.forks, t.hung, t.failed),
                (forks, 0, 0),
                "{scene} {cfg:?}"
            );
        }
    }
    let log = std::fs::read_to_string(s.path("acquire.toml.log")).unwrap();
    assert!(log.contains("not waited for"), "{log}");
}

// ---- forkguard audit --suggest, end to end ---------------------------------

/// `tests/c/held_cache.cpp`, built once with g++.
fn cache_program() -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            let dir = fixture("held").parent().unwrap().to_path_buf();
            let out = dir.join("held_cache");
            let tmp = dir.join(format!(".held_cache.{}.tmp", std::process::id()));
            let st = Command::new("g++")
                .args(["-O1", "-g", "-pthread", "-o"])
                .arg(&tmp)
                .arg(root().join("tests/c/held_cache.cpp"))
                .status()
                .expect("run g++ (install g++)");
            assert!(st.success(), "g++ failed");
            std::fs::rename(&tmp, &out).unwrap();
            out
        })
        .clone()
}

fn workers_tally(out: &Outcome) -> (u32, u32, u32) {
    let line = out
        .stdout
        .lines()
        .rev()
        .find(|l| l.starts_with("workers "))
        .unwrap_or_else(|| panic!("no tally:\n{}", out.dump()));
    let w: Vec<u32> = line
        .split_whitespace()
        .filter_map(|x| x.parse().ok())
        .collect();
    (w[0], w[1], w[2])
}

#[test]
fn audit_names_a_heap_mutex_and_suggest_writes_a_config_that_fixes_the_program() {
    let s = Scratch::new("held-suggest");
    let prog = cache_program();
    // Control: the workers hang.
    let mut bare = Command::new(&prog);
    clean_env(&mut bare);
    bare.args(["5", "300"]).current_dir(&s.dir);
    let out = run(&s, bare, TIMEOUT);
    let (_, hung, _) = workers_tally(&out);
    assert!(hung >= 3, "control: {}", out.dump());
    // Audit: names the lock, writes the config.
    let cfg = s.path("suggested.toml");
    let mut audit = Command::new(cli());
    clean_env(&mut audit);
    audit
        .env("FORKGUARD_LIB", lib())
        .args(["audit", "--suggest"])
        .arg(&cfg)
        .arg("--")
        .arg(&prog)
        .args(["3", "300"])
        .current_dir(&s.dir);
    let out = run(&s, audit, TIMEOUT);
    out.assert_success();
    assert!(
        out.stderr
            .contains("heap mutex taken in _ZN5Cache7refreshEv (held_cache+0x"),
        "{}",
        out.dump()
    );
    assert!(
        out.stderr.contains("audit summary: 3 forks"),
        "{}",
        out.dump()
    );
    let text = std::fs::read_to_string(&cfg).unwrap();
    assert!(text.contains("held_locks = \"acquire\""), "{text}");
    // The CLI demangles the C++ name in the comment.
    assert!(text.contains("#   C++: Cache::refresh()"), "{text}");
    // check accepts it.
    let mut check = Command::new(cli());
    clean_env(&mut check);
    check.arg("check").arg(&cfg);
    run(&s, check, TIMEOUT).assert_success();
    // Used as is, it fixes the program.
    let mut fixed = guarded(&s, &prog, &cfg);
    fixed.args(["50", "5000"]);
    let out = run(&s, fixed, Duration::from_secs(120));
    // No worker hangs. (acquire waits for the refresh the refresher is in,
    // or about to start; one first locked in the microseconds between
    // prepare and the real fork is freed mid-update, and the worker may
    // then read a torn map: docs/held-locks.md.)
    let (n, hung, failed) = workers_tally(&out);
    assert_eq!((n, hung), (50, 0), "{}", out.dump());
    assert!(failed <= 3, "{}", out.dump());
}

#[test]
fn suggest_names_a_global_as_a_lock_action() {
    let s = Scratch::new("held-suggest-global");
    let cfg = s.path("suggested.toml");
    let mut audit = Command::new(cli());
    clean_env(&mut audit);
    audit
        .env("FORKGUARD_LIB", lib())
        .args(["audit", "--suggest"])
        .arg(&cfg)
        .arg("--")
        .arg(fixture("held"))
        .args(["mutex-global", "2", "300"])
        .current_dir(&s.dir);
    let out = run(&s, audit, TIMEOUT);
    out.assert_success();
    assert!(out.stderr.contains("held:g_lock by tid "), "{}", out.dump());
    let text = std::fs::read_to_string(&cfg).unwrap();
    assert!(
        text.contains("[[lock]]\nsymbol = \"g_lock\"\ntype = \"mutex\""),
        "{text}"
    );
    let t = c_run(&s, Some(&cfg), "mutex-global", 20, 5000);
    assert_eq!((t.hung, t.failed), (0, 0));
}

#[test]
fn audit_names_a_static_in_a_stripped_program_by_its_debug_file() {
    // tests/c/held.c's `static pthread_mutex_t s_lock`, in a copy stripped
    // of every symbol table, with its debug file found by .gnu_debuglink
    // (SPEC 8.1): audit names it OBJECT:FILE:NAME, and --suggest writes the
    // [[lock]] that, used as is, fixes the program.
    let s = Scratch::new("held-debugfile");
    let prog = s.path("held_stripped");
    let dbg = s.path("held_stripped.debug");
    std::fs::copy(fixture("held"), &prog).unwrap();
    let sh = |args: &[&str]| {
        let o = Command::new(args[0])
            .args(&args[1..])
            .output()
            .expect("binutils");
        assert!(
            o.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    };
    let (p, d) = (prog.to_str().unwrap(), dbg.to_str().unwrap());
    sh(&["objcopy", "--only-keep-debug", p, d]);
    sh(&["strip", "--strip-all", p]);
    sh(&["objcopy", &format!("--add-gnu-debuglink={d}"), p]);
    let cfg = s.path("suggested.toml");
    let mut audit = Command::new(cli());
    clean_env(&mut audit);
    audit
        .env("FORKGUARD_LIB", lib())
        .args(["audit", "--suggest"])
        .arg(&cfg)
        .arg("--")
        .arg(&prog)
        .args(["mutex-static", "2", "300"])
        .current_dir(&s.dir);
    let out = run(&s, audit, TIMEOUT);
    out.assert_success();
    assert!(
        out.stderr.contains("held_stripped:held.c:s_lock by tid "),
        "{}",
        out.dump()
    );
    let text = std::fs::read_to_string(&cfg).unwrap();
    assert!(
        text.contains("symbol = \"held_stripped:held.c:s_lock\"\ntype = \"mutex\""),
        "{text}"
    );
    let mut fixed = guarded(&s, &prog, &cfg);
    fixed.args(["mutex-static", "20", "5000"]);
    let t = tally(&run(&s, fixed, Duration::from_secs(120)));
    assert_eq!((t.forks, t.hung, t.failed), (20, 0, 0));
    // Without the debug file the static has no name: a static mutex
    // "taken in" the function that took it.
    std::fs::remove_file(&dbg).unwrap();
    let mut audit = Command::new(cli());
    clean_env(&mut audit);
    audit
        .env("FORKGUARD_LIB", lib())
        .arg("audit")
        .arg("--")
        .arg(&prog)
        .args(["mutex-static", "1", "300"])
        .current_dir(&s.dir);
    let out = run(&s, audit, TIMEOUT);
    assert!(
        out.stderr
            .contains("held by other threads: static mutex taken in "),
        "{}",
        out.dump()
    );
}
