/* wait_child.h: the held-lock fixtures' bounded wait for one child.
 *
 * wait_child(pid, ms): wait up to ms milliseconds for child pid (a pidfd
 * and poll: no signal, no sleep); if it is still running then, kill it and
 * return -1 (hung). Otherwise its exit code, or 128 + the signal that
 * ended it.
 *
 * fork_children(forks, ms, child, &hung, &failed): fork `forks` times, one
 * after the other; each child exits with child()'s value; each is waited
 * for with wait_child. Counts the hung ones and the ones that exited
 * non-zero (the first such exit code goes to stderr).
 */
#ifndef FGT_WAIT_CHILD_H
#define FGT_WAIT_CHILD_H

#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

static inline int wait_child(pid_t pid, int ms) {
    int pfd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (pfd < 0) {
        perror("pidfd_open");
        exit(2);
    }
    struct pollfd p = {.fd = pfd, .events = POLLIN};
    int r = poll(&p, 1, ms);
    int status = 0;
    if (r == 0) {
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
        close(pfd);
        return -1;
    }
    waitpid(pid, &status, 0);
    close(pfd);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static inline void fork_children(int forks, int ms, int (*child)(void), int *hung, int *failed) {
    *hung = *failed = 0;
    for (int n = 0; n < forks; n++) {
        pid_t pid = fork();
        if (pid < 0) {
            perror("fork");
            exit(2);
        }
        if (pid == 0) _exit(child());
        int r = wait_child(pid, ms);
        if (r < 0)
            (*hung)++;
        else if (r != 0 && ++*failed == 1)
            fprintf(stderr, "child exit %d\n", r);
    }
}

#endif
