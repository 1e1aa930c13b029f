//! What `/proc/PID` says about a process: its threads, what each is blocked
//! in, its mappings, and its memory.
//!
//! Every read can fail because the process exited meanwhile or because the
//! caller may not look: `Gone` and `Denied` are told apart from other errors
//! so that the command can say which in one line.

use std::fs::File;
use std::io::ErrorKind;
use std::os::unix::fs::{FileExt, MetadataExt};

/// Why a file under `/proc/PID` could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProcError {
    /// No such process (or thread), or it exited while being read.
    Gone,
    /// The caller may not inspect it (another user's process, ptrace rules).
    Denied,
    /// Anything else, with the system's message.
    Other(String),
}

impl ProcError {
    fn from_io(e: &std::io::Error) -> ProcError {
        match e.kind() {
            ErrorKind::NotFound => ProcError::Gone,
            ErrorKind::PermissionDenied => ProcError::Denied,
            _ if e.raw_os_error() == Some(libc::ESRCH) => ProcError::Gone,
            _ => ProcError::Other(crate::launch::strip_os(e)),
        }
    }
}

pub type Result<T> = std::result::Result<T, ProcError>;

fn read_text(path: &str) -> Result<String> {
    std::fs::read_to_string(path).map_err(|e| ProcError::from_io(&e))
}

/// What `/proc/PID/task/TID/syscall` says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Syscall {
    /// On a CPU (or runnable).
    Running,
    /// Blocked, but not in a system call (`-1 SP PC`).
    Outside { sp: u64, pc: u64 },
    /// Blocked in system call `nr` with its six arguments.
    In {
        nr: u64,
        args: [u64; 6],
        sp: u64,
        pc: u64,
    },
}

/// Parses the one line of a `syscall` file.
pub fn parse_syscall(text: &str) -> Option<Syscall> {
    let t = text.trim();
    if t == "running" {
        return Some(Syscall::Running);
    }
    let nums: Vec<u64> = t
        .split_whitespace()
        .map(|w| {
            if w == "-1" {
                Some(u64::MAX)
            } else {
                u64::from_str_radix(
                    w.trim_start_matches("0x"),
                    if w.starts_with("0x") { 16 } else { 10 },
                )
                .ok()
            }
        })
        .collect::<Option<_>>()?;
    match nums.as_slice() {
        [u64::MAX, sp, pc] => Some(Syscall::Outside { sp: *sp, pc: *pc }),
        [nr, a @ .., sp, pc] if a.len() == 6 => Some(Syscall::In {
            nr: *nr,
            args: [a[0], a[1], a[2], a[3], a[4], a[5]],
            sp: *sp,
            pc: *pc,
        }),
        _ => None,
    }
}

/// One thread of the process.
#[derive(Debug, Clone)]
pub struct Task {
    pub tid: i32,
    pub comm: String,
    /// The state letter of `stat` (R, S, D, T, t, Z, X, I).
    pub state: char,
    pub syscall: Syscall,
    /// The kernel function it sleeps in (`futex_wait_queue`, `do_epoll_wait`), if any.
    pub wchan: Option<String>,
}

/// `(comm, state, ppid)` from a `stat` line: the name is between the first
/// `(` and the last `)`, since it may itself contain parentheses.
pub fn parse_stat(text: &str) -> Option<(String, char, i32)> {
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let comm = text.get(open + 1..close)?.to_string();
    let mut rest = text.get(close + 1..)?.split_whitespace();
    let state = rest.next()?.chars().next()?;
    let ppid = rest.next()?.parse().ok()?;
    Some((comm, state, ppid))
}

/// One line of `/proc/PID/maps`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapping {
    pub start: u64,
    pub end: u64,
    pub perms: String,
    pub offset: u64,
    /// The file, `[heap]`, `[stack]`, `[vdso]`..., or empty (anonymous).
    pub path: String,
}

impl Mapping {
    pub fn contains(&self, addr: u64) -> bool {
        addr >= self.start && addr < self.end
    }
    pub fn exec(&self) -> bool {
        self.perms.as_bytes().get(2) == Some(&b'x')
    }
    pub fn shared(&self) -> bool {
        self.perms.as_bytes().get(3) == Some(&b's')
    }
    /// Backed by a file (not anonymous, not a `[...]` pseudo-mapping).
    pub fn is_file(&self) -> bool {
        self.path.starts_with('/')
    }
}

