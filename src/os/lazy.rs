//! Lazy binding of libc functions, done by the library itself.
//!
//! rustc calls external functions through the GOT, so the dynamic loader
//! must look up every one of them when the library loads, in every process,
//! whether it ever forks or not (about 800 user-space instructions each).
//! Instead, the library defines each libc function it uses (listed in
//! `src/os/lazy_imports.txt`) as a hidden trampoline, `jmp *slot`; the linker
//! then binds the library's calls to the trampoline, and the loader has
//! nothing to look up. A slot first points at a stub that calls
//! [`fg_lazy_resolve`] with all argument registers saved, which finds the
//! function as `dlsym(RTLD_DEFAULT)` would — the same binding the loader
//! would have made — stores it, and jumps there.
//!
//! `dlsym` itself costs about 770 user-space instructions a name (its
//! error-handling and locking machinery), which made binding the 95
//! functions at load most of what an active config cost a process at
//! start-up. So [`scope`] does the lookup itself, the way the loader does:
//! it walks the objects loaded at start-up in load order, which is the
//! global search order (program, preloads, their dependencies), through
//! each one's GNU hash table, and takes the first definition in its default
//! version (calling the resolver of an IFUNC, as `dlsym` does); about 150
//! instructions a name. The table costs about three `dlsym` calls to build,
//! so the first two functions bound go to `dlsym` (a process without a
//! config binds about two). Anything it cannot answer (an object without a
//! GNU hash table, a name it does not find) goes to `dlsym` as before.
//!
//! [`resolve_all`] binds every slot at once. It runs at load whenever a
//! config is active, so no lookup ever happens in a child after fork or in
//! a signal handler that forks: only processes with nothing to do at fork
//! stay lazy.

/// The trampolines and the own `memcpy` family are left out of unit tests:
/// in a test binary they would take the place of libc's for all its code.
#[cfg(all(target_arch = "x86_64", not(test)))]
mod imp {
    include!(concat!(env!("OUT_DIR"), "/lazy_names.rs"));

    core::arch::global_asm!(
        include_str!(concat!(env!("OUT_DIR"), "/lazy.s")),
        resolve = sym fg_lazy_resolve,
        options(att_syntax)
    );

    extern "C" {
        /// The slot table defined by the generated assembly.
        static mut fg_lazy_slots: [usize; NAMES.len()];
    }

    /// Find function `i` and store it in its slot. Must not call any lazily
    /// bound function itself (it would recurse): only `dlsym`, a real
    /// import, and raw system calls.
    extern "C" fn fg_lazy_resolve(i: u32) -> usize {
        let Some(name) = NAMES.get(i as usize) else {
            die(b"?")
        };
        let p = match super::scope::lookup(name.to_bytes()) {
            Some(p) => p,
            // SAFETY: name is NUL-terminated; RTLD_DEFAULT finds the function
            // the dynamic loader would have bound (the program's own first).
            None => (unsafe { crate::os::clib::dlsym(libc::RTLD_DEFAULT, name.as_ptr()) }) as usize,
        };
        if p == 0 {
            die(name.to_bytes());
        }
        // SAFETY: an aligned usize store; concurrent resolvers store the same value.
        unsafe { core::ptr::write_volatile(core::ptr::addr_of_mut!(fg_lazy_slots[i as usize]), p) };
        p
    }

    fn die(name: &[u8]) -> ! {
        crate::os::sys::write_all(2, b"forkguard: cannot find libc function ");
        crate::os::sys::write_all(2, name);
        crate::os::sys::write_all(2, b"\n");
        // SAFETY: ends the process; nothing else can be done without libc.
        unsafe { crate::os::sys::syscall(libc::SYS_exit_group, [127, 0, 0, 0, 0, 0]) };
        #[allow(clippy::empty_loop)]
        loop {}
    }

    pub fn resolve_all() {
        super::scope::prepare();
        for i in 0..NAMES.len() {
            fg_lazy_resolve(i as u32);
        }
    }

    pub fn first_definition(name: &[u8]) -> Option<(usize, usize)> {
        super::scope::prepare();
        super::scope::lookup_any(name)
    }

    /// For `forkguard check`: every lazily bound name looked up both ways;
    /// returns how many were compared and the names whose bindings differ
    /// from `dlsym(RTLD_DEFAULT)` (or that the table could not answer).
    pub fn verify() -> (usize, Vec<String>) {
        super::scope::prepare();
        let mut differ = Vec::new();
        for name in NAMES {
            let ours = super::scope::lookup(name.to_bytes());
            // SAFETY: name is NUL-terminated.
            let theirs =
                unsafe { crate::os::clib::dlsym(libc::RTLD_DEFAULT, name.as_ptr()) } as usize;
            if ours != Some(theirs) {
                differ.push(format!(
                    "{}: {:#x} here, {theirs:#x} from dlsym",
                    name.to_string_lossy(),
                    ours.unwrap_or(0)
                ));
            }
        }
        (NAMES.len(), differ)
    }
}

