//! `[[lock]]`: named locks made safe across fork (SPEC §3, §4).
//!
//! Not implemented in this build: `build` refuses every lock action with a
//! config error, so the phase functions below are never reached.

use crate::engine::Tally;
use crate::symbols::Sym;
use forkguard_core::plan::{Loc, LockSpec, MAX_ACTIONS};
use libc::c_int;

pub struct LockAction {
    pub sym: Sym,
    pub spec: LockSpec,
}

pub fn build(spec: &LockSpec, _generation: u64) -> Result<LockAction, (Loc, String)> {
    Err((spec.symbol.loc, "[[lock]] actions are not supported by this build of forkguard".into()))
}

/// Prepare: take the lock. Parent side.
pub fn prepare(_l: &LockAction, _i: usize, _scratch: &mut [u8; MAX_ACTIONS], _t: &mut Tally) -> Result<(), c_int> {
    Ok(())
}

/// Parent: release what prepare took.
pub fn parent(_l: &LockAction, _i: usize, _scratch: &[u8; MAX_ACTIONS], _t: &mut Tally) {}

/// Child: make the lock usable. Async-signal-safe.
pub fn child(_l: &LockAction, _i: usize, _scratch: &[u8; MAX_ACTIONS], _t: &mut Tally) {}

/// Audit: append to `line` which configured locks are held now (and by whom,
/// where the lock records it). Parent side, in prepare.
pub fn audit(_rt: &crate::runtime::Runtime, _line: &mut crate::buf::Buf<1024>) {}
