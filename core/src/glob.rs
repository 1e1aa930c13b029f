//! A small shell-style glob (`*`, `?`, `[abc]`, `[a-z]`, `[!x]`, `\x`).
//!
//! It works on bytes, never allocates and never panics, so the preload
//! library can run it in the child after fork (fd `path` selectors).
//! This is async-signal-safe.

/// Does `pat` match the whole of `s`? `*` also matches `/`.
pub fn matches(pat: &[u8], s: &[u8]) -> bool {
    let (mut p, mut i) = (0usize, 0usize);
    // Where to resume after the last `*`: (pattern index after it, text index).
    let mut star: Option<(usize, usize)> = None;
    while i < s.len() {
        let c = s.get(i).copied().unwrap_or(0);
        match pat.get(p).copied() {
            Some(b'*') => {
                star = Some((p + 1, i));
                p += 1;
                continue;
            }
            Some(b'?') => {
                p += 1;
                i += 1;
                continue;
            }
            Some(b'[') => {
                if let Some((ok, next)) = class(pat, p, c) {
                    if ok {
                        p = next;
                        i += 1;
                        continue;
                    }
                } else if c == b'[' {
                    p += 1;
                    i += 1;
                    continue;
                }
            }
            Some(b'\\') if p + 1 < pat.len() && pat.get(p + 1).copied() == Some(c) => {
                p += 2;
                i += 1;
                continue;
            }
            // An escape that does not match: not a literal backslash either.
            Some(b'\\') if p + 1 < pat.len() => {}
            Some(pc) if pc == c => {
                p += 1;
                i += 1;
                continue;
            }
            _ => {}
        }
        match star {
            Some((sp, si)) => {
                p = sp;
                i = si + 1;
                star = Some((sp, si + 1));
            }
            None => return false,
        }
    }
    while pat.get(p).copied() == Some(b'*') {
        p += 1;
    }
    p == pat.len()
}

/// Match byte `c` against the bracket class starting at `pat[p] == '['`.
/// Returns (matched, index after the class), or None if the class is unclosed.
fn class(pat: &[u8], p: usize, c: u8) -> Option<(bool, usize)> {
    let mut j = p + 1;
    let negate = matches!(pat.get(j), Some(b'!') | Some(b'^'));
    if negate {
        j += 1;
    }
    let mut found = false;
    let mut first = true;
    loop {
        let lo = *pat.get(j)?;
        if lo == b']' && !first {
            return Some((found != negate, j + 1));
        }
        first = false;
        if pat.get(j + 1) == Some(&b'-') && pat.get(j + 2).is_some_and(|&h| h != b']') {
            let hi = *pat.get(j + 2)?;
            if lo <= c && c <= hi {
                found = true;
            }
            j += 3;
        } else {
            if lo == c {
                found = true;
            }
            j += 1;
        }
    }
}

/// Is this a syntactically usable pattern? (An unclosed `[` is taken literally.)
pub fn has_magic(pat: &str) -> bool {
    pat.bytes().any(|b| matches!(b, b'*' | b'?' | b'['))
}

#[cfg(test)]
mod tests {
    use super::matches as m;

    #[test]
    fn literals_and_wildcards() {
        assert!(m(b"myapp", b"myapp"));
        assert!(!m(b"myapp", b"myapp2"));
        assert!(m(b"python3*", b"python3.11"));
        assert!(m(b"python3*", b"python3"));
        assert!(!m(b"python3*", b"python"));
        assert!(m(b"*", b""));
        assert!(m(b"a?c", b"abc"));
        assert!(!m(b"a?c", b"ac"));
        assert!(m(b"/var/log/*.log", b"/var/log/app.log"));
        assert!(m(b"*a*b*c", b"xxaxxbxxbc"));
        assert!(!m(b"*a*b*c", b"xxaxxbxxb"));
    }

    #[test]
    fn classes() {
        assert!(m(b"[abc]x", b"bx"));
        assert!(!m(b"[abc]x", b"dx"));
        assert!(m(b"[a-z]1", b"q1"));
        assert!(m(b"[!a-z]1", b"Q1"));
        assert!(!m(b"[!a-z]1", b"q1"));
        assert!(m(b"[]]", b"]"));
        assert!(m(b"a[", b"a["));
        assert!(m(b"\\*", b"*"));
        assert!(!m(b"\\*", b"x"));
    }
}