/// The global scope's symbol tables, for [`imp::fg_lazy_resolve`]. Must
/// not call any lazily bound function: it reads the loader's list of
/// objects (`_r_debug`, found once with `dlsym`) and their tables.
#[cfg(target_arch = "x86_64")]
mod scope {
    use core::sync::atomic::{AtomicU8, Ordering};

    /// One object's dynamic symbol table.
    #[derive(Clone, Copy)]
    struct Tables {
        base: usize,
        gnu_hash: usize,
        symtab: usize,
        strtab: usize,
        versym: usize,
    }

    const MAX_OBJECTS: usize = 32;
    const EMPTY: Tables = Tables {
        base: 0,
        gnu_hash: 0,
        symtab: 0,
        strtab: 0,
        versym: 0,
    };

    /// The objects in load order; written once (state BUILDING), then only
    /// read (state READY).
    static mut OBJECTS: [Tables; MAX_OBJECTS] = [EMPTY; MAX_OBJECTS];
    static mut COUNT: usize = 0;
    static STATE: AtomicU8 = AtomicU8::new(NEW);
    const NEW: u8 = 0;
    const BUILDING: u8 = 1;
    const READY: u8 = 2;
    /// Some object could not be described (no GNU hash table, too many
    /// objects): every lookup goes to dlsym.
    const UNUSABLE: u8 = 3;

    /// Lookups before the table is built: the first two go to `dlsym` (a
    /// process with no config binds about that many functions, fewer than
    /// the table costs to build: about three `dlsym` calls).
    static ASKED: core::sync::atomic::AtomicU32 = core::sync::atomic::AtomicU32::new(0);

