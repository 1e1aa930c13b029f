//! Signal names of `parent_death_signal` ("TERM", "SIGTERM", "term", or a number).

const NAMES: &[(&str, i32)] = &[
    ("HUP", 1),
    ("INT", 2),
    ("QUIT", 3),
    ("ILL", 4),
    ("TRAP", 5),
    ("ABRT", 6),
    ("IOT", 6),
    ("BUS", 7),
    ("FPE", 8),
    ("KILL", 9),
    ("USR1", 10),
    ("SEGV", 11),
    ("USR2", 12),
    ("PIPE", 13),
    ("ALRM", 14),
    ("TERM", 15),
    ("STKFLT", 16),
    ("CHLD", 17),
    ("CONT", 18),
    ("STOP", 19),
    ("TSTP", 20),
    ("TTIN", 21),
    ("TTOU", 22),
    ("URG", 23),
    ("XCPU", 24),
    ("XFSZ", 25),
    ("VTALRM", 26),
    ("PROF", 27),
    ("WINCH", 28),
    ("IO", 29),
    ("POLL", 29),
    ("PWR", 30),
    ("SYS", 31),
];

/// The signal number for a name such as `TERM`, `SIGTERM`, `RTMIN+2` or `15`.
pub fn parse(name: &str) -> Option<i32> {
    let up = name.trim().to_ascii_uppercase();
    let bare = up.strip_prefix("SIG").unwrap_or(&up);
    if let Ok(n) = bare.parse::<i32>() {
        return (1..=64).contains(&n).then_some(n);
    }
    if let Some(rest) = bare.strip_prefix("RTMIN") {
        let off = if rest.is_empty() {
            0
        } else {
            rest.strip_prefix('+')?.parse::<i32>().ok()?
        };
        return (0..=30).contains(&off).then_some(34 + off);
    }
    if let Some(rest) = bare.strip_prefix("RTMAX") {
        let off = if rest.is_empty() {
            0
        } else {
            rest.strip_prefix('-')?.parse::<i32>().ok()?
        };
        return (0..=30).contains(&off).then_some(64 - off);
    }
    NAMES.iter().find(|(n, _)| *n == bare).map(|&(_, v)| v)
}

/// The bare name of a signal number (`SEGV`), without allocating: the
/// first of its names (`ABRT` before `IOT`). None for real-time signals.
pub fn short_name(sig: i32) -> Option<&'static str> {
    NAMES.iter().find(|&&(_, v)| v == sig).map(|&(n, _)| n)
}

/// The conventional name of a signal number, for printing plans.
pub fn name(sig: i32) -> String {
    match NAMES.iter().find(|&&(_, v)| v == sig) {
        Some((n, _)) => format!("SIG{n}"),
        None => format!("signal {sig}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_with_or_without_sig() {
        assert_eq!(parse("TERM"), Some(15));
        assert_eq!(parse("SIGTERM"), Some(15));
        assert_eq!(parse("sigkill"), Some(9));
        assert_eq!(parse("9"), Some(9));
        assert_eq!(parse("RTMIN+1"), Some(35));
        assert_eq!(parse("NOPE"), None);
        assert_eq!(parse("0"), None);
        assert_eq!(name(15), "SIGTERM");
        assert_eq!(short_name(11), Some("SEGV"));
        assert_eq!(short_name(6), Some("ABRT"));
        assert_eq!(short_name(40), None);
    }
}
