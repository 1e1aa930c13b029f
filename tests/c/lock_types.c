/* lock_types: another thread holds a lock at the moment the main thread
 * forks; the child then takes that lock, as a program would.
 *
 *   lock_types TYPE HOLD ITER [CHILD_WAIT_MS]
 *
 * TYPE  mutex | rwlock_w | rwlock_r | spin | sem | stdio
 *       (the globals g_mutex, g_rwlock, g_spin, g_sem, g_file; g_file is a
 *       FILE* with FSETLOCKING_BYCALLER, which glibc does not reset in the
 *       child, so it hangs there like any application lock)
 * HOLD  hold   the holder keeps the lock until fork() returned in the parent
 *              (certain: a barrier, then the fork)
 *       brief  the holder lets go 2 ms after the barrier, while the main
 *              thread is already in fork(): an "acquire" prepare waits for it
 *       fail   like hold, and fork() is expected to fail (on_timeout =
 *              "fail"); g_mutex2 (free) must be released again afterwards
 * ITER  forks to make
 * CHILD_WAIT_MS  how long the parent waits for each child before killing
 *       it and counting it as hung (default 3000)
 *
 * Prints one line:
 *   result ok=N hung=N failed=N forkfail=N errno=NAME max_fork_ms=F released=B
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdio.h>
#include <stdio_ext.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

pthread_mutex_t g_mutex = PTHREAD_MUTEX_INITIALIZER;
pthread_mutex_t g_mutex2 = PTHREAD_MUTEX_INITIALIZER;
pthread_rwlock_t g_rwlock = PTHREAD_RWLOCK_INITIALIZER;
pthread_spinlock_t g_spin;
sem_t g_sem;
FILE *g_file;

/* For config-error tests: too small for a lock, read-only, no size. */
int g_small;
const long g_const[8] = {1};
__asm__(".data\n.globl g_nosize\ng_nosize: .zero 16\n.text\n");

static const char *type;
static const char *hold;
static pthread_barrier_t b_start, b_held, b_done;
static int iters;

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void take(int for_child)
{
    if (!strcmp(type, "mutex"))
        pthread_mutex_lock(&g_mutex);
    else if (!strcmp(type, "rwlock_w"))
        pthread_rwlock_wrlock(&g_rwlock);
    else if (!strcmp(type, "rwlock_r"))
        for_child ? pthread_rwlock_wrlock(&g_rwlock) : pthread_rwlock_rdlock(&g_rwlock);
    else if (!strcmp(type, "spin"))
        pthread_spin_lock(&g_spin);
    else if (!strcmp(type, "sem"))
        while (sem_wait(&g_sem) != 0 && errno == EINTR) {
        }
    else if (!strcmp(type, "stdio"))
        flockfile(g_file);
}

static void release(void)
{
    if (!strcmp(type, "mutex"))
        pthread_mutex_unlock(&g_mutex);
    else if (!strncmp(type, "rwlock", 6))
        pthread_rwlock_unlock(&g_rwlock);
    else if (!strcmp(type, "spin"))
        pthread_spin_unlock(&g_spin);
    else if (!strcmp(type, "sem"))
        sem_post(&g_sem);
    else if (!strcmp(type, "stdio"))
        funlockfile(g_file);
}

static void *holder(void *arg)
{
    (void)arg;
    for (int i = 0; i < iters; i++) {
        pthread_barrier_wait(&b_start);
        take(0);
        pthread_barrier_wait(&b_held);
        if (!strcmp(hold, "brief")) {
            usleep(2000);
            release();
            pthread_barrier_wait(&b_done);
        } else {
            pthread_barrier_wait(&b_done);
            release();
        }
    }
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: lock_types TYPE HOLD ITER [CHILD_WAIT_MS]\n");
        return 2;
    }
    type = argv[1];
    hold = argv[2];
    iters = atoi(argv[3]);
    int wait_ms = argc > 4 ? atoi(argv[4]) : 3000;
    pthread_spin_init(&g_spin, PTHREAD_PROCESS_PRIVATE);
    sem_init(&g_sem, 0, 1);
    g_file = fopen("/dev/null", "w");
    __fsetlocking(g_file, FSETLOCKING_BYCALLER);
    pthread_barrier_init(&b_start, NULL, 2);
    pthread_barrier_init(&b_held, NULL, 2);
    pthread_barrier_init(&b_done, NULL, 2);
    pthread_t th;
    pthread_create(&th, NULL, holder, NULL);

    int ok = 0, hung = 0, failed = 0, forkfail = 0, err = 0, released = -1;
    double max_fork = 0;
    for (int i = 0; i < iters; i++) {
        pthread_barrier_wait(&b_start);
        pthread_barrier_wait(&b_held);
        double t0 = now_ms();
        pid_t pid = fork();
        if (pid == 0) {
            take(1);
            release();
            _exit(0);
        }
        int e = errno;
        double dt = now_ms() - t0;
        if (dt > max_fork)
            max_fork = dt;
        pthread_barrier_wait(&b_done);
        if (pid < 0) {
            forkfail++;
            err = e;
            if (pthread_mutex_trylock(&g_mutex2) == 0) {
                released = 1;
                pthread_mutex_unlock(&g_mutex2);
            } else {
                released = 0;
            }
            continue;
        }
        int st = 0, done = 0;
        double deadline = now_ms() + wait_ms;
        while (now_ms() < deadline) {
            pid_t r = waitpid(pid, &st, WNOHANG);
            if (r == pid) {
                done = 1;
                break;
            }
            usleep(500);
        }
        if (!done) {
            kill(pid, SIGKILL);
            waitpid(pid, &st, 0);
            hung++;
        } else if (WIFEXITED(st) && WEXITSTATUS(st) == 0) {
            ok++;
        } else {
            failed++;
        }
    }
    pthread_join(th, NULL);
    printf("result ok=%d hung=%d failed=%d forkfail=%d errno=%s max_fork_ms=%.1f released=%d\n", ok, hung,
           failed, forkfail, err ? strerrorname_np(err) : "0", max_fork, released);
    return 0;
}