    /// Describe the objects loaded now (once; see [`lookup`]).
    pub fn prepare() {
        if STATE
            .compare_exchange(NEW, BUILDING, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
        {
            let ok = build();
            STATE.store(if ok { READY } else { UNUSABLE }, Ordering::Release);
        }
    }

    /// Where `name` (without NUL) is defined, as `dlsym(RTLD_DEFAULT)`
    /// would answer; None when this lookup cannot tell (or the table is not
    /// built yet).
    pub fn lookup(name: &[u8]) -> Option<usize> {
        match STATE.load(Ordering::Acquire) {
            READY => {}
            NEW if ASKED.fetch_add(1, Ordering::Relaxed) >= 2 => {
                prepare();
                if STATE.load(Ordering::Acquire) != READY {
                    return None;
                }
            }
            _ => return None,
        }
        walk(name, Want::Function).map(|(p, _)| p)
    }

    /// Like [`lookup`], for a function or a variable, with its size, and
    /// without calling an IFUNC's resolver. Only once the table is built.
    pub fn lookup_any(name: &[u8]) -> Option<(usize, usize)> {
        if STATE.load(Ordering::Acquire) != READY {
            return None;
        }
        walk(name, Want::Any)
    }

    #[derive(Clone, Copy, PartialEq)]
    enum Want {
        /// A function, IFUNCs resolved (what `dlsym` gives for a function).
        Function,
        /// A function or a variable, as defined.
        Any,
    }

    fn walk(name: &[u8], want: Want) -> Option<(usize, usize)> {
        let hash = gnu_hash(name);
        // SAFETY: READY: OBJECTS[..COUNT] was written before the Release
        // store this thread observed, and is never written again.
        let objects = unsafe {
            let all = &*core::ptr::addr_of!(OBJECTS);
            all.get(..*core::ptr::addr_of!(COUNT))?
        };
        for t in objects {
            // SAFETY: t describes a loaded object's tables (see build); the
            // objects loaded at start-up are never unloaded.
            if let Some(p) = unsafe { find(t, name, hash, want) } {
                return Some(p);
            }
        }
        None
    }

    fn gnu_hash(name: &[u8]) -> u32 {
        name.iter().fold(5381u32, |h, &c| {
            h.wrapping_mul(33).wrapping_add(u32::from(c))
        })
    }

    /// Look `name` up in one object's GNU hash table.
    ///
    /// # Safety
    /// `t` must describe a loaded object's dynamic tables.
    unsafe fn find(t: &Tables, name: &[u8], hash: u32, want: Want) -> Option<(usize, usize)> {
        // SAFETY: reads within the object's mapped GNU hash, symbol, string
        // and version tables, at offsets the tables themselves define.
        unsafe {
            let h = t.gnu_hash as *const u32;
            let nbuckets = *h;
            let symoffset = *h.add(1);
            let bloom_size = *h.add(2);
            let bloom_shift = *h.add(3);
            if nbuckets == 0 || bloom_size == 0 {
                return None;
            }
            let bloom = h.add(4) as *const u64;
            let word = *bloom.add(((hash / 64) % bloom_size) as usize);
            let mask = (1u64 << (hash % 64)) | (1u64 << ((hash >> bloom_shift) % 64));
            if word & mask != mask {
                return None;
            }
            let buckets = (bloom.add(bloom_size as usize)) as *const u32;
            let chain = buckets.add(nbuckets as usize);
            let mut i = *buckets.add((hash % nbuckets) as usize);
            if i < symoffset {
                return None;
            }
            loop {
                let h2 = *chain.add((i - symoffset) as usize);
                if (h2 | 1) == (hash | 1) {
                    let sym = (t.symtab as *const libc::Elf64_Sym).add(i as usize);
                    if same_name(t.strtab + (*sym).st_name as usize, name) {
                        if let Some(p) = usable(t, &*sym, i, want) {
                            return Some(p);
                        }
                    }
                }
                if h2 & 1 != 0 {
                    return None;
                }
                i += 1;
            }
        }
    }

    /// A defined, global or weak function (or, for `Want::Any`, variable)
    /// in its default version: its address and size (for a function wanted
    /// as such, an IFUNC's address is the one its resolver picks, as dlsym
    /// does).
    ///
    /// # Safety
    /// `sym` is entry `i` of `t`'s symbol table.
    unsafe fn usable(
        t: &Tables,
        sym: &libc::Elf64_Sym,
        i: u32,
        want: Want,
    ) -> Option<(usize, usize)> {
        const STT_OBJECT: u8 = 1;
        const STT_FUNC: u8 = 2;
        const STT_GNU_IFUNC: u8 = 10;
        const STB_GLOBAL: u8 = 1;
        const STB_WEAK: u8 = 2;
        let kind = sym.st_info & 0xf;
        let bind = sym.st_info >> 4;
        if sym.st_shndx == 0 || sym.st_value == 0 {
            return None;
        }
        let kind_ok = match want {
            Want::Function => matches!(kind, STT_FUNC | STT_GNU_IFUNC),
            Want::Any => matches!(kind, STT_FUNC | STT_GNU_IFUNC | STT_OBJECT),
        };
        if !matches!(bind, STB_GLOBAL | STB_WEAK) || !kind_ok {
            return None;
        }
        if t.versym != 0 {
            // SAFETY: versym has one u16 per symbol table entry.
            let v = unsafe { *(t.versym as *const u16).add(i as usize) };
            if v & 0x8000 != 0 {
                // A hidden (non-default) version: dlsym would not pick it.
                return None;
            }
        }
        let addr = t.base.wrapping_add(sym.st_value as usize);
        let size = sym.st_size as usize;
        if kind == STT_GNU_IFUNC && want == Want::Function {
            // SAFETY: an IFUNC symbol's value is its resolver; on x86_64
            // glibc calls it with no arguments (as dlsym does).
            let resolver: extern "C" fn() -> usize = unsafe { core::mem::transmute(addr) };
            return Some((resolver(), size));
        }
        Some((addr, size))
    }

    /// Does the NUL-terminated string at `p` equal `name`? Compared byte by
    /// byte with volatile reads, so the compiler cannot make a `bcmp` call
    /// of it (which would recurse into the lazy binding).
    ///
    /// # Safety
    /// `p` must point to a NUL-terminated string.
    unsafe fn same_name(p: usize, name: &[u8]) -> bool {
        let p = p as *const u8;
        for (k, &c) in name.iter().enumerate() {
            // SAFETY: the string is NUL-terminated: reading stops at its NUL
            // (which differs from every byte of name) at the latest.
            if unsafe { core::ptr::read_volatile(p.add(k)) } != c {
                return false;
            }
        }
        // SAFETY: as above; all of name matched, so byte len is in bounds.
        unsafe { core::ptr::read_volatile(p.add(name.len())) == 0 }
    }

    /// Describe every object on the loader's list (`_r_debug.r_map`), in
    /// load order. False if one cannot be described (then dlsym answers
    /// everything).
    ///
    /// Objects loaded later (`dlopen`) come after libc on the list, and
    /// libc defines every function bound here: the first definition found
    /// is always in an object loaded with the program, all of which are in
    /// the global search scope. The vDSO is on the list but not in that
    /// scope, and is skipped.
    fn build() -> bool {
        // SAFETY: a lookup by NUL-terminated name of the loader's exported
        // debugger interface (struct r_debug: int r_version; link_map *r_map).
        let r = unsafe { crate::os::clib::dlsym(libc::RTLD_DEFAULT, c"_r_debug".as_ptr()) }
            as *const usize;
        if r.is_null() {
            return false;
        }
        // SAFETY: r_map is the second word of struct r_debug.
        let mut map = unsafe { *r.add(1) } as *const usize;
        let mut count = 0usize;
        while !map.is_null() {
            // SAFETY: a struct link_map: l_addr, l_name, l_ld, l_next, l_prev
            // (the public part of its layout, <link.h>).
            let (base, name, dynamic, next) =
                unsafe { (*map, *map.add(1), *map.add(2), *map.add(3)) };
            // SAFETY: l_name is a NUL-terminated string (possibly empty) or null.
            if !unsafe { is_vdso(name as *const u8) } {
                // SAFETY: l_ld is the object's mapped dynamic section.
                let Some(t) = (unsafe { tables(base, dynamic) }) else {
                    return false;
                };
                // SAFETY: single builder (STATE == BUILDING).
                let all = unsafe { &mut *core::ptr::addr_of_mut!(OBJECTS) };
                let Some(slot) = all.get_mut(count) else {
                    return false;
                };
                *slot = t;
                count += 1;
            }
            map = next as *const usize;
        }
        // SAFETY: single builder, as above.
        unsafe { *core::ptr::addr_of_mut!(COUNT) = count };
        true
    }

    /// `linux-vdso.so.1` (or `linux-gate`)?
    ///
    /// # Safety
    /// `name` must be null or point to a NUL-terminated string.
    unsafe fn is_vdso(name: *const u8) -> bool {
        if name.is_null() {
            return false;
        }
        let prefix = b"linux-";
        for (k, &c) in prefix.iter().enumerate() {
            // SAFETY: reading stops at the string's NUL at the latest (no
            // byte of the prefix is NUL).
            if unsafe { core::ptr::read_volatile(name.add(k)) } != c {
                return false;
            }
        }
        true
    }

    /// The dynamic tables of one object, from its dynamic section.
    ///
    /// # Safety
    /// `dynamic` must be a loaded object's dynamic section, `base` its
    /// load bias.
    unsafe fn tables(base: usize, dynamic: usize) -> Option<Tables> {
        const DT_NULL: i64 = 0;
        const DT_STRTAB: i64 = 5;
        const DT_SYMTAB: i64 = 6;
        const DT_GNU_HASH: i64 = 0x6fff_fef5;
        const DT_VERSYM: i64 = 0x6fff_fff0;
        if dynamic == 0 {
            return None;
        }
        // The loader rewrites most objects' entries to addresses; some stay
        // offsets from the base.
        let addr = |v: u64| {
            let v = v as usize;
            if v < base {
                base.wrapping_add(v)
            } else {
                v
            }
        };
        let mut t = Tables { base, ..EMPTY };
        // Elf64_Dyn: i64 tag, u64 value.
        let mut d = dynamic as *const [u64; 2];
        loop {
            // SAFETY: the dynamic section ends with DT_NULL.
            let [tag, val] = unsafe { *d };
            match tag as i64 {
                DT_NULL => break,
                DT_STRTAB => t.strtab = addr(val),
                DT_SYMTAB => t.symtab = addr(val),
                DT_GNU_HASH => t.gnu_hash = addr(val),
                DT_VERSYM => t.versym = addr(val),
                _ => {}
            }
            // SAFETY: not past DT_NULL.
            d = unsafe { d.add(1) };
        }
        (t.gnu_hash != 0 && t.symtab != 0 && t.strtab != 0).then_some(t)
    }
}

#[cfg(any(not(target_arch = "x86_64"), test))]
mod imp {
    pub fn resolve_all() {}

    pub fn verify() -> (usize, Vec<String>) {
        (0, Vec::new())
    }

    pub fn first_definition(_name: &[u8]) -> Option<(usize, usize)> {
        None
    }
}

/// Bind every lazily bound function now (parent side, at load).
pub fn resolve_all() {
    imp::resolve_all();
}

/// Build the lookup table now (see `scope`), when many bindings are about
/// to follow.
pub fn prepare() {
    #[cfg(target_arch = "x86_64")]
    scope::prepare();
}

/// The first definition of `name` in the global scope, function or
/// variable (an IFUNC gives its resolver's address): its address and size;
/// None when the tables cannot tell.
pub fn first_definition(name: &[u8]) -> Option<(usize, usize)> {
    imp::first_definition(name)
}

/// Compare the library's own lookup with `dlsym` for every lazily bound
/// function (`forkguard check --program`).
pub fn verify() -> (usize, Vec<String>) {
    imp::verify()
}
