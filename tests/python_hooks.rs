//! `[[python]]` (SPEC 8.7): Python hooks registered by forkguard with
//! `os.register_at_fork`, seen from real Python programs (`os.fork`,
//! multiprocessing with the "fork" start method) through a trace file
//! (tests/py/hookmods/fghooks.py) and forkguard's log. gunicorn and uWSGI
//! are in tests/python_servers.rs.

mod common;

use common::*;
use std::process::Command;

/// Run tests/py/py_hooks.py MODE N with `entries` after a text-log header.
fn py_hooks(
    s: &Scratch,
    entries: &str,
    mode: &str,
    n: u32,
    json: bool,
) -> Option<(Outcome, Trace)> {
    let Some(py) = python() else {
        eprintln!("SKIPPED: python3 is not installed");
        return None;
    };
    let extra = if json { "log_format = \"json\"" } else { "" };
    let cfg = s.config(
        "fg.toml",
        &format!("{}{entries}", header(&s.path("fg.log"), extra)),
    );
    let mut cmd = guarded(s, &py, &cfg);
    cmd.arg(root().join("tests/py/py_hooks.py"))
        .arg(mode)
        .arg(n.to_string());
    let out = run(s, cmd, TIMEOUT);
    out.assert_success().assert_config_accepted();
    Some((out, s.trace()))
}

fn entry(phase: &str, what: &str) -> String {
    format!("\n[[python]]\nphase = \"{phase}\"\n{what}\n")
}

fn call(phase: &str, target: &str) -> String {
    entry(phase, &format!("call = \"fghooks:{target}\""))
}

/// The pids of the children the parent reaped.
fn children(t: &Trace) -> Vec<i64> {
    t.with("reaped").iter().map(|e| e.nums[1]).collect()
}

#[test]
fn hooks_run_once_per_child_in_declared_order_from_the_first_fork() {
    let s = Scratch::new("py-order");
    let entries = [
        call("prepare", "prepare"),
        call("child", "child"),
        call("parent", "parent"),
        call("child", "child2"),
        call("child", "thread_and_import"),
        call("child", "engine.dispose"),
    ]
    .concat();
    let Some((_, t)) = py_hooks(&s, &entries, "os_fork", 3, false) else {
        return;
    };
    let parent = t.one("done").pid();
    let kids = children(&t);
    assert_eq!(kids.len(), 3, "{}", t.raw);
    // The module the program imported is the one called: imported once.
    assert_eq!(t.count("imported"), 1, "{}", t.raw);
    // prepare and parent entries in the parent, at every fork, the first
    // one included.
    assert_eq!(
        t.with("hook-prepare")
            .iter()
            .filter(|e| e.pid() == parent)
            .count(),
        3,
        "{}",
        t.raw
    );
    assert_eq!(
        t.with("hook-parent")
            .iter()
            .filter(|e| e.pid() == parent)
            .count(),
        3,
        "{}",
        t.raw
    );
    for &k in &kids {
        let words: Vec<&str> = t
            .words_of(k)
            .into_iter()
            .filter(|w| w.starts_with("hook-"))
            .collect();
        assert_eq!(
            words,
            ["hook-child", "hook-child2", "hook-thread", "hook-dispose"],
            "child {k}: once each, in declared order\n{}",
            t.raw
        );
        // After CPython's own after-fork work: a thread started and took the
        // import lock; and before the program's own code in the child.
        let th = t
            .with("hook-thread")
            .into_iter()
            .find(|e| e.pid() == k)
            .expect("thread line");
        assert_eq!(th.nums[1], 1, "{}", t.raw);
        assert!(
            t.index_of("hook-child", k) < t.index_of("child-main", k),
            "{}",
            t.raw
        );
        // The engine the program created is the one disposed (count 1 in
        // each child: the parent's object, copied).
        let d = t
            .with("hook-dispose")
            .into_iter()
            .find(|e| e.pid() == k)
            .expect("dispose");
        assert_eq!(d.nums[1], 1, "{}", t.raw);
    }
    // Nothing ran in the parent that belongs to the child.
    assert_eq!(
        t.with("hook-child")
            .iter()
            .filter(|e| e.pid() == parent)
            .count(),
        0
    );
    let log = std::fs::read_to_string(s.path("fg.log")).unwrap_or_default();
    assert_eq!(log.matches("python child of").count(), 3, "{log}");
    assert!(!log.contains("missed"), "{log}");
}

#[test]
fn multiprocessing_fork_children_run_the_hooks() {
    let s = Scratch::new("py-mp");
    let entries = [call("child", "child"), call("parent", "parent")].concat();
    let Some((_, t)) = py_hooks(&s, &entries, "mp_fork", 3, false) else {
        return;
    };
    let kids = children(&t);
    assert_eq!(kids.len(), 3, "{}", t.raw);
    for &k in &kids {
        assert_eq!(
            t.words_of(k).iter().filter(|w| **w == "hook-child").count(),
            1,
            "{}",
            t.raw
        );
    }
    assert_eq!(t.count("hook-parent"), 3, "{}", t.raw);
}

