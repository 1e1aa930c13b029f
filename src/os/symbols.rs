//! Finding the functions and globals a config names, before any fork.
//!
//! `name` is looked up with `dlsym(RTLD_DEFAULT)`: every object loaded in
//! the process, in the loader's search order. `lib:name` is looked up in
//! that object only (matched by the loader's name, its basename or its
//! soname). Where the exported (dynamic) symbols do not have it, the
//! object's file on disk is read for a static (`.symtab`) symbol of that
//! name, at the object's load address (see `elf`). A library not loaded
//! yet (it may be `dlopen`ed later) is looked up again before each fork
//! while the set of loaded objects changes; never in the child.

use crate::os::elf;
use forkguard_core::plan::SymbolRef;
use std::ffi::{CStr, CString};
use std::sync::atomic::{AtomicU64, AtomicU8, AtomicUsize, Ordering};

/// A symbol and, once found, its address (0 while unresolved).
pub struct Sym {
    pub spec: SymbolRef,
    lib: Option<CString>,
    /// `OBJECT:FILE:NAME`: the source file that defines the static.
    file: Option<String>,
    name: CString,
    addr: AtomicUsize,
    /// Size from the symbol table; 0 when it does not say.
    size: AtomicUsize,
    /// Which table it was found in (`HOW_*`), with the `WRITABLE` bit.
    how: AtomicU8,
    /// The loader generation `addr` was found in (see [`generation`]).
    seen: AtomicU64,
}

const HOW_DYNAMIC: u8 = 1;
const HOW_STATIC: u8 = 2;
const WRITABLE: u8 = 0x80;

/// Why a symbol did not resolve.
pub enum Missing {
    /// `lib:name` whose library is not loaded (yet).
    LibNotLoaded,
    /// The name is not defined where it was looked for.
    NoSuchSymbol,
    /// Not defined, and the note says why a separate debug file that
    /// exists was not used (another build-id, corrupt, truncated).
    NotInDebugFile(String),
    /// Found, but not usable (ambiguous, thread-local, ...): the message says why.
    Unusable(String),
}

/// A successful lookup.
#[derive(Clone, Copy)]
struct Hit {
    addr: usize,
    size: usize,
    how: u8,
}

impl Sym {
    pub fn new(spec: &SymbolRef) -> Sym {
        let cstr = |s: &str| CString::new(s).unwrap_or_default();
        Sym {
            spec: spec.clone(),
            lib: spec.lib.as_deref().map(cstr),
            file: spec.file.clone(),
            name: cstr(&spec.name),
            addr: AtomicUsize::new(0),
            size: AtomicUsize::new(0),
            how: AtomicU8::new(0),
            seen: AtomicU64::new(u64::MAX),
        }
    }

    /// The address, 0 if unresolved. Async-signal-safe (one atomic load).
    pub fn addr(&self) -> usize {
        self.addr.load(Ordering::Acquire)
    }

    /// The object's size from the symbol table, 0 if unknown or unresolved.
    /// Async-signal-safe.
    pub fn size(&self) -> usize {
        self.size.load(Ordering::Acquire)
    }

    /// The whole object (its size as far as known) is in writable memory
    /// (not code, not read-only data, not RELRO). Async-signal-safe.
    pub fn writable(&self) -> bool {
        self.how.load(Ordering::Acquire) & WRITABLE != 0
    }

    /// Look the symbol up now, and remember the loader generation.
    /// Not async-signal-safe (takes the loader's lock, may read files):
    /// parent side only.
    /// Resolve an action's symbol at load, as the config's rules say:
    /// `Ok(true)` found; `Ok(false)` absent but allowed (its library is not
    /// loaded yet, or the symbol is `optional`); `Err` the config error.
    pub fn resolve_for_action(&self, generation: u64) -> Result<bool, String> {
        match self.resolve(generation) {
            Ok(_) => Ok(true),
            Err(Missing::LibNotLoaded) => Ok(false),
            Err(Missing::NoSuchSymbol) if self.spec.optional => Ok(false),
            Err(Missing::NoSuchSymbol) => Err(format!(
                "unknown symbol {:?} (set optional = true if it may be missing)",
                self.spec.to_string()
            )),
            Err(Missing::NotInDebugFile(note)) if self.spec.optional => {
                let _ = note;
                Ok(false)
            }
            Err(Missing::NotInDebugFile(note)) => Err(format!(
                "unknown symbol {:?}: {note}",
                self.spec.to_string()
            )),
            Err(Missing::Unusable(m)) => Err(m),
        }
    }

