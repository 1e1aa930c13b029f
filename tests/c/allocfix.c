/* allocfix: checks that nothing allocated in the child between the real
 * fork and fork()'s return, i.e. in forkguard's child phase.
 *
 * Run with LD_PRELOAD="<forkguard> <alloccount>". The process has a second
 * (idle) thread when it forks, so glibc takes its multi-threaded path.
 * The child prints "child_allocs=N" (N allocation calls since alloccount's
 * atfork snapshot); the parent prints "child-status=S".
 *
 * For fd actions it holds, at fixed numbers: 60, 61, 62, 65 /dev/null,
 * 63 an eventfd, 64 one end of a unix socket pair.
 *
 * fgt_child_strdup is a child-phase call that allocates: the check must
 * see it. */
#define _GNU_SOURCE
#include "trace.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/wait.h>

char *volatile fgt_leak;

void fgt_child_strdup(void)
{
    fgt_leak = strdup("allocated in the child phase");
}

/* [[zero]] and [[lock]] targets for the all-features config. */
long fgt_zero_me[4] = {1, 2, 3, 4};
pthread_mutex_t fgt_lock = PTHREAD_MUTEX_INITIALIZER;
pthread_mutex_t fgt_lock2 = PTHREAD_MUTEX_INITIALIZER;
int fgt_futex; /* a futex word: type = "futex" */

static int idle_pipe[2];

static int place(int fd, int at)
{
    if (fd < 0 || dup2(fd, at) != at)
        return -1;
    close(fd);
    return 0;
}

static void *idle(void *arg)
{
    (void)arg;
    char c;
    while (read(idle_pipe[0], &c, 1) < 0 && errno == EINTR) {
    }
    return NULL;
}

int main(void)
{
    unsigned long (*since)(void) =
        (unsigned long (*)(void))dlsym(RTLD_DEFAULT, "alloccount_since_snapshot");
    if (!since) {
        fprintf(stderr, "allocfix: alloccount is not preloaded\n");
        return 2;
    }
    fgt_trace_open();
    setvbuf(stdout, NULL, _IONBF, 0);
    int sp[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sp) != 0)
        return 2;
    if (place(open("/dev/null", O_RDWR), 60) || place(open("/dev/null", O_RDWR), 61) ||
        place(open("/dev/null", O_RDWR), 62) || place(eventfd(0, 0), 63) ||
        place(sp[0], 64) || place(open("/dev/null", O_RDWR), 65))
        return 2;
    pthread_t th;
    if (pipe(idle_pipe) != 0 || pthread_create(&th, NULL, idle, NULL) != 0)
        return 2;

    pid_t pid = fork();
    if (pid == 0) {
        unsigned long n = since();
        char buf[64] = "child_allocs=";
        size_t len = strlen(buf);
        len += fgt_itoa((long)n, buf + len);
        buf[len++] = '\n';
        (void)!write(1, buf, len);
        _exit(0);
    }
    if (pid < 0) {
        perror("fork");
        return 1;
    }
    int st;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    printf("child-status=%d\n", st);
    (void)!write(idle_pipe[1], "x", 1);
    pthread_join(th, NULL);
    return !(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}
