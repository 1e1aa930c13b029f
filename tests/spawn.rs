//! `spawn = true` (SPEC 8.5, issue 13): `[[fd]]` `close`/`cloexec` actions
//! also keep descriptors out of programs started with `posix_spawn`,
//! `posix_spawnp`, `system`, `popen` and `vfork` + `exec`, and the caller's
//! descriptors stay exactly as they were. The `spawn_fix` fixture
//! (tests/c/spawn_fix.c) opens an inheritable listening socket, an
//! inheritable file and a close-on-exec file, starts a copy of itself that
//! lists its descriptors, and says whether its own are unchanged.
//!
//! Run: `cargo build --release -p forkguard && cargo test --release --test spawn`.
//! Every run has a deadline (`TIMEOUT`); each check has a control without
//! forkguard (or without `spawn = true`) that shows the leak.

mod common;

use common::Scratch;
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(60);

fn spawn_fix() -> PathBuf {
    static P: OnceLock<PathBuf> = OnceLock::new();
    P.get_or_init(|| {
        let dir = common::lib().parent().expect("dir").join("spawn-fixtures");
        std::fs::create_dir_all(&dir).expect("fixture dir");
        let out = dir.join("spawn_fix");
        let tmp = dir.join(format!(".spawn_fix.{}.tmp", std::process::id()));
        let src = common::root().join("tests/c/spawn_fix.c");
        let o = Command::new("gcc")
            .args(["-O1", "-g", "-Wall", "-Wextra", "-pthread", "-o"])
            .arg(&tmp)
            .arg(&src)
            .output()
            .expect("run gcc");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        std::fs::rename(&tmp, &out).expect("rename");
        out
    })
    .clone()
}

/// What one run printed: the caller's fds, each report's fd set, the verdict.
struct Run {
    out: common::Outcome,
    lsn: i32,
    file: i32,
    cloex: i32,
    reports: Vec<BTreeSet<i32>>,
    same: bool,
    log: String,
}

impl Run {
    fn dump(&self) -> String {
        format!("{}\n--- log ---\n{}", self.out.dump(), self.log)
    }
}

fn run(s: &Scratch, args: &[&str], config: Option<&str>) -> Run {
    let mut cmd = Command::new(spawn_fix());
    common::clean_env(&mut cmd);
    cmd.args(args).current_dir(&s.dir);
    let log = s.path("log");
    let _ = std::fs::remove_file(&log);
    if let Some(body) = config {
        let text = format!(
            "version = 1\n[settings]\nlog = \"{}\"\n{body}",
            log.display()
        );
        let cfg = s.config("spawn.toml", &text);
        cmd.env("LD_PRELOAD", common::lib())
            .env("FORKGUARD_CONFIG", cfg);
    }
    let out = common::run(s, cmd, TIMEOUT);
    let mut r = Run {
        lsn: -1,
        file: -1,
        cloex: -1,
        reports: Vec::new(),
        same: false,
        log: std::fs::read_to_string(&log).unwrap_or_default(),
        out,
    };
    for line in r.out.stdout.lines() {
        let w: Vec<&str> = line.split_whitespace().collect();
        match w.as_slice() {
            ["fds", a, b, c] => {
                r.lsn = a.parse().unwrap_or(-1);
                r.file = b.parse().unwrap_or(-1);
                r.cloex = c.parse().unwrap_or(-1);
            }
            ["report", _, "fds", rest @ ..] => {
                r.reports
                    .push(rest.iter().filter_map(|n| n.parse().ok()).collect());
            }
            ["caller", _, "same", v, "ok", _] => r.same = *v == "1",
            _ => {}
        }
    }
    r
}

const LISTEN_CLOSE: &str =
    "[[fd]]\nselect = { kind = \"listen\" }\naction = \"close\"\nspawn = true\n";

const MODES: [&str; 7] = [
    "posix_spawn",
    "posix_spawnp",
    "system",
    "popen",
    "vfork",
    "vfork_execv",
    "fork",
];

