//! The child phase allocates nothing (SPEC §4: async-signal-safe). Checked
//! with `tests/c/alloccount.c`, preloaded after forkguard so its atfork
//! snapshot handler is the first one registered (constructors of preloaded
//! objects run last-listed first) and runs before forkguard's child phase.

mod common;

use common::*;

const CHILD_SETTINGS: &str = "
[child]
parent_death_signal = \"TERM\"
reset_signal_mask = true
reset_signal_handlers = true
new_session = true
oom_score_adj = 300
name = \"fgtalloc\"
";

fn alloc_run(s: &Scratch, text: &str) -> (Outcome, Log) {
    let cfg = s.config("fg.toml", text);
    let mut cmd = fixture_cmd(s, "allocfix", &[], &cfg);
    let preload = format!("{} {}", lib().display(), fixture("alloccount").display());
    cmd.env("LD_PRELOAD", preload);
    let out = run(s, cmd, TIMEOUT);
    out.assert_success().assert_config_accepted();
    let log = Log::read(&s.path("fg.log"));
    (out, log)
}

fn child_allocs(out: &Outcome) -> u64 {
    out.get("", "child_allocs")
        .parse()
        .expect("child_allocs is a number")
}

/// The child phase really ran (and reported), so a zero count means something.
fn assert_child_phase_ran(s: &Scratch, log: &Log, calls: usize) {
    let t = s.trace();
    assert_eq!(t.count("child"), 1, "child call did not run:\n{}", t.raw);
    assert_eq!(
        t.count("child2"),
        usize::from(calls > 1),
        "child call did not run:\n{}",
        t.raw
    );
    assert_eq!(
        log.children().len(),
        1,
        "the child did not write its report:\n{}",
        log.raw
    );
}

#[test]
fn child_phase_with_calls_settings_log_and_handshake_does_not_allocate() {
    let s = Scratch::new("alloc");
    let text = format!(
        "{}{}{CHILD_SETTINGS}",
        header(&s.path("fg.log"), "handshake_timeout_ms = 5000"),
        // A call with `args` (SPEC 8.8) in the child too: six registers,
        // nothing prepared after the fork.
        calls(&[
            ("prepare", "fgt_prepare"),
            ("child", "fgt_child"),
            ("child", "fgt_child2")
        ])
        .replace(
            "symbol = \"fgt_child2\"\n",
            "symbol = \"fgt_child2\"\nargs = [1, -2, 3, 4, 5, 6]\n"
        )
    );
    assert!(text.contains("args = [1, -2"));
    let (out, log) = alloc_run(&s, &text);
    assert_child_phase_ran(&s, &log, 2);
    log.assert_all_parse();
    assert_eq!(
        child_allocs(&out),
        0,
        "the child phase allocated:\n{}\nlog:\n{}",
        out.dump(),
        log.raw
    );
}

const ZERO_AND_FDS: &str = "
[[zero]]
symbol = \"fgt_zero_me\"

[[fd]]
select = { fd = 60 }
action = \"close\"

[[fd]]
select = { fd = 61 }
action = \"devnull\"

