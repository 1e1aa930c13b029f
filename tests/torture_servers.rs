//! Real servers under load with forkguard preloaded (issue 6, scenario 11):
//! Redis writing while BGSAVE forks again and again, PostgreSQL forking a
//! backend per connection under `pgbench -C`. Bounded in time; skipped with
//! a printed reason only when the server binaries are missing. Servers are
//! started the way tests/fd_servers.rs starts them.

mod common;
mod fd_support;

use common::{Log, Scratch};
use fd_support::{pg_bin_dirs, postgres_user, skip, which, Server};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// forkguard config for a server: a name for its children, listening
/// sockets close-on-exec in them, a text log.
fn server_config(s: &Scratch, name: &str, log: &std::path::Path) -> PathBuf {
    let text = format!(
        "version = 1\n\n[settings]\nlog = \"{}\"\n\n\
         [[fd]]\nselect = {{ kind = \"listen\" }}\naction = \"cloexec\"\n\n\
         [child]\nname = \"{name}\"\n",
        log.display()
    );
    s.config("fg.toml", &text)
}

/// Fork and child lines of a server's forkguard log: (forks, children,
/// failed actions in either).
fn log_counts(log: &Log) -> (usize, usize, u32) {
    log.assert_all_parse();
    let mut failed = 0;
    for l in &log.lines {
        match l {
            common::LogLine::Fork { phases, .. } => {
                failed += phases.iter().map(|p| p.failed).sum::<u32>()
            }
            common::LogLine::Child { summary, .. } => failed += summary.failed,
            common::LogLine::Other(_) => {}
        }
    }
    (log.forks().len(), log.children().len(), failed)
}

// ---------------------------------------------------------------- Redis --

/// A minimal RESP client: one command, one reply.
struct Resp {
    r: BufReader<TcpStream>,
    w: TcpStream,
}

#[derive(Debug, PartialEq)]
enum Reply {
    Status(String),
    Error(String),
    Int(i64),
    Bulk(Option<Vec<u8>>),
    Array(Vec<Reply>),
}

impl Resp {
    fn connect(port: u16) -> Resp {
        let w = TcpStream::connect(("127.0.0.1", port)).expect("connect redis");
        w.set_read_timeout(Some(Duration::from_secs(20))).ok();
        Resp {
            r: BufReader::new(w.try_clone().expect("clone")),
            w,
        }
    }

    fn encode(args: &[&[u8]]) -> Vec<u8> {
        let mut b = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            b.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            b.extend_from_slice(a);
            b.extend_from_slice(b"\r\n");
        }
        b
    }

    fn send(&mut self, args: &[&[u8]]) {
        self.w.write_all(&Self::encode(args)).expect("write redis");
    }

    fn read(&mut self) -> Reply {
        let mut line = String::new();
        self.r.read_line(&mut line).expect("read redis");
        let line = line.trim_end_matches("\r\n");
        let (t, rest) = line.split_at(1);
        match t {
            "+" => Reply::Status(rest.into()),
            "-" => Reply::Error(rest.into()),
            ":" => Reply::Int(rest.parse().expect("int")),
            "$" => {
                let n: i64 = rest.parse().expect("len");
                if n < 0 {
                    return Reply::Bulk(None);
                }
                let mut b = vec![0; n as usize + 2];
                self.r.read_exact(&mut b).expect("bulk");
                b.truncate(n as usize);
                Reply::Bulk(Some(b))
            }
            "*" => {
                let n: usize = rest.parse().expect("count");
                Reply::Array((0..n).map(|_| self.read()).collect())
            }
            _ => panic!("bad RESP line {line:?}"),
        }
    }

    fn cmd(&mut self, args: &[&str]) -> Reply {
        let a: Vec<&[u8]> = args.iter().map(|s| s.as_bytes()).collect();
        self.send(&a);
        self.read()
    }
}

