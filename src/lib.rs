//! forkguard: makes `fork()` safe for threaded programs, from outside.
//!
//! Loaded with `LD_PRELOAD`, it interposes `fork`, `forkpty`, `daemon` and
//! `vfork` and runs prepare / parent / child phases around the real call,
//! from a TOML config (see SPEC and `config/forkguard.toml`).
//!
//! Layout (dependencies point down the list; docs/DESIGN.md, "Shape"):
//! - `load`: the constructor's work: environment, config, plan cache,
//!   `programs`, building the runtime, check mode;
//! - `entry`: every exported symbol (`fork`, `forkpty`, `daemon`, `vfork`,
//!   the atfork fallback, the `pthread_rwlock_*` forwarders);
//! - `phases`: prepare / parent / child in SPEC order, the fork state, the
//!   runtime read at fork, the handshake, log and audit lines;
//! - `actions`: one module per action kind and their shared result type;
//! - `os`: the only doors to the kernel, the loader and libc.
//!
//! Unit tests (`cargo test -p forkguard --lib`) build without `entry`,
//! `load` and the constructor: a test binary must not interpose its own
//! `fork`, nor run a constructor that reads the environment.

// A unit-test build leaves out `entry` and `load`, which use the rest.
#![cfg_attr(test, allow(dead_code, unused_imports))]

/// The folders whose code runs after the real fork, in the child: no
/// allocation, no lock, no stdio, no formatting machinery, and no panic
/// site of their own. The lints that find panic sites are denied for each
/// of them here, once (outside unit tests, which may index and unwrap);
/// `os/mod.rs` exempts its two load-time-only files.
macro_rules! after_fork {
    ($($(#[$attr:meta])* mod $name:ident;)*) => {$(
        $(#[$attr])*
        #[cfg_attr(
            not(test),
            deny(
                clippy::indexing_slicing,
                clippy::unwrap_used,
                clippy::expect_used,
                clippy::panic
            )
        )]
        mod $name;
    )*};
}

after_fork! {
    mod actions;
    #[cfg(not(test))]
    mod entry;
    mod os;
    mod phases;
}
#[cfg(not(test))]
mod load;

/// Load time: read the config and build the runtime (cheap when there is
/// none). Code here stays within libc and forkguard's own modules.
#[cfg(not(test))]
#[ctor::ctor(unsafe)]
fn forkguard_init() {
    load::init();
}