/// Every entry point: the listening socket is not inherited with
/// `spawn = true`, the inheritable file still is, the caller is unchanged.
/// Control: the same program without forkguard leaks the socket.
#[test]
fn every_entry_point_leaves_the_listener_out() {
    let s = Scratch::new("spawn-each");
    for mode in MODES {
        let plain = run(&s, &[mode], None);
        assert!(plain.out.status.success(), "{mode}: {}", plain.dump());
        assert_eq!(plain.reports.len(), 1, "{mode}: {}", plain.dump());
        assert!(
            plain.reports[0].contains(&plain.lsn),
            "control {mode}: the spawned program should inherit the listener without forkguard: {}",
            plain.dump()
        );

        let g = run(&s, &[mode], Some(LISTEN_CLOSE));
        assert!(g.out.status.success(), "{mode}: {}", g.dump());
        assert_eq!(g.reports.len(), 1, "{mode}: {}", g.dump());
        let fds = &g.reports[0];
        assert!(
            !fds.contains(&g.lsn),
            "{mode}: listener inherited: {}",
            g.dump()
        );
        assert!(
            fds.contains(&g.file),
            "{mode}: the file should stay: {}",
            g.dump()
        );
        assert!(!fds.contains(&g.cloex), "{mode}: {}", g.dump());
        assert!(
            g.same,
            "{mode}: the caller's descriptors changed: {}",
            g.dump()
        );
    }
}

/// The log says what was left out of each spawned program.
#[test]
fn the_log_names_what_was_left_out() {
    let s = Scratch::new("spawn-log");
    for (mode, via) in [
        ("posix_spawn", "via posix_spawn"),
        ("system", "via system"),
        ("popen", "via popen"),
        ("vfork", "exec in a vfork child"),
    ] {
        let g = run(&s, &[mode], Some(LISTEN_CLOSE));
        let want = if mode == "vfork" {
            "left out 1 fd".to_string()
        } else {
            format!("left out fd {}", g.lsn)
        };
        assert!(
            g.log.lines().any(|l| l.contains(via) && l.contains(&want)),
            "{mode}: no {via:?} line with {want:?}: {}",
            g.dump()
        );
    }
}

/// `cloexec` with `spawn = true` works the same; without `spawn = true`
/// the action is for forked children only and a spawned program inherits.
#[test]
fn cloexec_too_and_nothing_without_the_key() {
    let s = Scratch::new("spawn-cloexec");
    let cfg = "[[fd]]\nselect = { kind = \"listen\" }\naction = \"cloexec\"\nspawn = true\n";
    for mode in ["posix_spawn", "system", "vfork"] {
        let g = run(&s, &[mode], Some(cfg));
        assert!(!g.reports[0].contains(&g.lsn), "{mode}: {}", g.dump());
        assert!(g.same, "{mode}: {}", g.dump());
    }
    let off = "[[fd]]\nselect = { kind = \"listen\" }\naction = \"close\"\n";
    for mode in ["posix_spawn", "system", "popen", "vfork"] {
        let g = run(&s, &[mode], Some(off));
        assert!(
            g.reports[0].contains(&g.lsn),
            "{mode}: without spawn = true the spawned program inherits: {}",
            g.dump()
        );
    }
}

/// Threads spawning through every entry point and forking at once: every
/// spawned program goes without the listener, and the caller's descriptors
/// (numbers and FD_CLOEXEC) are checked unchanged after every call.
#[test]
fn concurrent_spawns_and_forks_leave_the_caller_unchanged() {
    let s = Scratch::new("spawn-threads");
    let g = run(&s, &["threads", "12", "4"], Some(LISTEN_CLOSE));
    assert!(g.out.status.success(), "{}", g.dump());
    assert!(g.same, "{}", g.dump());
    assert_eq!(g.reports.len(), 48, "{}", g.dump());
    for fds in &g.reports {
        assert!(
            !fds.contains(&g.lsn),
            "a spawned program got the listener: {}",
            g.dump()
        );
        assert!(fds.contains(&g.file), "{}", g.dump());
    }
    let plain = run(&s, &["threads", "4", "4"], None);
    assert!(
        plain.reports.iter().all(|f| f.contains(&plain.lsn)),
        "control: {}",
        plain.dump()
    );
}

