//! Link flags and generated code for the preload library.
//!
//! Every process of a deployment loads libforkguard.so, so its load cost is
//! a product feature:
//! - the unwinder that std references (`_Unwind_*`) is linked in statically
//!   from libgcc_eh instead of loading libgcc_s.so.1 in every process (with
//!   `panic = "abort"` it only serves backtraces);
//! - relative relocations are packed (DT_RELR);
//! - the library's own calls to the functions it exports (its lock calls go
//!   through the pthread entry points it defines) bind to its own
//!   definitions at link time (`-Bsymbolic-functions`), instead of one
//!   symbol look-up each by the loader in every process: the same target,
//!   since the preloaded library comes first in the search order;
//! - libc functions are bound lazily through trampolines generated here from
//!   `src/os/lazy_imports.txt` (see `src/os/lazy.rs`).
use std::fmt::Write as _;

fn main() {
    println!(
        "cargo:rustc-link-arg-cdylib=-Wl,--push-state,--whole-archive,-l:libgcc_eh.a,--pop-state"
    );
    println!("cargo:rustc-link-arg-cdylib=-Wl,--as-needed");
    println!("cargo:rustc-link-arg-cdylib=-Wl,-z,pack-relative-relocs");
    println!("cargo:rustc-link-arg-cdylib=-Wl,-Bsymbolic-functions");
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=src/os/lazy_imports.txt");
    println!("cargo:rerun-if-changed=src/os/lazy.S");
    println!("cargo:rerun-if-changed=src/os/mem.S");

    let list = std::fs::read_to_string("src/os/lazy_imports.txt").expect("src/os/lazy_imports.txt");
    let names: Vec<&str> = list
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    let out = std::env::var("OUT_DIR").expect("OUT_DIR");

    // The trampolines, their first-call stubs, the common resolver entry,
    // and the slot table (AT&T syntax; `{resolve}` is a sym operand).
    //
    // `.text.fg_hot` also holds `fork` and the engine's post-fork code (their
    // `#[link_section]`): a child faults in each page of code it runs, in
    // whole 64 KiB windows (the kernel's fault-around), so the section
    // starts on a 64 KiB boundary and stays one window.
    let mut s = String::from(".pushsection .text.fg_hot,\"ax\",@progbits\n.p2align 16\n");
    for (i, n) in names.iter().enumerate() {
        writeln!(s, ".weak {n}\n.hidden {n}\n.type {n},@function\n.p2align 3\n{n}:\n  jmp *fg_lazy_slots+{}(%rip)\n.size {n}, .-{n}", 8 * i).unwrap();
    }
    for i in 0..names.len() {
        writeln!(
            s,
            ".p2align 3\nfg_lazy_stub_{i}:\n  movl ${i}, %r11d\n  jmp fg_lazy_common"
        )
        .unwrap();
    }
    // The common entry and the slot table's head: src/os/lazy.S.
    s.push_str(&std::fs::read_to_string("src/os/lazy.S").expect("src/os/lazy.S"));
    for i in 0..names.len() {
        writeln!(s, "  .quad fg_lazy_stub_{i}").unwrap();
    }
    s.push_str(".popsection\n");
    // memcpy and friends: src/os/mem.S.
    s.push_str(&std::fs::read_to_string("src/os/mem.S").expect("src/os/mem.S"));
    std::fs::write(format!("{out}/lazy.s"), s).expect("write lazy.s");

    let mut r = format!(
        "/// The lazily bound functions, by slot.\npub const NAMES: [&core::ffi::CStr; {}] = [\n",
        names.len()
    );
    for n in &names {
        writeln!(r, "    c\"{n}\",").unwrap();
    }
    r.push_str("];\n");
    std::fs::write(format!("{out}/lazy_names.rs"), r).expect("write lazy_names.rs");
}
