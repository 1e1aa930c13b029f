//! The functions a blocked thread is in, without ptrace: words on its stack
//! (from the stack pointer its `syscall` file gives) that point just after
//! a `call` instruction in an executable mapping are taken as return
//! addresses. This is a scan, not an unwind: a stale return address left
//! on the stack can appear, so callers use the first frames for naming
//! what the thread waits on and print the list as "called from".

use super::procfs::{Mapping, Process};

/// How far above the stack pointer to look.
const SCAN_BYTES: usize = 16 * 1024;
/// At most this many frames.
pub const MAX_FRAMES: usize = 16;

/// Return addresses found above `sp`, innermost first; `pc` (where the
/// thread stopped) first of all.
pub fn frames(proc: &Process, maps: &[Mapping], pc: u64, sp: u64) -> Vec<u64> {
    let mut out = vec![pc];
    let Some(stack) = maps.iter().find(|m| m.contains(sp)) else {
        return out;
    };
    let len = ((stack.end - sp) as usize).min(SCAN_BYTES);
    let Ok(bytes) = proc.read(sp, len) else {
        return out;
    };
    for w in bytes.chunks_exact(8) {
        let v = u64::from_le_bytes(w.try_into().unwrap_or([0; 8]));
        let Some(m) = maps.iter().find(|m| m.contains(v)) else {
            continue;
        };
        if !m.exec() || !m.is_file() || v < m.start + 7 {
            continue;
        }
        let Ok(code) = proc.read(v - 7, 7) else {
            continue;
        };
        if after_call(&code) {
            out.push(v);
            if out.len() >= MAX_FRAMES {
                break;
            }
        }
    }
    out
}

/// The 7 bytes before a return address end with an x86-64 `call`.
pub fn after_call(b: &[u8]) -> bool {
    let Ok(b): Result<[u8; 7], _> = b.try_into() else {
        return false;
    };
    let modrm_is_call = |m: u8| (m >> 3) & 7 == 2;
    // call rel32: E8 xx xx xx xx
    b[2] == 0xe8
        // call [rip+disp32] / call [reg+disp32]: FF /2 with mod 00 rm 101, or mod 10
        || (b[1] == 0xff && modrm_is_call(b[2]) && (b[2] & 0xc7 == 0x05 || b[2] >> 6 == 2))
        // call [reg+disp8]: FF /2 mod 01
        || (b[4] == 0xff && modrm_is_call(b[5]) && b[5] >> 6 == 1)
        // call reg / call [reg]: FF /2 mod 11 or mod 00
        || (b[5] == 0xff && modrm_is_call(b[6]) && (b[6] >> 6 == 3 || b[6] >> 6 == 0))
}

#[cfg(test)]
mod tests {
    use super::after_call;

    #[test]
    fn call_forms() {
        // call rel32
        assert!(after_call(&[0, 0, 0xe8, 1, 2, 3, 4]));
        // call *0x1234(%rip)
        assert!(after_call(&[0, 0xff, 0x15, 1, 2, 3, 4]));
        // call *%rax, call *%r11 (41 ff d3)
        assert!(after_call(&[0, 0, 0, 0, 0, 0xff, 0xd0]));
        assert!(after_call(&[0, 0, 0, 0, 0x41, 0xff, 0xd3]));
        // call *0x8(%rax)
        assert!(after_call(&[0, 0, 0, 0, 0xff, 0x50, 0x08]));
        // not calls: jmp *%rax (ff e0), plain data
        assert!(!after_call(&[0, 0, 0, 0, 0, 0xff, 0xe0]));
        assert!(!after_call(&[1, 2, 3, 4, 5, 6, 7]));
        assert!(!after_call(&[0xe8]));
    }
}