fn value_of(i: usize) -> String {
    // Deterministic, varied in length and content.
    let h = (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    format!("v{i}-{h:x}-{}", "x".repeat(i % 97))
}

/// FNV-1a over key and value bytes, in key order.
fn checksum<'a>(pairs: impl Iterator<Item = (usize, &'a [u8])>) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for (i, v) in pairs {
        for b in i.to_le_bytes().iter().chain(v) {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

#[test]
fn redis_writes_survive_repeated_bgsave_under_load() {
    const NAME: &str = "redis_writes_survive_repeated_bgsave_under_load";
    let (Some(server), Some(bench)) = (which("redis-server", &[]), which("redis-benchmark", &[]))
    else {
        return skip(
            NAME,
            "redis-server or redis-benchmark not found (apt-get install redis-server)",
        );
    };
    let s = Scratch::new("tredis");
    let fglog = s.path("fg.log");
    let cfg = server_config(&s, "fgtredis", &fglog);
    let port = fd_support::free_port();
    let mut cmd = Command::new(server);
    cmd.args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
        .args(["--protected-mode", "no", "--dir"])
        .arg(&s.dir);
    common::clean_env(&mut cmd);
    cmd.env("LD_PRELOAD", common::lib())
        .env("FORKGUARD_CONFIG", &cfg);
    let mut srv = Server::spawn("redis-server", cmd, s.path("redis.log"));
    srv.wait_ready(|_| {
        TcpStream::connect(("127.0.0.1", port)).is_ok_and(|mut c| {
            let _ = c.set_read_timeout(Some(Duration::from_secs(1)));
            let mut buf = [0u8; 7];
            c.write_all(b"PING\r\n").is_ok()
                && c.read_exact(&mut buf).is_ok()
                && &buf == b"+PONG\r\n"
        })
    });

    // Background load on db 1 with redis-benchmark, our own writes on db 0,
    // BGSAVE again and again until both are done (at most ~20 s).
    let mut bench = Command::new(bench);
    bench
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(["--dbnum", "1", "-t", "set,incr,lpush", "-n", "60000"])
        .args(["-r", "50000", "-d", "64", "-P", "8", "-c", "8", "-q"]);
    common::clean_env(&mut bench);
    let bench_out = s.path("bench.out");
    bench
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&bench_out).expect("bench out"))
        .stderr(Stdio::piped());
    let mut bench = bench.spawn().expect("start redis-benchmark");

    const KEYS: usize = 30_000;
    let writer = std::thread::spawn(move || {
        let mut c = Resp::connect(port);
        let mut errors = 0;
        for chunk in (0..KEYS).collect::<Vec<_>>().chunks(200) {
            for &i in chunk {
                let (k, v) = (format!("fgt:{i}"), value_of(i));
                c.send(&[b"SET", k.as_bytes(), v.as_bytes()]);
            }
            for _ in chunk {
                if c.read() != Reply::Status("OK".into()) {
                    errors += 1;
                }
            }
        }
        errors
    });

    let mut saver = Resp::connect(port);
    let (mut started, mut busy) = (0, 0);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !writer.is_finished() || bench.try_wait().expect("bench").is_none() {
        assert!(Instant::now() < deadline, "load did not finish in 20 s");
        match saver.cmd(&["BGSAVE"]) {
            Reply::Status(st) if st.contains("started") => started += 1,
            Reply::Error(e) if e.contains("in progress") => busy += 1,
            other => panic!("BGSAVE: {other:?}\n{}", srv.log_text()),
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let write_errors = writer.join().expect("writer");
    let bench_status = bench.wait().expect("bench");
    let mut bench_err = String::new();
    if let Some(mut e) = bench.stderr.take() {
        let _ = e.read_to_string(&mut bench_err);
    }
    let bench_text = std::fs::read_to_string(&bench_out).unwrap_or_default();
    assert!(
        bench_status.success(),
        "redis-benchmark: {bench_text}{bench_err}"
    );
    assert!(
        !bench_text.to_lowercase().contains("error") && !bench_err.to_lowercase().contains("error"),
        "redis-benchmark reported errors:\n{bench_text}{bench_err}"
    );
    assert_eq!(write_errors, 0, "failed SETs");
    assert!(started >= 3, "only {started} BGSAVEs ({busy} busy)");
    // One last save finished before counting.
    while let Reply::Error(_) = saver.cmd(&["BGSAVE"]) {
        std::thread::sleep(Duration::from_millis(20));
    }

    assert_eq!(saver.cmd(&["SELECT", "0"]), Reply::Status("OK".into()));
    assert_eq!(
        saver.cmd(&["DBSIZE"]),
        Reply::Int(KEYS as i64),
        "keys lost or added"
    );
    let mut got = Vec::with_capacity(KEYS);
    for chunk in (0..KEYS).collect::<Vec<_>>().chunks(500) {
        let keys: Vec<String> = chunk.iter().map(|i| format!("fgt:{i}")).collect();
        let mut args: Vec<&str> = vec!["MGET"];
        args.extend(keys.iter().map(String::as_str));
        let Reply::Array(vals) = saver.cmd(&args) else {
            panic!("MGET")
        };
        for (i, v) in chunk.iter().zip(vals) {
            let Reply::Bulk(Some(v)) = v else {
                panic!("fgt:{i} missing")
            };
            got.push((*i, v));
        }
    }
    let want: Vec<(usize, Vec<u8>)> = (0..KEYS).map(|i| (i, value_of(i).into_bytes())).collect();
    assert_eq!(
        checksum(got.iter().map(|(i, v)| (*i, v.as_slice()))),
        checksum(want.iter().map(|(i, v)| (*i, v.as_slice()))),
        "values differ from what was written"
    );
    drop(saver);
    drop(srv);

    let log = Log::read(&fglog);
    let (forks, children, failed) = log_counts(&log);
    eprintln!(
        "redis: {started} BGSAVE forks started ({busy} refused while busy), {forks} fork lines"
    );
    assert!(
        forks as i64 >= started,
        "every BGSAVE fork is logged:\n{}",
        log.raw
    );
    assert!(children >= 1, "the BGSAVE children reported:\n{}", log.raw);
    assert_eq!(failed, 0, "failed actions:\n{}", log.raw);
}

// ----------------------------------------------------------- PostgreSQL --

#[test]
fn postgres_pgbench_new_connection_per_transaction() {
    const NAME: &str = "postgres_pgbench_new_connection_per_transaction";
    let dirs = pg_bin_dirs();
    let (Some(initdb), Some(postgres), Some(pgbench)) = (
        which("initdb", &dirs),
        which("postgres", &dirs),
        which("pgbench", &dirs),
    ) else {
        return skip(
            NAME,
            "initdb, postgres or pgbench not found (apt-get install postgresql)",
        );
    };
    let as_user = if common::is_root() {
        match postgres_user() {
            Some(u) => Some(u),
            None => return skip(NAME, "running as root and there is no postgres account"),
        }
    } else {
        None
    };
    let s = Scratch::new("tpg");
    // The server writes forkguard's log: a directory it owns.
    let logdir = s.path("fglog");
    std::fs::create_dir(&logdir).expect("mkdir");
    let data = s.path("pg");
    std::fs::create_dir(&data).expect("mkdir");
    if let Some((uid, gid)) = as_user {
        for d in [&logdir, &data] {
            std::os::unix::fs::chown(d, Some(uid), Some(gid)).expect("chown");
        }
    }
    if let Err(e) = fd_support::initdb(&s, &initdb, &data, as_user) {
        panic!("{e}");
    }

    let fglog = logdir.join("fg.log");
    let cfg = server_config(&s, "fgtpg", &fglog);
    let port = fd_support::free_port();
    let mut cmd = Command::new(postgres);
    cmd.arg("-D")
        .arg(&data)
        .args(["-p", &port.to_string(), "-k"])
        .arg(&data)
        .args(["-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"])
        .args(["-c", "ssl=off", "-c", "max_connections=50"]);
    fd_support::as_postgres(&s, as_user, &mut cmd);
    cmd.env("LD_PRELOAD", s.for_others(&common::lib()))
        .env("FORKGUARD_CONFIG", &cfg);
    let mut srv = Server::spawn("postgres", cmd, s.path("postgres.log"));
    srv.wait_ready(|srv| srv.log_text().contains("ready to accept connections"));

    let bench = |args: &[&str]| {
        let mut c = Command::new(&pgbench);
        c.args(["-h", "127.0.0.1", "-p", &port.to_string(), "-U", "postgres"])
            .args(args)
            .arg("postgres");
        common::clean_env(&mut c);
        common::run(&s, c, Duration::from_secs(60))
    };
    bench(&["-i", "-s", "1", "-q"]).assert_success();
    let seconds = 8;
    let out = bench(&["-C", "-c", "4", "-j", "2", "-T", &seconds.to_string()]);
    out.assert_success();
    let field = |key: &str| -> i64 {
        out.stdout
            .lines()
            .find_map(|l| l.trim().strip_prefix(key))
            .and_then(|r| r.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no {key:?} in pgbench output:\n{}", out.dump()))
    };
    let done = field("number of transactions actually processed:");
    let failed = field("number of failed transactions:");
    assert_eq!(failed, 0, "failed transactions:\n{}", out.dump());
    assert!(done > 50, "only {done} transactions:\n{}", out.dump());
    let server_log = srv.log_text();
    drop(srv);
    assert!(
        !server_log.contains("PANIC") && !server_log.contains("terminated by signal"),
        "server log:\n{server_log}"
    );

    let log = Log::read(&fglog);
    let (forks, children, failed_actions) = log_counts(&log);
    eprintln!("postgres: {done} transactions, one connection each, {forks} fork lines, {children} child lines");
    // One backend forked per connection (and a few auxiliary processes).
    assert!(forks as i64 >= done, "{forks} forks for {done} connections");
    assert!(children as i64 >= done, "{children} child reports");
    assert_eq!(failed_actions, 0, "failed actions in the log");
}
