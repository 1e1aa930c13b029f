//! `[[fd]]`: reset what the child inherits (SPEC §3 selectors and actions).
//!
//! Not implemented in this build: `build` refuses every fd action.

use crate::engine::Tally;
use crate::runtime::Runtime;
use forkguard_core::plan::{FdSpec, Loc};

pub struct FdAction {
    pub spec: FdSpec,
}

pub fn build(_spec: &FdSpec, loc: Loc) -> Result<FdAction, (Loc, String)> {
    Err((loc, "[[fd]] actions are not supported by this build of forkguard".into()))
}

/// The action's description in reports, without the fd number.
pub fn label(f: &FdAction) -> String {
    f.spec.action.name().to_string()
}

/// Child: apply every fd action. Async-signal-safe.
pub fn child(_rt: &Runtime, _t: &mut Tally) {}

/// Audit: append to `line` which fd actions would match which descriptors.
/// Parent side, in prepare.
pub fn audit(_rt: &Runtime, _line: &mut crate::buf::Buf<1024>) {}