    pub fn resolve(&self, generation: u64) -> Result<usize, Missing> {
        let found = lookup(self.lib.as_deref(), self.file.as_deref(), &self.name);
        let hit = found.as_ref().ok().copied().unwrap_or(Hit {
            addr: 0,
            size: 0,
            how: 0,
        });
        // Size first: whoever sees the new address also sees its size.
        self.size.store(hit.size, Ordering::Release);
        self.how.store(hit.how, Ordering::Release);
        self.addr.store(hit.addr, Ordering::Release);
        self.seen.store(generation, Ordering::Release);
        found.map(|h| h.addr)
    }

    /// Re-resolve when objects were loaded or unloaded since the last lookup,
    /// so a library `dlopen`ed later is found and one `dlclose`d is never
    /// touched. Parent side only.
    /// Returns true when the symbol was resolved before and is gone now
    /// (its object was unloaded), so the caller can say so once.
    pub fn refresh(&self, generation: u64) -> bool {
        if self.seen.load(Ordering::Acquire) == generation {
            return false;
        }
        let before = self.addr();
        let _ = self.resolve(generation);
        before != 0 && self.addr() == 0
    }
}

fn lookup(lib: Option<&CStr>, file: Option<&str>, name: &CStr) -> Result<Hit, Missing> {
    let objs = elf::loaded();
    let name_s = name.to_string_lossy();
    let miss = |note: Option<String>| match note {
        Some(n) => Missing::NotInDebugFile(n),
        None => Missing::NoSuchSymbol,
    };
    match lib {
        None => {
            // SAFETY: name is NUL-terminated; RTLD_DEFAULT is a valid handle.
            let p = unsafe { crate::os::clib::dlsym(libc::RTLD_DEFAULT, name.as_ptr()) } as usize;
            if p != 0 {
                return Ok(dynamic_hit(&objs, p, name));
            }
            // Objects loaded with RTLD_LOCAL (Python's ctypes and extension
            // modules, plugins) are not in the global scope: "every loaded
            // object" includes them, in load order.
            for obj in objs.iter().skip(1) {
                if let Some(p) = dynamic_in(obj, name) {
                    return Ok(dynamic_hit(&objs, p, name));
                }
            }
            // Every object's own table first; debug files (SPEC 8.1) only
            // for a name no table has, so a config whose symbols resolve
            // never opens one.
            let mut note = None;
            for depth in [elf::Depth::Symtab, elf::Depth::DebugFile] {
                for obj in &objs {
                    match elf::find_static(obj, &name_s, None, depth) {
                        Ok(h) => return Ok(static_hit(obj, h)),
                        Err(elf::StaticMiss::Unusable(m)) => return Err(Missing::Unusable(m)),
                        Err(elf::StaticMiss::NotFound(n)) => note = note.or(n),
                    }
                }
            }
            Err(miss(note))
        }
        Some(lib) => {
            let lib_s = lib.to_string_lossy();
            let loader_name = loader_name(lib);
            let exe = std::fs::read_link("/proc/self/exe")
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_default();
            let Some(obj) = objs
                .iter()
                .find(|o| elf::matches(o, &lib_s, loader_name.as_deref(), &exe))
            else {
                return Err(Missing::LibNotLoaded);
            };
            // A static named by its source file is never a dynamic symbol.
            if let Some(p) = dynamic_in(obj, name).filter(|_| file.is_none()) {
                // A variable the program copied (a copy relocation) is used
                // at the program's address, not at the library's.
                // SAFETY: name is NUL-terminated; RTLD_DEFAULT is a valid handle.
                let q =
                    unsafe { crate::os::clib::dlsym(libc::RTLD_DEFAULT, name.as_ptr()) } as usize;
                let copied = q != 0
                    && q != p
                    && objs.first().is_some_and(|main| main.contains(q, 1))
                    && sym_size(q, name) == sym_size(p, name);
                return Ok(dynamic_hit(&objs, if copied { q } else { p }, name));
            }
            match elf::find_static(obj, &name_s, file, elf::Depth::DebugFile) {
                Ok(h) => Ok(static_hit(obj, h)),
                Err(elf::StaticMiss::Unusable(m)) => Err(Missing::Unusable(m)),
                Err(elf::StaticMiss::NotFound(note)) => Err(miss(note)),
            }
        }
    }
}

