//! `[[zero]]`: fill a named object with zero bytes in the child, a
//! process-local reset (like a thread-local that does not survive fork).
//!
//! The size comes from the symbol table (dynamic or static); an object
//! whose size is unknown, or that is not in writable memory, is refused
//! when the config loads (or, for a library loaded later, reported at the
//! fork).

use crate::actions::{Tally, ERR_UNRESOLVED};
use crate::os::symbols::Sym;
use forkguard_core::plan::{Loc, ZeroSpec};

pub struct ZeroAction {
    pub sym: Sym,
    /// `offset` and `size` (SPEC 8.1): zero `[offset, offset + size)` of
    /// the object; `size` 0 = the whole object from `offset`.
    offset: usize,
    size: usize,
}

pub fn build(spec: &ZeroSpec, generation: u64) -> Result<ZeroAction, (Loc, String)> {
    let sym = Sym::new(&spec.symbol);
    let loc = spec.symbol.loc;
    let offset = spec.offset.map_or(0, |o| o.bytes as usize);
    let size = spec.size.unwrap_or(0) as usize;
    if sym.resolve_for_action(generation).map_err(|m| (loc, m))? {
        if spec.offset.is_some() || size != 0 {
            let at = spec.offset.map_or(loc, |o| o.loc);
            crate::actions::lock::within(&sym, offset, size).map_err(|m| (at, m))?;
        }
        if sym.size() == 0 {
            return Err((
                loc,
                format!(
                    "{}: the symbol table gives no size for it: cannot zero it",
                    spec.symbol
                ),
            ));
        }
        if !sym.writable() {
            return Err((
                loc,
                format!(
                    "{} is not in writable memory: zero needs a variable",
                    spec.symbol
                ),
            ));
        }
    }
    Ok(ZeroAction { sym, offset, size })
}

/// Child: zero the object. Async-signal-safe (a store loop, no call).
#[link_section = ".text.fg_hot"]
pub fn child(z: &ZeroAction, i: usize, t: &mut Tally) {
    let addr = z.sym.addr();
    let whole = z.sym.size();
    // A library loaded later is checked here: the range must fit.
    let fits = z.offset.saturating_add(z.size) <= whole;
    if addr == 0 || whole == 0 || !fits || !z.sym.writable() {
        // An `optional` symbol that is missing is skipped silently.
        if addr != 0 || !z.sym.spec.optional {
            t.fail(i as u16, -1, ERR_UNRESOLVED);
        }
        return;
    }
    let p = addr.wrapping_add(z.offset) as *mut u8;
    let size = if z.size == 0 {
        whole - z.offset
    } else {
        z.size
    };
    for k in 0..size {
        // SAFETY: [p, p + size) lies in the object the symbol table
        // describes (`fits`), in writable memory of a loaded object (checked when
        // resolved). Volatile: the compiler must neither drop the stores nor
        // turn them into a memset call.
        unsafe { p.wrapping_add(k).write_volatile(0) };
    }
    t.ok();
}
