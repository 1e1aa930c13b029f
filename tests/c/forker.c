/* forker: one program, many ways to duplicate a process.
 *
 *   forker fork       fork once; both sides report errno and signal mask
 *   forker forkpty    forkpty once
 *   forker daemon     daemon(1, 1); the surviving child reports "daemon-done"
 *   forker vfork      vfork once; the child only calls _exit
 *   forker __fork     call glibc's exported __fork directly
 *   forker nested     fork; the child forks a grandchild
 *   forker threads N ITER   N threads fork ITER times each at once
 *   forker fail       install a seccomp filter that makes fork fail, then fork
 *   forker fail__fork the same with __fork (forkguard's atfork fallback)
 *
 * Everything is recorded as lines in $FGT_TRACE (see trace.h): the phase
 * calls write "prepare PID" and so on; the program itself writes
 * "main-before PID", "parent-main PID CHILD ERRNO_OK MASK_OK",
 * "child-main PID PPID ERRNO_OK MASK_OK", "reaped CHILD STATUS".
 * The exit status is 0 when the program itself saw nothing wrong. */
#define _GNU_SOURCE
#include "fork_failure.h"
#include "trace.h"

#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <pty.h>
#include <sched.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>

extern pid_t __fork(void);

/* ---- extra call-action targets ---- */

/* errno clobbered inside a phase must not reach the caller of fork. */
void fgt_clobber(void) { errno = EBADF; }

/* Records which signals are blocked while a phase runs:
 * "mask PID INT TERM USR1 CHLD" with 1 = blocked. */
void fgt_probe_mask(void)
{
    sigset_t cur;
    long v[5];
    sigprocmask(SIG_BLOCK, NULL, &cur);
    v[0] = getpid();
    v[1] = sigismember(&cur, SIGINT);
    v[2] = sigismember(&cur, SIGTERM);
    v[3] = sigismember(&cur, SIGUSR1);
    v[4] = sigismember(&cur, SIGCHLD);
    fgt_trace_nums("mask", v, 5);
}

/* A phase call that forks itself: the inner fork must pass straight
 * through (no phases, no deadlock). "inner-child PID" from the inner child,
 * "inner-parent PID CHILD STATUS" from the caller. */
void fgt_inner_fork(void)
{
    int saved = errno;
    pid_t p = fork();
    if (p == 0) {
        fgt_trace("inner-child");
        _exit(0);
    }
    int st = -1;
    if (p > 0)
        while (waitpid(p, &st, 0) < 0 && errno == EINTR) {
        }
    long v[3] = {getpid(), p, st};
    fgt_trace_nums("inner-parent", v, 3);
    errno = saved;
}

/* ---- helpers ---- */

static int reap(pid_t pid)
{
    int st;
    while (waitpid(pid, &st, 0) < 0) {
        if (errno != EINTR)
            return -1;
    }
    long v[2] = {pid, st};
    fgt_trace_nums("reaped", v, 2);
    return st;
}

/* The caller's mask before forking: SIGUSR2 blocked, nothing else. */
static void set_caller_mask(void)
{
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, SIGUSR2);
    sigprocmask(SIG_SETMASK, &s, NULL);
}

static int caller_mask_intact(void)
{
    sigset_t cur;
    sigprocmask(SIG_BLOCK, NULL, &cur);
    for (int sig = 1; sig < NSIG; sig++) {
        if (sig == 32 || sig == 33) /* glibc-internal, never in a user mask */
            continue;
        int want = sig == SIGUSR2;
        if (sigismember(&cur, sig) != want)
            return 0;
    }
    return 1;
}

