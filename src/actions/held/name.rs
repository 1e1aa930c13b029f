//! How the log and `forkguard audit` name a held lock (SPEC 8.4):
//! `OBJECT:NAME` or `OBJECT:NAME+OFFSET` when it lies in a global, else its
//! kind and type and the function that took it, from the return address
//! the tracker recorded: `heap mutex taken in cache_refresh
//! (libcache.so.1+0x1a2f)`. Parent side only (it asks the loader).
#![deny(
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use super::record::{self, Record, MUTEX, RW_READ, RW_WRITE, SEM, SPIN};
use crate::os::buf::Buf;
use crate::os::symbols::where_is;
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, Ordering};

/// The lock's type word for `[[lock]] type`.
pub fn type_word(kind: u8) -> &'static str {
    match kind {
        MUTEX => "mutex",
        RW_READ | RW_WRITE => "rwlock",
        SPIN => "spinlock",
        SEM => "semaphore",
        _ => "lock",
    }
}

/// The bytes of a C string (empty for null).
fn c_bytes<'a>(p: *const libc::c_char) -> &'a [u8] {
    if p.is_null() {
        return &[];
    }
    // SAFETY: a NUL-terminated string from the loader, alive as long as
    // its object (objects loaded with the program are never unloaded).
    unsafe { core::ffi::CStr::from_ptr(p) }.to_bytes()
}

fn basename(path: &[u8]) -> &[u8] {
    path.rsplit(|&b| b == b'/').next().unwrap_or(path)
}

/// The object's name for a config: its file's basename; the main program
/// (whose name the loader reports as empty) by `/proc/self/exe`'s.
fn object_name<const N: usize>(file: *const libc::c_char, out: &mut Buf<N>) {
    let f = c_bytes(file);
    if f.is_empty() {
        let mut link = [0u8; 256];
        let n = crate::os::sys::readlink(b"/proc/self/exe\0", &mut link).unwrap_or(0);
        out.push(basename(link.get(..n).unwrap_or(&[])));
    } else {
        out.push(basename(f));
    }
}

/// The basename of the object `addr` lies in; false outside every object.
pub fn object_of<const N: usize>(addr: usize, out: &mut Buf<N>) -> bool {
    match where_is(addr) {
        Some(w) => {
            object_name(w.file, out);
            true
        }
        None => false,
    }
}

/// Does `addr` lie in the main program (not a shared object)?
pub fn is_main_program(addr: usize) -> bool {
    // SAFETY: getauxval has no preconditions; AT_ENTRY is in the program.
    let entry = unsafe { crate::os::clib::getauxval(libc::AT_ENTRY) } as usize;
    match (where_is(addr), where_is(entry)) {
        (Some(a), Some(b)) => a.base == b.base,
        _ => false,
    }
}

/// A global's name, `OBJECT:NAME` or `OBJECT:NAME+OFFSET`, when `addr`
/// lies inside a dynamic symbol. Returns false otherwise.
pub fn global<const N: usize>(addr: usize, out: &mut Buf<N>) -> bool {
    let Some(w) = where_is(addr) else {
        return false;
    };
    let name = c_bytes(w.sym);
    if name.is_empty() || addr < w.start || addr >= w.start.saturating_add(w.size.max(1)) {
        // Not exported: the file's own symbol table (audit only: it reads
        // the file).
        if let Some(h) = static_symbol(addr) {
            object_name(w.file, out);
            out.byte(b':');
            // A local symbol by its source file (SPEC 8.1): many statics
            // share a name (`lock`).
            if let Some(f) = &h.file {
                out.push(basename(f.as_bytes())).byte(b':');
            }
            out.str(&h.name);
            if addr != h.start {
                out.byte(b'+').u64((addr - h.start) as u64);
            }
            return true;
        }
        return false;
    }
    object_name(w.file, out);
    out.byte(b':').push(name);
    if addr != w.start {
        out.byte(b'+').u64((addr - w.start) as u64);
    }
    true
}

/// The full name of a lock: a global's, else `heap mutex taken in F
/// (OBJECT+0xOFF)`.
pub fn describe<const N: usize>(addr: usize, kind: u8, ret: usize, out: &mut Buf<N>) {
    if global(addr, out) {
        return;
    }
    let place = match where_is(addr) {
        Some(_) => "static",
        None => "heap",
    };
    out.str(place).byte(b' ').str(type_word(kind));
    if kind == MUTEX {
        out.str(mutex_type(addr));
    }
    match (ret, where_is(ret)) {
        (0, _) | (_, None) => {}
        (_, Some(w)) => {
            out.str(" taken in ");
            let f = c_bytes(w.sym);
            match static_symbol(ret) {
                Some(h) => {
                    out.str(&h.name);
                }
                // dladdr's symbol is the nearest exported one below: in a
                // stripped library often not the function (a static one
                // lies past its end). Only one that contains the address.
                None if !f.is_empty() && ret >= w.start && ret < w.start.saturating_add(w.size) => {
                    out.push(f);
                }
                None => {
                    out.str("?");
                }
            }
            out.str(" (");
            object_name(w.file, out);
            out.str("+0x");
            hex(out, ret.wrapping_sub(w.base) as u64);
            out.byte(b')');
        }
    }
}

