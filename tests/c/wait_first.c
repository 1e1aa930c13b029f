/* wait_first: the wait family before and after the first fork.
 *
 * Children made with a raw clone system call (no fork(), so forkguard has
 * bound nothing yet) are reaped by waitpid, wait, wait3, wait4 and waitid,
 * the first one from a SIGCHLD handler; then one fork() and the same calls
 * again. Each call's result, status and errno are checked against what the
 * kernel must give. On stderr, "-- first fork" marks the first fork (a test
 * runs this with LD_DEBUG=symbols to see when the wait functions are looked
 * up). Exits 0 and prints "ok" when every check passed; else the first
 * failed check and exit 1.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static void fail(const char *what, long got) {
    printf("FAIL %s (got %ld, errno %d)\n", what, got, errno);
    exit(1);
}

static pid_t child(int code, int use_fork) {
    pid_t p = use_fork ? fork() : (pid_t)syscall(SYS_clone, SIGCHLD, 0, 0, 0, 0);
    if (p < 0) fail("clone/fork", p);
    if (p == 0) _exit(code);
    return p;
}

static volatile sig_atomic_t handler_pid, handler_status = -1;

static void on_chld(int sig) {
    int st;
    (void)sig;
    pid_t p = waitpid(-1, &st, WNOHANG);
    if (p > 0) {
        handler_pid = p;
        handler_status = WEXITSTATUS(st);
    }
}

static void round_of(int use_fork) {
    int st;
    struct rusage ru;
    siginfo_t si;
    pid_t p;

    p = child(11, use_fork);
    if (waitpid(p, &st, 0) != p || !WIFEXITED(st) || WEXITSTATUS(st) != 11) fail("waitpid", st);
    p = child(12, use_fork);
    if (wait(&st) != p || WEXITSTATUS(st) != 12) fail("wait", st);
    p = child(13, use_fork);
    if (wait3(&st, 0, &ru) != p || WEXITSTATUS(st) != 13) fail("wait3", st);
    p = child(14, use_fork);
    if (wait4(p, &st, 0, &ru) != p || WEXITSTATUS(st) != 14) fail("wait4", st);
    p = child(15, use_fork);
    memset(&si, 0, sizeof si);
    if (waitid(P_PID, p, &si, WEXITED) != 0 || si.si_pid != p || si.si_status != 15) fail("waitid", si.si_status);
    p = child(16, use_fork);
    if (waitpid(p, NULL, 0) != p) fail("waitpid NULL status", 0);
    errno = 0;
    if (waitpid(-1, &st, WNOHANG) != -1 || errno != ECHILD) fail("waitpid ECHILD", 0);
    errno = 0;
    if (wait(NULL) != -1 || errno != ECHILD) fail("wait ECHILD", 0);
    errno = 0;
    if (waitid(P_ALL, 0, &si, WEXITED) != -1 || errno != ECHILD) fail("waitid ECHILD", 0);
}

int main(void) {
    sigset_t block, old;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_chld;
    sigaction(SIGCHLD, &sa, NULL);
    /* The first wait of the process: in the SIGCHLD handler. */
    sigemptyset(&block);
    sigaddset(&block, SIGCHLD);
    sigprocmask(SIG_BLOCK, &block, &old);
    pid_t p = child(10, 0);
    while (handler_pid == 0) sigsuspend(&old);
    sigprocmask(SIG_SETMASK, &old, NULL);
    if (handler_pid != p || handler_status != 10) fail("waitpid in the handler", handler_status);
    signal(SIGCHLD, SIG_DFL);

    round_of(0);
    fprintf(stderr, "-- first fork\n");
    fflush(stderr);
    round_of(1);
    puts("ok");
    return 0;
}
