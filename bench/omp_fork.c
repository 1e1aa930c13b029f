/* omp_fork: what the OpenMP recipe (config/openmp.toml) costs per fork.
 *
 *   omp_fork N THREADS
 *
 * N rounds of: a parallel region of THREADS threads in the parent, fork(),
 * the child runs a parallel region of THREADS threads and exits, the
 * parent waitpid()s. Prints one line:
 *   "rounds=N threads=T round_us=R region_us=G fork_us=F child_ok=K"
 * round_us is the mean round; region_us the mean parent region (with the
 * recipe it includes starting the pool's threads again, which the pause
 * released); fork_us the mean fork() call in the parent (with the recipe
 * it includes the pause: joining the pool's threads). child_ok counts the
 * children whose region finished correctly.
 *
 * Without the recipe a child's region never ends (GCC bug 52303): run it
 * with forkguard and config/openmp.toml, or set FGB_OMP_CHILD=0 to keep
 * the child away from OpenMP (the unguarded baseline: the same region and
 * fork without the pause, child_ok = 0 by design).
 *
 *   gcc -O2 -fopenmp -o omp_fork bench/omp_fork.c
 *   FGB_OMP_CHILD=0 ./omp_fork 2000 4                        # baseline
 *   FORKGUARD_CONFIG=config/openmp.toml \
 *     LD_PRELOAD=$PWD/target/release/libforkguard.so ./omp_fork 2000 4   # recipe
 */
#define _GNU_SOURCE
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static long now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000000000L + ts.tv_nsec;
}

static long region(int threads)
{
    long sum = 0;
#pragma omp parallel num_threads(threads) reduction(+ : sum)
    sum += omp_get_thread_num() + 1;
    return sum;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: omp_fork N THREADS\n");
        return 2;
    }
    int n = atoi(argv[1]), threads = atoi(argv[2]);
    const char *c = getenv("FGB_OMP_CHILD");
    int child_omp = !(c && c[0] == '0');
    long want = (long)threads * (threads + 1) / 2;
    long region_ns = 0, fork_ns = 0;
    int ok = 0;
    region(threads); /* the pool exists before the first round */
    long t0 = now_ns();
    for (int i = 0; i < n; i++) {
        long a = now_ns();
        if (region(threads) != want)
            return 3;
        long b = now_ns();
        pid_t pid = fork();
        long f = now_ns();
        if (pid < 0) {
            perror("fork");
            return 2;
        }
        if (pid == 0)
            _exit(child_omp && region(threads) == want ? 0 : 1);
        int st;
        waitpid(pid, &st, 0);
        ok += WIFEXITED(st) && WEXITSTATUS(st) == 0;
        region_ns += b - a;
        fork_ns += f - b;
    }
    long total = now_ns() - t0;
    printf("rounds=%d threads=%d round_us=%.1f region_us=%.1f fork_us=%.1f child_ok=%d\n", n,
           threads, total / 1e3 / n, region_ns / 1e3 / n, fork_ns / 1e3 / n, ok);
    return 0;
}
