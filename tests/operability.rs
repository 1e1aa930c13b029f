//! What a new user stumbled on (issue 13): `forkguard run` honours
//! `FORKGUARD_DISABLE`; the log says how many descriptors each fd action
//! acted on in a child, and warns once per action (not per fork) when one
//! matched nothing; `audit` names each entry by its config line; a host
//! name in `peer` gets an error that says names are not resolved.
//!
//! Run: `cargo build --release --workspace && cargo test --release --test operability`.
//! Every run has a deadline; each check has its control.

mod common;

use common::{Json, JsonExt, Scratch};
use std::process::Command;
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(60);

/// Python forking `n` children with an inheritable listening socket and a
/// client socket connected to it.
const FORKS: &str = r#"
import os, socket, sys
ls = socket.socket(); ls.bind(("127.0.0.1", 0)); ls.listen(4)
c = socket.create_connection(ls.getsockname())
print("port", ls.getsockname()[1], flush=True)
for _ in range(int(sys.argv[1])):
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
"#;

fn forks(s: &Scratch, n: u32, config_body: &str, json: bool) -> (common::Outcome, String) {
    let py = common::python().expect("python3");
    let log = s.path("log");
    let _ = std::fs::remove_file(&log);
    let fmt = if json { "json" } else { "text" };
    let cfg = s.config(
        "op.toml",
        &format!(
            "version = 1\n[settings]\nlog = \"{}\"\nlog_format = \"{fmt}\"\n{config_body}",
            log.display()
        ),
    );
    let mut cmd = common::guarded(s, &py, &cfg);
    cmd.args(["-c", FORKS, &n.to_string()]);
    let out = common::run(s, cmd, TIMEOUT);
    assert!(out.status.success(), "{}", out.dump());
    (out, std::fs::read_to_string(&log).unwrap_or_default())
}

const TWO_ACTIONS: &str = "[[fd]]\nselect = { kind = \"listen\" }\naction = \"close\"\n\n[[fd]]\nselect = { kind = \"socket\", peer = \"127.0.0.1:6379\" }\naction = \"disconnect\"\n";

/// Per child, how many descriptors each fd action acted on; the action
/// that matched nothing is warned about once for the three forks.
/// Control: when the selector matches, no warning.
#[test]
fn fd_counts_and_one_warning_per_action() {
    if common::python().is_none() {
        eprintln!("skipped: no python3");
        return;
    }
    let s = Scratch::new("op-counts");
    let (_, log) = forks(&s, 3, TWO_ACTIONS, false);
    let counts: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("] fd actions: "))
        .collect();
    assert_eq!(counts.len(), 3, "{log}");
    for l in &counts {
        assert!(
            l.ends_with("fd actions: close (line 5) 1 fd, disconnect (line 9) 0 fds"),
            "{l}"
        );
    }
    let warnings: Vec<&str> = log.lines().filter(|l| l.contains("] warning: ")).collect();
    assert_eq!(warnings.len(), 1, "once per action, not per fork:\n{log}");
    assert!(
        warnings[0].contains("fd disconnect (line 9) matched no descriptor"),
        "{log}"
    );
    assert!(warnings[0].contains("[::1]"), "{log}");

    // The child line itself keeps SPEC §5's form.
    let parsed = common::Log::parse(&log);
    parsed.assert_all_parse();
    assert_eq!(parsed.children().len(), 3, "{log}");

    // Control: an action that matches is not warned about.
    let matching = "[[fd]]\nselect = { kind = \"socket\", peer = \"*:1\" }\naction = \"disconnect\"\n\n[[fd]]\nselect = { kind = \"socket\" }\naction = \"disconnect\"\n";
    let (_, log) = forks(&s, 2, matching, false);
    let warnings: Vec<&str> = log.lines().filter(|l| l.contains("] warning: ")).collect();
    assert_eq!(warnings.len(), 1, "{log}");
    assert!(
        warnings[0].contains("(line 5)"),
        "only the unmatched one:\n{log}"
    );
    assert!(
        log.lines()
            .filter(|l| l.contains("fd actions: "))
            .all(|l| l.ends_with("disconnect (line 9) 2 fds")),
        "{log}"
    );
}

