//! Many runtimes under a config that applies actions (issue 6, scenario 12):
//! Python `subprocess` with and without `preexec_fn`, `os.posix_spawn`,
//! `os.system`, Perl `fork`, Node `child_process`, bash subshells. Phases
//! run exactly where SPEC §1 says: all three around `fork`, none on the
//! vfork / posix_spawn / system paths. (`os.fork`, `pty.fork` and
//! multiprocessing are in runtimes.rs.)
//!
//! The config makes a marker descriptor `/dev/null` in a forked child and
//! names the child; each runtime reports what its new process saw.

mod common;

use common::*;
use std::path::PathBuf;
use std::process::Command;

const NAME: &str = "fgtrt";

fn config(s: &Scratch) -> (PathBuf, PathBuf) {
    let marker = s.path("marker");
    std::fs::write(&marker, "marker\n").expect("marker");
    let text = format!(
        "{}[[fd]]\nselect = {{ path = \"{}\" }}\naction = \"devnull\"\n\n[child]\nname = \"{NAME}\"\n",
        header(&s.path("fg.log"), ""),
        marker.display()
    );
    (s.config("fg.toml", &text), marker)
}

fn have(prog: &str) -> bool {
    Command::new(prog)
        .arg("--version")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok()
}

/// Fork lines written by `pid`, as `via` names.
fn vias_from(log: &Log, pid: i64) -> Vec<String> {
    log.forks()
        .into_iter()
        .filter_map(|l| match l {
            LogLine::Fork { pid: p, via, .. } if *p == pid => Some(via.clone()),
            _ => None,
        })
        .collect()
}

fn children_of(log: &Log, parent: i64) -> usize {
    log.children()
        .into_iter()
        .filter(|l| matches!(l, LogLine::Child { parent: p, .. } if *p == parent))
        .count()
}

/// Run a Python mode; returns (pid, target seen by the new program, log).
fn python_mode(mode: &str) -> Option<(i64, String, Log, PathBuf)> {
    let Some(py) = python() else {
        eprintln!("SKIPPED python {mode}: python3 is not installed");
        return None;
    };
    let s = Scratch::new("trtpy");
    let (cfg, marker) = config(&s);
    let mut cmd = guarded(&s, &py, &cfg);
    cmd.arg(root().join("tests/py/torture_runtimes.py"))
        .arg(mode)
        .arg(&marker);
    let out = run(&s, cmd, TIMEOUT);
    out.assert_success().assert_config_accepted();
    let log = Log::read(&s.path("fg.log"));
    log.assert_all_parse();
    let pid = out.get("ok", "pid").parse().expect("pid");
    Some((pid, out.get("ok", "target"), log, marker))
}

#[test]
fn python_subprocess_without_preexec_fn_runs_no_phase() {
    let Some((pid, target, log, marker)) = python_mode("subprocess") else {
        return;
    };
    assert!(
        vias_from(&log, pid).is_empty(),
        "vfork path got phases:\n{}",
        log.raw
    );
    assert_eq!(children_of(&log, pid), 0, "{}", log.raw);
    assert_eq!(PathBuf::from(target), marker, "{}", log.raw);
}

#[test]
fn python_subprocess_with_preexec_fn_forks_with_phases() {
    let Some((pid, target, log, _)) = python_mode("subprocess_preexec") else {
        return;
    };
    assert_eq!(vias_from(&log, pid), ["fork"], "{}", log.raw);
    assert_eq!(children_of(&log, pid), 1, "{}", log.raw);
    assert_eq!(
        target, "/dev/null",
        "the fd action did not apply:\n{}",
        log.raw
    );
}

#[test]
fn python_posix_spawn_and_system_run_no_phase() {
    for mode in ["posix_spawn", "os_system"] {
        let Some((pid, target, log, marker)) = python_mode(mode) else {
            return;
        };
        assert!(vias_from(&log, pid).is_empty(), "{mode}:\n{}", log.raw);
        assert_eq!(children_of(&log, pid), 0, "{mode}:\n{}", log.raw);
        assert_eq!(PathBuf::from(target), marker, "{mode}");
    }
}

