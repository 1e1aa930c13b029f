//! `[[call]]`: call a `void f(void)` the config names, in its phase.

use crate::actions::{Tally, ERR_UNRESOLVED};
use crate::os::symbols::Sym;

/// Run a `void f(void)`; an unresolved symbol is a failure, not a crash.
/// Async-signal-safe as far as forkguard is concerned (the called function
/// is the config author's responsibility).
/// An `optional` symbol that is missing is skipped without a word: the
/// config said it may be absent.
pub fn call(sym: &Sym, i: usize, t: &mut Tally) {
    let addr = sym.addr();
    if addr == 0 {
        if !sym.spec.optional {
            t.fail(i as u16, -1, ERR_UNRESOLVED);
        }
        return;
    }
    // SAFETY: addr was returned by dlsym for a symbol the config declares as
    // `void f(void)`; refresh() drops addresses of unloaded objects.
    let f: extern "C" fn() = unsafe { core::mem::transmute::<usize, extern "C" fn()>(addr) };
    f();
    t.ok();
}
