/* forkthreads: per-fork cost against threads alive and locks held, for
 * scripts/bench.sh (held-lock tracking, issue 14).
 *
 *   forkthreads N THREADS LOCKS
 *
 * Starts THREADS threads that wait (blocked in read(2) on a pipe) until the
 * end, takes LOCKS heap mutexes in the main thread and keeps them for the
 * whole loop, then runs N times: fork(), the child calls _exit(0), the
 * parent waitpid()s. With held-lock tracking on, forkguard knows of LOCKS
 * held locks (held by the forking thread, so `acquire` never waits for
 * them) and of THREADS + 1 threads at each fork. Prints one line:
 *   "forks=N threads=T locks=L loop_ns=NS per_fork_us=U"
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int gate[2];

static void *idle(void *arg)
{
    (void)arg;
    char c;
    while (read(gate[0], &c, 1) < 0 && errno == EINTR)
        ;
    return NULL;
}

static long long now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: %s N THREADS LOCKS\n", argv[0]);
        return 2;
    }
    long n = strtol(argv[1], NULL, 10);
    long threads = strtol(argv[2], NULL, 10);
    long locks = strtol(argv[3], NULL, 10);
    if (n < 0 || threads < 0 || threads > 1024 || locks < 0 || locks > 4096) {
        fprintf(stderr, "forkthreads: N >= 0, 0 <= THREADS <= 1024, 0 <= LOCKS <= 4096\n");
        return 2;
    }
    if (pipe(gate) != 0) {
        perror("forkthreads: pipe");
        return 1;
    }
    pthread_t *tid = calloc((size_t)threads + 1, sizeof *tid);
    pthread_mutex_t *mu = calloc((size_t)locks + 1, sizeof *mu);
    if (tid == NULL || mu == NULL) {
        perror("forkthreads: calloc");
        return 1;
    }
    for (long i = 0; i < threads; i++) {
        if (pthread_create(&tid[i], NULL, idle, NULL) != 0) {
            perror("forkthreads: pthread_create");
            return 1;
        }
    }
    for (long i = 0; i < locks; i++) {
        pthread_mutex_init(&mu[i], NULL);
        pthread_mutex_lock(&mu[i]);
    }

    long long t0 = now_ns();
    for (long i = 0; i < n; i++) {
        pid_t pid = fork();
        if (pid < 0) {
            perror("forkthreads: fork");
            return 1;
        }
        if (pid == 0)
            _exit(0);
        int status;
        while (waitpid(pid, &status, 0) < 0) {
            if (errno != EINTR) {
                perror("forkthreads: waitpid");
                return 1;
            }
        }
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            fprintf(stderr, "forkthreads: child %d ended with status %#x\n", (int)pid, status);
            return 1;
        }
    }
    long long dt = now_ns() - t0;

    for (long i = 0; i < locks; i++)
        pthread_mutex_unlock(&mu[i]);
    close(gate[1]);
    for (long i = 0; i < threads; i++)
        pthread_join(tid[i], NULL);
    printf("forks=%ld threads=%ld locks=%ld loop_ns=%lld per_fork_us=%.3f\n", n, threads, locks,
           dt, n > 0 ? (double)dt / 1000.0 / (double)n : 0.0);
    return 0;
}