/// The same in JSON: an `fd` event with per-action counts, a `warning`.
#[test]
fn fd_counts_in_json() {
    if common::python().is_none() {
        return;
    }
    let s = Scratch::new("op-json");
    let (_, log) = forks(&s, 2, TWO_ACTIONS, true);
    let events: Vec<Json> = log.lines().filter_map(|l| Json::parse(l).ok()).collect();
    let fd: Vec<&Json> = events
        .iter()
        .filter(|j| j.get("event").and_then(Json::as_str) == Some("fd"))
        .collect();
    assert_eq!(fd.len(), 2, "{log}");
    let acts = fd[0]
        .get("actions")
        .and_then(|v| v.as_arr())
        .expect("actions");
    assert_eq!(acts.len(), 2, "{log}");
    assert_eq!(acts[0].get("line").and_then(Json::as_i64), Some(5));
    assert_eq!(acts[0].get("fds").and_then(Json::as_i64), Some(1));
    assert_eq!(
        acts[1].get("action").and_then(Json::as_str),
        Some("disconnect")
    );
    assert_eq!(acts[1].get("fds").and_then(Json::as_i64), Some(0));
    let warns = events
        .iter()
        .filter(|j| j.get("event").and_then(Json::as_str) == Some("warning"))
        .count();
    assert_eq!(warns, 1, "{log}");
}

/// `forkguard run` with FORKGUARD_DISABLE=1: the program runs with no
/// phase and no log line; without it (control), the fork is logged.
#[test]
fn run_honours_forkguard_disable() {
    let s = Scratch::new("op-disable");
    let log = s.path("log");
    let cfg = s.config(
        "d.toml",
        &format!(
            "version = 1\n[settings]\nlog = \"{}\"\n[child]\nname = \"fg-kid\"\n",
            log.display()
        ),
    );
    for disable in [false, true] {
        let _ = std::fs::remove_file(&log);
        let mut cmd = Command::new(common::cli());
        common::clean_env(&mut cmd);
        cmd.arg("run")
            .arg("-c")
            .arg(&cfg)
            .args(["--", "/bin/sh", "-c", "(exit 0); echo done"]);
        if disable {
            cmd.env("FORKGUARD_DISABLE", "1");
        }
        let out = common::run(&s, cmd, TIMEOUT);
        assert!(out.status.success(), "{}", out.dump());
        assert!(out.stdout.contains("done"), "{}", out.dump());
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if disable {
            assert!(
                text.is_empty(),
                "FORKGUARD_DISABLE=1 still guarded:\n{text}"
            );
        } else {
            assert!(
                text.contains(" fork -> "),
                "control: the fork is logged:\n{text}"
            );
        }
    }
    let help = Command::new(common::cli())
        .args(["run", "--help"])
        .output()
        .expect("forkguard run --help");
    assert!(
        String::from_utf8_lossy(&help.stdout).contains("FORKGUARD_DISABLE"),
        "run --help mentions it"
    );
}

/// `forkguard audit` names each configured fd entry by its config line.
#[test]
fn audit_names_entries_by_line() {
    let Some(py) = common::python() else { return };
    let s = Scratch::new("op-audit");
    let log = s.path("log");
    let cfg = s.config(
        "a.toml",
        &format!(
            "version = 1\n[settings]\nlog = \"{}\"\n{TWO_ACTIONS}",
            log.display()
        ),
    );
    let mut cmd = Command::new(common::cli());
    common::clean_env(&mut cmd);
    cmd.arg("audit")
        .arg("-c")
        .arg(&cfg)
        .arg("--")
        .arg(&py)
        .args(["-c", FORKS, "1"]);
    let out = common::run(&s, cmd, TIMEOUT);
    assert!(out.status.success(), "{}", out.dump());
    // `audit` reports to stderr unless --log says otherwise.
    let text = out.stderr.clone();
    let audit = text
        .lines()
        .find(|l| l.contains(" audit fork via "))
        .unwrap_or_else(|| panic!("no audit line:\n{text}{}", out.dump()));
    assert!(
        audit.contains("; fd close (line 4) -> ")
            && audit.contains("; fd disconnect (line 8) -> none"),
        "{audit}"
    );
}

/// A host name in `peer`: `check` and the library say names are not
/// resolved and suggest `"*:PORT"` (and the loopback addresses for a
/// loopback name), at the value's line and column.
#[test]
fn peer_host_name_error_suggests_a_wildcard() {
    let s = Scratch::new("op-peer");
    for (host, extra) in [
        ("db.internal", None),
        ("ip6-localhost", Some("\"[::1]:5432\"")),
    ] {
        let cfg = s.config(
            "p.toml",
            &format!(
                "version = 1\n[[fd]]\nselect = {{ peer = \"{host}:5432\" }}\naction = \"disconnect\"\n"
            ),
        );
        let out = Command::new(common::cli())
            .arg("check")
            .arg(&cfg)
            .output()
            .expect("forkguard check");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(
            err.contains("p.toml:3:19: peer: host names are not resolved"),
            "{err}"
        );
        assert!(err.contains("\"*:5432\""), "{err}");
        if let Some(x) = extra {
            assert!(err.contains(x), "{err}");
        }
    }
}
