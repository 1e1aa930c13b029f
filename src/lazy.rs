//! Lazy binding of libc functions, done by the library itself.
//!
//! rustc calls external functions through the GOT, so the dynamic loader
//! must look up every one of them when the library loads, in every process,
//! whether it ever forks or not (about 800 user-space instructions each).
//! Instead, the library defines each libc function it uses (listed in
//! `src/lazy_imports.txt`) as a hidden trampoline, `jmp *slot`; the linker
//! then binds the library's calls to the trampoline, and the loader has
//! nothing to look up. A slot first points at a stub that calls
//! [`fg_lazy_resolve`] with all argument registers saved, which finds the
//! function with `dlsym(RTLD_DEFAULT)` — the same binding the loader would
//! have made — stores it, and jumps there.
//!
//! [`resolve_all`] binds every slot at once. It runs at load whenever a
//! config is active, so no lookup ever happens in a child after fork or in
//! a signal handler that forks: only processes with nothing to do at fork
//! stay lazy.

#[cfg(target_arch = "x86_64")]
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
        // SAFETY: name is NUL-terminated; RTLD_DEFAULT finds the function the
        // dynamic loader would have bound (the program's own first).
        let p = unsafe { libc::dlsym(libc::RTLD_DEFAULT, name.as_ptr()) } as usize;
        if p == 0 {
            die(name.to_bytes());
        }
        // SAFETY: an aligned usize store; concurrent resolvers store the same value.
        unsafe { core::ptr::write_volatile(core::ptr::addr_of_mut!(fg_lazy_slots[i as usize]), p) };
        p
    }

    fn die(name: &[u8]) -> ! {
        crate::sys::write_all(2, b"forkguard: cannot find libc function ");
        crate::sys::write_all(2, name);
        crate::sys::write_all(2, b"\n");
        // SAFETY: ends the process; nothing else can be done without libc.
        unsafe { crate::sys::syscall(libc::SYS_exit_group, [127, 0, 0, 0, 0, 0]) };
        #[allow(clippy::empty_loop)]
        loop {}
    }

    pub fn resolve_all() {
        for i in 0..NAMES.len() {
            fg_lazy_resolve(i as u32);
        }
    }
}

#[cfg(not(target_arch = "x86_64"))]
mod imp {
    pub fn resolve_all() {}
}

/// Bind every lazily bound function now (parent side, at load).
pub fn resolve_all() {
    imp::resolve_all();
}