fn dynamic_hit(objs: &[elf::Loaded], addr: usize, name: &CStr) -> Hit {
    let size = sym_size(addr, name);
    let w = elf::object_at(objs, addr).is_some_and(|o| o.writable(addr, size));
    Hit {
        addr,
        size,
        how: HOW_DYNAMIC | if w { WRITABLE } else { 0 },
    }
}

fn static_hit(obj: &elf::Loaded, h: elf::StaticHit) -> Hit {
    let w = obj.writable(h.addr, h.size);
    Hit {
        addr: h.addr,
        size: h.size,
        how: HOW_STATIC | if w { WRITABLE } else { 0 },
    }
}

/// The name the loader knows `lib` by, if it is loaded (matches sonames).
fn loader_name(lib: &CStr) -> Option<String> {
    // SAFETY: lib is NUL-terminated. RTLD_NOLOAD only finds an object that
    // is already loaded; the reference it adds is dropped below.
    let h = unsafe { crate::os::clib::dlopen(lib.as_ptr(), libc::RTLD_NOLOAD | libc::RTLD_LAZY) };
    if h.is_null() {
        return None;
    }
    let mut lm: *mut LinkMap = core::ptr::null_mut();
    // SAFETY: h is a live handle; RTLD_DI_LINKMAP writes one pointer.
    let ok = unsafe {
        crate::os::clib::dlinfo(
            h,
            libc::RTLD_DI_LINKMAP,
            (&mut lm as *mut *mut LinkMap).cast(),
        )
    } == 0;
    let name = if ok && !lm.is_null() {
        // SAFETY: lm is the loader's link_map for h; l_name is a C string.
        let n = unsafe { (*lm).l_name };
        // SAFETY: as above: a NUL-terminated string owned by the loader.
        (!n.is_null()).then(|| unsafe { CStr::from_ptr(n) }.to_string_lossy().into_owned())
    } else {
        None
    };
    // SAFETY: balances the dlopen above; the object stays loaded because
    // someone else loaded it.
    unsafe { crate::os::clib::dlclose(h) };
    name
}

/// The start of glibc's `struct link_map` (public part, `<link.h>`).
#[repr(C)]
struct LinkMap {
    l_addr: usize,
    l_name: *const libc::c_char,
}

/// `name` among `obj`'s exported symbols: found through the object's own
/// handle, and kept only if the definition is in `obj` itself (a handle
/// also searches the object's dependencies).
fn dynamic_in(obj: &elf::Loaded, name: &CStr) -> Option<usize> {
    let path = CString::new(obj.name.as_str()).ok()?;
    // SAFETY: RTLD_NOLOAD never loads anything; an empty name is refused
    // and the main program is looked up with a null name instead.
    let h = unsafe {
        crate::os::clib::dlopen(
            if obj.name.is_empty() {
                core::ptr::null()
            } else {
                path.as_ptr()
            },
            libc::RTLD_NOLOAD | libc::RTLD_LAZY,
        )
    };
    if h.is_null() {
        return None;
    }
    // SAFETY: h is a live handle; name is NUL-terminated.
    let p = unsafe { crate::os::clib::dlsym(h, name.as_ptr()) } as usize;
    // SAFETY: balances the dlopen above.
    unsafe { crate::os::clib::dlclose(h) };
    (p != 0 && obj.contains(p, 1)).then_some(p)
}

