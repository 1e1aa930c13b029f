//! Deciding whether a process is stuck, why, and which config line would
//! have prevented it. The rules are in docs/why.md.

use super::lock::{Kind, Owner};
use super::procfs::{self, Process};
use super::{Blocked, LockName, Subject, View};

/// What `why` concluded.
#[derive(Debug, Default)]
pub struct Found {
    /// Per view (same index as `Subject::views`): who holds the lock it
    /// waits on, in words.
    pub owners: Vec<Option<String>>,
    /// Causes, one paragraph each.
    pub causes: Vec<String>,
    /// Config snippets that prevent them (TOML, deduplicated).
    pub fixes: Vec<String>,
}

/// The lock a view waits on, if it waits on one.
fn waited(v: &View) -> Option<(&super::Lock, &LockName)> {
    match &v.blocked {
        Blocked::Futex { lock, name, .. } if lock.kind.is_lock() => Some((lock, name)),
        _ => None,
    }
}

fn owner_tid(v: &View) -> Option<i32> {
    match waited(v)?.0.owner {
        Owner::Thread(t) => Some(t),
        _ => None,
    }
}

pub fn judge(proc: &Process, s: &Subject) -> Found {
    let mut f = Found {
        owners: s.views.iter().map(|v| owner_text(proc, s, v)).collect(),
        ..Found::default()
    };
    let all_wait = s.views.iter().all(|v| waited(v).is_some());
    let mut in_cycle: Vec<i32> = Vec::new();
    for v in &s.views {
        let Some((lock, name)) = waited(v) else {
            continue;
        };
        let me = v.task.tid;
        match lock.owner {
            Owner::Thread(t) if t == me => f.causes.push(format!(
                "thread {me} waits on {}, which it holds itself: a lock taken twice by one thread never comes free",
                name.text
            )),
            Owner::Thread(t) if proc.has_thread(t) => {
                if in_cycle.contains(&me) {
                    continue;
                }
                if let Some(cycle) = cycle_from(s, me) {
                    f.causes.push(deadlock_text(s, &cycle));
                    in_cycle.extend(cycle);
                }
            }
            Owner::Thread(t) => {
                let elsewhere = procfs::tgid_of(t).filter(|&p| p != s.pid);
                if name.shared && elsewhere.is_some() {
                    // A process-shared lock held by a live thread of another process.
                    continue;
                }
                f.causes.push(gone_text(s, me, name, t, elsewhere));
                add_fix(&mut f, lock.kind, name);
            }
            Owner::NotRecorded | Owner::Readers(_) if all_wait && !name.shared => {
                f.causes.push(nobody_text(s, me, name));
                add_fix(&mut f, lock.kind, name);
            }
            _ => {}
        }
    }
    f
}

/// Follows "waits on a lock held by" from `start`; the threads of a cycle
/// that comes back to `start`.
fn cycle_from(s: &Subject, start: i32) -> Option<Vec<i32>> {
    let mut chain = vec![start];
    let mut cur = start;
    loop {
        let v = s.views.iter().find(|v| v.task.tid == cur)?;
        let next = owner_tid(v)?;
        if next == start {
            return Some(chain);
        }
        if chain.contains(&next) {
            return None;
        }
        chain.push(next);
        cur = next;
    }
}

fn lock_of(s: &Subject, tid: i32) -> String {
    s.views
        .iter()
        .find(|v| v.task.tid == tid)
        .and_then(waited)
        .map_or_else(|| "?".into(), |(_, n)| n.text.clone())
}

fn deadlock_text(s: &Subject, cycle: &[i32]) -> String {
    let mut t = String::from("deadlock between threads of this process: ");
    for (i, &tid) in cycle.iter().enumerate() {
        let next = cycle[(i + 1) % cycle.len()];
        if i > 0 {
            t.push_str("; ");
        }
        t.push_str(&format!(
            "thread {tid} waits on {}, held by thread {next}",
            lock_of(s, tid)
        ));
    }
    t.push_str(". The threads take these locks in opposite orders: no config line changes that");
    t
}

