//! The trackers' common paths in assembly: the blocking lock calls, the
//! unlocks and the binary-semaphore wait and post, when the calling thread
//! has its record and it has room. Everything else — no record yet, a fork
//! in progress on this thread, a full record, a failed call, an entry that
//! is not the last one — falls through to the Rust trackers in `track`,
//! which remain the definition of what tracking does; these paths do the
//! same thing in fewer instructions (docs/held-locks.md, "Cost").
//!
//! What they rely on, checked at compile time below: `Record` is `n`, then
//! the entries, 16 bytes each (`addr`, then `info` = return address | kind
//! << 56), from offset 16; the record word is at `thread_words::OFFSET`
//! from the thread pointer; glibc's functions are in `real::REAL` by slot.
//! As in `record::push`, the entry's stores come before `n`'s, and both
//! before the lock's own atomic instruction (x86-64 keeps stores in
//! program order).
//!
//! A lock call records and then jumps to glibc (no frame); an unlock or a
//! wait keeps the lock's address on the stack across glibc's call and then
//! forgets or finishes the entry. Only caller-saved registers are used.

use super::real::{slot, REAL};
use super::record::{self, Entry, Record, MUTEX, RW_READ, RW_WRITE, SEM, SLOTS, SPIN};
use super::track;
use crate::os::thread_words::OFFSET;
use libc::c_int;

const N: usize = core::mem::offset_of!(Record, n);
const TID: usize = core::mem::offset_of!(Record, tid);
const E: usize = core::mem::offset_of!(Record, e);
const E_ADDR: usize = E + core::mem::offset_of!(Entry, addr);
const E_INFO: usize = E + core::mem::offset_of!(Entry, info);
/// The last entry's `addr` is at `TOP + n * 16`; with `n = 0` that is `n`
/// itself (0, never a lock's address), so the unlock needs no bounds check.
const TOP: usize = E_ADDR - 16;

const _: () = {
    assert!(core::mem::size_of::<Entry>() == 16);
    assert!(N == 0 && E == 16 && TOP == N);
    assert!(core::mem::offset_of!(Entry, info) == 8);
};

/// `info`'s kind bits.
const fn kind(k: u8) -> u64 {
    (k as u64) << 56
}

/// The common start of a lock or wait call: the thread's record (none:
/// jump to `2f`, the Rust tracker), room in it (full: `2f`), then the entry
/// — the lock's address (rdi), the caller's return address and `{kind}` —
/// and the new count, in that order. One template string, with the
/// operands `off`, `n`, `slots`, `e_addr`, `e_info` and `kind`.
macro_rules! record_entry {
    () => {
        concat!(
            "mov rax, qword ptr [rip + {off}]\n",
            "mov rax, qword ptr fs:[rax]\n",
            "test rax, rax\n",
            "jz 2f\n",
            "mov rdx, qword ptr [rax + {n}]\n",
            "cmp rdx, {slots}\n",
            "jae 2f\n",
            "mov rcx, rdx\n",
            "shl rcx, 4\n",
            "mov qword ptr [rax + rcx + {e_addr}], rdi\n",
            "mov r8, qword ptr [rsp]\n",
            "movabs r9, {kind}\n",
            "or r8, r9\n",
            "mov qword ptr [rax + rcx + {e_info}], r8\n",
            "inc rdx\n",
            "mov qword ptr [rax + {n}], rdx",
        )
    };
}

// ---- lock calls: record, then glibc -----------------------------------------

macro_rules! lock_fast {
    ($($name:ident $kind:ident $slot:ident $slow:path;)*) => {
        $(
            /// The tracker for this lock call: see the module's doc.
            #[unsafe(naked)]
            pub extern "C" fn $name() {
                core::arch::naked_asm!(
                    record_entry!(),
                    "jmp qword ptr [rip + {real} + {at}]",
                    "2:",
                    "mov rsi, qword ptr [rsp]",
                    "jmp {slow}",
                    off = sym OFFSET,
                    n = const N,
                    slots = const SLOTS,
                    e_addr = const E_ADDR,
                    e_info = const E_INFO,
                    kind = const kind($kind),
                    real = sym REAL,
                    at = const slot::$slot * 8,
                    slow = sym $slow,
                )
            }
        )*
    };
}

lock_fast! {
    mutex_lock MUTEX MUTEX_LOCK track::mutex_lock;
    rw_rdlock RW_READ RW_RDLOCK track::rw_rdlock;
    rw_wrlock RW_WRITE RW_WRLOCK track::rw_wrlock;
    spin_lock SPIN SPIN_LOCK track::spin_lock;
}

// ---- unlock calls: glibc, then forget ---------------------------------------

/// After a successful unlock whose entry is not the last one: forget it
/// deeper in the record. Returns the unlock's 0.
extern "C" fn forget(addr: usize) -> c_int {
    if let Some(r) = record::mine() {
        record::pop(r, addr);
    }
    0
}

