//! `[[python]]` with real prefork servers that preload the application in
//! their master: gunicorn `--preload` and uWSGI (pip-installed by
//! scripts/test.sh; each test says SKIPPED when its server is missing).
//! The child hook (`fghooks:engine.dispose`, a stand-in for SQLAlchemy's
//! `engine.dispose()`) must run once in every worker, in the worker, on the
//! engine object the master created; the control (no forkguard) shows the
//! workers' engines untouched.

mod common;

use common::*;
use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

const WORKERS: usize = 2;

/// The interpreter's own scripts directory (pip puts gunicorn and uwsgi
/// there), or PATH.
fn server_bin(name: &str) -> Option<PathBuf> {
    let py = python()?;
    let here = py.parent()?.join(name);
    if here.is_file() {
        return Some(here);
    }
    std::env::var_os("PATH")?
        .to_string_lossy()
        .split(':')
        .map(|d| PathBuf::from(d).join(name))
        .find(|p| p.is_file())
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// One GET /, or None while the server is not answering.
fn get(port: u16) -> Option<String> {
    let mut c = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    c.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    c.write_all(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n").ok()?;
    let mut r = String::new();
    c.read_to_string(&mut r).ok()?;
    r.contains("200 OK").then_some(r)
}

/// Start `cmd` (in its own process group), wait for the first answer, and
/// for every worker's hook when guarded; returns (first answer, trace).
fn serve(s: &Scratch, mut cmd: Command, port: u16, guarded: bool) -> (String, Trace) {
    cmd.current_dir(root().join("tests/py/hookmods"))
        .env("FGT_TRACE", s.trace_path())
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(s.path("server.out")).expect("server.out"))
        .stderr(std::fs::File::create(s.path("server.err")).expect("server.err"))
        .process_group(0);
    let mut child = cmd.spawn().expect("start the server");
    let pgid = child.id() as libc::pid_t;
    let mut answer = None;
    let up = wait_until(TIMEOUT, || {
        answer = get(port);
        answer.is_some()
    });
    let hooks = !guarded || wait_until(TIMEOUT, || s.trace().count("hook-dispose") >= WORKERS);
    let t = s.trace();
    // How the server stops is not under test: the whole group is killed.
    kill_group(pgid);
    let _ = child.wait();
    let err = std::fs::read_to_string(s.path("server.err")).unwrap_or_default();
    assert!(up, "the server never answered\n{err}");
    assert!(hooks, "not every worker ran its hook\n{}\n{err}", t.raw);
    (answer.unwrap_or_default(), t)
}

fn config(s: &Scratch) -> PathBuf {
    let text = format!(
        "{}\n[[python]]\nphase = \"child\"\ncall = \"fghooks:engine.dispose\"\n",
        header(&s.path("fg.log"), "")
    );
    s.config("fg.toml", &text)
}

/// Every worker ran the hook exactly once, in itself, on the master's engine.
fn check_workers(t: &Trace, answer: &str, log: &str) {
    let master = t.one("imported").pid();
    let hooks = t.with("hook-dispose");
    let mut pids: Vec<i64> = hooks.iter().map(|e| e.pid()).collect();
    pids.sort();
    pids.dedup();
    assert_eq!(pids.len(), WORKERS, "once per worker\n{}", t.raw);
    assert_eq!(hooks.len(), WORKERS, "once per worker\n{}", t.raw);
    assert!(!pids.contains(&master), "never in the master\n{}", t.raw);
    assert!(hooks.iter().all(|e| e.nums[1] == 1), "{}", t.raw);
    assert!(answer.contains("disposed=1"), "{answer}");
    for p in pids {
        assert!(
            log.contains(&format!("forkguard[{p}] python child of {master}: 1 ok")),
            "{log}"
        );
    }
}

#[test]
fn gunicorn_preload_workers_run_the_child_hook_once() {
    let (Some(py), Some(gunicorn)) = (python(), server_bin("gunicorn")) else {
        eprintln!("SKIPPED gunicorn: python3 or gunicorn is not installed (pip install gunicorn)");
        return;
    };
    for guarded_run in [false, true] {
        let s = Scratch::new("py-gunicorn");
        let port = free_port();
        let mut cmd = Command::new(&py);
        clean_env(&mut cmd);
        if guarded_run {
            cmd.env("LD_PRELOAD", lib())
                .env("FORKGUARD_CONFIG", config(&s));
        }
        cmd.arg(&gunicorn)
            .args(["--preload", "-w", &WORKERS.to_string(), "-b"])
            .arg(format!("127.0.0.1:{port}"))
            .arg("wsgi_app:app");
        let (answer, t) = serve(&s, cmd, port, guarded_run);
        if guarded_run {
            let log = std::fs::read_to_string(s.path("fg.log")).unwrap_or_default();
            check_workers(&t, &answer, &log);
        } else {
            assert!(answer.contains("disposed=0"), "control: {answer}");
            assert_eq!(t.count("hook-dispose"), 0, "{}", t.raw);
        }
    }
}

#[test]
fn uwsgi_workers_run_the_child_hook_once() {
    let Some(uwsgi) = server_bin("uwsgi") else {
        eprintln!("SKIPPED uwsgi: uwsgi is not installed (pip install uwsgi)");
        return;
    };
    // uWSGI runs CPython's fork handling (and so os.register_at_fork hooks)
    // only with --py-call-uwsgi-fork-hooks; without it the master forks
    // without the GIL, and forkguard says once that it could not register.
    for (guarded_run, hooks_flag) in [(false, true), (true, false), (true, true)] {
        let s = Scratch::new("py-uwsgi");
        let port = free_port();
        let mut cmd = Command::new(&uwsgi);
        clean_env(&mut cmd);
        if guarded_run {
            cmd.env("LD_PRELOAD", lib())
                .env("FORKGUARD_CONFIG", config(&s));
        }
        cmd.arg("--http-socket")
            .arg(format!("127.0.0.1:{port}"))
            .args(["--wsgi-file", "wsgi_app.py", "--master", "--processes"])
            .arg(WORKERS.to_string())
            .args(["--disable-logging"]);
        if hooks_flag {
            cmd.arg("--py-call-uwsgi-fork-hooks");
        }
        let (answer, t) = serve(&s, cmd, port, guarded_run && hooks_flag);
        let log = std::fs::read_to_string(s.path("fg.log")).unwrap_or_default();
        match (guarded_run, hooks_flag) {
            (true, true) => check_workers(&t, &answer, &log),
            (true, false) => {
                assert!(answer.contains("disposed=0"), "{answer}");
                assert!(log.contains("not registered"), "{log}");
                assert_eq!(log.matches("not registered").count(), 1, "said once: {log}");
            }
            _ => assert!(answer.contains("disposed=0"), "control: {answer}"),
        }
    }
}
