/* pdeath: the parent-death-signal race.
 *
 * top (subreaper) forks M; M registers a pthread_atfork child handler and
 * forks G. In G that handler runs inside the real fork, before forkguard's
 * child phase, and waits until M is dead: M's pidfd polls readable, which
 * the kernel signals only after it has reparented M's children. M exits as
 * soon as its fork returns. So when forkguard's child phase calls
 * prctl(PR_SET_PDEATHSIG) in G, the parent has already died: the kernel
 * will never send the signal, and forkguard must notice (G's parent is now
 * top, the subreaper, not init) and deliver it itself.
 *
 * (Waiting for EOF on a pipe M holds would not do: a dying process closes
 * its files before it reparents its children, so G could finish before its
 * parent is dead and rightly never get the signal.)
 *
 * top prints "middle-status=S" and either "grandchild-signal=SIG" or
 * "grandchild-exit=CODE" (G exits 0 if it survives its fork). */
#define _GNU_SOURCE
#include "trace.h"

#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>

static pid_t middle_pid;

/* Runs in G inside the real fork: returns once M has died and G has been
 * reparented. Async-signal-safe. */
static void wait_for_parent_death(void)
{
    int saved = errno;
    int pfd = (int)syscall(SYS_pidfd_open, middle_pid, 0);
    /* Checked after pidfd_open: while M is still G's parent, the pidfd is M's. */
    if (pfd >= 0 && getppid() == middle_pid) {
        struct pollfd p = {.fd = pfd, .events = POLLIN};
        while (poll(&p, 1, -1) < 0 && errno == EINTR) {
        }
    }
    if (pfd >= 0)
        close(pfd);
    /* Reparenting is done when M's pidfd is readable; without pidfd, wait
     * for it directly (bounded: 10 s). */
    for (int i = 0; i < 10000 && getppid() == middle_pid; i++) {
        struct timespec ts = {0, 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    errno = saved;
}

static int middle(void)
{
    middle_pid = getpid();
    if (pthread_atfork(NULL, NULL, wait_for_parent_death) != 0)
        return 2;
    pid_t g = fork();
    if (g < 0)
        return 3;
    if (g == 0) {
        /* Still alive after the child phase: the signal never came. */
        fgt_trace("grandchild-survived");
        _exit(0);
    }
    _exit(0); /* G's handler returns once this process is dead */
}

int main(void)
{
    fgt_trace_open();
    setvbuf(stdout, NULL, _IONBF, 0);
    if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0) {
        perror("PR_SET_CHILD_SUBREAPER");
        return 2;
    }
    pid_t m = fork();
    if (m < 0)
        return 2;
    if (m == 0)
        _exit(middle());
    int st;
    while (waitpid(m, &st, 0) < 0 && errno == EINTR) {
    }
    printf("middle-status=%d\n", st);
    /* G was reparented to us when M died. */
    pid_t g;
    while ((g = waitpid(-1, &st, 0)) < 0 && errno == EINTR) {
    }
    if (g < 0) {
        printf("no-grandchild\n");
        return 1;
    }
    if (WIFSIGNALED(st))
        printf("grandchild-signal=%d\n", WTERMSIG(st));
    else
        printf("grandchild-exit=%d\n", WEXITSTATUS(st));
    return 0;
}
