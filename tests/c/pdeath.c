/* pdeath: the parent-death-signal race.
 *
 * top (subreaper) forks M; M registers a pthread_atfork child handler and
 * forks G. In G that handler runs inside the real fork, before forkguard's
 * child phase, and waits until M is gone (EOF on a pipe whose only writer is
 * M). M exits as soon as its fork returns. So when forkguard's child phase
 * calls prctl(PR_SET_PDEATHSIG) in G, the parent is already dead: the kernel
 * will never send the signal, and forkguard must notice (G's parent is now
 * top, the subreaper, not init) and deliver it itself.
 *
 * top prints "middle-status=S" and either "grandchild-signal=SIG" or
 * "grandchild-exit=CODE" (G exits 0 if it survives its fork). */
#define _GNU_SOURCE
#include "trace.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <sys/wait.h>

static int gone[2] = {-1, -1};

/* Runs in G inside the real fork: block until M has exited. */
static void wait_for_parent_death(void)
{
    char c;
    close(gone[1]);
    while (read(gone[0], &c, 1) < 0 && errno == EINTR) {
    }
    close(gone[0]);
}

static int middle(void)
{
    if (pipe(gone) != 0)
        return 2;
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
    _exit(0); /* closes gone[1]: G's handler returns */
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
