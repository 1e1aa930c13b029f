//! Helpers for the `[[fd]]` tests: the `fd_fix` fixture (tests/c/fd_fix.c),
//! the `fd_count` preload (tests/c/fd_count.c), and their reports.
//!
//! `fd_fix` appends lines `parent k=v ...` / `child k=v ...` to `$FD_OUT`;
//! [`Report`] reads them back.

#![allow(dead_code)]

use crate::common::{self, Outcome, Scratch};
use std::collections::HashMap;
use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

/// Deadline for one fixture run: every test that forks has one.
pub const TIMEOUT: Duration = Duration::from_secs(30);

fn build(name: &str, shared: bool) -> PathBuf {
    let dir = common::fixture_dir().join("fd");
    fs::create_dir_all(&dir).expect("create fixture dir");
    let src = common::root().join("tests/c").join(format!("{name}.c"));
    let out = dir.join(if shared {
        format!("lib{name}.so")
    } else {
        name.to_string()
    });
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let mut cmd = Command::new("gcc");
    cmd.args(["-O1", "-g", "-Wall", "-Wextra", "-Wno-unused-parameter"]);
    if shared {
        cmd.args(["-shared", "-fPIC"]);
    }
    cmd.arg("-o").arg(&tmp).arg(&src);
    let o = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run gcc (install gcc): {e}"));
    assert!(
        o.status.success(),
        "gcc failed for {}:\n{}",
        src.display(),
        String::from_utf8_lossy(&o.stderr)
    );
    fs::rename(&tmp, &out).expect("rename fixture");
    out
}

/// The `fd_fix` program, built once per test binary.
pub fn fd_fix() -> PathBuf {
    static P: OnceLock<PathBuf> = OnceLock::new();
    P.get_or_init(|| build("fd_fix", false)).clone()
}

/// The `libfd_count.so` preload, built once per test binary.
pub fn fd_count() -> PathBuf {
    static P: OnceLock<PathBuf> = OnceLock::new();
    P.get_or_init(|| build("fd_count", true)).clone()
}

/// `version = 1`, text log to `log`, then `body`.
pub fn config(log: &Path, body: &str) -> String {
    format!(
        "version = 1\n\n[settings]\nlog = \"{}\"\n\n{body}\n",
        log.display()
    )
}

/// One `[[fd]]` table.
pub fn fd(select: &str, action: &str, extra: &str) -> String {
    format!("[[fd]]\nselect = {{ {select} }}\naction = \"{action}\"\n{extra}\n")
}

/// What `fd_fix` reported, by role.
#[derive(Debug, Default)]
pub struct Report {
    pub lines: Vec<(String, HashMap<String, String>)>,
    pub raw: String,
}

impl Report {
    pub fn read(p: &Path) -> Report {
        let raw = fs::read_to_string(p).unwrap_or_default();
        let lines = raw
            .lines()
            .map(|l| {
                let mut words = l.split_whitespace();
                let role = words.next().unwrap_or("").to_string();
                let kv = words
                    .filter_map(|w| w.split_once('='))
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect();
                (role, kv)
            })
            .collect();
        Report { lines, raw }
    }

    /// Every `key` reported by `role`, in order.
    pub fn all(&self, role: &str, key: &str) -> Vec<String> {
        self.lines
            .iter()
            .filter(|(r, _)| r == role)
            .filter_map(|(_, kv)| kv.get(key).cloned())
            .collect()
    }

    /// The (last) `key` reported by `role`; panics when absent.
    pub fn get(&self, role: &str, key: &str) -> String {
        self.all(role, key)
            .pop()
            .unwrap_or_else(|| panic!("no {role} {key}= in the report:\n{}", self.raw))
    }
}

/// One run of `fd_fix`: its outcome, its report and forkguard's log.
pub struct Run {
    pub out: Outcome,
    pub report: Report,
    pub log: String,
}

impl Run {
    /// Panics with everything known unless the fixture exited 0.
    pub fn ok(self) -> Run {
        assert!(
            self.out.status.success(),
            "{} failed: {:?}\n{}\n--- report ---\n{}--- log ---\n{}",
            self.out.cmdline,
            self.out.status,
            self.out.dump(),
            self.report.raw,
            self.log
        );
        self
    }

