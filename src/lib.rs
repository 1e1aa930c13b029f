//! forkguard: makes `fork()` safe for threaded programs, from outside.
//!
//! Loaded with `LD_PRELOAD`, it interposes `fork`, `forkpty`, `daemon` and
//! `vfork` and runs prepare / parent / child phases around the real call,
//! from a TOML config (see SPEC and `config/forkguard.toml`).
//!
//! Layout: `init` (load time), `hooks` (entry points), `engine` (phases),
//! one module per action kind (`child`), `audit`, and the system layer
//! (`sys`, `fdinfo`, `buf`, `symbols`).

mod actions;
mod entry;
mod load;
mod os;
mod phases;

/// Load time: read the config and build the runtime (cheap when there is
/// none). Code here stays within libc and forkguard's own modules.
#[ctor::ctor(unsafe)]
fn forkguard_init() {
    load::init();
}
