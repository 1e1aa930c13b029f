/* env_server: a server whose reload thread keeps its environment up to
 * date with setenv (and stamps a time with localtime_r), while the main
 * thread forks workers. Each worker sets a variable of its own and prints
 * the time, as a real worker would. glibc's fork leaves setenv's lock
 * (and the time-zone lock) as they were: a worker forked while the thread
 * was inside setenv waits forever for a thread that does not exist in it.
 *
 *   env_server [WORKERS]
 *
 * Waits up to 1 s for each worker and reports how many finished and how
 * many hung (those are killed). */
#define _GNU_SOURCE
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static volatile int stop;

static void *reloader(void *arg)
{
    (void)arg;
    char buf[32];
    for (unsigned long i = 0; !stop; i++) {
        snprintf(buf, sizeof buf, "%lu", i);
        setenv("APP_GENERATION", buf, 1);
        time_t t = time(NULL);
        struct tm tm;
        localtime_r(&t, &tm);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    int workers = argc > 1 ? atoi(argv[1]) : 20;
    pthread_t t;
    pthread_create(&t, NULL, reloader, NULL);
    int done = 0, hung = 0;
    for (int i = 0; i < workers; i++) {
        pid_t pid = fork();
        if (pid == 0) {
            char buf[64];
            time_t now = time(NULL);
            struct tm tm;
            setenv("WORKER", "1", 1);
            strftime(buf, sizeof buf, "%H:%M:%S", localtime_r(&now, &tm));
            _exit(0);
        }
        int pfd = (int)syscall(SYS_pidfd_open, pid, 0);
        struct pollfd p = {.fd = pfd, .events = POLLIN};
        if (poll(&p, 1, 1000) == 0) {
            kill(pid, SIGKILL);
            hung++;
        } else {
            done++;
        }
        close(pfd);
        waitpid(pid, NULL, 0);
    }
    stop = 1;
    pthread_join(t, NULL);
    printf("%d workers finished, %d hung in setenv/localtime (killed after 1 s)\n", done, hung);
    return hung ? 1 : 0;
}
