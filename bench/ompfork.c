/* ompfork: fork from a program with a live GNU OpenMP thread pool, for
 * scripts/bench.sh (the OpenMP recipe of issue 14; SPEC 8.8).
 *
 *   ompfork N CHILD_PARALLEL [TIMEOUT_MS]
 *
 * Runs a parallel region (libgomp starts its pool), then N times: a parallel
 * region in the parent, fork(), and in the child a parallel region when
 * CHILD_PARALLEL is 1 (without a pool that survives fork, libgomp's child
 * waits for the parent's workers forever) before _exit(0). The parent waits
 * up to TIMEOUT_MS (default 2000) for each child, then kills it and counts a
 * hang. Prints one line:
 *   "forks=N child_parallel=C hangs=H loop_ns=NS per_fork_us=U"
 * With the recipe (a prepare [[call]] of omp_pause_resource_all(2)) the
 * pool is released before each fork and restarted by the parent's next
 * parallel region: per_fork_us prices that.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <omp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static volatile long sink;

static void region(void)
{
#pragma omp parallel
    {
        __atomic_add_fetch(&sink, omp_get_thread_num(), __ATOMIC_RELAXED);
    }
}

static long long now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* Waits for pid up to timeout_ms; 1 if it had to be killed. */
static int wait_child(pid_t pid, long timeout_ms)
{
    long long deadline = now_ns() + timeout_ms * 1000000LL;
    int status;
    for (;;) {
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid)
            return 0;
        if (r < 0 && errno != EINTR) {
            perror("ompfork: waitpid");
            exit(1);
        }
        if (now_ns() > deadline) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            return 1;
        }
        struct timespec ts = {0, 200000};
        nanosleep(&ts, NULL);
    }
}

int main(int argc, char **argv)
{
    if (argc < 3 || argc > 4) {
        fprintf(stderr, "usage: %s N CHILD_PARALLEL [TIMEOUT_MS]\n", argv[0]);
        return 2;
    }
    long n = strtol(argv[1], NULL, 10);
    int child_parallel = atoi(argv[2]) != 0;
    long timeout_ms = argc > 3 ? strtol(argv[3], NULL, 10) : 2000;
    region();
    long hangs = 0;
    long long t0 = now_ns();
    for (long i = 0; i < n; i++) {
        region();
        pid_t pid = fork();
        if (pid < 0) {
            perror("ompfork: fork");
            return 1;
        }
        if (pid == 0) {
            if (child_parallel)
                region();
            _exit(0);
        }
        hangs += wait_child(pid, timeout_ms);
    }
    long long dt = now_ns() - t0;
    printf("forks=%ld child_parallel=%d hangs=%ld loop_ns=%lld per_fork_us=%.3f\n", n,
           child_parallel, hangs, dt, n > 0 ? (double)dt / 1000.0 / (double)n : 0.0);
    return 0;
}