#[test]
fn an_exception_is_reported_and_the_child_goes_on() {
    for json in [false, true] {
        let s = Scratch::new("py-raise");
        let entries = [
            call("child", "boom"),
            call("child", "child"),
            call("child", "no_such_attribute"),
            entry("child", "call = \"fg_no_such_module:f\""),
            entry(
                "child",
                "call = \"fg_no_such_module_optional:f\"\noptional = true",
            ),
            entry(
                "child",
                "code = \"import fg_no_such_module_either\"\noptional = true",
            ),
            entry("child", "code = \"x = 1 +\""),
        ]
        .concat();
        let Some((out, t)) = py_hooks(&s, &entries, "os_fork", 1, json) else {
            return;
        };
        let k = children(&t)[0];
        assert_eq!(t.one("reaped").nums[2], 0, "the child exited 0");
        assert!(
            t.index_of("child-main", k).is_some(),
            "the child's own code ran\n{}",
            t.raw
        );
        assert_eq!(
            t.words_of(k)
                .iter()
                .filter(|w| w.starts_with("hook-"))
                .count(),
            2,
            "{}",
            t.raw
        );
        assert!(
            !out.stderr.contains("Traceback"),
            "nothing raised into the program\n{}",
            out.dump()
        );
        let log = std::fs::read_to_string(s.path("fg.log")).unwrap_or_default();
        let line = log
            .lines()
            .find(|l| {
                if json {
                    l.contains("\"event\":\"python\"") && l.contains("\"phase\":\"child\"")
                } else {
                    l.contains("python child of")
                }
            })
            .unwrap_or_else(|| panic!("no python child line:\n{log}"));
        for want in [
            "python call fghooks:boom: RuntimeError: boom in the child",
            "python call fghooks:no_such_attribute: AttributeError: module 'fghooks' has no attribute 'no_such_attribute'",
            "python call fg_no_such_module:f: ModuleNotFoundError: No module named 'fg_no_such_module'",
            "SyntaxError: ",
        ] {
            assert!(line.contains(want), "{want}\n{line}");
        }
        assert!(
            !line.contains("optional"),
            "optional entries are silent: {line}"
        );
        if json {
            let j = Json::parse(line).expect("json");
            assert_eq!(
                j.get("actions_ok").and_then(Json::as_i64),
                Some(1),
                "{line}"
            );
            assert_eq!(
                j.get("actions_failed").and_then(Json::as_i64),
                Some(4),
                "{line}"
            );
            assert_eq!(
                j.get("errors").and_then(Json::as_arr).map(|a| a.len()),
                Some(4),
                "{line}"
            );
            assert_eq!(j.get("pid").and_then(Json::as_i64), Some(k), "{line}");
        } else {
            assert!(line.contains(": 1 ok, 4 failed ("), "{line}");
            assert!(
                line.starts_with(&format!("forkguard[{k}] python child of ")),
                "{line}"
            );
        }
    }
}

#[test]
fn call_imports_a_module_not_imported_yet() {
    let s = Scratch::new("py-import");
    let entries = [call("child", "child"), call("parent", "parent")].concat();
    let Some(py) = python() else {
        eprintln!("SKIPPED: python3 is not installed");
        return;
    };
    let cfg_text = format!("{}{entries}", header(&s.path("fg.log"), ""));
    let cfg = s.config("fg.toml", &cfg_text);
    let mut cmd = guarded(&s, &py, &cfg);
    cmd.arg(root().join("tests/py/py_hooks.py"))
        .args(["no_import", "2"])
        .env("PYTHONPATH", root().join("tests/py/hookmods"));
    let out = run(&s, cmd, TIMEOUT);
    out.assert_success().assert_config_accepted();
    let t = s.trace();
    let parent = t.one("done").pid();
    // Imported once in the parent (by the first parent hook), inherited by
    // the second child; the first child imports it itself (its hook ran
    // before the parent's).
    assert_eq!(t.count("hook-child"), 2, "{}", t.raw);
    assert_eq!(
        t.with("hook-parent")
            .iter()
            .filter(|e| e.pid() == parent)
            .count(),
        2,
        "{}",
        t.raw
    );
    assert!(
        t.with("imported").iter().any(|e| e.pid() == parent),
        "{}",
        t.raw
    );
}