[[fd]]
select = { fd = 63, kind = \"eventfd\" }
action = \"renew\"

[[fd]]
select = { fd = 64, kind = \"socket\" }
action = \"disconnect\"

[[fd]]
select = { fd = 65 }
action = \"cloexec\"
";

const LOCKS: &str = "
[[lock]]
symbol = \"fgt_lock\"
type = \"mutex\"

[[lock]]
symbol = \"fgt_lock2\"
type = \"mutex\"
strategy = \"reinit\"
";

/// allocfix under a json-logging, handshaking config with every child
/// setting, a prepare and a child call, and `actions`.
fn alloc_json_run(tag: &str, actions: &str) {
    alloc_json_run_with(tag, "", actions)
}

/// `alloc_json_run` with more `[settings]` lines.
fn alloc_json_run_with(tag: &str, settings: &str, actions: &str) {
    let s = Scratch::new(tag);
    let reopen = format!(
        "\n[[fd]]\nselect = {{ fd = 62 }}\naction = \"reopen\"\npath = \"{}/reopen.%p.%P.log\"\nflags = [\"append\", \"create\"]\nmode = 0o640\n",
        s.dir.display()
    );
    let text = format!(
        "{}{}{CHILD_SETTINGS}{actions}{reopen}",
        header(
            &s.path("fg.log"),
            &format!("handshake_timeout_ms = 5000\nlog_format = \"json\"\n{settings}")
        ),
        calls(&[("prepare", "fgt_prepare"), ("child", "fgt_child")]),
    );
    let cfg = s.config("fg.toml", &text);
    let mut cmd = fixture_cmd(&s, "allocfix", &[], &cfg);
    cmd.env(
        "LD_PRELOAD",
        format!("{} {}", lib().display(), fixture("alloccount").display()),
    );
    let out = run(&s, cmd, TIMEOUT);
    out.assert_success().assert_config_accepted();
    let t = s.trace();
    assert_eq!(
        t.count("child"),
        1,
        "child call did not run:\n{}\n{}",
        t.raw,
        out.dump()
    );
    let raw = std::fs::read_to_string(s.path("fg.log")).unwrap_or_default();
    let child_events: Vec<Json> = raw
        .lines()
        .filter_map(|l| Json::parse(l).ok())
        .filter(|j| j.get("event").and_then(Json::as_str) == Some("child"))
        .collect();
    assert_eq!(
        child_events.len(),
        1,
        "the child did not write its json report:\n{raw}"
    );
    assert_eq!(
        child_events[0].get("actions_failed").and_then(Json::as_i64),
        Some(0),
        "an action failed in the child:\n{raw}"
    );
    assert_eq!(
        child_allocs(&out),
        0,
        "the child phase allocated:\n{}\nlog:\n{raw}",
        out.dump()
    );
}

#[test]
fn child_phase_with_zero_fd_actions_and_json_log_does_not_allocate() {
    alloc_json_run("allocfd", ZERO_AND_FDS);
}

#[test]
fn child_phase_with_lock_actions_does_not_allocate() {
    alloc_json_run("alloclock", LOCKS);
}

/// `type = "futex"` (a word and a futex inside a struct, by `offset`), and
/// the `libc_locks` profile, whose fork handlers reset glibc's internal
/// locks in the child (they run after alloccount's snapshot handler).
#[test]
fn child_phase_with_futex_and_libc_locks_does_not_allocate() {
    let futex = "
[[lock]]
symbol = \"fgt_futex\"
type = \"futex\"

[[lock]]
symbol = \"fgt_lock2\"
type = \"futex\"
strategy = \"reinit\"
offset = 0

[[zero]]
symbol = \"fgt_zero_me\"
offset = 8
size = 8
";
    alloc_json_run_with("allocfutex", "libc_locks = \"acquire\"", futex);
}

#[test]
fn allocating_child_call_is_detected() {
    // The check itself must be able to fail: one strdup in a child call.
    let s = Scratch::new("allocneg");
    let text = format!(
        "{}{}",
        header(&s.path("fg.log"), ""),
        calls(&[("child", "fgt_child"), ("child", "fgt_child_strdup")])
    );
    let (out, log) = alloc_run(&s, &text);
    assert_child_phase_ran(&s, &log, 1);
    assert!(
        child_allocs(&out) >= 1,
        "a strdup in the child phase went unseen:\n{}",
        out.dump()
    );
}

#[test]
fn child_phase_with_held_locks_does_not_allocate() {
    // tests/c/held.c: other threads hold heap mutexes, an rwlock for
    // reading, semaphores, 32 threads x 4 mutexes; forkguard frees them in
    // the child (reinit), or takes and frees them (acquire), with a log.
    // Each child exits 7 if anything allocated since the fork.
    for mode in ["reinit", "acquire"] {
        let s = Scratch::new("allocheld");
        let cfg = s.config(
            "fg.toml",
            &format!(
                "version = 1\n[settings]\nheld_locks = \"{mode}\"\nlock_timeout_ms = 1\nlog = \"{}\"\n",
                s.path("fg.log").display()
            ),
        );
        for scene in [
            "mutex-heap",
            "rwlock-readers",
            "sem",
            "many",
            "recursive-mine",
        ] {
            let mut cmd = fixture_cmd(&s, "held", &[scene, "20", "5000"], &cfg);
            cmd.env(
                "LD_PRELOAD",
                format!("{} {}", lib().display(), fixture("alloccount").display()),
            )
            .env("FGT_ALLOC_CHECK", "1");
            let out = run(&s, cmd, TIMEOUT);
            out.assert_success();
            assert!(
                out.stdout.contains("forks 20 hung 0 failed 0"),
                "{mode} {scene}: a child allocated (exit 7) or hung:\n{}",
                out.dump()
            );
        }
        let log = std::fs::read_to_string(s.path("fg.log")).unwrap();
        assert!(log.contains("held locks freed: "), "{log}");
    }
}
