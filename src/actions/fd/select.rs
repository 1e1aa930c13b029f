//! Selectors: which open descriptors an fd action applies to (by number,
//! kind, path, peer or local address). Async-signal-safe.

use crate::os::fdinfo;
use crate::os::sys;
use forkguard_core::glob;
use forkguard_core::plan::FdKind;
use libc::c_int;
use std::net::IpAddr;

/// A selector, prepared for the child.
pub(super) struct Sel {
    /// `fd` and `fds`, sorted, without duplicates; empty = not by number.
    pub(super) fds: Vec<c_int>,
    pub(super) from: Option<c_int>,
    /// Sorted, without duplicates.
    pub(super) except: Vec<c_int>,
    pub(super) kind: Option<FdKind>,
    pub(super) path: Option<Vec<u8>>,
    pub(super) peer: Option<Addr>,
    pub(super) local: Option<Addr>,
    /// Only `from` (and `except`): `close_range` can do the work.
    pub(super) pure_range: bool,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Host {
    Any,
    V4([u8; 4]),
    V6([u8; 16]),
}

/// `host:port` in the byte order the kernel reports; an IPv4-mapped IPv6
/// address is kept as IPv4, so `127.0.0.1` matches both socket families.
#[derive(Clone, Copy)]
pub(super) struct Addr {
    pub(super) host: Host,
    pub(super) port: u16,
}

pub(super) fn addr(host: Option<IpAddr>, port: u16) -> Addr {
    let host = match host {
        None => Host::Any,
        Some(IpAddr::V4(a)) => Host::V4(a.octets()),
        Some(IpAddr::V6(a)) => match a.to_ipv4_mapped() {
            Some(v4) => Host::V4(v4.octets()),
            None => Host::V6(a.octets()),
        },
    };
    Addr { host, port }
}

/// Calls `each(fd)` for every open descriptor the selector's numbers allow
/// (`fds` directly; otherwise see `fdinfo::for_each_fd`, or, where that
/// fails (/proc missing), by probing each number below the descriptor
/// limit).
/// Async-signal-safe.
#[link_section = ".text.fg_hot"]
pub(super) fn visit(s: &Sel, mut each: impl FnMut(c_int)) {
    if !s.fds.is_empty() {
        for &fd in &s.fds {
            if fdinfo::is_open(fd) {
                each(fd);
            }
        }
        return;
    }
    let from = s.from.unwrap_or(0).max(0);
    if fdinfo::for_each_fd(from, &mut each) {
        return;
    }
    let Ok(lim) = sys::nofile_limit() else { return };
    let end = c_int::try_from(lim).unwrap_or(c_int::MAX);
    for fd in from..end {
        if fdinfo::is_open(fd) {
            each(fd);
        }
    }
}

/// By number only: `fds` if given (0-2 only then), `from`, `except`.
#[link_section = ".text.fg_hot"]
pub(super) fn number_selects(s: &Sel, fd: c_int) -> bool {
    if s.fds.is_empty() {
        if (0..=2).contains(&fd) {
            return false;
        }
    } else if s.fds.binary_search(&fd).is_err() {
        return false;
    }
    s.from.is_none_or(|from| fd >= from) && s.except.binary_search(&fd).is_err()
}

/// Does the selector match this open descriptor? `Some(kind)` when it does
/// (the kind is known when the selector needed to classify it). `link`
/// is scratch space for the `/proc/self/fd/N` target. Async-signal-safe.
#[link_section = ".text.fg_hot"]
pub(super) fn selects(s: &Sel, fd: c_int, link: &mut [u8]) -> Option<Option<FdKind>> {
    if !number_selects(s, fd) {
        return None;
    }
    if s.kind.is_none() && s.path.is_none() && s.peer.is_none() && s.local.is_none() {
        return Some(None);
    }
    // A `listen` or `socket` kind, a peer or a local address: only a
    // socket can match, so nothing else needs telling apart.
    let sockets_only = s.path.is_none()
        && (matches!(s.kind, Some(FdKind::Listen | FdKind::Socket))
            || s.peer.is_some()
            || s.local.is_some());
    let (kind, len) = fdinfo::classify_with(fd, link, s.path.is_some(), sockets_only)?;
    let socket = matches!(kind, FdKind::Socket | FdKind::Listen);
    // `socket` is every socket, listening ones included; `listen` only those.
    if let Some(want) = s.kind {
        if want != kind && !(want == FdKind::Socket && socket) {
            return None;
        }
    }
    if let Some(pat) = &s.path {
        let target = link.get(..len).unwrap_or(&[]);
        if !(glob::matches(pat, target) || socket && unix_path_matches(fd, pat)) {
            return None;
        }
    }
    if let Some(want) = &s.peer {
        if !socket || !addr_matches(fd, true, want) {
            return None;
        }
    }
    if let Some(want) = &s.local {
        if !socket || !addr_matches(fd, false, want) {
            return None;
        }
    }
    Some(Some(kind))
}

/// Does the local or peer path of a unix socket match `pat`? An abstract
/// name is matched as `@name`. Async-signal-safe.
pub(super) fn unix_path_matches(fd: c_int, pat: &[u8]) -> bool {
    for peer in [false, true] {
        let mut sa = [0u8; 128];
        let len = fdinfo::sock_name(fd, peer, &mut sa);
        if len <= 2 || family(&sa) != libc::AF_UNIX {
            continue;
        }
        let raw = sa.get(2..len).unwrap_or(&[]);
        let mut name = [0u8; 128];
        let n = match raw.split_first() {
            // Abstract: a leading NUL, then bytes (NULs included) up to len.
            Some((0, rest)) => {
                let mut n = 0;
                for (d, s) in name.iter_mut().zip(core::iter::once(&b'@').chain(rest)) {
                    *d = *s;
                    n += 1;
                }
                n
            }
            _ => {
                let end = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
                for (d, s) in name.iter_mut().zip(raw.get(..end).unwrap_or(&[])) {
                    *d = *s;
                }
                end
            }
        };
        if glob::matches(pat, name.get(..n).unwrap_or(&[])) {
            return true;
        }
    }
    false
}

pub(super) fn family(sa: &[u8; 128]) -> c_int {
    let [a, b, ..] = *sa;
    c_int::from(u16::from_ne_bytes([a, b]))
}

/// Does the socket's local (or peer) TCP/UDP address match? Async-signal-safe.
pub(super) fn addr_matches(fd: c_int, peer: bool, want: &Addr) -> bool {
    let mut sa = [0u8; 128];
    let len = fdinfo::sock_name(fd, peer, &mut sa);
    sockaddr_matches(&sa, len, want)
}

/// Does a socket address (`len` bytes of a `sockaddr_in` or `sockaddr_in6`
/// in `sa`; 0: none) match `want`? Async-signal-safe.
#[inline(always)]
fn sockaddr_matches(sa: &[u8; 128], len: usize, want: &Addr) -> bool {
    let b = |r: core::ops::Range<usize>| sa.get(r).filter(|_| len > 0);
    // sockaddr_in: family, port (big-endian) at 2, address at 4.
    // sockaddr_in6: family, port at 2, flowinfo at 4, address at 8.
    let (host, port) = match (family(sa), b(2..4)) {
        (libc::AF_INET, Some(&[p0, p1])) => match b(4..8) {
            Some(&[a, b2, c, d]) => (Host::V4([a, b2, c, d]), u16::from_be_bytes([p0, p1])),
            _ => return false,
        },
        (libc::AF_INET6, Some(&[p0, p1])) => {
            let mut a = [0u8; 16];
            match b(8..24) {
                Some(s) => a.copy_from_slice(s),
                None => return false,
            }
            let ip = std::net::Ipv6Addr::from(a);
            let host = match ip.to_ipv4_mapped() {
                Some(v4) => Host::V4(v4.octets()),
                None => Host::V6(a),
            };
            (host, u16::from_be_bytes([p0, p1]))
        }
        _ => return false,
    };
    port == want.port && (want.host == Host::Any || want.host == host)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn v4(ip: [u8; 4], port: u16) -> ([u8; 128], usize) {
        let mut sa = [0u8; 128];
        sa[..2].copy_from_slice(&(libc::AF_INET as u16).to_ne_bytes());
        sa[2..4].copy_from_slice(&port.to_be_bytes());
        sa[4..8].copy_from_slice(&ip);
        (sa, 16)
    }

    fn v6(ip: Ipv6Addr, port: u16) -> ([u8; 128], usize) {
        let mut sa = [0u8; 128];
        sa[..2].copy_from_slice(&(libc::AF_INET6 as u16).to_ne_bytes());
        sa[2..4].copy_from_slice(&port.to_be_bytes());
        sa[8..24].copy_from_slice(&ip.octets());
        (sa, 28)
    }

    #[test]
    fn ipv4_host_and_port() {
        let want = addr(Some(Ipv4Addr::new(127, 0, 0, 1).into()), 6379);
        let (sa, len) = v4([127, 0, 0, 1], 6379);
        assert!(sockaddr_matches(&sa, len, &want));
        let (sa, len) = v4([127, 0, 0, 2], 6379);
        assert!(!sockaddr_matches(&sa, len, &want));
        let (sa, len) = v4([127, 0, 0, 1], 6380);
        assert!(!sockaddr_matches(&sa, len, &want));
        // No address (not connected): never a match.
        let (sa, _) = v4([127, 0, 0, 1], 6379);
        assert!(!sockaddr_matches(&sa, 0, &want));
    }

    #[test]
    fn any_host_matches_the_port_only() {
        let want = addr(None, 5432);
        let (sa, len) = v4([10, 1, 2, 3], 5432);
        assert!(sockaddr_matches(&sa, len, &want));
        let (sa, len) = v6(Ipv6Addr::LOCALHOST, 5432);
        assert!(sockaddr_matches(&sa, len, &want));
        let (sa, len) = v6(Ipv6Addr::LOCALHOST, 5433);
        assert!(!sockaddr_matches(&sa, len, &want));
    }

    #[test]
    fn ipv4_mapped_ipv6_matches_ipv4_both_ways() {
        let mapped = Ipv4Addr::new(127, 0, 0, 1).to_ipv6_mapped();
        let want = addr(Some(Ipv4Addr::new(127, 0, 0, 1).into()), 80);
        let (sa, len) = v6(mapped, 80);
        assert!(sockaddr_matches(&sa, len, &want));
        let want = addr(Some(mapped.into()), 80);
        let (sa, len) = v4([127, 0, 0, 1], 80);
        assert!(sockaddr_matches(&sa, len, &want));
    }

    #[test]
    fn ipv6_host() {
        let want = addr(Some(Ipv6Addr::LOCALHOST.into()), 443);
        let (sa, len) = v6(Ipv6Addr::LOCALHOST, 443);
        assert!(sockaddr_matches(&sa, len, &want));
        let (sa, len) = v4([127, 0, 0, 1], 443);
        assert!(!sockaddr_matches(&sa, len, &want));
    }

    #[test]
    fn numbers_leave_0_to_2_alone_unless_named() {
        let sel = |fds: Vec<c_int>, from: Option<c_int>, except: Vec<c_int>| Sel {
            fds,
            from,
            except,
            kind: None,
            path: None,
            peer: None,
            local: None,
            pure_range: false,
        };
        let all = sel(vec![], None, vec![]);
        assert!(!number_selects(&all, 2));
        assert!(number_selects(&all, 3));
        let named = sel(vec![1, 5], None, vec![]);
        assert!(number_selects(&named, 1));
        assert!(!number_selects(&named, 4));
        let range = sel(vec![], Some(5), vec![7]);
        assert!(!number_selects(&range, 4));
        assert!(number_selects(&range, 6));
        assert!(!number_selects(&range, 7));
    }
}