    pub fn child(&self, key: &str) -> String {
        self.report.get("child", key)
    }

    pub fn parent(&self, key: &str) -> String {
        self.report.get("parent", key)
    }

    /// The `child of` lines of forkguard's log.
    pub fn child_lines(&self) -> Vec<&str> {
        self.log
            .lines()
            .filter(|l| l.contains("] child of "))
            .collect()
    }
}

/// The command for `fd_fix MODE ARGS` in `s`: with forkguard and `config`
/// (`Some(body)`, logged to `s/log`), or plain (`None`). `extra_preload` is
/// listed after forkguard.
pub fn fix_cmd(
    s: &Scratch,
    args: &[&str],
    config_body: Option<&str>,
    extra_preload: Option<&Path>,
) -> Command {
    let _ = fs::remove_file(s.path("out"));
    let _ = fs::remove_file(s.path("log"));
    let mut cmd = match config_body {
        Some(body) => {
            let cfg = s.config("fd.toml", &config(&s.path("log"), body));
            let mut c = common::guarded(s, fd_fix(), &cfg);
            if let Some(p) = extra_preload {
                c.env(
                    "LD_PRELOAD",
                    format!("{} {}", common::lib().display(), p.display()),
                );
            }
            c
        }
        None => {
            let mut c = Command::new(fd_fix());
            common::clean_env(&mut c);
            c.current_dir(&s.dir);
            c
        }
    };
    cmd.args(args)
        .env("FD_OUT", s.path("out"))
        .env("FD_DIR", &s.dir);
    cmd
}

/// Run `fd_fix MODE ARGS` to the end (with the default timeout).
pub fn fix(s: &Scratch, args: &[&str], config_body: Option<&str>) -> Run {
    fix_with(s, args, config_body, None)
}

pub fn fix_with(
    s: &Scratch,
    args: &[&str],
    config_body: Option<&str>,
    extra_preload: Option<&Path>,
) -> Run {
    let cmd = fix_cmd(s, args, config_body, extra_preload);
    let out = common::run(s, cmd, TIMEOUT);
    Run {
        out,
        report: Report::read(&s.path("out")),
        log: fs::read_to_string(s.path("log")).unwrap_or_default(),
    }
}

/// A loopback TCP port that was free a moment ago (the kernel picked it).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind 127.0.0.1:0")
        .local_addr()
        .expect("local addr")
        .port()
}

/// A port free on both 127.0.0.1 and [::1].
pub fn free_port6() -> u16 {
    loop {
        let l = std::net::TcpListener::bind("[::1]:0").expect("bind [::1]:0");
        let p = l.local_addr().expect("local addr").port();
        if std::net::TcpListener::bind(("127.0.0.1", p)).is_ok() {
            return p;
        }
    }
}

// ---- real servers (shared by fd_servers.rs and torture_servers.rs) --------

/// Say why a test checks nothing, where `cargo test` does not hide it.
pub fn skip(test: &str, why: &str) {
    let line = format!("SKIPPED {test}: {why}\n");
    let _ = std::io::Write::write_all(&mut std::io::stderr(), line.as_bytes());
}

pub fn which(name: &str, extra_dirs: &[std::path::PathBuf]) -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(extra_dirs.iter().cloned())
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// PostgreSQL's `bin` directories (Debian's `/usr/lib/postgresql/VERSION/bin`),
/// newest version first.
pub fn pg_bin_dirs() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.path().join("bin"))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v.reverse();
    v
}

/// uid and gid of the `postgres` account (the server refuses to run as root).
pub fn postgres_user() -> Option<(u32, u32)> {
    let text = std::fs::read_to_string("/etc/passwd").ok()?;
    let line = text.lines().find(|l| l.starts_with("postgres:"))?;
    let f: Vec<&str> = line.split(':').collect();
    Some((f.get(2)?.parse().ok()?, f.get(3)?.parse().ok()?))
}

/// A server process in its own process group, killed on drop.
pub struct Server {
    pub child: std::process::Child,
    name: &'static str,
    log: std::path::PathBuf,
}

