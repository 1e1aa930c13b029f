//! forkguard's config model, shared by the preload library and the command.
//!
//! Pure code: parsing, validation and planning never call libc. The library
//! turns a [`plan::Plan`] into resolved addresses and prepared buffers; the
//! command prints it.
#![forbid(unsafe_code)]

pub mod debugfile;
pub mod error;
pub mod glob;
pub mod libc_locks;
pub mod load;
pub mod plan;
pub mod python;
pub mod raw;
pub mod recipes;
pub mod signal;

pub use error::ConfigError;
pub use plan::Plan;

/// Every `FORKGUARD_*` environment variable, here and nowhere else: the
/// library reads them (`src/load/env.rs`), the command sets them.
///
/// The prefix they share (the library's one pass over the environment
/// looks only at variables that start with it).
pub const ENV_PREFIX: &str = "FORKGUARD_";
/// Environment variables of SPEC §2.
pub const ENV_CONFIG: &str = "FORKGUARD_CONFIG";
pub const ENV_LOG: &str = "FORKGUARD_LOG";
pub const ENV_DISABLE: &str = "FORKGUARD_DISABLE";
/// The system-wide config, the only one read in secure-execution mode.
pub const SYSTEM_CONFIG: &str = "/etc/forkguard/forkguard.toml";
/// Overrides `log_format` (set by `forkguard run --format`).
pub const ENV_LOG_FORMAT: &str = "FORKGUARD_LOG_FORMAT";
/// Internal: set by `forkguard audit` (ignored in secure-execution mode).
pub const ENV_AUDIT: &str = "FORKGUARD_AUDIT";
/// Internal: set by `forkguard check --program`: resolve every symbol,
/// print the result on stdout and exit before `main`.
pub const ENV_CHECK: &str = "FORKGUARD_CHECK";
/// `off`: neither read nor write the plan cache (`load::cache`). Ignored in
/// secure-execution mode, where the cache is never used.
pub const ENV_PLAN_CACHE: &str = "FORKGUARD_PLAN_CACHE";
/// The library `forkguard run`/`audit`/`check` preload (read by the
/// command only).
pub const ENV_LIB: &str = "FORKGUARD_LIB";
