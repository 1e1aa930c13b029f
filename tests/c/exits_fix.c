/* Child exits and the program's own view of them (tests/exits.rs).
 *
 *   exits_fix MODE [N]
 *
 * Prints "child PID STATUS" (STATUS in hex, as waitpid gave it) for every
 * child it reaps itself, "zombie PID STATUS" for children it left
 * unreaped (seen with waitid(WNOWAIT)), then, when $FGT_EXITS_LOG is set,
 * waits (up to 20 s) until that log has one "exit" line per child of this
 * process, so the watcher's lines are written before the process ends.
 *
 * Modes:
 *   basic      exit 7, SIGSEGV, abort() with a core allowed, a child that
 *              lives 300 ms; reaped with waitpid(pid)
 *   handler    N children reaped by waitpid(-1, WNOHANG) in a SIGCHLD handler
 *   never      N children never reaped (zombies at the end)
 *   many       N short-lived children, each reaped at once with waitpid(pid)
 *   closeall   a first child, then close_range(3, ~0U, 0), then N more with
 *              pipes whose numbers reuse the closed ones
 *   orphan     a child that outlives this process (exits when it sees EOF
 *              on a pipe: this process is gone); prints "orphan PID"
 *   waitid     N children reaped with waitid(P_ALL, WEXITED), wait() and wait4()
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int nkids;

static void say(const char *what, pid_t pid, int status)
{
    char b[96];
    int n = snprintf(b, sizeof b, "%s %d %#x\n", what, (int)pid, status);
    if (write(1, b, n) != n)
        _exit(3);
}

static pid_t kid(int how)
{
    pid_t p = fork();
    if (p < 0) {
        perror("fork");
        exit(2);
    }
    if (p > 0) {
        nkids++;
        return p;
    }
    switch (how) {
    case 0:
        _exit(0);
    case 7:
        _exit(7);
    case SIGSEGV: {
        struct rlimit no = {0, 0};
        setrlimit(RLIMIT_CORE, &no);
        raise(SIGSEGV);
        _exit(1);
    }
    case SIGABRT: {
        struct rlimit yes = {RLIM_INFINITY, RLIM_INFINITY};
        setrlimit(RLIMIT_CORE, &yes);
        abort();
    }
    case 300:
        poll(NULL, 0, 300);
        _exit(3);
    }
    _exit(9);
}

static volatile sig_atomic_t reaped;
static int statuses[4096];
static pid_t pids[4096];

static void on_chld(int sig)
{
    int saved = errno, st;
    pid_t p;
    while ((p = waitpid(-1, &st, WNOHANG)) > 0) {
        if (reaped < 4096) {
            pids[reaped] = p;
            statuses[reaped] = st;
        }
        reaped++;
    }
    errno = saved;
}

/* Wait until the log has one exit line per child of ours. */
static void wait_for_log(void)
{
    const char *log = getenv("FGT_EXITS_LOG");
    if (!log)
        return;
    char me[32];
    snprintf(me, sizeof me, "[%d] exit ", (int)getpid());
    char jme[48];
    snprintf(jme, sizeof jme, "\"pid\":%d,\"event\":\"exit\"", (int)getpid());
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        int found = 0;
        FILE *f = fopen(log, "r");
        char line[1024];
        while (f && fgets(line, sizeof line, f))
            if (strstr(line, me) || strstr(line, jme))
                found++;
        if (f)
            fclose(f);
        if (found >= nkids)
            return;
        clock_gettime(CLOCK_MONOTONIC, &t);
        if (t.tv_sec - t0.tv_sec > 20) {
            fprintf(stderr, "only %d of %d exit lines\n", found, nkids);
            return;
        }
        poll(NULL, 0, 5);
    }
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "basic";
    int n = argc > 2 ? atoi(argv[2]) : 10;
    int st;
    if (!strcmp(mode, "basic")) {
        pid_t p[4] = {kid(7), kid(SIGSEGV), kid(SIGABRT), kid(300)};
        for (int i = 0; i < 4; i++) {
            if (waitpid(p[i], &st, 0) != p[i])
                return 2;
            say("child", p[i], st);
        }
    } else if (!strcmp(mode, "handler")) {
        struct sigaction sa = {.sa_handler = on_chld, .sa_flags = SA_RESTART};
        sigemptyset(&sa.sa_mask);
        sigaction(SIGCHLD, &sa, NULL);
        sigset_t block, old;
        sigemptyset(&block);
        sigaddset(&block, SIGCHLD);
        sigprocmask(SIG_BLOCK, &block, &old);
        for (int i = 0; i < n; i++)
            kid(i % 3 == 0 ? 7 : 0);
        while (reaped < n)
            sigsuspend(&old);
        sigprocmask(SIG_SETMASK, &old, NULL);
        for (int i = 0; i < reaped && i < 4096; i++)
            say("child", pids[i], statuses[i]);
    } else if (!strcmp(mode, "never")) {
        pid_t p[512];
        for (int i = 0; i < n && i < 512; i++)
            p[i] = kid(i % 2 ? 7 : 0);
        for (int i = 0; i < n && i < 512; i++) {
            siginfo_t si = {0};
            if (waitid(P_PID, p[i], &si, WEXITED | WNOWAIT) != 0)
                return 2;
            int s = si.si_code == CLD_EXITED ? (si.si_status & 0xff) << 8 : si.si_status;
            say("zombie", p[i], s);
        }
        wait_for_log();
        /* Still zombies, still ours: nothing was reaped behind our back. */
        for (int i = 0; i < n && i < 512; i++) {
            siginfo_t si = {0};
            if (waitid(P_PID, p[i], &si, WEXITED | WNOWAIT | WNOHANG) != 0 || si.si_pid != p[i]) {
                printf("reaped-behind %d\n", (int)p[i]);
                return 1;
            }
        }
        printf("zombies-kept %d\n", n);
        return 0;
    } else if (!strcmp(mode, "many")) {
        for (int i = 0; i < n; i++) {
            pid_t p = kid(i % 5 == 0 ? 7 : 0);
            if (waitpid(p, &st, 0) != p)
                return 2;
            say("child", p, st);
        }
    } else if (!strcmp(mode, "waitid")) {
        for (int i = 0; i < n; i++) {
            pid_t p = kid(i % 2 ? 7 : 0);
            if (i % 3 == 0) {
                siginfo_t si = {0};
                if (waitid(P_ALL, 0, &si, WEXITED) != 0)
                    return 2;
                say("child", si.si_pid, si.si_code == CLD_EXITED ? (si.si_status & 0xff) << 8 : si.si_status);
            } else if (i % 3 == 1) {
                pid_t r = wait(&st);
                say("child", r, st);
            } else {
                struct rusage ru;
                pid_t r = wait4(p, &st, 0, &ru);
                say("child", r, st);
            }
        }
    } else if (!strcmp(mode, "closeall")) {
        pid_t p = kid(0);
        waitpid(p, &st, 0);
        say("child", p, st);
        syscall(SYS_close_range, 3, ~0U, 0);
        for (int i = 0; i < n; i++) {
            int fds[2];
            if (pipe(fds))
                return 2;
            p = kid(7);
            if (write(fds[1], "x", 1) != 1)
                return 2;
            char c;
            if (read(fds[0], &c, 1) != 1)
                return 2;
            close(fds[0]);
            close(fds[1]);
            waitpid(p, &st, 0);
            say("child", p, st);
        }
        printf("pipes-ok\n");
    } else if (!strcmp(mode, "orphan")) {
        int fds[2];
        if (pipe(fds))
            return 2;
        pid_t p = fork();
        if (p == 0) {
            close(fds[1]);
            char c;
            while (read(fds[0], &c, 1) > 0)
                ;
            _exit(0);
        }
        close(fds[0]);
        printf("orphan %d\n", (int)p);
        return 0;
    } else {
        return 2;
    }
    wait_for_log();
    return 0;
}