/// Descriptors passed on purpose stay: `LISTEN_FDS` (systemd socket
/// activation), the make jobserver's fds in `MAKEFLAGS`, and the targets of
/// the caller's own `posix_spawn` file actions.
#[test]
fn descriptors_passed_on_purpose_are_kept() {
    let s = Scratch::new("spawn-kept");
    let g = run(&s, &["listen_fds"], Some(LISTEN_CLOSE));
    assert!(g.out.status.success(), "{}", g.dump());
    assert_eq!(g.lsn, 3, "{}", g.dump());
    assert_eq!(g.reports.len(), 2, "{}", g.dump());
    for fds in &g.reports {
        assert!(
            fds.contains(&3),
            "LISTEN_FDS=1: fd 3 must stay: {}",
            g.dump()
        );
    }

    let pipes = "[[fd]]\nselect = { kind = \"pipe\" }\naction = \"close\"\nspawn = true\n";
    let g = run(&s, &["jobserver"], Some(pipes));
    assert!(g.out.status.success(), "{}", g.dump());
    let js: Vec<i32> = g
        .out
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("jobserver "))
        .map(|l| l.split(' ').filter_map(|n| n.parse().ok()).collect())
        .unwrap_or_default();
    assert_eq!(js.len(), 2, "{}", g.dump());
    assert_eq!(g.reports.len(), 3, "{}", g.dump());
    for fds in &g.reports {
        assert!(
            js.iter().all(|f| fds.contains(f)),
            "MAKEFLAGS jobserver fds must stay: {}",
            g.dump()
        );
    }

    let g = run(&s, &["dup2"], Some(LISTEN_CLOSE));
    assert!(g.out.status.success(), "{}", g.dump());
    let fds = &g.reports[0];
    assert!(
        fds.contains(&10) && fds.contains(&11),
        "dup2/open targets kept: {}",
        g.dump()
    );
    assert!(!fds.contains(&g.lsn), "{}", g.dump());
    assert!(g.same, "{}", g.dump());
}

/// `spawn = true` on another action is a config error at its line and
/// column, and the program runs unguarded (on_error = "warn").
#[test]
fn spawn_on_other_actions_is_a_config_error() {
    let s = Scratch::new("spawn-bad");
    for (action, sel) in [
        ("devnull", "kind = \"listen\""),
        ("reopen", "kind = \"file\""),
        ("disconnect", "kind = \"socket\""),
        ("renew", "kind = \"epoll\""),
    ] {
        let extra = if action == "reopen" {
            "path = \"/tmp/x\"\n"
        } else {
            ""
        };
        let body =
            format!("[[fd]]\nselect = {{ {sel} }}\naction = \"{action}\"\n{extra}spawn = true\n");
        let g = run(&s, &["posix_spawn"], Some(&body));
        let line = if action == "reopen" { 8 } else { 7 };
        let want = format!(
            "spawn.toml:{line}:9: spawn = true applies to action = \"close\" or \"cloexec\" only"
        );
        assert!(
            g.out.stderr.contains(&want),
            "{action}: want {want:?}: {}",
            g.dump()
        );
        assert!(
            g.reports[0].contains(&g.lsn),
            "{action}: rejected config must not apply: {}",
            g.dump()
        );
    }
}

