//! Bad configs (SPEC §4: one `forkguard: FILE:LINE:COL: message` line, then
//! `on_error` decides), unsafe config files, `FORKGUARD_DISABLE`,
//! `FORKGUARD_LOG`, and the json log format.

mod common;

use common::*;
use std::path::Path;

/// A bad config. Lines 1-4 are always `version`, `[settings]`, `on_error`,
/// `log`, so locations are stable; `body` follows, then a valid prepare call
/// that must not run when the config is rejected.
struct Bad {
    name: &'static str,
    version: &'static str,
    body: &'static str,
    line: usize,
    col: usize,
    /// A word the message should contain (case-insensitive).
    hint: &'static str,
}

const CORPUS: &[Bad] = &[
    Bad {
        name: "unknown settings key",
        version: "1",
        body: "colour = \"blue\"\n",
        line: 5,
        col: 1,
        hint: "colour",
    },
    Bad {
        name: "unknown call key",
        version: "1",
        body: "[[call]]\nphase = \"prepare\"\nsymbl = \"fgt_prepare\"\n",
        line: 7,
        col: 1,
        hint: "symbl",
    },
    Bad {
        name: "bad enum value",
        version: "1",
        body: "log_format = \"xml\"\n",
        line: 5,
        col: 14,
        hint: "xml",
    },
    Bad {
        name: "negative timeout",
        version: "1",
        body: "handshake_timeout_ms = -5\n",
        line: 5,
        col: 24,
        hint: "",
    },
    Bad {
        name: "wrong type",
        version: "1",
        body: "vfork = 1\n",
        line: 5,
        col: 9,
        hint: "",
    },
    Bad {
        name: "wrong version",
        version: "2",
        body: "",
        line: 1,
        col: 11,
        hint: "version",
    },
    Bad {
        name: "bad signal name",
        version: "1",
        body: "[child]\nparent_death_signal = \"SIGFOO\"\n",
        line: 6,
        col: 23,
        hint: "signal",
    },
    Bad {
        name: "bad signal number",
        version: "1",
        body: "[child]\nparent_death_signal = 99\n",
        line: 6,
        col: 23,
        hint: "signal",
    },
    Bad {
        name: "name too long",
        version: "1",
        body: "[child]\nname = \"aaaaaaaaaaaaaaaaaaaa\"\n",
        line: 6,
        col: 8,
        hint: "name",
    },
    Bad {
        name: "unknown non-optional symbol",
        version: "1",
        body: "[[call]]\nphase = \"child\"\nsymbol = \"fgt_no_such_function\"\n",
        line: 7,
        col: 10,
        hint: "fgt_no_such_function",
    },
];

fn bad_text(b: &Bad, on_error: &str, log: &Path) -> String {
    format!(
        "version = {}\n[settings]\non_error = \"{on_error}\"\nlog = \"{}\"\n{}{}",
        b.version,
        log.display(),
        b.body,
        calls(&[("prepare", "fgt_prepare")])
    )
}

/// The `forkguard:` lines of a stderr.
fn forkguard_errors(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|l| l.starts_with("forkguard:"))
        .collect()
}

