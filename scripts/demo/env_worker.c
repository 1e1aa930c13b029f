/* A threaded program that forks workers: one thread updates the environment
 * (setenv) in a loop while the main thread forks; each worker sets a
 * variable of its own and exits. Without forkguard a worker often hangs on
 * glibc's environment lock, held at the fork by the updating thread.
 *
 * Prints "hung PID" for the first worker still alive 1 s after its fork
 * (and leaves it for `forkguard why`), or "no hung worker in N forks". */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void *updater(void *arg) {
    (void)arg;
    char value[32];
    for (unsigned long i = 0;; i++) {
        snprintf(value, sizeof value, "%lu", i);
        setenv("APP_GENERATION", value, 1);
        unsetenv("APP_SCRATCH");
    }
    return NULL;
}

/* The worker's exit status within `ms` milliseconds, or -1. */
static int wait_ms(pid_t pid, int ms) {
    struct timespec step = {0, 10 * 1000 * 1000};
    for (int waited = 0; waited < ms; waited += 10) {
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid)
            return st;
        nanosleep(&step, NULL);
    }
    return -1;
}

int main(void) {
    pthread_t t;
    pthread_create(&t, NULL, updater, NULL);
    for (int n = 1; n <= 100; n++) {
        pid_t pid = fork();
        if (pid == 0) {
            setenv("WORKER", "1", 1);
            _exit(0);
        }
        if (wait_ms(pid, 1000) < 0) {
            printf("hung %d\n", (int)pid);
            fflush(stdout);
            for (;;)
                pause();
        }
    }
    printf("no hung worker in 100 forks\n");
    return 0;
}