fn gone_text(s: &Subject, me: i32, name: &LockName, owner: i32, elsewhere: Option<i32>) -> String {
    let mut t = format!(
        "thread {me} waits on {}, held by thread {owner}, which does not exist in this process",
        name.text
    );
    match s.forked {
        Some(true) => {
            t.push_str(&format!(
                ": the lock was held at the fork by a thread that does not exist in the child (process {} was forked from {} while its thread {owner} held the lock",
                s.pid, s.ppid
            ));
            if elsewhere == Some(s.ppid) {
                t.push_str(&format!(", and thread {owner} still runs there"));
            }
            t.push_str("), so nothing will ever release it");
        }
        _ => t.push_str(
            ": if this process was forked, the lock was held at the fork by a thread that does not exist in the child; otherwise its owner exited without releasing it",
        ),
    }
    t
}

fn nobody_text(s: &Subject, me: i32, name: &LockName) -> String {
    let threads = if s.views.len() == 1 {
        "the process has no other thread".to_string()
    } else {
        "every thread of the process waits on a lock".to_string()
    };
    let mut t = format!(
        "thread {me} waits on {}, which is held, records no owner, and {threads}: nobody can release it",
        name.text
    );
    match s.forked {
        Some(true) => t.push_str(&format!(
            ". Process {} was forked from {}: the lock was held at the fork by a thread that does not exist in the child",
            s.pid, s.ppid
        )),
        _ => t.push_str(
            ". If this process was forked, the lock was held at the fork by a thread that does not exist in the child",
        ),
    }
    t
}

/// The config that prevents a lock held at the fork from reaching the child.
fn add_fix(f: &mut Found, kind: Kind, name: &LockName) {
    let fix = if name.in_libc {
        "[settings]\nlibc_locks = \"acquire\"".to_string()
    } else if let (Some((sym, off)), Some(ty)) = (&name.symbol, kind.config_type()) {
        let offset = if *off > 0 {
            format!("offset = {off}\n")
        } else {
            String::new()
        };
        format!("[[lock]]\nsymbol = \"{sym}\"\ntype = \"{ty}\"\n{offset}strategy = \"acquire\"")
    } else if matches!(kind, Kind::Mutex | Kind::RwLock | Kind::Semaphore) {
        "[settings]\nheld_locks = \"acquire\"".to_string()
    } else {
        "# no config line reaches a plain futex word outside a named global".to_string()
    };
    if !f.fixes.contains(&fix) {
        f.fixes.push(fix);
    }
}

/// Who holds the lock a view waits on, in words.
fn owner_text(proc: &Process, s: &Subject, v: &View) -> Option<String> {
    let (lock, _) = waited(v)?;
    Some(match lock.owner {
        Owner::Thread(t) if t == v.task.tid => format!("thread {t} (itself)"),
        Owner::Thread(t) if proc.has_thread(t) => {
            let what = s
                .views
                .iter()
                .find(|o| o.task.tid == t)
                .map_or_else(|| "alive".to_string(), super::report::doing);
            format!("thread {t}, alive in this process ({what})")
        }
        Owner::Thread(t) => match procfs::tgid_of(t) {
            Some(p) if p == s.ppid => {
                format!("thread {t}: not in this process (it is a thread of the parent, {p})")
            }
            Some(p) => format!("thread {t}: not in this process (it is a thread of process {p})"),
            None => format!("thread {t}: not in this process, nor anywhere"),
        },
        Owner::Readers(n) => format!("{n} reader(s), not recorded which"),
        Owner::NotRecorded => "not recorded (this kind of lock does not record its holder)".into(),
        Owner::Free => "nobody: it was free when read (released meanwhile)".into(),
        Owner::Unknown => "unknown (its memory could not be decoded)".into(),
    })
}
