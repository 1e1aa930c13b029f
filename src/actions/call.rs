//! `[[call]]`: call a `void f(void)` the config names, in its phase, or a
//! function of up to six integer arguments with `args` (SPEC 8.8).

use crate::actions::{Tally, ERR_UNRESOLVED};
use crate::os::symbols::Sym;

/// Run a `void f(void)`, or with `args` a function of up to six integer
/// arguments; an unresolved symbol is a failure, not a crash.
/// Async-signal-safe as far as forkguard is concerned (the called function
/// is the config author's responsibility).
/// An `optional` symbol that is missing is skipped without a word: the
/// config said it may be absent.
///
/// Every call passes six integer arguments (zeros after `args`): under the
/// C calling conventions forkguard builds for (x86-64 System V, AArch64
/// AAPCS64) the first six integer arguments travel in registers the caller
/// may set freely, so a function that takes fewer, or none, ignores the
/// rest. No stack argument is ever passed, and nothing is formatted or
/// allocated. Not for variadic functions.
pub fn call(sym: &Sym, args: &[i64; 6], i: usize, t: &mut Tally) {
    let addr = sym.addr();
    if addr == 0 {
        if !sym.spec.optional {
            t.fail(i as u16, -1, ERR_UNRESOLVED);
        }
        return;
    }
    type Six = extern "C" fn(i64, i64, i64, i64, i64, i64);
    // SAFETY: addr was returned by dlsym for a symbol the config declares as
    // a function of at most six integer arguments (none without `args`);
    // refresh() drops addresses of unloaded objects. See above for why the
    // unused registers are harmless.
    let f: Six = unsafe { core::mem::transmute::<usize, Six>(addr) };
    let [a, b, c, d, e, g] = *args;
    f(a, b, c, d, e, g);
    t.ok();
}
