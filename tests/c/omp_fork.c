/* GNU OpenMP (libgomp) and fork: built with -fopenmp by tests/openmp.rs.
 *
 *   omp_fork FORKS DEADLINE_MS MODE
 *
 * Each round the parent runs a parallel region (so libgomp's pool of worker
 * threads is alive), forks, and the child runs a parallel region of its
 * own and checks its result. A child whose region never ends (it waits for
 * pool threads that exist only in the parent: GCC bug 52303) is killed
 * after DEADLINE_MS and counted as hung. MODE:
 *   plain    one thread forks after a region
 *   threads  three more pthreads run regions of their own (each has its own
 *            pool) while the main thread forks
 *   nested   the parent's region is nested (two active levels)
 * Prints "omp-result FORKS OK HUNG BAD" and exits 0. */
#define _GNU_SOURCE
#include <omp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static atomic_int stop;

static long region(int threads)
{
    long sum = 0;
#pragma omp parallel num_threads(threads) reduction(+ : sum)
    sum += omp_get_thread_num() + 1;
    return sum;
}

static long nested_region(void)
{
    long sum = 0;
#pragma omp parallel num_threads(2) reduction(+ : sum)
    {
        long inner = 0;
#pragma omp parallel num_threads(2) reduction(+ : inner)
        inner += 1;
        sum += inner;
    }
    return sum;
}

static void *busy(void *arg)
{
    (void)arg;
    while (!atomic_load(&stop))
        if (region(2) != 3)
            abort();
    return NULL;
}

/* The child's work: a region with every thread accounted for. */
static void child(void)
{
    long want = 4 * 5 / 2;
    _exit(region(4) == want ? 0 : 3);
}

/* 0: exited 0; 1: hung (killed at the deadline); 2: anything else. */
static int reap(pid_t pid, int deadline_ms)
{
    int pfd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (pfd < 0) {
        perror("pidfd_open");
        exit(2);
    }
    struct pollfd p = {.fd = pfd, .events = POLLIN};
    int ready = poll(&p, 1, deadline_ms);
    close(pfd);
    int hung = ready == 0;
    if (hung)
        kill(pid, SIGKILL);
    int st = 0;
    while (waitpid(pid, &st, 0) < 0)
        ;
    if (hung)
        return 1;
    return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : 2;
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: omp_fork FORKS DEADLINE_MS plain|threads|nested\n");
        return 2;
    }
    int forks = atoi(argv[1]);
    int deadline_ms = atoi(argv[2]);
    const char *mode = argv[3];
    int nested = strcmp(mode, "nested") == 0;
    pthread_t others[3];
    int nothers = strcmp(mode, "threads") == 0 ? 3 : 0;
    if (nested)
        omp_set_max_active_levels(2);
    for (int i = 0; i < nothers; i++)
        pthread_create(&others[i], NULL, busy, NULL);
    int ok = 0, hung = 0, bad = 0;
    for (int i = 0; i < forks; i++) {
        long got = nested ? nested_region() : region(4);
        if (got != (nested ? 4 : 10)) {
            fprintf(stderr, "parent region wrong: %ld\n", got);
            return 2;
        }
        pid_t pid = fork();
        if (pid < 0) {
            perror("fork");
            return 2;
        }
        if (pid == 0)
            child();
        switch (reap(pid, deadline_ms)) {
        case 0: ok++; break;
        case 1: hung++; break;
        default: bad++; break;
        }
    }
    atomic_store(&stop, 1);
    for (int i = 0; i < nothers; i++)
        pthread_join(others[i], NULL);
    printf("omp-result %d %d %d %d\n", forks, ok, hung, bad);
    return 0;
}
