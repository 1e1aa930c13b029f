//! Every symbol the library exports, written alike: each finds its real
//! target with `os::symbols::next` (the one `RTLD_NEXT` look-up; redhook's
//! `hook!` for `forkpty` and `daemon`), and each is a thin shell around
//! `phases` or an action's bookkeeping. New exported symbols go here.
//!
//! - `fork.rs`: `fork`, `forkpty`, `daemon`, `vfork`;
//! - `atfork.rs`: the `pthread_atfork` fallback's handlers;
//! - `destroy.rs`: `pthread_mutex_destroy`, `pthread_rwlock_destroy`
//!   (wait while a fork with `held_locks = "acquire"` holds that lock);
//! - `held.rs`: the pthread lock and semaphore entry points (`held_locks`,
//!   audit, rwlock actions): one indirect jump each.
//! - `spawn/`: `posix_spawn`, `posix_spawnp`, `system`, `popen`, `pclose`
//!   and a vfork child's `exec*` for `spawn = true` (SPEC 8.5);
//! - `wait.rs`: the wait family, noting reaped statuses for `log_exits`.
//!
//! Compiled out of unit tests: a test binary must not interpose its own
//! `fork` or lock calls.
//!
//! `fork` returns through here after the real fork, and the atfork child
//! handler runs in the child: no panic site of their own (denied for the
//! folder, in `lib.rs`).

pub mod atfork;
pub mod destroy;
pub mod fork;
pub mod held;
pub mod spawn;
pub mod wait;