/// Run `cmd` (a runtime with forkguard) and check the one fork it makes:
/// phases once, via `fork`; the child saw /dev/null and its new name.
fn check_forking_runtime(s: &Scratch, cmd: Command, what: &str) {
    let out = run(s, cmd, TIMEOUT);
    out.assert_success().assert_config_accepted();
    let log = Log::read(&s.path("fg.log"));
    log.assert_all_parse();
    let pid: i64 = out.get("ok", "pid").parse().expect("pid");
    assert_eq!(vias_from(&log, pid), ["fork"], "{what}:\n{}", log.raw);
    assert_eq!(children_of(&log, pid), 1, "{what}:\n{}", log.raw);
    assert_eq!(
        out.get("child", "target"),
        "/dev/null",
        "{what}: {}",
        out.dump()
    );
    assert_eq!(out.get("child", "name"), NAME, "{what}: {}", out.dump());
}

#[test]
fn perl_fork() {
    if !have("perl") {
        eprintln!("SKIPPED perl_fork: perl is not installed");
        return;
    }
    let s = Scratch::new("trtperl");
    let (cfg, marker) = config(&s);
    let script = r#"
        open(my $m, "<", $ARGV[0]) or die "open: $!";
        my $fd = fileno($m);
        $| = 1;
        print "ok pid=$$\n";
        my $pid = fork() // die "fork: $!";
        if ($pid == 0) {
            my $t = readlink("/proc/self/fd/$fd");
            open(my $c, "<", "/proc/self/comm"); my $n = <$c>; chomp $n;
            print "child target=$t name=$n\n";
            exit 0;
        }
        waitpid($pid, 0);
        exit($? >> 8);
    "#;
    let mut cmd = guarded(&s, "perl", &cfg);
    cmd.args(["-e", script]).arg(&marker);
    check_forking_runtime(&s, cmd, "perl");
}

#[test]
fn node_child_process() {
    if !have("node") {
        eprintln!("SKIPPED node_child_process: node is not installed");
        return;
    }
    let s = Scratch::new("trtnode");
    let (cfg, marker) = config(&s);
    // The marker goes to the child as its fd 3 (libuv dup2s it after the
    // fork, so it copies what the child phase left at the original number).
    let script = r#"
        const fs = require('fs');
        const cp = require('child_process');
        const fd = fs.openSync(process.argv[1], 'r');
        console.log(`ok pid=${process.pid}`);
        const r = cp.spawnSync('sh', ['-c',
            'echo "child target=$(readlink /proc/self/fd/3) name=$(cat /proc/$PPID/comm 2>/dev/null)"'],
            { stdio: ['ignore', 'pipe', 'inherit', fd] });
        process.stdout.write(r.stdout.toString());
        process.exit(r.status);
    "#;
    let mut cmd = guarded(&s, "node", &cfg);
    cmd.args(["-e", script]).arg(&marker);
    let out = run(&s, cmd, TIMEOUT);
    out.assert_success().assert_config_accepted();
    let log = Log::read(&s.path("fg.log"));
    log.assert_all_parse();
    let pid: i64 = out.get("ok", "pid").parse().expect("pid");
    assert_eq!(vias_from(&log, pid), ["fork"], "node:\n{}", log.raw);
    assert_eq!(children_of(&log, pid), 1, "node:\n{}", log.raw);
    assert_eq!(out.get("child", "target"), "/dev/null", "{}", out.dump());
}

#[test]
fn bash_subshell_and_pipeline() {
    let s = Scratch::new("trtbash");
    let (cfg, marker) = config(&s);
    let script = r#"
        exec 9<"$1"
        echo "ok pid=$$"
        ( echo "child target=$(readlink /proc/self/fd/9) name=$(cat /proc/self/comm)" ) | cat
    "#;
    let mut cmd = guarded(&s, "bash", &cfg);
    cmd.args(["-c", script, "bash"]).arg(&marker);
    let out = run(&s, cmd, TIMEOUT);
    out.assert_success().assert_config_accepted();
    let log = Log::read(&s.path("fg.log"));
    log.assert_all_parse();
    let pid: i64 = out.get("ok", "pid").parse().expect("pid");
    // The pipeline forks twice (subshell and cat); the subshell forks once
    // more for the command substitution.
    let vias = vias_from(&log, pid);
    assert!(
        vias.len() >= 2 && vias.iter().all(|v| v == "fork"),
        "{}",
        log.raw
    );
    assert_eq!(children_of(&log, pid), vias.len(), "{}", log.raw);
    assert_eq!(out.get("child", "target"), "/dev/null", "{}", out.dump());
}