/* Both sides of a fork-like call that returned pid with errno e. */
static int after_fork(pid_t pid, int e, int expect_errno)
{
    if (pid == 0) {
        long v[4] = {getpid(), getppid(), e == expect_errno, caller_mask_intact()};
        fgt_trace_nums("child-main", v, 4);
        _exit(0);
    }
    long v[4] = {getpid(), pid, e == expect_errno, caller_mask_intact()};
    fgt_trace_nums("parent-main", v, 4);
    if (pid < 0)
        return 1;
    int st = reap(pid);
    return !(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

/* ---- modes ---- */

static int do_fork(int use_dunder)
{
    set_caller_mask();
    fgt_trace("main-before");
    errno = EDOM;
    pid_t pid = use_dunder ? __fork() : fork();
    int e = errno;
    return after_fork(pid, e, EDOM);
}

static int do_forkpty(void)
{
    int master = -1;
    set_caller_mask();
    fgt_trace("main-before");
    errno = EDOM;
    pid_t pid = forkpty(&master, NULL, NULL, NULL);
    int e = errno;
    if (pid > 0) {
        /* The child writes nothing to the terminal; EOF or EIO when it is gone. */
        char buf[64];
        while (read(master, buf, sizeof buf) > 0) {
        }
    }
    return after_fork(pid, e, EDOM);
}

static int do_daemon(void)
{
    fgt_trace("main-before");
    if (daemon(1, 1) < 0) {
        fgt_trace("daemon-failed");
        return 1;
    }
    long v[2] = {getpid(), getppid()};
    fgt_trace_nums("daemon-child", v, 2);
    fgt_trace("daemon-done");
    _exit(0);
}

static int do_vfork(void)
{
    fgt_trace("main-before");
    pid_t pid = vfork();
    if (pid == 0)
        _exit(0);
    long v[2] = {getpid(), pid};
    fgt_trace_nums("parent-main", v, 2);
    if (pid < 0)
        return 1;
    int st = reap(pid);
    return !(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

static int do_nested(void)
{
    fgt_trace("main-before");
    pid_t pid = fork();
    if (pid < 0)
        return 1;
    if (pid == 0) {
        fgt_trace("child-main");
        pid_t g = fork();
        if (g < 0)
            _exit(1);
        if (g == 0) {
            fgt_trace("grandchild-main");
            _exit(0);
        }
        int st = reap(g);
        _exit(!(WIFEXITED(st) && WEXITSTATUS(st) == 0));
    }
    fgt_trace("parent-main");
    int st = reap(pid);
    return !(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

struct worker {
    pthread_t th;
    int iterations;
    int failures;
};

static pthread_barrier_t start_line;

static void *fork_loop(void *arg)
{
    struct worker *w = arg;
    pthread_barrier_wait(&start_line);
    for (int i = 0; i < w->iterations; i++) {
        pid_t pid = fork();
        if (pid == 0)
            _exit(0);
        if (pid < 0) {
            w->failures++;
            continue;
        }
        int st;
        while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
        }
        if (!(WIFEXITED(st) && WEXITSTATUS(st) == 0))
            w->failures++;
    }
    return NULL;
}

static int do_threads(int nthreads, int iterations)
{
    struct worker w[64];
    if (nthreads < 1 || nthreads > 64)
        return 2;
    pthread_barrier_init(&start_line, NULL, (unsigned)nthreads);
    for (int i = 0; i < nthreads; i++) {
        w[i].iterations = iterations;
        w[i].failures = 0;
        if (pthread_create(&w[i].th, NULL, fork_loop, &w[i]) != 0)
            return 2;
    }
    int failures = 0;
    for (int i = 0; i < nthreads; i++) {
        pthread_join(w[i].th, NULL);
        failures += w[i].failures;
    }
    printf("forks=%d failures=%d\n", nthreads * iterations, failures);
    return failures != 0;
}

/* install_fork_failure(): fork_failure.h */

static int do_fail(int use_dunder)
{
    if (install_fork_failure() != 0) {
        perror("forker: seccomp");
        return 2;
    }
    set_caller_mask();
    fgt_trace("main-before");
    errno = EDOM;
    pid_t pid = use_dunder ? __fork() : fork();
    int e = errno;
    long v[4] = {getpid(), pid, e, caller_mask_intact()};
    fgt_trace_nums("fork-failed", v, 4);
    if (pid == 0)
        _exit(0);
    if (pid > 0) {
        reap(pid);
        printf("fork unexpectedly succeeded\n");
        return 1;
    }
    printf("fork=-1 errno=%d\n", e);
    return e == EAGAIN ? 0 : 1;
}

int main(int argc, char **argv)
{
    fgt_trace_open();
    setvbuf(stdout, NULL, _IONBF, 0);
    const char *mode = argc > 1 ? argv[1] : "fork";
    if (!strcmp(mode, "fork"))
        return do_fork(0);
    if (!strcmp(mode, "__fork"))
        return do_fork(1);
    if (!strcmp(mode, "forkpty"))
        return do_forkpty();
    if (!strcmp(mode, "daemon"))
        return do_daemon();
    if (!strcmp(mode, "vfork"))
        return do_vfork();
    if (!strcmp(mode, "nested"))
        return do_nested();
    if (!strcmp(mode, "threads"))
        return do_threads(argc > 2 ? atoi(argv[2]) : 2, argc > 3 ? atoi(argv[3]) : 100);
    if (!strcmp(mode, "fail"))
        return do_fail(0);
    if (!strcmp(mode, "fail__fork"))
        return do_fail(1);
    fprintf(stderr, "forker: unknown mode %s\n", mode);
    return 2;
}
