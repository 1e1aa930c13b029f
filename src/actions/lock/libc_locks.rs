//! `[settings] libc_locks` (SPEC 8.3): glibc's internal locks that its
//! own fork leaves as they were, from the built-in profile
//! (`forkguard_core::libc_locks`, which lists them in a safe order).
//!
//! Where they are: the C library's are statics, named only in its
//! separate debug file (`libc6-dbg`), found through the symbol lookup of
//! SPEC 8.1. The loader's three are fields of its exported `_rtld_global`,
//! found by their shape: `_dl_nns` (1 to 16) followed by three recursive
//! `pthread_mutex_t` (`_dl_load_lock`, `_dl_load_write_lock`,
//! `_dl_load_tls_lock`), which must occur exactly once.
//!
//! When: in a `pthread_atfork` handler registered at load, before any other
//! handler of forkguard's, so (prepare handlers run last-registered first)
//! glibc runs it after every prepare handler the program and its libraries
//! registered since, and its parent/child handlers before theirs. So a
//! prepare handler that logs with `syslog` runs before the lock is taken,
//! and a child handler that calls `setenv` runs after it was reset: neither
//! hangs. And the forking thread, in a fork handler, is inside no libc
//! function that holds one of these locks.
//!
//! What: with `acquire`, prepare takes each lock in the profile's order
//! within `lock_timeout_ms` (one that cannot be taken in time is skipped,
//! and reset in the child all the same); parent releases them in reverse
//! order; the child resets each one (reverse order). With `reinit`, only
//! the child's reset. The child's work is stores only: no call, no system
//! call, no allocation.

use super::futex;
use super::mutex::{mutex_child, mutex_prepare};
use super::rwlock::{rwlock_child, rwlock_prepare};
use super::shared::{TAKEN, TIMED_OUT};
use crate::os::clib;
use crate::os::elf;
use crate::os::sys;
use forkguard_core::debugfile::{self, Found, Query, SymHit, SymKind};
use forkguard_core::libc_locks::{self as profile, Kind, Object};
use forkguard_core::plan::{LibcLocks, Settings};
use libc::c_int;
use std::sync::OnceLock;


/// One lock of the profile, found.
pub struct Found1 {
    pub lock: &'static profile::Lock,
    pub addr: usize,
    prepare: fn(usize, bool, u32) -> Result<u8, c_int>,
    child: fn(usize, u8),
}

