//! `forkguard why PID` (SPEC 8.6): what each thread of a process is blocked
//! in, which lock a waiting thread waits on and who holds it, and — for a
//! forked child whose lock was held at the fork by a thread that does not
//! exist in it — the config line that prevents it.
//!
//! Exit status: 0 a cause was found (a lock no thread of the process can
//! release, a deadlock); 1 nothing is stuck (threads running, in ordinary
//! waits, or waiting on a lock a live thread holds); 2 the process could
//! not be looked at (no such process, permission denied, it exited while
//! being read). How it decides: docs/why.md.

mod lock;
mod names;
mod objects;
mod procfs;
mod report;
mod stack;
mod syscalls;
mod verdict;

use lock::{Kind, Lock, Wait};
use objects::Objects;
use procfs::{Mapping, ProcError, Process, Syscall, Task};
use std::process::ExitCode;

const SYS_FUTEX: u64 = 202;

/// What a thread is blocked in.
#[derive(Debug)]
pub enum Blocked {
    Running,
    /// Stopped (`T`), traced (`t`), zombie (`Z`), dead (`X`).
    State(char),
    /// Asleep outside any system call (a page fault, a signal stop...).
    NotInSyscall,
    /// A system call that is not a lock wait.
    Syscall(u64),
    /// A futex wait, decoded.
    Futex {
        wait: Wait,
        lock: Lock,
        name: LockName,
    },
}

/// How a lock is named, and what a config can say about it.
#[derive(Debug, Clone)]
pub struct LockName {
    /// `libc.so.6:setenv.c:envlock`, `prog:g_lock+8`, `a heap pthread mutex at 0x...`.
    pub text: String,
    /// The `symbol` a `[[lock]]` entry takes, when the lock is a global.
    pub symbol: Option<(String, u64)>,
    /// In glibc's own objects (libc, the loader).
    pub in_libc: bool,
    /// In memory shared with other processes.
    pub shared: bool,
}

/// One thread, looked at.
#[derive(Debug)]
pub struct View {
    pub task: Task,
    pub blocked: Blocked,
    /// The functions on its stack, innermost first, named.
    pub frames: Vec<String>,
}

/// The process as a whole.
pub struct Subject {
    pub pid: i32,
    pub comm: String,
    pub ppid: i32,
    /// The parent runs the same program: a forked child that did not exec.
    pub forked: Option<bool>,
    pub views: Vec<View>,
    /// Threads that exited while being read, and other degradations.
    pub notes: Vec<String>,
}