impl Server {
    pub fn spawn(
        name: &'static str,
        mut cmd: std::process::Command,
        log: std::path::PathBuf,
    ) -> Server {
        let out = std::fs::File::create(&log).expect("server log");
        cmd.stdin(std::process::Stdio::null())
            .stdout(out.try_clone().expect("dup log"))
            .stderr(out)
            .process_group(0);
        let child = cmd.spawn().unwrap_or_else(|e| panic!("start {name}: {e}"));
        Server { child, name, log }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Wait until `ready()` (at most 30 s); panics with the server's log.
    pub fn wait_ready(&mut self, mut ready: impl FnMut(&Server) -> bool) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while !ready(self) {
            if let Ok(Some(st)) = self.child.try_wait() {
                panic!("{} exited early ({st:?}):\n{}", self.name, self.log_text());
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{} not ready after 30 s:\n{}",
                self.name,
                self.log_text()
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // SAFETY: kill(2) on the process group this test created for the server.
        unsafe { libc::kill(-(self.child.id() as libc::pid_t), libc::SIGKILL) };
        let _ = self.child.wait();
    }
}

/// Make `cmd` run as the postgres account (`as_user`, when root), with a
/// clean environment, from `s`'s directory: one it can enter, where the
/// checkout may not be (a clone under /root).
pub fn as_postgres(s: &Scratch, as_user: Option<(u32, u32)>, cmd: &mut Command) {
    if let Some((uid, gid)) = as_user {
        cmd.uid(uid).gid(gid);
    }
    common::clean_env(cmd);
    cmd.current_dir(&s.dir);
}

/// `initdb` of `data` (trust auth, user `postgres`, UTF8, no sync) as the
/// postgres account; Err with its output when it fails.
pub fn initdb(
    s: &Scratch,
    initdb: &Path,
    data: &Path,
    as_user: Option<(u32, u32)>,
) -> Result<(), String> {
    let mut init = Command::new(initdb);
    init.args([
        "-A",
        "trust",
        "-U",
        "postgres",
        "-E",
        "UTF8",
        "--no-sync",
        "-D",
    ])
    .arg(data);
    as_postgres(s, as_user, &mut init);
    let out = common::run(s, init, Duration::from_secs(120));
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("initdb failed:\n{}", out.dump()))
    }
}

/// A PostgreSQL server (trust auth, user `postgres`) in `s`'s directory on a
/// free loopback port, run as the `postgres` account when root; Err says
/// why it cannot start (the caller skips).
pub fn start_postgres(s: &Scratch) -> Result<(Server, u16), String> {
    let dirs = pg_bin_dirs();
    let initdb_bin =
        which("initdb", &dirs).ok_or("initdb not found (apt-get install postgresql)")?;
    let postgres =
        which("postgres", &dirs).ok_or("postgres not found (apt-get install postgresql)")?;
    let as_user = if common::is_root() {
        Some(postgres_user().ok_or("running as root and there is no postgres account")?)
    } else {
        None
    };
    let data = s.path("pg");
    std::fs::create_dir(&data).map_err(|e| e.to_string())?;
    if let Some((uid, gid)) = as_user {
        std::os::unix::fs::chown(&data, Some(uid), Some(gid)).map_err(|e| e.to_string())?;
    }
    initdb(s, &initdb_bin, &data, as_user)?;
    let port = free_port();
    let mut cmd = Command::new(postgres);
    cmd.arg("-D")
        .arg(&data)
        .args(["-p", &port.to_string(), "-k"])
        .arg(&data);
    cmd.args([
        "-c",
        "listen_addresses=127.0.0.1",
        "-c",
        "fsync=off",
        "-c",
        "ssl=off",
    ]);
    as_postgres(s, as_user, &mut cmd);
    let log = s.path("postgres.log");
    let mut srv = Server::spawn("postgres", cmd, log);
    srv.wait_ready(|srv| srv.log_text().contains("ready to accept connections"));
    Ok((srv, port))
}

/// Whether `py` can import psycopg2.
pub fn has_psycopg2(py: &Path) -> bool {
    Command::new(py)
        .args(["-c", "import psycopg2"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}