fn python_script(s: &Scratch) -> PathBuf {
    let p = s.path("spawn.py");
    std::fs::write(
        &p,
        r#"
import os, socket, subprocess, sys
fix = sys.argv[1]
ls = socket.socket(); ls.bind(("127.0.0.1", 0)); ls.listen(4)
ls.set_inheritable(True)     # what old code and some C extensions leave
print("fds", ls.fileno(), -1, -1, flush=True)
before = os.get_inheritable(ls.fileno())
cmd = f"exec {fix} report"
subprocess.run(["sh", "-c", cmd + " close_fds_false_vfork"], close_fds=False, check=True)
subprocess.run(["/bin/sh", "-c", cmd + " close_fds_false_spawn"], close_fds=False, check=True)
subprocess.run(["sh", "-c", cmd + " close_fds_true"], check=True)
assert os.system(cmd + " os_system") == 0
sys.stdout.write(os.popen(cmd + " os_popen").read()); sys.stdout.flush()
print("caller py same", int(os.get_inheritable(ls.fileno()) == before), "ok 1", flush=True)
"#,
    )
    .expect("write script");
    p
}

/// Python: `subprocess` with `close_fds=False` (vfork + exec, and
/// posix_spawn for an absolute path), with `close_fds=True`, `os.system`
/// and `os.popen`. Control: without forkguard the `close_fds=False` and
/// `os.system` children inherit the socket (`close_fds=True` and
/// `os.popen`, which uses subprocess, never do).
#[test]
fn python_subprocess_system_and_popen() {
    let Some(py) = common::python() else {
        eprintln!("skipped: no python3");
        return;
    };
    let s = Scratch::new("spawn-py");
    let script = python_script(&s);
    let go = |guard: bool| {
        let mut cmd = Command::new(&py);
        common::clean_env(&mut cmd);
        cmd.arg(&script).arg(spawn_fix()).current_dir(&s.dir);
        let log = s.path("pylog");
        if guard {
            let text = format!(
                "version = 1\n[settings]\nlog = \"{}\"\n{LISTEN_CLOSE}",
                log.display()
            );
            let cfg = s.config("py.toml", &text);
            cmd.env("LD_PRELOAD", common::lib())
                .env("FORKGUARD_CONFIG", cfg);
        }
        let out = common::run(&s, cmd, TIMEOUT);
        assert!(out.status.success(), "{}", out.dump());
        let mut lsn = -1;
        let mut same = false;
        let mut reports = Vec::new();
        for l in out.stdout.lines() {
            let w: Vec<&str> = l.split_whitespace().collect();
            match w.as_slice() {
                ["fds", a, ..] => lsn = a.parse().unwrap_or(-1),
                ["report", tag, "fds", rest @ ..] => reports.push((
                    tag.to_string(),
                    rest.iter()
                        .filter_map(|n| n.parse().ok())
                        .collect::<BTreeSet<i32>>(),
                )),
                ["caller", "py", "same", v, ..] => same = *v == "1",
                _ => {}
            }
        }
        assert_eq!(reports.len(), 5, "{}", out.dump());
        (lsn, same, reports, out)
    };
    let (lsn, _, reports, out) = go(false);
    for (tag, fds) in &reports {
        let leaks = tag.starts_with("close_fds_false") || tag == "os_system";
        assert_eq!(fds.contains(&lsn), leaks, "control {tag}: {}", out.dump());
    }
    let (lsn, same, reports, out) = go(true);
    assert!(same, "{}", out.dump());
    for (tag, fds) in &reports {
        assert!(
            !fds.contains(&lsn),
            "{tag}: listener inherited: {}",
            out.dump()
        );
    }
}

/// `forkguard check` shows which actions also apply to spawned programs.
#[test]
fn check_lists_spawned_program_actions() {
    let s = Scratch::new("spawn-check");
    let cfg = s.config("c.toml", &format!("version = 1\n{LISTEN_CLOSE}"));
    let out = Command::new(common::cli())
        .arg("check")
        .arg(&cfg)
        .output()
        .expect("run forkguard check");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("spawned programs"), "{text}");
    assert!(text.contains("also for spawned programs"), "{text}");
}