pub fn parse_maps(text: &str) -> Vec<Mapping> {
    text.lines().filter_map(parse_map_line).collect()
}

fn parse_map_line(line: &str) -> Option<Mapping> {
    // START-END PERMS OFFSET DEV INODE [PATH], PATH may contain spaces.
    let mut it = line.splitn(6, ' ');
    let range = it.next()?;
    let perms = it.next()?.to_string();
    let offset = u64::from_str_radix(it.next()?, 16).ok()?;
    let _dev = it.next()?;
    let _inode = it.next()?;
    let path = it.next().unwrap_or("").trim_start().to_string();
    let (s, e) = range.split_once('-')?;
    Some(Mapping {
        start: u64::from_str_radix(s, 16).ok()?,
        end: u64::from_str_radix(e, 16).ok()?,
        perms,
        offset,
        path,
    })
}

/// A process open for inspection.
pub struct Process {
    pub pid: i32,
    mem: Option<File>,
    /// Why `mem` could not be opened, when it could not.
    pub mem_error: Option<ProcError>,
}

impl Process {
    /// Checks that the process exists and may be inspected: its `syscall`
    /// file is readable only by whoever may ptrace it.
    pub fn open(pid: i32) -> Result<Process> {
        if pid <= 0 {
            return Err(ProcError::Gone);
        }
        // A thread id that is not a process id also has /proc/TID: refuse it.
        let status = read_text(&format!("/proc/{pid}/status"))?;
        if field(&status, "Tgid:").and_then(|t| t.parse::<i32>().ok()) != Some(pid) {
            return Err(ProcError::Gone);
        }
        read_text(&format!("/proc/{pid}/syscall"))?;
        let (mem, mem_error) = match File::open(format!("/proc/{pid}/mem")) {
            Ok(f) => (Some(f), None),
            Err(e) => (None, Some(ProcError::from_io(&e))),
        };
        Ok(Process {
            pid,
            mem,
            mem_error,
        })
    }

    pub fn status(&self) -> Result<String> {
        read_text(&format!("/proc/{}/status", self.pid))
    }

    pub fn comm(&self) -> String {
        read_text(&format!("/proc/{}/comm", self.pid))
            .map(|s| s.trim_end().to_string())
            .unwrap_or_default()
    }

    /// The parent's pid (0 when unknown).
    pub fn ppid(&self) -> i32 {
        self.status()
            .ok()
            .and_then(|s| field(&s, "PPid:").and_then(|p| p.parse().ok()))
            .unwrap_or(0)
    }

    pub fn maps(&self) -> Result<Vec<Mapping>> {
        read_text(&format!("/proc/{}/maps", self.pid)).map(|t| parse_maps(&t))
    }

    /// Thread ids, in ascending order.
    pub fn tids(&self) -> Result<Vec<i32>> {
        let dir = std::fs::read_dir(format!("/proc/{}/task", self.pid))
            .map_err(|e| ProcError::from_io(&e))?;
        let mut v: Vec<i32> = dir
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
            .collect();
        v.sort_unstable();
        Ok(v)
    }

    /// One thread's state; `Gone` if it exited meanwhile.
    pub fn task(&self, tid: i32) -> Result<Task> {
        let base = format!("/proc/{}/task/{tid}", self.pid);
        let stat = read_text(&format!("{base}/stat"))?;
        let (comm, state, _) = parse_stat(&stat)
            .ok_or_else(|| ProcError::Other(format!("{base}/stat: unreadable")))?;
        let sc = read_text(&format!("{base}/syscall"))?;
        let syscall = parse_syscall(&sc).ok_or_else(|| {
            ProcError::Other(format!("{base}/syscall: unreadable: {}", sc.trim()))
        })?;
        let wchan = read_text(&format!("{base}/wchan"))
            .ok()
            .filter(|w| !w.is_empty() && w != "0");
        Ok(Task {
            tid,
            comm,
            state,
            syscall,
            wchan,
        })
    }