/// The size of the symbol `name` defined at `addr` (0 if unknown): from
/// the global scope's hash tables when the first definition there is the one
/// at `addr` (the usual case), else with `dladdr1`, which scans the whole
/// symbol table of the object (about 90,000 instructions in bash).
fn sym_size(addr: usize, name: &CStr) -> usize {
    if let Some((a, size)) = crate::os::lazy::first_definition(name.to_bytes()) {
        if a == addr {
            return size;
        }
    }
    match where_is(addr) {
        Some(w) if w.start == addr => w.size,
        _ => 0,
    }
}

/// What `dladdr1` knows of an address: the object's file name and base,
/// and the dynamic symbol containing it (name, start, size; null and 0
/// when none does).
pub struct Where {
    pub file: *const libc::c_char,
    pub base: usize,
    pub sym: *const libc::c_char,
    pub start: usize,
    pub size: usize,
}

/// `dladdr1(addr, RTLD_DL_SYMENT)`: the one place that asks the loader
/// which object and dynamic symbol an address is in.
pub fn where_is(addr: usize) -> Option<Where> {
    const RTLD_DL_SYMENT: libc::c_int = 1;
    // SAFETY: Dl_info is plain data.
    let mut info: libc::Dl_info = unsafe { core::mem::zeroed() };
    let mut sym: *mut libc::c_void = core::ptr::null_mut();
    // SAFETY: dladdr1 only writes to info and sym.
    let ok = unsafe {
        crate::os::clib::dladdr1(
            addr as *const libc::c_void,
            &mut info,
            &mut sym,
            RTLD_DL_SYMENT,
        )
    } != 0;
    if !ok || info.dli_fname.is_null() {
        return None;
    }
    let size = if sym.is_null() {
        0
    } else {
        // SAFETY: with RTLD_DL_SYMENT, sym points at the object's ElfW(Sym).
        unsafe { (*sym.cast::<libc::Elf64_Sym>()).st_size as usize }
    };
    Some(Where {
        file: info.dli_fname,
        base: info.dli_fbase as usize,
        sym: info.dli_sname,
        start: info.dli_saddr as usize,
        size,
    })
}

/// The next object's definition of `name` (normally libc's), looked up
/// once and kept in `cache`; 0 if there is none. The one `RTLD_NEXT`
/// look-up: every exported symbol that forwards finds its target here.
pub fn next(cache: &AtomicUsize, name: &CStr) -> usize {
    let mut p = cache.load(Ordering::Acquire);
    if p == 0 {
        // SAFETY: RTLD_NEXT lookup by NUL-terminated name.
        p = unsafe { crate::os::clib::dlsym(libc::RTLD_NEXT, name.as_ptr()) } as usize;
        cache.store(p, Ordering::Release);
    }
    p
}

/// A number that changes whenever an object is loaded or unloaded
/// (glibc's `dlpi_adds` and `dlpi_subs`). Cheap: stops at the first object.
pub fn generation() -> u64 {
    unsafe extern "C" fn first(
        info: *mut libc::dl_phdr_info,
        _size: libc::size_t,
        out: *mut libc::c_void,
    ) -> libc::c_int {
        // SAFETY: glibc passes a valid info; out is the u64 given below.
        unsafe {
            let info = &*info;
            *out.cast::<u64>() = (info.dlpi_adds << 32) ^ info.dlpi_subs;
        }
        1
    }
    let mut g: u64 = 0;
    // SAFETY: the callback matches dl_iterate_phdr's contract and writes only g.
    unsafe { crate::os::clib::dl_iterate_phdr(Some(first), (&mut g as *mut u64).cast()) };
    g
}

/// `dlsym(RTLD_DEFAULT, name)`: the address, or 0. `name` ends with NUL.
pub fn default_scope(name: &[u8]) -> usize {
    let Ok(c) = CStr::from_bytes_with_nul(name) else {
        return 0;
    };
    // SAFETY: c is NUL-terminated; RTLD_DEFAULT is a valid handle.
    unsafe { crate::os::clib::dlsym(libc::RTLD_DEFAULT, c.as_ptr()) as usize }
}
