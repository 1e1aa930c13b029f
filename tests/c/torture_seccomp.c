/* torture_seccomp: a test-only preload that puts every forked child under a
 * seccomp allow-list, installed from a pthread_atfork child handler.
 *
 * Atfork child handlers run inside the real fork, before forkguard's child
 * phase (which runs after the real call returned through an interposed
 * entry point), so the filter is in force for the whole child phase. It
 * allows only what the child phase is meant to need, plus what the fixture
 * does after fork returns (write, exit); any other system call kills the
 * child with SIGSYS (SECCOMP_RET_KILL_PROCESS). futex is allowed only for
 * FUTEX_WAKE (the handshake's wake-up): a child phase must never wait;
 * ioctl only for TCGETS (isatty, to tell a tty from another character
 * device when a selector has a kind). poll and pselect6 find the open
 * descriptors (zero timeout: they never wait). */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/futex.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/ioctl.h>
#include <unistd.h>

#if defined(__x86_64__)
#define ARCH AUDIT_ARCH_X86_64
#else
#error "torture_seccomp: x86_64 only (syscall list)"
#endif

static const unsigned allowed[] = {
    SYS_close, SYS_close_range, SYS_dup3, SYS_dup2, SYS_openat, SYS_fcntl, SYS_fstat,
    SYS_newfstatat, SYS_statx, SYS_getdents64, SYS_readlinkat, SYS_readlink, SYS_getsockname,
    SYS_getpeername, SYS_getsockopt, SYS_socket, SYS_socketpair, SYS_shutdown, SYS_write,
    SYS_rt_sigprocmask, SYS_rt_sigaction, SYS_rt_sigreturn, SYS_prctl, SYS_getpid,
    SYS_getppid, SYS_gettid, SYS_setsid, SYS_getsid, SYS_kill, SYS_munmap, SYS_clock_gettime,
    SYS_epoll_create1, SYS_eventfd2, SYS_timerfd_create, SYS_inotify_init1, SYS_read,
    SYS_exit_group, SYS_exit, SYS_poll, SYS_pselect6,
};
#define N_ALLOWED (sizeof allowed / sizeof allowed[0])

static void install(void)
{
    int saved = errno;
    struct sock_filter f[24 + N_ALLOWED];
    unsigned n = 0;
    f[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
                                          offsetof(struct seccomp_data, arch));
    f[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, ARCH, 1, 0);
    f[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS);
    f[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
                                          offsetof(struct seccomp_data, nr));
    /* futex: FUTEX_WAKE only (any private/clock flag). */
    f[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_futex, 0, 5);
    f[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
                                          offsetof(struct seccomp_data, args[1]));
    f[n++] = (struct sock_filter)BPF_STMT(BPF_ALU | BPF_AND | BPF_K, FUTEX_CMD_MASK);
    f[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, FUTEX_WAKE, 0, 1);
    f[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
    f[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS);
    /* ioctl: TCGETS only. */
    f[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_ioctl, 0, 4);
    f[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
                                          offsetof(struct seccomp_data, args[1]));
    f[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, TCGETS, 0, 1);
    f[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
    f[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS);
    f[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
                                          offsetof(struct seccomp_data, nr));
    for (unsigned i = 0; i < N_ALLOWED; i++)
        f[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, allowed[i],
                                              (unsigned char)(N_ALLOWED - i), 0);
    f[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS);
    f[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
    struct sock_fprog prog = {.len = (unsigned short)n, .filter = f};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
        syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) != 0) {
        static const char msg[] = "torture_seccomp: cannot install the filter\n";
        (void)!write(2, msg, sizeof msg - 1);
        _exit(97);
    }
    errno = saved;
}

__attribute__((constructor)) static void torture_seccomp_init(void)
{
    pthread_atfork(NULL, NULL, install);
}
