//! Robust mutexes carry glibc's process-shared bit whether or not they are
//! shared (the kernel wakes their waiters with shared futex calls), so
//! their kind cannot tell whether one lives in memory shared with other
//! processes, where a child must not rewrite it. Prepare asks
//! `/proc/self/maps` once, only when some record names a robust mutex, and
//! the child leaves the ones in `MAP_SHARED` memory alone.
#![deny(
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use crate::os::sys;

/// Robust mutexes found in shared memory (at most this many are told).
pub const MAX: usize = 8;

/// Fill `out` with those of `addrs` that lie in a shared mapping; returns
/// how many. Parent side.
pub fn in_shared_memory(addrs: &[usize], out: &mut [usize; MAX]) -> usize {
    let fd = sys::open_bytes(b"/proc/self/maps\0", libc::O_RDONLY | libc::O_CLOEXEC, 0);
    if fd < 0 {
        return 0;
    }
    let mut n = 0;
    let mut buf = [0u8; 4096];
    let mut have = 0usize;
    while let Some(room) = buf.get_mut(have..) {
        // SAFETY: room is a writable slice of buf.
        let got = unsafe {
            sys::syscall(
                libc::SYS_read,
                [fd as usize, room.as_mut_ptr() as usize, room.len(), 0, 0, 0],
            )
        };
        if got <= 0 {
            break;
        }
        have += got as usize;
        // Whole lines only; keep the partial last one.
        let text = buf.get(..have).unwrap_or(&[]);
        let end = text.iter().rposition(|&b| b == b'\n').map_or(0, |p| p + 1);
        for line in text.get(..end).unwrap_or(&[]).split(|&b| b == b'\n') {
            if let Some((lo, hi, shared)) = parse(line) {
                for &a in addrs {
                    if shared
                        && a >= lo
                        && a < hi
                        && n < MAX
                        && !out.get(..n).is_some_and(|o| o.contains(&a))
                    {
                        if let Some(s) = out.get_mut(n) {
                            *s = a;
                            n += 1;
                        }
                    }
                }
            }
        }
        buf.copy_within(end..have, 0);
        have -= end;
    }
    sys::close(fd);
    n
}

/// `start-end perms ...`: the range and whether perms has `s`.
fn parse(line: &[u8]) -> Option<(usize, usize, bool)> {
    let mut words = line.split(|&b| b == b' ');
    let range = words.next()?;
    let perms = words.next()?;
    let mut r = range.split(|&b| b == b'-');
    let lo = hex(r.next()?)?;
    let hi = hex(r.next()?)?;
    Some((lo, hi, perms.get(3) == Some(&b's')))
}

fn hex(s: &[u8]) -> Option<usize> {
    let mut v = 0usize;
    for &c in s {
        let d = match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            _ => return None,
        };
        v = v.checked_mul(16)?.checked_add(usize::from(d))?;
    }
    Some(v)
}