/// The `.symtab` (or debug file) symbol containing `addr`, in audit only
/// (reads files; parent side, before the fork).
fn static_symbol(addr: usize) -> Option<crate::os::elf::AddrName> {
    if !super::auditing() {
        return None;
    }
    let objs = crate::os::elf::loaded();
    let obj = crate::os::elf::object_at(&objs, addr)?;
    crate::os::elf::symbol_containing(obj, addr)
}

fn mutex_type(addr: usize) -> &'static str {
    // SAFETY: addr is a mutex a tracked call named; its kind field is at 16.
    let kind = unsafe { core::ptr::read_volatile((addr + 16) as *const i32) };
    let robust = kind & 0x10 != 0;
    match (kind & 3, robust) {
        (1, false) => " (recursive)",
        (2, false) => " (errorcheck)",
        (_, true) => " (robust)",
        _ => "",
    }
}

fn hex<const N: usize>(out: &mut Buf<N>, v: u64) {
    let digits = b"0123456789abcdef";
    let mut started = false;
    for k in (0..16).rev() {
        let d = ((v >> (k * 4)) & 0xf) as usize;
        if d != 0 || started || k == 0 {
            started = true;
            out.byte(*digits.get(d).unwrap_or(&b'?'));
        }
    }
}

// ---- the names a fork's log line uses ----------------------------------------

/// Made in prepare (parent side) when the log is on, read by the parent's
/// and the child's report. One fork at a time uses it (`BUSY`); another
/// thread forking meanwhile reports addresses instead.
struct LogNames {
    text: Buf<768>,
    addrs: [usize; 8],
    ends: [usize; 8],
    n: usize,
}

struct Shared(UnsafeCell<LogNames>);
// SAFETY: only the thread that set BUSY touches it, until it clears BUSY.
unsafe impl Sync for Shared {}

static BUSY: AtomicBool = AtomicBool::new(false);
static NAMES: Shared = Shared(UnsafeCell::new(LogNames {
    text: Buf::new(),
    addrs: [0; 8],
    ends: [0; 8],
    n: 0,
}));

/// Name every lock another thread holds now (prepare, log on). True when
/// this fork got the shared table (release it in the parent).
pub fn for_log(me: i32, my_rec: usize) -> bool {
    if BUSY.swap(true, Ordering::Acquire) {
        return false;
    }
    // SAFETY: BUSY is ours.
    let t = unsafe { &mut *NAMES.0.get() };
    t.text = Buf::new();
    t.n = 0;
    record::each(|tid, r| {
        if core::ptr::eq(r, my_rec as *const Record) {
            return;
        }
        for e in r.entries() {
            let addr = e.addr.load(Ordering::Relaxed);
            let kind = e.kind();
            if addr == 0
                || t.addrs.get(..t.n).is_some_and(|a| a.contains(&addr))
                || !super::held_by_other(addr, kind, tid.abs(), me, my_rec)
            {
                continue;
            }
            let (Some(a), Some(end)) = (t.addrs.get_mut(t.n), t.ends.get_mut(t.n)) else {
                return;
            };
            describe(addr, kind, e.ret(), &mut t.text);
            *a = addr;
            *end = t.text.as_bytes().len();
            t.n += 1;
        }
    });
    true
}

pub fn release_log_names() {
    BUSY.store(false, Ordering::Release);
}

/// Append the name of the lock at `addr` as prepare made it, else its
/// address. Async-signal-safe (reads the table; the child has its own copy).
pub fn push_name<const N: usize>(have: bool, addr: usize, out: &mut Buf<N>) {
    if have {
        // SAFETY: this fork owns the table (BUSY) and only reads it here.
        let t = unsafe { &*NAMES.0.get() };
        let n = t.n.min(8);
        if let Some(k) = t
            .addrs
            .get(..n)
            .and_then(|a| a.iter().position(|&x| x == addr))
        {
            let start = if k == 0 {
                0
            } else {
                t.ends.get(k - 1).copied().unwrap_or(0)
            };
            let end = t.ends.get(k).copied().unwrap_or(0);
            out.push(t.text.as_bytes().get(start..end).unwrap_or(&[]));
            return;
        }
    }
    out.str("lock at 0x");
    hex(out, addr as u64);
}

/// The names prepare made, joined with ", " (the parent's report).
pub fn push_all<const N: usize>(out: &mut Buf<N>, sep: &str) -> usize {
    // SAFETY: as in push_name.
    let t = unsafe { &*NAMES.0.get() };
    let n = t.n.min(8);
    let mut start = 0;
    for k in 0..n {
        let end = t.ends.get(k).copied().unwrap_or(0);
        if k > 0 {
            out.str(sep);
        }
        out.push(t.text.as_bytes().get(start..end).unwrap_or(&[]));
        start = end;
    }
    n
}