pub fn run(pid: i32) -> ExitCode {
    let proc = match Process::open(pid) {
        Ok(p) => p,
        Err(e) => return cannot_look(pid, &e),
    };
    let subject = match look(&proc) {
        Ok(s) => s,
        Err(ProcError::Gone) => {
            eprintln!("forkguard: why: process {pid} exited while being read");
            return ExitCode::from(2);
        }
        Err(e) => return cannot_look(pid, &e),
    };
    let found = verdict::judge(&proc, &subject);
    report::print(&subject, &found);
    if !proc.alive() {
        eprintln!("forkguard: why: process {pid} exited while being read: the answer above may be partial");
        return ExitCode::from(2);
    }
    if found.causes.is_empty() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

fn cannot_look(pid: i32, e: &ProcError) -> ExitCode {
    match e {
        ProcError::Gone => eprintln!("forkguard: why: no process {pid}"),
        // SAFETY: geteuid cannot fail.
        ProcError::Denied if unsafe { libc::geteuid() } == 0 => {
            eprintln!("forkguard: why: process {pid}: permission denied (even to root here)")
        }
        ProcError::Denied => eprintln!(
            "forkguard: why: process {pid}: permission denied (run as its user or as root)"
        ),
        ProcError::Other(m) => eprintln!("forkguard: why: process {pid}: {m}"),
    }
    ExitCode::from(2)
}

/// Reads every thread and the locks they wait on.
fn look(proc: &Process) -> procfs::Result<Subject> {
    let maps = proc.maps()?;
    let objs = Objects::new(proc, &maps);
    let mut names = names::Names::default();
    let mut notes = Vec::new();
    if let Some(e) = &proc.mem_error {
        notes.push(format!(
            "its memory cannot be read ({}): locks are not decoded",
            match e {
                ProcError::Denied => "permission denied".to_string(),
                ProcError::Gone => "it has none: a kernel thread".to_string(),
                ProcError::Other(m) => m.clone(),
            }
        ));
    }
    let mut views = Vec::new();
    for tid in proc.tids()? {
        match proc.task(tid) {
            Ok(task) => views.push(view(proc, &maps, &objs, &mut names, task)),
            Err(ProcError::Gone) if proc.alive() => {
                notes.push(format!("thread {tid} exited while being read"))
            }
            Err(e) => return Err(e),
        }
    }
    if views.is_empty() {
        return Err(ProcError::Gone);
    }
    notes.append(&mut names.notes);
    let ppid = proc.ppid();
    let forked = match (procfs::exe_id(proc.pid), procfs::exe_id(ppid)) {
        _ if ppid <= 1 => None,
        (Some(a), Some(b)) => Some(a == b),
        _ => None,
    };
    Ok(Subject {
        pid: proc.pid,
        comm: proc.comm(),
        ppid,
        forked,
        views,
        notes,
    })
}

fn view(
    proc: &Process,
    maps: &[Mapping],
    objs: &Objects,
    names: &mut names::Names,
    task: Task,
) -> View {
    let (blocked, frames) = match (&task.state, &task.syscall) {
        ('Z' | 'X' | 'T' | 't', _) => (Blocked::State(task.state), Vec::new()),
        (_, Syscall::Running) => (Blocked::Running, Vec::new()),
        (_, Syscall::Outside { sp, pc }) => {
            (Blocked::NotInSyscall, stack::frames(proc, maps, *pc, *sp))
        }
        (_, Syscall::In { nr, args, sp, pc }) => {
            let frames = stack::frames(proc, maps, *pc, *sp);
            let wait = Wait {
                addr: args[0],
                op: args[1] as u32,
                val: args[2] as u32,
            };
            if *nr == SYS_FUTEX && wait.is_wait() {
                let named: Vec<_> = frames.iter().map(|&a| name_code(objs, names, a)).collect();
                let b = futex(proc, maps, objs, names, wait, &named);
                return View {
                    task,
                    blocked: b,
                    frames: named.into_iter().map(|f| f.text).collect(),
                };
            }
            (Blocked::Syscall(*nr), frames)
        }
    };
    let frames = frames
        .into_iter()
        .map(|a| name_code(objs, names, a).text)
        .collect();
    View {
        task,
        blocked,
        frames,
    }
}

/// A code address, named.
struct Code {
    text: String,
    func: Option<String>,
}

fn name_code(objs: &Objects, names: &mut names::Names, addr: u64) -> Code {
    let Some((obj, v)) = objs.at(addr) else {
        return Code {
            text: format!("{addr:#x}"),
            func: None,
        };
    };
    match names.at(obj, v) {
        Some(s) => Code {
            text: format!("{} ({})", s.name, obj.name),
            func: Some(s.name),
        },
        None => Code {
            text: format!("{}+{v:#x}", obj.name),
            func: None,
        },
    }
}

/// Decodes a futex wait: the kind of lock (from the functions waiting and
/// the global it lies in), its memory, and its name.
fn futex(
    proc: &Process,
    maps: &[Mapping],
    objs: &Objects,
    names: &mut names::Names,
    wait: Wait,
    frames: &[Code],
) -> Blocked {
    let hint = frames
        .iter()
        .filter_map(|f| f.func.as_deref())
        .filter_map(lock::hint_of)
        .find(|&h| lock::consistent(h, &wait));
    let global = objs
        .at(wait.addr)
        .and_then(|(o, v)| names.at(o, v).map(|s| (o, v, s)));
    let in_obj = global.as_ref().map(|(_, v, s)| lock::InObject {
        size: s.size,
        offset: v - s.value,
    });
    let (kind, base) = lock::classify(&wait, hint, in_obj);
    let mem = proc.read(base, 56).unwrap_or_default();
    let lock = lock::decode(kind, base, &wait, &mem);
    let name = name_lock(maps, objs, global, &lock, wait.addr);
    Blocked::Futex { wait, lock, name }
}

fn name_lock(
    maps: &[Mapping],
    objs: &Objects,
    global: Option<(&objects::Object, u64, names::Sym)>,
    lock: &Lock,
    futex_addr: u64,
) -> LockName {
    let base = lock.base;
    let map = maps.iter().find(|m| m.contains(base));
    let shared = map.is_some_and(Mapping::shared);
    let what = kind_name(lock.kind, false);
    if let Some((obj, v, sym)) = global {
        let off = (v - sym.value).saturating_sub(futex_addr - base);
        // A static is shown with its source file (always a valid name);
        // the config takes the shortest name that is not ambiguous.
        let full = match &sym.file {
            Some(f) => format!(
                "{}:{}:{}",
                obj.name,
                f.rsplit('/').next().unwrap_or(f),
                sym.name
            ),
            None => format!("{}:{}", obj.name, sym.name),
        };
        let symbol = match (&sym.file, numbered(&sym.name)) {
            // GCC's NAME.N for a function-local static: N changes between
            // builds; a config's FILE:NAME finds it (SPEC 8.1).
            (Some(f), Some(base)) => {
                format!("{}:{}:{base}", obj.name, f.rsplit('/').next().unwrap_or(f))
            }
            _ if sym.ambiguous => full.clone(),
            _ => format!("{}:{}", obj.name, sym.name),
        };
        let text = if off > 0 {
            format!("{full}+{off}")
        } else {
            full
        };
        return LockName {
            text,
            symbol: Some((symbol, off)),
            in_libc: names::is_libc(&obj.name),
            shared,
        };
    }
    if let Some((obj, v)) = objs.at(base) {
        let what = kind_name(lock.kind, names::is_libc(&obj.name));
        return LockName {
            text: format!("a {what} in {}'s data at {}+{v:#x}", obj.name, obj.name),
            symbol: None,
            in_libc: names::is_libc(&obj.name),
            shared,
        };
    }
    let place = match map.map(|m| m.path.as_str()) {
        Some("[heap]") => "a heap".to_string(),
        Some("[stack]") => "a stack".to_string(),
        Some("") if shared => "a shared-memory".to_string(),
        Some("") | None => "an anonymous-memory".to_string(),
        Some(p) => format!("a {p}"),
    };
    LockName {
        text: format!("{place} {what} at {base:#x}"),
        symbol: None,
        in_libc: false,
        shared,
    }
}

/// `NAME` of a `NAME.N` symbol (N digits).
fn numbered(name: &str) -> Option<&str> {
    let (base, n) = name.rsplit_once('.')?;
    (!base.is_empty() && !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())).then_some(base)
}

/// "pthread mutex", "glibc internal lock (futex word)"...
pub fn kind_name(kind: Kind, in_libc: bool) -> &'static str {
    match kind {
        Kind::Mutex => "pthread mutex",
        Kind::RwLock => "pthread rwlock",
        Kind::Semaphore => "semaphore",
        Kind::FutexLock | Kind::LockWord if in_libc => "glibc internal lock (futex word)",
        Kind::FutexLock | Kind::LockWord => "futex lock word",
        Kind::Condition => "condition variable",
        Kind::Join => "thread being joined",
        Kind::Once => "pthread_once control",
        Kind::Barrier => "barrier",
        Kind::Unknown => "futex",
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn numbered_statics() {
        assert_eq!(super::numbered("lock.0"), Some("lock"));
        assert_eq!(super::numbered("lock.12"), Some("lock"));
        assert_eq!(super::numbered("lock"), None);
        assert_eq!(super::numbered("a.b"), None);
        assert_eq!(super::numbered(".1"), None);
        assert_eq!(super::numbered("x."), None);
    }
}
