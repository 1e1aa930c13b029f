//! `[[python]]` with real prefork servers that preload the application in
//! their master: gunicorn `--preload` and uWSGI (pip-installed by
//! scripts/test.sh; each test says SKIPPED when its server is missing).
//! The child hook (`fghooks:engine.dispose`, a stand-in for SQLAlchemy's
//! `engine.dispose()`) must run once in every worker, in the worker, on the
//! engine object the master created; the control (no forkguard) shows the
//! workers' engines untouched.
//!
//! Then the real thing (`sqlalchemy_*`): tests/py/sqla_app.py, a WSGI app
//! whose module-level SQLAlchemy engine (psycopg2) is used once at import,
//! under gunicorn `--preload` with a real PostgreSQL (needs sqlalchemy and
//! psycopg2, pip-installed by scripts/test.sh, and the postgresql package).

mod common;
mod fd_support;

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
    get_path(port, "/", Duration::from_secs(5))
}

/// One GET of `path` (the whole response), or None: no connection, no
/// answer within `wait`, or not 200 OK.
fn get_path(port: u16, path: &str, wait: Duration) -> Option<String> {
    let mut c = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    c.set_read_timeout(Some(wait)).ok()?;
    c.write_all(format!("GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").as_bytes())
        .ok()?;
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

// ----------------------------------------------- SQLAlchemy + PostgreSQL --

/// gunicorn workers in the SQLAlchemy runs, and the queries sent to them.
const SQLA_WORKERS: usize = 4;
const QUERIES: usize = 200;
/// Client threads: more than workers, so that every worker is busy at once.
const CLIENTS: usize = 8;
/// How long one query may take (a worker that waits for a reply another
/// worker read hangs until gunicorn's own `--timeout 5` kills it).
const QUERY_WAIT: Duration = Duration::from_secs(8);
/// The whole run's deadline: queries not sent by then count as lost.
const RUN_DEADLINE: Duration = Duration::from_secs(60);

/// Every answer of one run, judged.
#[derive(Default)]
struct Tally {
    ok: usize,
    wrong: usize,
    errors: usize,
    /// No answer (hung, killed worker) or never sent before the deadline.
    lost: usize,
    /// (worker pid, that worker's query number, answer was an error).
    answers: Vec<(i64, i64, bool)>,
    /// The first few answers that were not ok, to show.
    shown: Vec<String>,
}

impl Tally {
    fn line(&self) -> String {
        format!(
            "ok={} wrong={} errors={} lost={}",
            self.ok, self.wrong, self.errors, self.lost
        )
    }

    fn judge(&mut self, token: &str, answer: Option<String>) {
        let Some(resp) = answer else {
            self.lost += 1;
            return;
        };
        let body = resp
            .rsplit("\r\n\r\n")
            .next()
            .unwrap_or("")
            .trim()
            .to_string();
        let field = |k: &str| {
            body.split_whitespace()
                .find_map(|w| w.strip_prefix(k))
                .map(str::to_string)
        };
        let num = |k: &str| field(k).and_then(|v| v.parse::<i64>().ok()).unwrap_or(-1);
        let error = body.contains(" error=");
        if error {
            self.errors += 1;
        } else if field("row=").as_deref() == Some(token) {
            self.ok += 1;
        } else {
            self.wrong += 1;
        }
        if (error || field("row=").as_deref() != Some(token)) && self.shown.len() < 4 {
            self.shown.push(format!("{token}: {body}"));
        }
        self.answers.push((num("pid="), num("n="), error));
    }
}

/// QUERIES queries (`GET /TOKEN`) from CLIENTS threads at once.
fn hammer(port: u16, run: &str) -> Tally {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};
    let next = Arc::new(AtomicUsize::new(0));
    let tally = Arc::new(Mutex::new(Tally::default()));
    let end = std::time::Instant::now() + RUN_DEADLINE;
    let threads: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (next, tally, run) = (next.clone(), tally.clone(), run.to_string());
            std::thread::spawn(move || loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= QUERIES {
                    break;
                }
                let token = format!("{run}-{i}");
                let answer = (std::time::Instant::now() < end)
                    .then(|| get_path(port, &format!("/{token}"), QUERY_WAIT))
                    .flatten();
                tally.lock().expect("tally").judge(&token, answer);
            })
        })
        .collect();
    for t in threads {
        t.join().expect("client thread");
    }
    Arc::try_unwrap(tally)
        .ok()
        .expect("threads joined")
        .into_inner()
        .expect("tally")
}

