//! Real runtimes that fork: Python (`os.fork`, `pty.fork`, multiprocessing
//! with the "fork" start method) and bash (subshells, command substitution).
//! Their forks are seen through forkguard's log and a `[child] name` that
//! each child checks itself.

mod common;

use common::*;
use std::process::Command;

fn config(s: &Scratch, name: &str) -> std::path::PathBuf {
    let text = format!(
        "{}[child]\nname = \"{name}\"\n",
        header(&s.path("fg.log"), "")
    );
    s.config("fg.toml", &text)
}

fn python_run(tag: &str, args: &[&str]) -> Option<(Outcome, Log)> {
    let Some(py) = python() else {
        eprintln!("SKIPPED {tag}: python3 is not installed");
        return None;
    };
    let s = Scratch::new(tag);
    let cfg = config(&s, "fgtpy");
    let mut cmd = guarded(&s, &py, &cfg);
    cmd.arg(root().join("tests/py/forks.py"))
        .args(args)
        .env("FGT_EXPECT_NAME", "fgtpy");
    let out = run(&s, cmd, TIMEOUT);
    out.assert_success().assert_config_accepted();
    let log = Log::read(&s.path("fg.log"));
    log.assert_all_parse();
    Some((out, log))
}

fn python_pid(out: &Outcome) -> i64 {
    out.get("ok", "pid").parse().expect("pid")
}

/// Fork lines from `pid`: (via, child) pairs.
fn forks_from(log: &Log, pid: i64) -> Vec<(String, i64)> {
    log.forks()
        .into_iter()
        .filter_map(|l| match l {
            LogLine::Fork {
                pid: p, via, child, ..
            } if *p == pid => Some((via.clone(), *child)),
            _ => None,
        })
        .collect()
}

#[test]
fn python_os_fork() {
    let Some((out, log)) = python_run("pyfork", &["os_fork"]) else {
        return;
    };
    let forks = forks_from(&log, python_pid(&out));
    assert_eq!(forks.len(), 1, "{}", log.raw);
    assert_eq!(forks[0].0, "fork", "{}", log.raw);
    assert_eq!(log.children().len(), 1, "{}", log.raw);
}

#[test]
fn python_pty_fork_goes_through_forkpty_once() {
    let Some((out, log)) = python_run("pypty", &["pty_fork"]) else {
        return;
    };
    let forks = forks_from(&log, python_pid(&out));
    assert_eq!(
        forks.len(),
        1,
        "phases must run exactly once for pty.fork:\n{}",
        log.raw
    );
    assert_eq!(forks[0].0, "forkpty", "{}", log.raw);
    assert_eq!(log.children().len(), 1, "{}", log.raw);
}

#[test]
fn python_multiprocessing_fork_start_method() {
    let Some((out, log)) = python_run("pymp", &["mp_fork", "3"]) else {
        return;
    };
    let forks = forks_from(&log, python_pid(&out));
    assert_eq!(forks.len(), 3, "{}", log.raw);
    assert!(
        forks.iter().all(|(via, child)| via == "fork" && *child > 0),
        "{}",
        log.raw
    );
    assert_eq!(log.children().len(), 3, "{}", log.raw);
}

#[test]
fn bash_subshells_and_command_substitution() {
    let s = Scratch::new("bash");
    let cfg = config(&s, "fgtbash");
    let mut cmd = guarded(&s, "bash", &cfg);
    // Each child reports its name, so the child phase is seen from inside.
    cmd.args([
        "-c",
        "( read -r n < /proc/self/comm; echo \"sub=$n\" ); x=$(read -r n < /proc/self/comm; echo \"$n\"); echo \"cmdsub=$x\"; echo \"pid=$$\"",
    ]);
    let out = run(&s, cmd, TIMEOUT);
    out.assert_success().assert_config_accepted();
    assert_eq!(out.get("", "sub"), "fgtbash", "{}", out.dump());
    assert_eq!(out.get("", "cmdsub"), "fgtbash", "{}", out.dump());
    let pid: i64 = out.get("", "pid").parse().expect("pid");
    let log = Log::read(&s.path("fg.log"));
    log.assert_all_parse();
    let forks = forks_from(&log, pid);
    assert_eq!(forks.len(), 2, "one fork per subshell:\n{}", log.raw);
    assert!(forks.iter().all(|(via, _)| via == "fork"), "{}", log.raw);
    assert_eq!(log.children().len(), 2, "{}", log.raw);
}

#[test]
fn bash_without_forkguard_keeps_its_names() {
    // Control for the test above: the names come from forkguard.
    let s = Scratch::new("bashctl");
    let mut cmd = Command::new("bash");
    clean_env(&mut cmd);
    cmd.args(["-c", "( read -r n < /proc/self/comm; echo \"sub=$n\" )"]);
    let out = run(&s, cmd, TIMEOUT);
    out.assert_success().assert_config_accepted();
    assert_eq!(out.get("", "sub"), "bash", "{}", out.dump());
}