/// The profile as resolved in this process.
pub struct Resolved {
    pub found: Vec<Found1>,
    /// Profile locks not found, with the reason.
    pub missing: Vec<(&'static profile::Lock, String)>,
    /// The C library and the debug file its names came from.
    pub libc: Option<String>,
    pub debug_file: Option<String>,
    /// Why the C library's locks could not be looked up at all (no debug
    /// file, or a refused one): the warning to print.
    pub warning: Option<String>,
}

struct Table {
    found: Vec<Found1>,
    acquire: bool,
    ms: u32,
}

static TABLE: OnceLock<Table> = OnceLock::new();

/// Find the profile's locks in this process. Load time (allocates, reads
/// files, takes the loader's lock).
pub fn resolve(use_cache: bool) -> Resolved {
    let objs = elf::loaded();
    let mut out = Resolved {
        found: Vec::new(),
        missing: Vec::new(),
        libc: None,
        debug_file: None,
        warning: None,
    };
    let libc_obj = objs.iter().find(|o| {
        let base = o.name.rsplit('/').next().unwrap_or("");
        base.starts_with("libc.so")
    });
    let libc_locks: Vec<&'static profile::Lock> = profile::LOCKS
        .iter()
        .filter(|l| l.object == Object::Libc)
        .collect();
    let answers = match libc_obj {
        None => {
            out.warning = Some("the C library (libc.so.6) is not loaded".into());
            vec![None; libc_locks.len()]
        }
        Some(obj) => {
            out.libc = Some(obj.name.clone());
            libc_answers(obj, &libc_locks, use_cache, &mut out)
        }
    };
    let loader = loader_locks();
    let mut libc_i = 0;
    for lock in profile::LOCKS {
        let r = match lock.object {
            Object::Libc => {
                let a = answers.get(libc_i).cloned().flatten();
                libc_i += 1;
                libc_place(lock, a, libc_obj)
            }
            Object::Loader => loader
                .as_ref()
                .map_err(|m| m.clone())
                .and_then(|base| match lock.name {
                    "_dl_load_lock" => Ok(*base),
                    "_dl_load_write_lock" => Ok(base + 40),
                    "_dl_load_tls_lock" => Ok(base + 80),
                    _ => Err("unknown loader lock".into()),
                }),
        };
        match r {
            Ok(addr) => out.found.push(found(lock, addr)),
            Err(why) => out.missing.push((lock, why)),
        }
    }
    out
}

/// The C library's locks, from the cache or its debug file (one answer
/// per lock, `None` when there are no debug symbols: then `out.warning`
/// says why).
fn libc_answers(
    obj: &elf::Loaded,
    locks: &[&'static profile::Lock],
    use_cache: bool,
    out: &mut Resolved,
) -> Vec<Option<Found>> {
    if let Some((path, values)) = use_cache.then(|| cache_read(obj, locks.len())).flatten() {
        out.debug_file = Some(format!("{path} (cached)"));
        return values
            .into_iter()
            .zip(locks)
            .map(|(v, l)| {
                Some(match v {
                    Some(value) => Found::One(SymHit {
                        value,
                        size: l.size,
                        file: l.file.map(str::to_string),
                        kind: SymKind::Object,
                    }),
                    None => Found::Missing,
                })
            })
            .collect();
    }
    let queries: Vec<Query> = locks
        .iter()
        .map(|l| Query {
            file: l.file,
            name: l.name,
        })
        .collect();
    let why = match elf::find_static_many(obj, &queries, elf::Depth::DebugFile, true, true) {
        Ok(t) if t.debug_file.is_some() => {
            out.debug_file = t.debug_file;
            let values: Vec<Option<u64>> = t
                .found
                .iter()
                .zip(locks)
                .map(|(f, l)| match f {
                    Found::One(h) if h.size == l.size => Some(h.value),
                    _ => None,
                })
                .collect();
            if use_cache {
                cache_store(obj, &values);
            }
            return t.found.into_iter().map(Some).collect();
        }
        Ok(t) => match t.refused.first() {
            Some((p, why)) => format!("debug file {p} not used: {why}"),
            None => "no debug symbols for it".to_string(),
        },
        Err(_) => "cannot read the file it was loaded from".to_string(),
    };
    out.warning = Some(format!(
        "{}: {why}: install {}",
        obj.name,
        profile::DEBUG_PACKAGE
    ));
    vec![None; locks.len()]
}

/// A C library lock's address from its symbol-table answer.
fn libc_place(
    lock: &profile::Lock,
    answer: Option<Found>,
    libc_obj: Option<&elf::Loaded>,
) -> Result<usize, String> {
    match (answer, libc_obj) {
        (Some(Found::One(h)), Some(obj)) if h.size == lock.size => elf::hit(obj, &h, lock.name)
            .map_err(|m| match m {
                elf::StaticMiss::Unusable(m) => m,
                elf::StaticMiss::NotFound(_) => "not found".into(),
            })
            .and_then(|hit| {
                if obj.writable(hit.addr, hit.size) {
                    Ok(hit.addr)
                } else {
                    Err("not in writable memory".into())
                }
            }),
        (Some(Found::One(h)), _) => Err(format!(
            "{} bytes, not the {} of this lock type",
            h.size, lock.size
        )),
        (Some(Found::Ambiguous(files)), _) => {
            Err(format!("ambiguous: defined in {}", files.join(", ")))
        }
        (Some(Found::Missing), _) => Err("not in the debug file".into()),
        (None, _) => Err("no debug symbols".into()),
    }
}

/// A lock found at `addr`, with the work for its kind.
fn found(lock: &'static profile::Lock, addr: usize) -> Found1 {
    Found1 {
        lock,
        addr,
        prepare: match lock.kind {
            Kind::Futex => futex::prepare,
            Kind::Recursive => futex::recursive_prepare,
            Kind::Rwlock => rwlock_prepare,
            Kind::Mutex => mutex_prepare,
        },
        child: match lock.kind {
            Kind::Futex => futex::child,
            Kind::Recursive => futex::recursive_child,
            Kind::Rwlock => rwlock_child,
            Kind::Mutex => mutex_child,
        },
    }
}

/// The cache entry for this C library (see `profile::cache`): its path
/// and values, when one exists, written by root, for this build.
/// The caller keeps it off in secure-execution mode (like the plan cache).
fn cache_read(obj: &elf::Loaded, n: usize) -> Option<(String, Vec<Option<u64>>)> {
    use std::io::Read;
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    let id = debugfile::hex(obj.build_id()?);
    let dir = forkguard_core::load::cache::DIR;
    let path = format!("{dir}/{}", profile::cache::file_name(&id));
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(&path)
        .ok()?;
    let root_only = |md: &std::fs::Metadata| md.uid() == 0 && md.mode() & 0o022 == 0;
    let md = file.metadata().ok()?;
    if !md.is_file() || !root_only(&md) || md.len() > profile::cache::MAX_BYTES {
        return None;
    }
    if !std::fs::symlink_metadata(dir).is_ok_and(|d| d.is_dir() && root_only(&d)) {
        return None;
    }
    let mut bytes = Vec::with_capacity(md.len() as usize);
    (&file)
        .take(profile::cache::MAX_BYTES)
        .read_to_end(&mut bytes)
        .ok()?;
    let values = profile::cache::decode(&bytes, &id, n)?;
    Some((path, values))
}

/// Write the cache entry, as root only (entries by anyone else are never
/// trusted). Failures are silent: the cache is an optimisation.
fn cache_store(obj: &elf::Loaded, values: &[Option<u64>]) {
    use std::io::Write;
    use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
    if sys::getuid() != 0 || sys::geteuid() != 0 {
        return;
    }
    let Some(id) = obj.build_id().map(debugfile::hex) else {
        return;
    };
    let dir = forkguard_core::load::cache::DIR;
    let _ = std::fs::DirBuilder::new().mode(0o755).create(dir);
    if !std::fs::symlink_metadata(dir)
        .is_ok_and(|d| d.is_dir() && d.uid() == 0 && d.mode() & 0o022 == 0)
    {
        return;
    }
    let name = profile::cache::file_name(&id);
    let tmp = format!("{dir}/.{name}.{}", std::process::id());
    let Ok(mut f) = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&tmp)
    else {
        return;
    };
    let ok = f.write_all(&profile::cache::encode(&id, values)).is_ok();
    drop(f);
    if !ok || std::fs::rename(&tmp, format!("{dir}/{name}")).is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
}

/// The address of `_dl_load_lock` inside the loader's `_rtld_global`: the
/// one place where `_dl_nns` (1..=16) is followed by three recursive,
/// non-robust `pthread_mutex_t`.
fn loader_locks() -> Result<usize, String> {
    // SAFETY: the name is NUL-terminated; RTLD_DEFAULT is a valid handle.
    let base = unsafe { clib::dlsym(libc::RTLD_DEFAULT, c"_rtld_global".as_ptr()) } as usize;
    if base == 0 {
        return Err("the loader's _rtld_global is not exported".into());
    }
    let objs = elf::loaded();
    let Some(obj) = elf::object_at(&objs, base) else {
        return Err("_rtld_global is in no loaded object".into());
    };
    // The object's writable segment that holds it bounds the scan.
    let Some(&(_, end, _)) = obj
        .segments
        .iter()
        .find(|&&(s, e, w)| w && base >= s && base < e)
    else {
        return Err("_rtld_global is not writable".into());
    };
    let len = (end - base).min(8192);
    let read32 = |off: usize| {
        // SAFETY: base + off + 4 <= end: inside a mapped, readable segment.
        unsafe { ((base + off) as *const i32).read_volatile() }
    };
    let read64 = |off: usize| {
        // SAFETY: as above, 8 bytes.
        unsafe { ((base + off) as *const u64).read_volatile() }
    };
    const KIND: usize = 16;
    const RECURSIVE: i32 = 1;
    let mut hits = Vec::new();
    let mut off = 8;
    while off + 120 <= len {
        let nns = read64(off - 8);
        let shaped = (1..=16).contains(&nns)
            && (0..3).all(|k| {
                let m = off + 40 * k;
                read32(m + KIND) == RECURSIVE && read64(m + 24) == 0 && read64(m + 32) == 0
            });
        if shaped {
            hits.push(base + off);
        }
        off += 8;
    }
    match hits.as_slice() {
        [one] => Ok(*one),
        [] => Err("the loader's locks were not found in _rtld_global".into()),
        _ => Err("the loader's locks are ambiguous in _rtld_global".into()),
    }
}

/// Install the profile for this process: find the locks, print the warning
/// once when the C library's debug symbols are missing, and register the
/// fork handlers. Load time, before forkguard's other fork handlers.
/// `use_cache`: off in secure-execution mode and with
/// `FORKGUARD_PLAN_CACHE=off`, like the plan cache.
pub fn install(settings: &Settings, use_cache: bool) {
    let acquire = match settings.libc_locks {
        LibcLocks::Off => return,
        LibcLocks::Reinit => false,
        LibcLocks::Acquire => true,
    };
    let r = resolve(use_cache);
    if let Some(w) = &r.warning {
        sys::write_all(2, format!("forkguard: libc_locks: {w}\n").as_bytes());
    }
    let table = Table {
        found: r.found,
        acquire,
        ms: settings.lock_timeout_ms,
    };
    crate::phases::tls::init();
    if TABLE.set(table).is_ok() {
        // SAFETY: plain extern "C" functions that live as long as the
        // library (LD_PRELOAD: never unloaded).
        unsafe { clib::pthread_atfork(prepare, parent, child) };
    }
}

extern "C" fn prepare() {
    let Some(t) = TABLE.get() else { return };
    let err = sys::errno();
    // SAFETY: this thread's own state, not touched re-entrantly (the fork
    // handlers of one fork run one after the other on this thread).
    let st = unsafe { &mut *crate::phases::tls::state().libc_locks.get() };
    for (i, f) in t.found.iter().enumerate() {
        let s = (f.prepare)(f.addr, t.acquire, t.ms).unwrap_or(0);
        if let Some(slot) = st.get_mut(i) {
            *slot = s;
        }
    }
    sys::set_errno(err);
}

extern "C" fn parent() {
    let Some(t) = TABLE.get() else { return };
    if !t.acquire {
        return;
    }
    let err = sys::errno();
    // SAFETY: as in prepare.
    let st = unsafe { &*crate::phases::tls::state().libc_locks.get() };
    let mut late = 0;
    let mut first_late = None;
    for (i, f) in t.found.iter().enumerate().rev() {
        let s = st.get(i).copied();
        if s == Some(TIMED_OUT) {
            late += 1;
            first_late = Some(f.lock);
        }
        if s != Some(TAKEN) {
            continue;
        }
        match f.lock.kind {
            Kind::Futex => futex::release(f.addr),
            Kind::Recursive => futex::recursive_release(f.addr),
            Kind::Rwlock => {
                // SAFETY: an rwlock prepare write-locked.
                unsafe { clib::pthread_rwlock_unlock(f.addr as *mut libc::pthread_rwlock_t) };
            }
            Kind::Mutex => {
                // SAFETY: a mutex prepare locked.
                unsafe { clib::pthread_mutex_unlock(f.addr as *mut libc::pthread_mutex_t) };
            }
        }
    }
    if let Some(lock) = first_late {
        report_late(late, lock, t.ms);
    }
    sys::set_errno(err);
}

/// One log line (forkguard's log, if any) when locks could not be taken
/// in time: they were reset in the child all the same. Parent side.
#[cold]
fn report_late(n: u64, first: &profile::Lock, ms: u32) {
    let Some(rt) = crate::phases::runtime::get() else {
        return;
    };
    let pid = i64::from(sys::getpid());
    let mut line = crate::os::buf::Buf::<1024>::new();
    let mut what = crate::os::buf::Buf::<256>::new();
    what.str("libc_locks: ")
        .u64(n)
        .str(" lock(s) not taken within ")
        .u64(u64::from(ms))
        .str(" ms (first: ");
    if let Some(f) = first.file {
        what.str(f).byte(b':');
    }
    what.str(first.name).str("): reset in the child");
    if rt.json {
        crate::phases::log::json_head(&mut line, pid, "error");
        line.str(",\"errors\":[\"")
            .json_str(what.as_bytes())
            .str("\"]}");
    } else {
        line.str("forkguard[")
            .i64(pid)
            .str("] ")
            .push(what.as_bytes());
    }
    crate::phases::log::emit(rt, &mut line);
}

/// Child: reset every lock, last first. Async-signal-safe: stores only
/// (no call, no system call but `gettid` for a lock the forking thread
/// held).
extern "C" fn child() {
    let Some(t) = TABLE.get() else { return };
    // SAFETY: as in prepare; the child has one thread.
    let st = unsafe { &*crate::phases::tls::state().libc_locks.get() };
    for (i, f) in t.found.iter().enumerate().rev() {
        let s = st.get(i).copied().unwrap_or(0);
        // A lock that timed out is reset like one nobody held: whoever
        // held it does not exist here.
        let s = if s == TIMED_OUT { 0 } else { s };
        (f.child)(f.addr, s);
    }
}

/// `forkguard check --program`: one line per lock of the profile, found
/// (where) or not (why), and the warning if any.
pub fn check_report(settings: &Settings) -> String {
    // Always from the debug file: the check shows where the names come from.
    let r = resolve(false);
    let mut out = String::new();
    let strategy = match settings.libc_locks {
        LibcLocks::Acquire => "acquire",
        LibcLocks::Reinit => "reinit",
        LibcLocks::Off => return out,
    };
    out.push_str(&format!(
        "forkguard-check: libc_locks = {strategy}: {} of {} glibc locks found (C library {}, debug file {})\n",
        r.found.len(),
        profile::LOCKS.len(),
        r.libc.as_deref().unwrap_or("not loaded"),
        r.debug_file.as_deref().unwrap_or("none"),
    ));
    if let Some(w) = &r.warning {
        out.push_str(&format!("forkguard-check: libc_locks: warning: {w}\n"));
    }
    let objs = elf::loaded();
    for f in &r.found {
        let (obj, off) = match elf::object_at(&objs, f.addr) {
            Some(o) => (o.name.rsplit('/').next().unwrap_or("?"), f.addr - o.bias),
            None => ("?", f.addr),
        };
        out.push_str(&format!(
            "forkguard-check: libc_locks: found   {} ({}) at {obj}+{off:#x}: {}\n",
            spelled(f.lock),
            kind_name(f.lock.kind),
            f.lock.guards
        ));
    }
    for (lock, why) in &r.missing {
        out.push_str(&format!(
            "forkguard-check: libc_locks: missing {} ({}): {why}\n",
            spelled(lock),
            kind_name(lock.kind)
        ));
    }
    out
}

fn spelled(l: &profile::Lock) -> String {
    match l.file {
        Some(f) => format!("{f}:{}", l.name),
        None => l.name.to_string(),
    }
}

fn kind_name(k: Kind) -> &'static str {
    match k {
        Kind::Futex => "futex",
        Kind::Recursive => "recursive lock",
        Kind::Rwlock => "rwlock",
        Kind::Mutex => "recursive mutex",
    }
}