/// The body the unlocks and the semaphore post share: no record, jump to
/// `4f` (the Rust tracker); else call glibc's function (`{at}`), keeping
/// the lock's address across it, and on success drop the last entry if it
/// is this lock's (`5f`: deeper, `forget`). One template string, with the
/// operands `off`, `n`, `top`, `real`, `at`, `slow` and `forget`.
macro_rules! unlock_entry {
    () => {
        concat!(
            "mov rax, qword ptr [rip + {off}]\n",
            "mov rax, qword ptr fs:[rax]\n",
            "test rax, rax\n",
            "jz 4f\n",
            "push rdi\n",
            "call qword ptr [rip + {real} + {at}]\n",
            "pop rdi\n",
            "test eax, eax\n",
            "jnz 3f\n",
            "mov rdx, qword ptr [rip + {off}]\n",
            "mov rdx, qword ptr fs:[rdx]\n",
            "test rdx, rdx\n",
            "jz 3f\n",
            "mov rcx, qword ptr [rdx + {n}]\n",
            "shl rcx, 4\n",
            "cmp qword ptr [rdx + rcx + {top}], rdi\n",
            "jne 5f\n",
            "dec qword ptr [rdx + {n}]\n",
            "3:\n",
            "ret\n",
            "4:\n",
            "jmp {slow}\n",
            "5:\n",
            "jmp {forget}",
        )
    };
}

macro_rules! unlock_fast {
    ($($name:ident $slot:ident $slow:path;)*) => {
        $(
            /// The tracker for this unlock call: see the module's doc.
            #[unsafe(naked)]
            pub extern "C" fn $name() {
                core::arch::naked_asm!(
                    unlock_entry!(),
                    off = sym OFFSET,
                    n = const N,
                    top = const TOP,
                    real = sym REAL,
                    at = const slot::$slot * 8,
                    slow = sym $slow,
                    forget = sym forget,
                )
            }
        )*
    };
}

unlock_fast! {
    mutex_unlock MUTEX_UNLOCK track::mutex_unlock;
    rw_unlock RW_UNLOCK track::rw_unlock;
    spin_unlock SPIN_UNLOCK track::spin_unlock;
}

// ---- binary semaphores -------------------------------------------------------

/// After a failed wait: forget the entry, return glibc's answer (errno is
/// left as glibc set it).
extern "C" fn wait_failed(addr: usize, rv: c_int) -> c_int {
    if let Some(r) = record::mine() {
        record::pop(r, addr);
    }
    rv
}

/// The tracker for `sem_wait`: a semaphore that is not binary goes straight
/// to glibc; a binary one is recorded, waited for, and on success marked
/// with this thread as its holder (`track::holder`).
#[unsafe(naked)]
pub extern "C" fn sem_wait() {
    core::arch::naked_asm!(
        "movabs rax, {mark}",
        "xor rax, rdi",
        "cmp qword ptr [rdi + {mark_off}], rax",
        "jne 6f",
        record_entry!(),
        "push rdi",
        "call qword ptr [rip + {real} + {at}]",
        "pop rdi",
        "test eax, eax",
        "jnz 7f",
        "mov rdx, qword ptr [rip + {off}]",
        "mov rdx, qword ptr fs:[rdx]",
        "test rdx, rdx",
        "jz 3f",
        "mov ecx, dword ptr [rdx + {tid}]",
        "mov dword ptr [rdi + {holder}], ecx",
        "3:",
        "ret",
        "2:",
        "mov rsi, qword ptr [rsp]",
        "jmp {slow}",
        "6:",
        "jmp qword ptr [rip + {real} + {at}]",
        "7:",
        "mov esi, eax",
        "jmp {failed}",
        mark = const track::MARK,
        mark_off = const track::MARK_OFF,
        holder = const track::HOLDER_OFF,
        off = sym OFFSET,
        n = const N,
        tid = const TID,
        slots = const SLOTS,
        e_addr = const E_ADDR,
        e_info = const E_INFO,
        kind = const kind(SEM),
        real = sym REAL,
        at = const slot::SEM_WAIT * 8,
        slow = sym track::sem_wait,
        failed = sym wait_failed,
    )
}

/// The tracker for `sem_post`: a binary semaphore loses its holder before
/// glibc's post (after it, another thread may take it), then its entry; any
/// other goes straight to glibc.
#[unsafe(naked)]
pub extern "C" fn sem_post() {
    core::arch::naked_asm!(
        "movabs rax, {mark}",
        "xor rax, rdi",
        "cmp qword ptr [rdi + {mark_off}], rax",
        "jne 6f",
        "mov dword ptr [rdi + {holder}], 0",
        unlock_entry!(),
        "6:",
        "jmp qword ptr [rip + {real} + {at}]",
        mark = const track::MARK,
        mark_off = const track::MARK_OFF,
        holder = const track::HOLDER_OFF,
        off = sym OFFSET,
        n = const N,
        top = const TOP,
        real = sym REAL,
        at = const slot::SEM_POST * 8,
        slow = sym track::sem_post,
        forget = sym forget,
    )
}
