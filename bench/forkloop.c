/* forkloop: the per-fork benchmark subject for scripts/bench.sh.
 *
 *   forkloop N [MiB]
 *
 * Optionally allocates MiB mebibytes and touches every page (so they are
 * resident and the fork has that many page-table entries to copy), then
 * runs N times: fork(), the child calls _exit(0), the parent waitpid()s.
 * Prints one line:
 *   "forks=N mib=M loop_ns=T per_fork_us=U parent_calls=P child_calls=C
 *    parent_minflt=F child_minflt=G"
 * loop_ns and per_fork_us time the loop alone (process start and the
 * allocation excluded). parent_calls is how many times fgb_call1..4 ran in
 * the parent per fork (prepare + parent phases), child_calls how many ran in
 * the first child before it exited (prepare, copied by the fork, + child
 * phase): scripts/bench.sh checks them against the config, so that a config
 * that was not applied cannot pass for a cheap one. parent_minflt and
 * child_minflt are minor page faults per fork, in the parent (getrusage
 * RUSAGE_SELF) and in each child (RUSAGE_CHILDREN): after a fork every first
 * write to a page is a copy-on-write fault, in both processes, and on a VM
 * each costs microseconds.
 *
 * Built with -rdynamic so that fgb_call1 .. fgb_call4 and the mutexes
 * fgb_lock1 .. fgb_lock16 are in the dynamic symbol table: forkguard configs
 * name them in [[call]] and [[lock]] actions, and bench/atfork_floor.c
 * resolves them with dlsym.
 *
 * FGB_OPEN_FDS=K opens K more descriptors before the loop (the soft
 * RLIMIT_NOFILE is raised to the hard one first): FGB_OPEN_KIND=file (the
 * default) opens /dev/null, FGB_OPEN_KIND=udp creates unconnected UDP
 * sockets. The fd benchmarks of scripts/bench.sh time forkguard's child
 * phase over them. The line printed then also has open_fds=K.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static volatile unsigned long fgb_counter;

/* Trivial work for call actions: one increment of a volatile counter. */
void fgb_call1(void) { fgb_counter++; }
void fgb_call2(void) { fgb_counter++; }
void fgb_call3(void) { fgb_counter++; }
void fgb_call4(void) { fgb_counter++; }

/* Mutexes for [[lock]] actions (type = "mutex"), default (normal) kind. */
#define FGB_LOCK(n) pthread_mutex_t fgb_lock##n = PTHREAD_MUTEX_INITIALIZER;
FGB_LOCK(1) FGB_LOCK(2) FGB_LOCK(3) FGB_LOCK(4) FGB_LOCK(5) FGB_LOCK(6)
FGB_LOCK(7) FGB_LOCK(8) FGB_LOCK(9) FGB_LOCK(10) FGB_LOCK(11) FGB_LOCK(12)
FGB_LOCK(13) FGB_LOCK(14) FGB_LOCK(15) FGB_LOCK(16)

/* FGB_OPEN_FDS / FGB_OPEN_KIND: returns how many were opened, -1 on error. */
static long open_extra_fds(void)
{
    const char *env = getenv("FGB_OPEN_FDS");
    const char *kind = getenv("FGB_OPEN_KIND");
    long k = env ? strtol(env, NULL, 10) : 0;
    int udp = kind && strcmp(kind, "udp") == 0;
    if (k <= 0)
        return 0;
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    for (long i = 0; i < k; i++) {
        int fd = udp ? socket(AF_INET, SOCK_DGRAM, 0) : open("/dev/null", O_RDONLY);
        if (fd < 0) {
            fprintf(stderr, "forkloop: opening descriptor %ld of %ld: %s\n", i + 1, k,
                    strerror(errno));
            return -1;
        }
    }
    return k;
}

static long long now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int main(int argc, char **argv)
{
    if (argc < 2 || argc > 3) {
        fprintf(stderr, "usage: %s N [MiB]\n", argv[0]);
        return 2;
    }
    long n = strtol(argv[1], NULL, 10);
    long mib = argc > 2 ? strtol(argv[2], NULL, 10) : 0;
    if (n < 0 || mib < 0) {
        fprintf(stderr, "forkloop: N and MiB must be >= 0\n");
        return 2;
    }

    if (mib > 0) {
        size_t len = (size_t)mib << 20;
        unsigned char *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
                                MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) {
            perror("forkloop: mmap");
            return 1;
        }
        /* No transparent huge pages: the point is many 4 KiB entries. */
        madvise(p, len, MADV_NOHUGEPAGE);
        long page = sysconf(_SC_PAGESIZE);
        for (size_t off = 0; off < len; off += (size_t)page)
            p[off] = 1;
    }

    long open_fds = open_extra_fds();
    if (open_fds < 0)
        return 1;

    int child_calls = -1;
    unsigned long calls_before_loop = fgb_counter;
    struct rusage self0, self1, kids0, kids1;
    getrusage(RUSAGE_SELF, &self0);
    getrusage(RUSAGE_CHILDREN, &kids0);
    long long t0 = now_ns();
    for (long i = 0; i < n; i++) {
        unsigned long before = fgb_counter;
        pid_t pid = fork();
        if (pid < 0) {
            perror("forkloop: fork");
            return 1;
        }
        if (pid == 0)
            _exit((int)((fgb_counter - before) & 0x7f));
        int status;
        while (waitpid(pid, &status, 0) < 0) {
            if (errno != EINTR) {
                perror("forkloop: waitpid");
                return 1;
            }
        }
        if (!WIFEXITED(status)) {
            fprintf(stderr, "forkloop: child %d ended with status %#x\n",
                    (int)pid, status);
            return 1;
        }
        if (i == 0)
            child_calls = WEXITSTATUS(status);
    }
    long long dt = now_ns() - t0;
    getrusage(RUSAGE_SELF, &self1);
    getrusage(RUSAGE_CHILDREN, &kids1);
    unsigned long parent_calls = fgb_counter - calls_before_loop;
    double per = n > 0 ? 1.0 / (double)n : 0.0;

    printf("forks=%ld mib=%ld loop_ns=%lld per_fork_us=%.3f parent_calls=%.2f "
           "child_calls=%d parent_minflt=%.2f child_minflt=%.2f",
           n, mib, dt, (double)dt / 1000.0 * per, (double)parent_calls * per,
           child_calls, (double)(self1.ru_minflt - self0.ru_minflt) * per,
           (double)(kids1.ru_minflt - kids0.ru_minflt) * per);
    if (open_fds > 0)
        printf(" open_fds=%ld", open_fds);
    printf("\n");
    return 0;
}
