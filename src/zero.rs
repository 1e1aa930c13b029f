//! `[[zero]]`: fill a named object with zero bytes in the child.
//!
//! Not implemented in this build: `build` refuses every zero action.

use crate::engine::Tally;
use crate::symbols::Sym;
use forkguard_core::plan::{Loc, ZeroSpec};

pub struct ZeroAction {
    pub sym: Sym,
    pub size: usize,
}

pub fn build(spec: &ZeroSpec, _generation: u64) -> Result<ZeroAction, (Loc, String)> {
    Err((spec.symbol.loc, "[[zero]] actions are not supported by this build of forkguard".into()))
}

/// Child: zero the object. Async-signal-safe.
pub fn child(_z: &ZeroAction, _i: usize, _t: &mut Tally) {}
