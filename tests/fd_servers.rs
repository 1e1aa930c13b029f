//! `disconnect` against real servers on loopback (issue 4): a client that
//! forks with one open connection to Redis or PostgreSQL.
//!
//! Without forkguard, parent and child share one protocol stream and get
//! each other's replies (the test shows it). With `disconnect` selected by
//! `peer`, the child finds its connection dead (end-of-file), reconnects,
//! and every reply matches its request in both processes.
//!
//! Needs `redis-server` (Debian: redis-server), and for PostgreSQL the
//! server binaries (Debian: postgresql) and psycopg2 (PyPI:
//! psycopg2-binary). A test whose server is missing says so on stderr
//! (not captured) and passes without checking anything.
//!
//! Run: `cargo build --release -p forkguard && cargo test --profile fgtest --test fd_servers`.

mod common;
mod fd_support;

use common::Scratch;
use fd_support::{has_psycopg2, skip, start_postgres, which, Server};
use std::io::{Read, Write};
use std::process::Command;
use std::time::Duration;

/// Deadline for one client run (each forks once).
const CLIENT_TIMEOUT: Duration = Duration::from_secs(60);

/// `role k=v ...` lines of a client's stdout.
fn stats(out: &common::Outcome, role: &str) -> std::collections::HashMap<String, i64> {
    out.stdout
        .lines()
        .filter(|l| l.starts_with(&format!("{role} ")))
        .flat_map(|l| l.split_whitespace().skip(1))
        .filter_map(|w| w.split_once('='))
        .map(|(k, v)| (k.to_string(), v.parse().unwrap_or(-1)))
        .collect()
}

fn client(s: &Scratch, script: &str, port: u16, n: usize, config: Option<&str>) -> common::Outcome {
    let py = common::python().expect("python3");
    let script = common::root().join("tests/py").join(script);
    let mut cmd = match config {
        Some(body) => {
            let cfg = s.config("fd.toml", &fd_support::config(&s.path("log"), body));
            common::guarded(s, &py, &cfg)
        }
        None => {
            let mut c = Command::new(&py);
            common::clean_env(&mut c);
            c
        }
    };
    cmd.arg(&script).arg(port.to_string()).arg(n.to_string());
    let out = common::run(s, cmd, CLIENT_TIMEOUT);
    out.assert_success();
    out
}

/// The `disconnect` config for a server on 127.0.0.1:port.
fn disconnect(port: u16) -> String {
    fd_support::fd(
        &format!("kind = \"socket\", peer = \"127.0.0.1:{port}\""),
        "disconnect",
        "",
    )
}

/// No reply went to the wrong process; `errors` failed requests (each
/// followed by a reconnect), `reconnects` in all.
fn assert_clean(out: &common::Outcome, role: &str, ok: i64, errors: i64, reconnects: i64) {
    let st = stats(out, role);
    let want = [
        ("ok", ok),
        ("mismatch", 0),
        ("errors", errors),
        ("reconnects", reconnects),
    ];
    for (k, v) in want {
        assert_eq!(st.get(k), Some(&v), "{role} {k}\n{}", out.dump());
    }
}

// ---------------------------------------------------------------- Redis --

fn start_redis(s: &Scratch) -> Option<(Server, u16)> {
    let bin = which("redis-server", &[])?;
    let port = fd_support::free_port();
    let mut cmd = Command::new(bin);
    cmd.args([
        "--port",
        &port.to_string(),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
    ])
    .args(["--daemonize", "no", "--protected-mode", "no", "--dir"])
    .arg(&s.dir);
    common::clean_env(&mut cmd);
    let mut srv = Server::spawn("redis-server", cmd, s.path("redis.log"));
    srv.wait_ready(|_| redis_ping(port));
    Some((srv, port))
}

fn redis_ping(port: u16) -> bool {
    let Ok(mut c) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = c.set_read_timeout(Some(Duration::from_secs(1)));
    let mut buf = [0u8; 7];
    c.write_all(b"PING\r\n").is_ok() && c.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n"
}

