//! The process's other threads, as `/proc/self/task` shows them: for
//! `forkguard audit` only (parent side, before the fork; allocates).

/// What one thread is doing.
pub enum ThreadState {
    /// Blocked (in a system call or not): its program counter.
    Blocked(usize),
    /// Running or runnable: no program counter is shown.
    Running,
    /// Gone, or unreadable.
    Gone,
}

/// The thread ids of every thread but the calling one.
pub fn others() -> Vec<String> {
    let me = crate::os::sys::gettid().to_string();
    std::fs::read_dir("/proc/self/task")
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().into_string().ok())
                .filter(|t| *t != me)
                .collect()
        })
        .unwrap_or_default()
}

/// `/proc/self/task/TID/syscall`: "running", or numbers ending with the
/// stack pointer and the program counter.
pub fn state(tid: &str) -> ThreadState {
    let Ok(text) = std::fs::read_to_string(format!("/proc/self/task/{tid}/syscall")) else {
        return ThreadState::Gone;
    };
    let text = text.trim();
    if text == "running" {
        return ThreadState::Running;
    }
    text.rsplit(' ')
        .next()
        .and_then(|pc| usize::from_str_radix(pc.trim_start_matches("0x"), 16).ok())
        .map_or(ThreadState::Gone, ThreadState::Blocked)
}
