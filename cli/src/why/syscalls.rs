//! Names of the x86-64 system calls a blocked thread is commonly found in.

const NAMES: &[(u64, &str)] = &[
    (0, "read"),
    (1, "write"),
    (7, "poll"),
    (17, "pread64"),
    (18, "pwrite64"),
    (19, "readv"),
    (20, "writev"),
    (23, "select"),
    (24, "sched_yield"),
    (34, "pause"),
    (35, "nanosleep"),
    (42, "connect"),
    (43, "accept"),
    (44, "sendto"),
    (45, "recvfrom"),
    (46, "sendmsg"),
    (47, "recvmsg"),
    (61, "wait4"),
    (62, "kill"),
    (72, "fcntl"),
    (73, "flock"),
    (74, "fsync"),
    (130, "rt_sigsuspend"),
    (128, "rt_sigtimedwait"),
    (202, "futex"),
    (230, "clock_nanosleep"),
    (232, "epoll_wait"),
    (247, "waitid"),
    (270, "pselect6"),
    (271, "ppoll"),
    (281, "epoll_pwait"),
    (288, "accept4"),
    (299, "recvmmsg"),
    (307, "sendmmsg"),
    (426, "io_uring_enter"),
    (441, "epoll_pwait2"),
    (449, "futex_waitv"),
];

/// `read`, `epoll_wait`, or `syscall 123`.
pub fn name(nr: u64) -> String {
    NAMES
        .iter()
        .find(|&&(n, _)| n == nr)
        .map_or_else(|| format!("syscall {nr}"), |&(_, s)| s.to_string())
}

#[cfg(test)]
mod tests {
    #[test]
    fn names() {
        assert_eq!(super::name(0), "read");
        assert_eq!(super::name(232), "epoll_wait");
        assert_eq!(super::name(9999), "syscall 9999");
    }
}
