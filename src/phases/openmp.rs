//! `forkguard audit`: a GNU OpenMP (libgomp) pool alive at the fork
//! (SPEC 8.8). Its worker threads exist only in the parent, and a child's
//! first parallel region waits for them forever.
//!
//! The signal: libgomp is loaded, and other threads of the process are
//! blocked with their program counter inside libgomp's code (an idle pool
//! worker waits on a futex with an inline `syscall` instruction in
//! libgomp; `/proc/self/task/TID/syscall` gives the program counter of a
//! blocked thread). A worker still spinning after its region (libgomp
//! spins before it sleeps) reads "running": such threads are asked again
//! for up to 50 ms, and those that never block (`OMP_WAIT_POLICY=active`)
//! are reported as possible workers. Audit only (parent side, before the
//! fork): it reads /proc and may allocate.

use crate::os::buf::Buf;
use crate::os::elf;
use crate::os::threads::{self, ThreadState};

/// What was seen: threads blocked in libgomp, threads that never blocked.
pub struct Pool {
    pub workers: u32,
    pub busy: u32,
    /// The libgomp object's name, as the loader knows it.
    pub lib: String,
}

/// A live libgomp pool, if any.
pub fn pool() -> Option<Pool> {
    let objs = elf::loaded();
    let gomp: Vec<&elf::Loaded> = objs
        .iter()
        .filter(|o| {
            o.name
                .rsplit('/')
                .next()
                .is_some_and(|b| b.starts_with("libgomp"))
        })
        .collect();
    let lib = gomp.first()?.name.clone();
    let mut pending = threads::others();
    let mut workers = 0u32;
    for round in 0..50 {
        pending.retain(|tid| match threads::state(tid) {
            ThreadState::Blocked(pc) => {
                if gomp.iter().any(|o| o.contains(pc, 1)) {
                    workers += 1;
                }
                false
            }
            ThreadState::Running => true,
            ThreadState::Gone => false,
        });
        if pending.is_empty() || round == 49 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    let busy = pending.len() as u32;
    (workers > 0 || busy > 0).then_some(Pool { workers, busy, lib })
}

/// The audit line's note: text after the other hazards, or a JSON field.
pub fn note<const N: usize>(line: &mut Buf<N>, json: bool) -> bool {
    let Some(p) = pool() else { return false };
    if json {
        line.str(",\"openmp_pool\":{\"workers\":")
            .u64(u64::from(p.workers))
            .str(",\"busy\":")
            .u64(u64::from(p.busy))
            .str(",\"lib\":\"")
            .json_str(p.lib.as_bytes())
            .str("\"}");
    } else {
        line.str("; GNU OpenMP pool alive: ")
            .u64(u64::from(p.workers))
            .str(" worker threads waiting in ")
            .str(p.lib.rsplit('/').next().unwrap_or(&p.lib));
        if p.busy > 0 {
            line.str(" (")
                .u64(u64::from(p.busy))
                .str(" more threads busy, possibly workers spinning)");
        }
        line.str(": a child's first parallel region will hang; guard with [[call]] omp_pause_resource_all args = [2] (config/openmp.toml)");
    }
    true
}
