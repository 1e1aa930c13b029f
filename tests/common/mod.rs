//! Shared helpers for forkguard's integration tests.
//!
//! The root package is a cdylib, so these tests cannot link it: they load
//! the real `libforkguard.so` into real processes (C fixtures compiled from
//! `tests/c`, Python, bash) and read what those processes report.
//!
//! Every process is started in its own process group and waited for with a
//! deadline; on timeout the whole group is killed and the test fails, so a
//! deadlock is a failure, never a hang.
//!
//! One job per file; everything is re-exported here, so tests write
//! `common::run` or `use common::*`:
//!
//! - `paths.rs`: the repository, the target dir, the library and CLI under test
//! - `fixtures.rs`: the C fixtures in `tests/c`, compiled once per test binary
//! - `scratch.rs`: per-test scratch directories, files with an exact mode, and
//!   copies of what another user must run or read
//! - `process.rs`: running a process with a deadline, guarded commands,
//!   running as `nobody`
//! - `trace.rs`: the fixtures' trace files (`tests/c/trace.h`)
//! - `log.rs`: forkguard's text log (SPEC §5)
//! - `json.rs`: forkguard's JSON log lines (serde_json)
//! - `config.rs`: config text builders
//! - `host.rs`: facts about the machine (root, python3, the clock) and
//!   `FGT_TORTURE_SCALE`

// Each test file uses a part of these helpers: the rest is dead code, and
// re-exports it never names are unused imports, in that test binary.
#![allow(dead_code, unused_imports)]

mod config;
mod fixtures;
mod host;
mod json;
mod log;
mod paths;
mod process;
mod scratch;
mod trace;

pub use config::*;
pub use fixtures::*;
pub use host::*;
pub use json::*;
pub use log::*;
pub use paths::*;
pub use process::*;
pub use scratch::*;
pub use trace::*;