    /// Whether thread `tid` exists in this process.
    pub fn has_thread(&self, tid: i32) -> bool {
        tid > 0 && std::fs::metadata(format!("/proc/{}/task/{tid}", self.pid)).is_ok()
    }

    /// Reads `len` bytes of the process's memory at `addr`.
    pub fn read(&self, addr: u64, len: usize) -> Result<Vec<u8>> {
        let Some(mem) = &self.mem else {
            return Err(self.mem_error.clone().unwrap_or(ProcError::Denied));
        };
        let mut buf = vec![0u8; len];
        let mut got = 0;
        while got < len {
            match mem.read_at(&mut buf[got..], addr + got as u64) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if got > 0 => {
                    let _ = e;
                    break;
                }
                Err(e) => {
                    // EIO: not mapped (any more); ESRCH/empty: the process is gone.
                    return Err(if !self.alive() {
                        ProcError::Gone
                    } else {
                        ProcError::from_io(&e)
                    });
                }
            }
        }
        buf.truncate(got);
        if got < len && !self.alive() {
            return Err(ProcError::Gone);
        }
        Ok(buf)
    }

    pub fn alive(&self) -> bool {
        std::fs::metadata(format!("/proc/{}/task", self.pid)).is_ok()
    }
}

/// The value after `name` in a `status` file.
pub fn field<'a>(status: &'a str, name: &str) -> Option<&'a str> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(name))
        .map(str::trim)
}

/// Thread `tid`'s process id (its `Tgid`), when it exists anywhere.
pub fn tgid_of(tid: i32) -> Option<i32> {
    if tid <= 0 {
        return None;
    }
    let s = read_text(&format!("/proc/{tid}/status")).ok()?;
    field(&s, "Tgid:")?.parse().ok()
}

/// Device and inode of a process's executable, to tell whether two
/// processes run the same program (a forked child that did not exec).
pub fn exe_id(pid: i32) -> Option<(u64, u64)> {
    let m = std::fs::metadata(format!("/proc/{pid}/exe")).ok()?;
    Some((m.dev(), m.ino()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syscall_lines() {
        assert_eq!(parse_syscall("running\n"), Some(Syscall::Running));
        assert_eq!(
            parse_syscall("-1 0x7ffd0 0x7f12\n"),
            Some(Syscall::Outside {
                sp: 0x7ffd0,
                pc: 0x7f12
            })
        );
        assert_eq!(
            parse_syscall("202 0x562f285a50e0 0x80 0x2 0x0 0x0 0x0 0x7f3779203e98 0x7f377928e12b"),
            Some(Syscall::In {
                nr: 202,
                args: [0x562f285a50e0, 0x80, 2, 0, 0, 0],
                sp: 0x7f3779203e98,
                pc: 0x7f377928e12b
            })
        );
        assert_eq!(parse_syscall("202 0x1"), None);
        assert_eq!(parse_syscall(""), None);
    }

    #[test]
    fn stat_with_parentheses_in_name() {
        let s = "4250 (a (b) c) S 4242 4250 1 0 -1";
        assert_eq!(parse_stat(s), Some(("a (b) c".into(), 'S', 4242)));
        assert_eq!(parse_stat("4250 (x"), None);
    }

    #[test]
    fn maps_lines() {
        let m = parse_maps(
            "7f37790a0000-7f37790c6000 r--p 00000000 fe:01 1234 /usr/lib/x86_64-linux-gnu/libc.so.6\n\
             7f3779200000-7f3779204000 rw-p 00000000 00:00 0 \n\
             55d0c000-55d0d000 rw-p 00000000 00:00 0                          [heap]\n\
             7f00-7f10 rw-s 00001000 00:05 77 /dev/shm/a b (deleted)\n",
        );
        assert_eq!(m.len(), 4);
        assert_eq!(m[0].path, "/usr/lib/x86_64-linux-gnu/libc.so.6");
        assert!(m[0].is_file() && !m[0].exec());
        assert_eq!(m[1].path, "");
        assert_eq!(m[2].path, "[heap]");
        assert!(m[3].shared());
        assert_eq!(m[3].offset, 0x1000);
        assert_eq!(m[3].path, "/dev/shm/a b (deleted)");
    }
}
