//! Finding the functions and globals a config names, before any fork.
//!
//! `name` is looked up with `dlsym(RTLD_DEFAULT)`: every object loaded in
//! the process, in the loader's search order. `lib:name` is looked up in
//! that object only, found with `dlopen(RTLD_NOLOAD)` so nothing is loaded
//! on forkguard's behalf. A library not loaded yet (it may be `dlopen`ed
//! later) is looked up again before each fork while the set of loaded
//! objects changes; never in the child.

use forkguard_core::plan::SymbolRef;
use std::ffi::CString;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// A symbol and, once found, its address (0 while unresolved).
pub struct Sym {
    pub spec: SymbolRef,
    lib: Option<CString>,
    name: CString,
    addr: AtomicUsize,
    /// The loader generation `addr` was found in (see [`generation`]).
    seen: AtomicU64,
}

/// Why a symbol did not resolve.
pub enum Missing {
    /// `lib:name` whose library is not loaded (yet).
    LibNotLoaded,
    /// The name is not defined where it was looked for.
    NoSuchSymbol,
}

impl Sym {
    pub fn new(spec: &SymbolRef) -> Sym {
        let cstr = |s: &str| CString::new(s).unwrap_or_default();
        Sym {
            spec: spec.clone(),
            lib: spec.lib.as_deref().map(cstr),
            name: cstr(&spec.name),
            addr: AtomicUsize::new(0),
            seen: AtomicU64::new(u64::MAX),
        }
    }

    /// The address, 0 if unresolved. Async-signal-safe (one atomic load).
    pub fn addr(&self) -> usize {
        self.addr.load(Ordering::Acquire)
    }

    /// Look the symbol up now, and remember the loader generation.
    /// Not async-signal-safe (takes the loader's lock): parent side only.
    pub fn resolve(&self, generation: u64) -> Result<usize, Missing> {
        let found = lookup(self.lib.as_deref(), &self.name);
        self.addr.store(*found.as_ref().unwrap_or(&0), Ordering::Release);
        self.seen.store(generation, Ordering::Release);
        found
    }

    /// Re-resolve when objects were loaded or unloaded since the last lookup,
    /// so a library `dlopen`ed later is found and one `dlclose`d is never
    /// called into. Parent side only.
    pub fn refresh(&self, generation: u64) {
        if self.seen.load(Ordering::Acquire) != generation {
            let _ = self.resolve(generation);
        }
    }
}

fn lookup(lib: Option<&std::ffi::CStr>, name: &std::ffi::CStr) -> Result<usize, Missing> {
    match lib {
        None => {
            // SAFETY: name is NUL-terminated; RTLD_DEFAULT is a valid handle.
            let p = unsafe { libc::dlsym(libc::RTLD_DEFAULT, name.as_ptr()) };
            if p.is_null() { Err(Missing::NoSuchSymbol) } else { Ok(p as usize) }
        }
        Some(lib) => {
            // SAFETY: lib is NUL-terminated. RTLD_NOLOAD only finds an object
            // that is already loaded; the reference it adds is dropped below.
            let h = unsafe { libc::dlopen(lib.as_ptr(), libc::RTLD_NOLOAD | libc::RTLD_LAZY) };
            if h.is_null() {
                return Err(Missing::LibNotLoaded);
            }
            // SAFETY: h is a live handle; name is NUL-terminated.
            let p = unsafe { libc::dlsym(h, name.as_ptr()) };
            // SAFETY: balances the dlopen above; the object stays loaded
            // because someone else loaded it.
            unsafe { libc::dlclose(h) };
            if p.is_null() { Err(Missing::NoSuchSymbol) } else { Ok(p as usize) }
        }
    }
}

/// A number that changes whenever an object is loaded or unloaded
/// (glibc's `dlpi_adds` and `dlpi_subs`). Cheap: stops at the first object.
pub fn generation() -> u64 {
    unsafe extern "C" fn first(info: *mut libc::dl_phdr_info, _size: libc::size_t, out: *mut libc::c_void) -> libc::c_int {
        // SAFETY: glibc passes a valid info; out is the u64 given below.
        unsafe {
            let info = &*info;
            *out.cast::<u64>() = (info.dlpi_adds << 32) ^ info.dlpi_subs;
        }
        1
    }
    let mut g: u64 = 0;
    // SAFETY: the callback matches dl_iterate_phdr's contract and writes only g.
    unsafe { libc::dl_iterate_phdr(Some(first), (&mut g as *mut u64).cast()) };
    g
}