/// A program that does not run Python: the entries do nothing, and no
/// Python line is logged.
#[test]
fn a_program_without_python_is_untouched() {
    let s = Scratch::new("py-none");
    let text = format!(
        "{}{}{}",
        header(&s.path("fg.log"), ""),
        call("prepare", "prepare"),
        trace_calls()
    );
    let cfg = s.config("fg.toml", &text);
    run(&s, fixture_cmd(&s, "forker", &["fork"], &cfg), TIMEOUT)
        .assert_success()
        .assert_config_accepted();
    let t = s.trace();
    assert_eq!(t.count("prepare"), 1, "{}", t.raw);
    let log = Log::read(&s.path("fg.log"));
    log.assert_all_parse();
    assert_eq!(log.forks().len(), 1, "{}", log.raw);
    assert!(!log.raw.contains("python"), "{}", log.raw);
}

/// Bad entries: `forkguard check` and the library refuse them at their
/// location.
#[test]
fn bad_entries_are_config_errors() {
    let s = Scratch::new("py-bad");
    let head = "version = 1\n[[python]]\nphase = \"child\"\n";
    for (body, want) in [
        (
            "call = \"m:f\"\ncode = \"pass\"\n",
            "5:8: give either call or code",
        ),
        ("optional = true\n", "2:1: a [[python]] entry needs call"),
        (
            "call = \"no-colon\"\n",
            "4:8: call must be \"module:attribute.path\"",
        ),
        ("code = \"def f(:\"\n", "4:8: code does not compile: "),
    ] {
        let cfg = s.config("bad.toml", &format!("{head}{body}"));
        let out = Command::new(cli())
            .arg("check")
            .arg(&cfg)
            .output()
            .expect("forkguard check");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{body}: {err}");
        let want = format!("forkguard: {}:{want}", cfg.display());
        assert!(err.starts_with(&want), "{body}\n want {want}\n got {err}");
    }
    // Without python3 the syntax is not checked, and check says so.
    let cfg = s.config("code.toml", &format!("{head}code = \"def f(:\"\n"));
    let out = Command::new(cli())
        .arg("check")
        .arg(&cfg)
        .env("PATH", "/nonexistent")
        .output()
        .expect("forkguard check");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("was NOT checked"), "{text}");
}

/// `check --program`: per entry, whether its `programs` take this program;
/// and whether the program runs CPython (the version the interpreter says
/// of itself), or not (a C program: the entries would not run).
#[test]
fn check_program_says_which_entries_apply_and_whether_it_runs_cpython() {
    let Some(py) = python() else {
        eprintln!("SKIPPED: python3 is not installed");
        return;
    };
    let s = Scratch::new("py-check");
    let cfg = s.config(
        "check.toml",
        &format!(
            "version = 1\n{}programs = [\"python3*\"]\n{}programs = [\"uwsgi\"]\n",
            entry("child", "code = \"pass\""),
            entry("parent", "call = \"m:f\"")
        ),
    );
    let check = |program: &std::path::Path| {
        let mut cmd = Command::new(cli());
        clean_env(&mut cmd);
        cmd.arg("check").arg(&cfg).arg("--program").arg(program);
        let out = run(&s, cmd, TIMEOUT);
        out.assert_success();
        out.stdout
    };
    let version = Command::new(&py)
        .args(["-c", "import platform; print(platform.python_version())"])
        .output()
        .expect("python3");
    let version = String::from_utf8_lossy(&version.stdout).trim().to_string();

    let text = check(&py);
    for want in [
        "python: line 3, child: python code \"pass\": applies\n".to_string(),
        "python: line 8, parent: python call m:f(): does not apply (programs = [uwsgi])\n".into(),
        format!(
            "python: 1 of 2 entries applies; {} runs CPython {version} (C API in ",
            py.display()
        ),
    ] {
        assert!(text.contains(&want), "want {want}\n{text}");
    }

    // A C program: the same entry applies (no programs), CPython is absent.
    let cfg_all = s.config(
        "all.toml",
        &format!("version = 1\n{}", entry("child", "code = \"pass\"")),
    );
    let mut cmd = Command::new(cli());
    clean_env(&mut cmd);
    cmd.arg("check")
        .arg(&cfg_all)
        .arg("--program")
        .arg(fixture("forker"));
    let out = run(&s, cmd, TIMEOUT);
    out.assert_success();
    let want = format!(
        "python: {} does not run CPython (its C API is not loaded at start); 1 of 1 entry applies, but will not run",
        fixture("forker").display()
    );
    assert!(out.stdout.contains(&want), "want {want}\n{}", out.stdout);
    // And the interpreter with it: the control for the line above.
    let mut cmd = Command::new(cli());
    clean_env(&mut cmd);
    cmd.arg("check").arg(&cfg_all).arg("--program").arg(&py);
    let out = run(&s, cmd, TIMEOUT);
    assert!(
        out.stdout.contains(&format!(
            "1 of 1 entry applies; {} runs CPython",
            py.display()
        )),
        "{}",
        out.stdout
    );
}