/// gunicorn --preload with tests/py/sqla_app.py against PostgreSQL on
/// `pg`, under `config` (None: without forkguard); the tally and
/// forkguard's log.
fn sqla_run(gunicorn: &PathBuf, pg: u16, config: Option<&str>, run: &str) -> (Tally, String) {
    let s = Scratch::new("py-sqla");
    let port = free_port();
    let mut cmd = Command::new(gunicorn);
    clean_env(&mut cmd);
    if let Some(text) = config {
        cmd.env("LD_PRELOAD", lib())
            .env("FORKGUARD_CONFIG", s.config("fg.toml", text))
            .env("FORKGUARD_LOG", s.path("fg.log"));
    }
    let dir = root().join("tests/py");
    cmd.env("FGT_PG_PORT", pg.to_string())
        .current_dir(&dir)
        .args([
            "--preload",
            "-w",
            &SQLA_WORKERS.to_string(),
            "--timeout",
            "5",
        ])
        .arg("--chdir")
        .arg(&dir)
        .arg("-b")
        .arg(format!("127.0.0.1:{port}"))
        .arg("sqla_app:app")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(s.path("server.out")).expect("server.out"))
        .stderr(std::fs::File::create(s.path("server.err")).expect("server.err"))
        .process_group(0);
    let mut child = cmd.spawn().expect("start gunicorn");
    let err = || std::fs::read_to_string(s.path("server.err")).unwrap_or_default();
    // Every worker booted and one answers (without the database).
    let up = wait_until(TIMEOUT, || {
        err().matches("Booting worker").count() >= SQLA_WORKERS
            && get_path(port, "/ping", Duration::from_secs(5)).is_some()
    });
    let tally = up.then(|| hammer(port, run));
    // How the server stops is not under test: the whole group is killed.
    kill_group(child.id() as libc::pid_t);
    let _ = child.wait();
    let log = std::fs::read_to_string(s.path("fg.log")).unwrap_or_default();
    let tally = tally.unwrap_or_else(|| panic!("gunicorn never served\n{}\n{log}", err()));
    let _ = writeln!(
        std::io::stderr(),
        "sqlalchemy {run}: {} {:?}",
        tally.line(),
        tally.shown
    );
    (tally, log)
}

fn importable(py: &std::path::Path, module: &str) -> bool {
    Command::new(py)
        .args(["-c", &format!("import {module}")])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// config/gunicorn-sqlalchemy.toml as shipped, with the test database's
/// port for 5432.
fn shipped_config(pg: u16) -> String {
    let text = std::fs::read_to_string(root().join("config/gunicorn-sqlalchemy.toml"))
        .expect("config/gunicorn-sqlalchemy.toml");
    assert!(text.contains("\"*:5432\""), "{text}");
    text.replace("\"*:5432\"", &format!("\"*:{pg}\""))
}

#[test]
fn sqlalchemy_pool_in_gunicorn_preload_workers() {
    const NAME: &str = "sqlalchemy_pool_in_gunicorn_preload_workers";
    let (Some(py), Some(gunicorn)) = (python(), server_bin("gunicorn")) else {
        return fd_support::skip(
            NAME,
            "python3 or gunicorn not installed (pip install gunicorn)",
        );
    };
    if !importable(&py, "sqlalchemy") || !importable(&py, "psycopg2") {
        return fd_support::skip(
            NAME,
            "sqlalchemy or psycopg2 not importable (pip install sqlalchemy psycopg2-binary)",
        );
    }
    let db = Scratch::new("py-sqla-pg");
    let (_pg, pg) = match fd_support::start_postgres(&db) {
        Ok(v) => v,
        Err(why) => return fd_support::skip(NAME, &why),
    };

    // (a) Without forkguard: the workers share the master's connection.
    // Retried, so that a lucky run cannot hide it.
    let shown = (0..3).any(|i| {
        let (t, _) = sqla_run(&gunicorn, pg, None, &format!("control{i}"));
        t.wrong + t.errors + t.lost > 0
    });
    assert!(
        shown,
        "sharing the master's connection never went wrong in 3 runs"
    );

    // (b) disconnect alone: no wrong answers, but SQLAlchemy hands the dead
    // connection out once per worker: exactly each worker's first query fails.
    let disconnect = fd_support::fd(
        &format!("kind = \"socket\", peer = \"127.0.0.1:{pg}\""),
        "disconnect",
        "",
    );
    let (t, log) = sqla_run(
        &gunicorn,
        pg,
        Some(&format!("version = 1\n{disconnect}")),
        "disconnect",
    );
    assert_eq!(
        (t.wrong, t.lost),
        (0, 0),
        "{} {:?}\n{log}",
        t.line(),
        t.shown
    );
    assert_eq!(t.ok + t.errors, QUERIES, "{}", t.line());
    let firsts: Vec<_> = t.answers.iter().filter(|a| a.1 == 1).collect();
    assert!(
        firsts.iter().all(|a| a.2),
        "every worker's first query fails: {:?}",
        t.answers
    );
    assert!(
        t.answers.iter().all(|a| a.1 == 1 || !a.2),
        "only the first fails: {:?}",
        t.answers
    );
    // Once per worker (a worker gunicorn replaced would count once more).
    assert!(t.errors >= 1, "{}", t.line());
    assert_eq!(t.errors, firsts.len(), "{}", t.line());

    // (c) The shipped config: disconnect and the [[python]] child hook that
    // disposes the pool: no wrong answer and no error at all.
    let (t, log) = sqla_run(&gunicorn, pg, Some(&shipped_config(pg)), "python");
    assert_eq!(
        (t.ok, t.wrong, t.errors, t.lost),
        (QUERIES, 0, 0, 0),
        "{:?}\n{log}",
        t.shown
    );
    let mut workers: Vec<i64> = t.answers.iter().map(|a| a.0).collect();
    workers.sort();
    workers.dedup();
    for w in workers {
        assert!(
            log.lines().any(
                |l| l.starts_with(&format!("forkguard[{w}] python child of "))
                    && l.ends_with(": 1 ok")
            ),
            "worker {w} ran the hook\n{log}"
        );
    }
    assert!(!log.contains("failed"), "{log}");
}
