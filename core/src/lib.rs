//! forkguard's config model, shared by the preload library and the command.
//!
//! Pure code: parsing, validation and planning never call libc. The library
//! turns a [`plan::Plan`] into resolved addresses and prepared buffers; the
//! command prints it.

pub mod error;
pub mod glob;
pub mod load;
pub mod plan;
pub mod raw;
pub mod signal;

pub use error::ConfigError;
pub use plan::Plan;

/// Environment variables of SPEC §2.
pub const ENV_CONFIG: &str = "FORKGUARD_CONFIG";
pub const ENV_LOG: &str = "FORKGUARD_LOG";
pub const ENV_DISABLE: &str = "FORKGUARD_DISABLE";
/// The system-wide config, the only one read in secure-execution mode.
pub const SYSTEM_CONFIG: &str = "/etc/forkguard/forkguard.toml";
/// Overrides `log_format` (set by `forkguard run --format`).
pub const ENV_LOG_FORMAT: &str = "FORKGUARD_LOG_FORMAT";
