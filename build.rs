//! Link flags for the preload library only (the command is unaffected).
//!
//! Every process of a deployment loads libforkguard.so, so its load cost is
//! a product feature: the unwinder that std references (`_Unwind_*`) is
//! linked in statically from libgcc_eh instead of loading libgcc_s.so.1 at
//! run time (with `panic = "abort"` it is only used for backtraces), and
//! relative relocations are packed (DT_RELR) so the loader applies them in
//! a tight loop.
fn main() {
    println!("cargo:rustc-link-arg-cdylib=-Wl,--push-state,--whole-archive,-l:libgcc_eh.a,--pop-state");
    println!("cargo:rustc-link-arg-cdylib=-Wl,--as-needed");
    println!("cargo:rustc-link-arg-cdylib=-Wl,-z,pack-relative-relocs");
    println!("cargo:rerun-if-changed=build.rs");
}