fn check_corpus(on_error: &str) {
    let s = Scratch::new(&format!("badcfg-{on_error}"));
    let mut failures = Vec::new();
    for (i, b) in CORPUS.iter().enumerate() {
        s.reset_trace();
        let cfg = s.config(
            &format!("bad{i}.toml"),
            &bad_text(b, on_error, &s.path("fg.log")),
        );
        let out = run(&s, fixture_cmd(&s, "forker", &["fork"], &cfg), TIMEOUT);
        let t = s.trace();
        let errs = forkguard_errors(&out.stderr);
        let prefix = format!("forkguard: {}:{}:{}: ", cfg.display(), b.line, b.col);
        let mut problems = Vec::new();
        if errs.len() != 1 {
            problems.push(format!(
                "expected exactly one forkguard: line on stderr, got {}",
                errs.len()
            ));
        }
        match errs.first() {
            Some(e) if !e.starts_with(&prefix) => {
                problems.push(format!("expected prefix {prefix:?}"))
            }
            Some(e) if !e.to_lowercase().contains(&b.hint.to_lowercase()) => {
                problems.push(format!("message should mention {:?}", b.hint))
            }
            Some(e) if e.len() <= prefix.len() => problems.push("empty message".into()),
            _ => {}
        }
        if on_error == "abort" {
            if out.code() != Some(70) {
                problems.push(format!(
                    "on_error = \"abort\" should exit 70 before main, got {:?}",
                    out.status
                ));
            }
            if t.count("main-before") != 0 {
                problems.push("main ran despite on_error = \"abort\"".into());
            }
        } else {
            if !out.status.success() {
                problems.push(format!(
                    "on_error = \"warn\" should run the program, got {:?}",
                    out.status
                ));
            }
            if t.count("main-before") != 1 {
                problems.push("main did not run".into());
            }
            if t.count("prepare") != 0 {
                problems.push("a rejected config was partly applied (prepare call ran)".into());
            }
        }
        if !problems.is_empty() {
            failures.push(format!(
                "[{}] {}\n  stderr: {:?}",
                b.name,
                problems.join("; "),
                out.stderr
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} bad configs mishandled:\n{}",
        failures.len(),
        CORPUS.len(),
        failures.join("\n")
    );
}

#[test]
fn bad_configs_warn_and_run_unguarded() {
    check_corpus("warn");
}

#[test]
fn bad_configs_abort_with_70_before_main() {
    check_corpus("abort");
}

#[test]
fn good_config_of_the_corpus_shape_is_applied() {
    // Control for the corpus: the same shape without the mistake is accepted.
    let s = Scratch::new("goodcfg");
    let good = Bad {
        name: "good",
        version: "1",
        body: "",
        line: 0,
        col: 0,
        hint: "",
    };
    let cfg = s.config("good.toml", &bad_text(&good, "abort", &s.path("fg.log")));
    let out = run(&s, fixture_cmd(&s, "forker", &["fork"], &cfg), TIMEOUT);
    out.assert_success();
    assert!(forkguard_errors(&out.stderr).is_empty(), "{}", out.dump());
    assert_eq!(s.trace().count("prepare"), 1, "{}", s.trace().raw);
}

#[test]
fn unsafe_config_files_are_refused() {
    let s = Scratch::new("unsafecfg");
    let text = format!("{}{}", header(&s.path("fg.log"), ""), trace_calls());
    let mut cases: Vec<(&str, std::path::PathBuf)> = Vec::new();

    let ww = s.path("world-writable.toml");
    write_mode(&ww, &text, 0o666);
    cases.push(("world-writable", ww));
    let gw = s.path("group-writable.toml");
    write_mode(&gw, &text, 0o664);
    cases.push(("group-writable", gw));
    let target = s.config("real.toml", &text);
    let link = s.path("link.toml");
    std::os::unix::fs::symlink(&target, &link).expect("symlink");
    cases.push(("symlink", link));
    let dir = s.path("dir.toml");
    std::fs::create_dir(&dir).expect("mkdir");
    cases.push(("directory", dir));
    cases.push(("missing", s.path("missing.toml")));
    if is_root() {
        let other = s.path("other-owner.toml");
        write_mode(&other, &text, 0o644);
        std::os::unix::fs::chown(&other, Some(65534), Some(65534)).expect("chown");
        cases.push(("owned by another user", other));
    }

    let mut failures = Vec::new();
    for (name, cfg) in &cases {
        s.reset_trace();
        let out = run(&s, fixture_cmd(&s, "forker", &["fork"], cfg), TIMEOUT);
        let errs = forkguard_errors(&out.stderr);
        let prefix = format!("forkguard: {}: ", cfg.display());
        let t = s.trace();
        if errs.len() != 1 || !errs[0].starts_with(&prefix) {
            failures.push(format!(
                "[{name}] expected one line starting {prefix:?}, stderr: {:?}",
                out.stderr
            ));
        }
        if !out.status.success() || t.count("main-before") != 1 {
            failures.push(format!(
                "[{name}] program did not run normally: {:?}",
                out.status
            ));
        }
        if t.count("prepare") != 0 {
            failures.push(format!("[{name}] refused config was applied"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // Control: the real file itself is accepted.
    s.reset_trace();
    run(&s, fixture_cmd(&s, "forker", &["fork"], &target), TIMEOUT).assert_success();
    assert_eq!(s.trace().count("prepare"), 1, "control config not applied");
}

#[test]
fn forkguard_disable_is_pure_pass_through() {
    let s = Scratch::new("disable");
    let log = s.path("fg.log");
    let text = format!("{}{}", header(&log, ""), trace_calls());
    let cfg = s.config("fg.toml", &text);
    let mut cmd = fixture_cmd(&s, "forker", &["fork"], &cfg);
    cmd.env("FORKGUARD_DISABLE", "1");
    let out = run(&s, cmd, TIMEOUT);
    out.assert_success();
    let t = s.trace();
    assert_eq!(t.count("parent-main"), 1, "{}", t.raw);
    for w in ["prepare", "parent", "child"] {
        assert_eq!(
            t.count(w),
            0,
            "FORKGUARD_DISABLE=1 still ran a {w} phase:\n{}",
            t.raw
        );
    }
    assert!(
        std::fs::read_to_string(&log).unwrap_or_default().is_empty(),
        "FORKGUARD_DISABLE=1 still logged"
    );
    assert!(out.stderr.is_empty(), "{}", out.dump());

    // Control: the same run without the variable is guarded.
    s.reset_trace();
    run(&s, fixture_cmd(&s, "forker", &["fork"], &cfg), TIMEOUT).assert_success();
    assert_eq!(s.trace().count("prepare"), 1);
}

#[test]
fn forkguard_log_overrides_config() {
    let s = Scratch::new("logenv");
    // Config says off; the variable names a file.
    let off = s.config(
        "off.toml",
        &format!("version = 1\n[settings]\nlog = \"off\"\n{}", trace_calls()),
    );
    let envlog = s.path("env.log");
    let mut cmd = fixture_cmd(&s, "forker", &["fork"], &off);
    cmd.env("FORKGUARD_LOG", &envlog);
    run(&s, cmd, TIMEOUT).assert_success();
    let log = Log::read(&envlog);
    log.assert_all_parse();
    assert_eq!(
        log.forks().len(),
        1,
        "FORKGUARD_LOG=<file> ignored:\n{}",
        log.raw
    );
    assert_eq!(
        log.children().len(),
        1,
        "FORKGUARD_LOG=<file> ignored:\n{}",
        log.raw
    );

    // Config names a file; the variable says off.
    let cfglog = s.path("cfg.log");
    let to_file = s.config(
        "file.toml",
        &format!("{}{}", header(&cfglog, ""), trace_calls()),
    );
    s.reset_trace();
    let mut cmd = fixture_cmd(&s, "forker", &["fork"], &to_file);
    cmd.env("FORKGUARD_LOG", "off");
    let out = run(&s, cmd, TIMEOUT);
    out.assert_success();
    assert_eq!(s.trace().count("prepare"), 1, "config not applied");
    assert!(
        std::fs::read_to_string(&cfglog)
            .unwrap_or_default()
            .is_empty(),
        "FORKGUARD_LOG=off ignored"
    );
    assert!(
        !out.stderr.contains("forkguard["),
        "FORKGUARD_LOG=off still logged:\n{}",
        out.dump()
    );

    // The variable says stderr.
    let mut cmd = fixture_cmd(&s, "forker", &["fork"], &to_file);
    cmd.env("FORKGUARD_LOG", "stderr");
    let out = run(&s, cmd, TIMEOUT);
    out.assert_success();
    let log = Log::parse_forkguard_lines(&out.stderr);
    log.assert_all_parse();
    assert_eq!(
        log.forks().len(),
        1,
        "FORKGUARD_LOG=stderr ignored:\n{}",
        out.dump()
    );
    assert_eq!(
        log.children().len(),
        1,
        "FORKGUARD_LOG=stderr ignored:\n{}",
        out.dump()
    );
    assert!(
        std::fs::read_to_string(&cfglog)
            .unwrap_or_default()
            .is_empty(),
        "logged to the config's file too"
    );
}

fn json_lines(p: &Path) -> Vec<Json> {
    let raw = std::fs::read_to_string(p).unwrap_or_default();
    raw.lines()
        .map(|l| {
            Json::parse(l)
                .unwrap_or_else(|e| panic!("log line is not one json object ({e}): {l:?}\n{raw}"))
        })
        .collect()
}

fn event<'a>(lines: &'a [Json], name: &str) -> Vec<&'a Json> {
    lines
        .iter()
        .filter(|j| j.get("event").and_then(Json::as_str) == Some(name))
        .collect()
}

fn check_common_json(j: &Json) {
    let ts = j
        .get("ts")
        .and_then(Json::as_f64)
        .unwrap_or_else(|| panic!("no numeric ts: {j:?}"));
    assert!(
        (ts - now_unix()).abs() < 600.0,
        "ts is not unix seconds: {j:?}"
    );
    assert!(
        j.get("pid").and_then(Json::as_i64).is_some_and(|p| p > 0),
        "pid: {j:?}"
    );
    assert!(
        j.get("phase_us")
            .and_then(Json::as_f64)
            .is_some_and(|t| t >= 0.0),
        "phase_us: {j:?}"
    );
    assert!(
        j.get("actions_ok").and_then(Json::as_i64).is_some(),
        "actions_ok: {j:?}"
    );
    assert!(
        j.get("actions_failed").and_then(Json::as_i64).is_some(),
        "actions_failed: {j:?}"
    );
    assert!(
        j.get("errors").and_then(Json::as_arr).is_some(),
        "errors list: {j:?}"
    );
}

#[test]
fn json_log_has_the_documented_fields() {
    let s = Scratch::new("json");
    let log = s.path("fg.log");
    let cfg = s.config(
        "fg.toml",
        &format!("{}{}", header(&log, "log_format = \"json\""), trace_calls()),
    );
    run(&s, fixture_cmd(&s, "forker", &["fork"], &cfg), TIMEOUT).assert_success();
    let t = s.trace();
    let parent = t.one("main-before").pid();
    let child = t.one("parent-main").nums[1];
    let lines = json_lines(&log);
    let forks = event(&lines, "fork");
    assert_eq!(forks.len(), 1, "{lines:?}");
    let f = forks[0];
    check_common_json(f);
    assert_eq!(f.get("pid").and_then(Json::as_i64), Some(parent), "{f:?}");
    assert_eq!(f.get("child").and_then(Json::as_i64), Some(child), "{f:?}");
    assert_eq!(f.get("via").and_then(Json::as_str), Some("fork"), "{f:?}");
    assert_eq!(
        f.get("actions_ok").and_then(Json::as_i64),
        Some(2),
        "prepare + parent call: {f:?}"
    );
    assert_eq!(
        f.get("actions_failed").and_then(Json::as_i64),
        Some(0),
        "{f:?}"
    );
    assert_eq!(
        f.get("errors").and_then(Json::as_arr).map(<[Json]>::len),
        Some(0),
        "{f:?}"
    );
    let kids = event(&lines, "child");
    assert_eq!(kids.len(), 1, "{lines:?}");
    check_common_json(kids[0]);
    assert_eq!(
        kids[0].get("pid").and_then(Json::as_i64),
        Some(child),
        "{:?}",
        kids[0]
    );
    assert_eq!(
        kids[0].get("actions_ok").and_then(Json::as_i64),
        Some(1),
        "{:?}",
        kids[0]
    );
}

#[test]
fn json_log_reports_failed_fork() {
    let s = Scratch::new("jsonfail");
    let log = s.path("fg.log");
    let cfg = s.config(
        "fg.toml",
        &format!("{}{}", header(&log, "log_format = \"json\""), trace_calls()),
    );
    run(&s, fixture_cmd(&s, "forker", &["fail"], &cfg), TIMEOUT).assert_success();
    let lines = json_lines(&log);
    let forks = event(&lines, "fork");
    assert_eq!(forks.len(), 1, "{lines:?}");
    let f = forks[0];
    check_common_json(f);
    assert_eq!(f.get("child").and_then(Json::as_i64), Some(-1), "{f:?}");
    let errno = f
        .get("errno")
        .unwrap_or_else(|| panic!("no errno on a failed fork: {f:?}"));
    assert!(
        errno.as_str() == Some("EAGAIN") || errno.as_i64() == Some(libc::EAGAIN as i64),
        "errno should be EAGAIN: {f:?}"
    );
}

#[test]
fn json_log_reports_config_error() {
    let s = Scratch::new("jsoncfg");
    let log = s.path("fg.log");
    let text = format!(
        "version = 1\n[settings]\nlog = \"{}\"\nlog_format = \"json\"\nbogus = 1\n",
        log.display()
    );
    let cfg = s.config("fg.toml", &text);
    let out = run(&s, fixture_cmd(&s, "forker", &["fork"], &cfg), TIMEOUT);
    out.assert_success();
    // The config was rejected, so its log settings do not apply: the error
    // goes to stderr in the documented text form.
    let errs = forkguard_errors(&out.stderr);
    assert_eq!(errs.len(), 1, "{}", out.dump());
    assert!(
        errs[0].starts_with(&format!("forkguard: {}:5:1: ", cfg.display())),
        "{}",
        out.dump()
    );
}