#[test]
fn redis_shared_connection_is_disconnected_in_the_child() {
    let s = Scratch::new("fd-redis");
    if common::python().is_none() {
        return skip(
            "redis_shared_connection_is_disconnected_in_the_child",
            "python3 not found",
        );
    }
    let Some((_redis, port)) = start_redis(&s) else {
        return skip(
            "redis_shared_connection_is_disconnected_in_the_child",
            "redis-server not installed (apt-get install redis-server)",
        );
    };
    let n = 2000;

    // Without forkguard: replies mix (retried, so a lucky run cannot hide it).
    let mut shown = None;
    for _ in 0..3 {
        let out = client(&s, "fd_redis.py", port, n, None);
        let (p, c) = (stats(&out, "parent"), stats(&out, "child"));
        assert_eq!(
            c.get("eof"),
            Some(&0),
            "without forkguard the child's connection is alive\n{}",
            out.dump()
        );
        let wrong = p["mismatch"] + c["mismatch"] + p["errors"] + c["errors"];
        if wrong > 0 {
            shown = Some(out.stdout.clone());
            break;
        }
    }
    let shown = shown.expect("sharing one connection across fork never mixed replies in 3 runs");
    let _ = writeln!(std::io::stderr(), "redis without forkguard:\n{shown}");

    // With disconnect by peer: the child sees end-of-file and reconnects;
    // every reply matches, and the parent never notices.
    let out = client(&s, "fd_redis.py", port, n, Some(&disconnect(port)));
    assert_eq!(stats(&out, "child").get("eof"), Some(&1), "{}", out.dump());
    assert_clean(&out, "child", n as i64, 0, 1);
    assert_clean(&out, "parent", n as i64, 0, 0);
    let log = std::fs::read_to_string(s.path("log")).unwrap_or_default();
    assert!(
        log.lines()
            .any(|l| l.contains("] child of ") && l.contains(": 1 ok ")),
        "{log}"
    );
}

// ----------------------------------------------------------- PostgreSQL --

#[test]
fn postgres_shared_connection_is_disconnected_in_the_child() {
    const NAME: &str = "postgres_shared_connection_is_disconnected_in_the_child";
    let s = Scratch::new("fd-pg");
    let Some(py) = common::python() else {
        return skip(NAME, "python3 not found");
    };
    if !has_psycopg2(&py) {
        return skip(
            NAME,
            "psycopg2 not importable (pip install psycopg2-binary)",
        );
    }
    let (_pg, port) = match start_postgres(&s) {
        Ok(v) => v,
        Err(why) => return skip(NAME, &why),
    };
    let n = 300;

    // Without forkguard: the shared stream breaks (wrong results or protocol
    // errors), and the child's close at exit ends the parent's session.
    let out = client(&s, "fd_pg.py", port, n, None);
    let (p, c) = (stats(&out, "parent"), stats(&out, "child"));
    // A process may also hang waiting for a reply the other one read: the
    // script's watchdog then reports hung=1.
    let get = |m: &std::collections::HashMap<String, i64>, k: &str| m.get(k).copied().unwrap_or(0);
    let wrong: i64 = ["mismatch", "errors", "hung"]
        .iter()
        .map(|k| get(&p, k) + get(&c, k))
        .sum();
    assert!(
        wrong > 0 || get(&p, "after") == 0,
        "sharing a PostgreSQL connection went unnoticed:\n{}",
        out.dump()
    );
    let _ = writeln!(
        std::io::stderr(),
        "postgres without forkguard:\n{}",
        out.stdout
    );

    let out = client(&s, "fd_pg.py", port, n, Some(&disconnect(port)));
    // psycopg2 has no health check: the child's first query fails ("server
    // closed the connection unexpectedly"), it reconnects, and goes on.
    assert_clean(&out, "child", n as i64 - 1, 1, 1);
    assert_clean(&out, "parent", n as i64, 0, 0);
    assert_eq!(
        stats(&out, "parent").get("after"),
        Some(&1),
        "the parent's session survives\n{}",
        out.dump()
    );
}
