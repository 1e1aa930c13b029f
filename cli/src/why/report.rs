//! What `why` prints: the process, each thread, then the causes and the
//! config that prevents them (or that nothing is stuck).

use super::verdict::Found;
use super::{kind_name, syscalls, Blocked, Subject, View};

/// How many frames to print for a thread.
const SHOWN_FRAMES: usize = 6;

/// One phrase for what a thread is doing.
pub fn doing(v: &View) -> String {
    match &v.blocked {
        Blocked::Running => "running".into(),
        Blocked::State('T') => "stopped".into(),
        Blocked::State('t') => "stopped by a debugger".into(),
        Blocked::State(_) => "exited (zombie)".into(),
        Blocked::NotInSyscall => "blocked outside a system call".into(),
        Blocked::Syscall(nr) => format!("in {}, an ordinary wait", syscalls::name(*nr)),
        Blocked::Futex { lock, name, .. } if lock.kind.is_lock() => {
            format!("waits on {}", name.text)
        }
        Blocked::Futex { lock, wait, .. } => format!(
            "waits on a {} at {:#x}, an ordinary wait",
            kind_name(lock.kind, false),
            wait.addr
        ),
    }
}

pub fn print(s: &Subject, f: &Found) {
    let parent = match s.forked {
        Some(true) => format!("forked from {} (same program, no exec)", s.ppid),
        Some(false) => format!("parent {} (another program)", s.ppid),
        None => format!("parent {}", s.ppid),
    };
    let n = s.views.len();
    println!(
        "process {} ({}): {parent}, {n} thread{}",
        s.pid,
        s.comm,
        if n == 1 { "" } else { "s" }
    );
    for (i, v) in s.views.iter().enumerate() {
        print_thread(v, f.owners.get(i).and_then(Option::as_ref));
    }
    for note in &s.notes {
        println!("note: {note}");
    }
    println!();
    if f.causes.is_empty() {
        println!("nothing stuck: {}", summary(s));
        return;
    }
    for c in &f.causes {
        println!("cause: {c}.");
    }
    if !f.fixes.is_empty() {
        println!();
        println!("prevent it with this config:");
        for fix in &f.fixes {
            for line in fix.lines() {
                println!("    {line}");
            }
        }
    }
}

fn print_thread(v: &View, owner: Option<&String>) {
    let t = &v.task;
    println!("thread {} ({}): {}", t.tid, t.comm, doing(v));
    if let Blocked::Futex { wait, lock, name } = &v.blocked {
        if lock.kind.is_lock() {
            let what = kind_name(lock.kind, name.in_libc);
            let detail = if lock.detail.is_empty() {
                String::new()
            } else {
                format!(", {}", lock.detail)
            };
            println!(
                "    lock:  {what}{detail} (futex {:#x}, op {:#x}, expected value {:#x})",
                wait.addr, wait.op, wait.val
            );
            if let Some((sym, off)) = &name.symbol {
                let offset = if *off > 0 {
                    format!(", offset {off}")
                } else {
                    String::new()
                };
                println!("    config symbol: \"{sym}\"{offset}");
            }
        }
    }
    if let Some(o) = owner {
        println!("    owner: {o}");
    }
    if let Some(w) = &t.wchan {
        if !matches!(v.blocked, Blocked::Running) {
            println!("    kernel: {w}");
        }
    }
    if !v.frames.is_empty() {
        let shown: Vec<&str> = v
            .frames
            .iter()
            .take(SHOWN_FRAMES)
            .map(String::as_str)
            .collect();
        println!("    stack: {}", shown.join(" < "));
    }
}

/// "2 threads: 1 running, 1 in ordinary waits" and any lock waits whose
/// owner is alive.
fn summary(s: &Subject) -> String {
    let running = s
        .views
        .iter()
        .filter(|v| matches!(v.blocked, Blocked::Running))
        .count();
    let locks = s
        .views
        .iter()
        .filter(|v| matches!(&v.blocked, Blocked::Futex { lock, .. } if lock.kind.is_lock()))
        .count();
    let waits = s.views.len() - running - locks;
    let mut t = format!("{running} running, {waits} in ordinary waits or stopped");
    if locks > 0 {
        t.push_str(&format!(
            ", {locks} waiting on locks that a live thread holds or that were just released"
        ));
    }
    t
}
