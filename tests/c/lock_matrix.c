/* lock_matrix: a lock of each kind held at the fork, by another thread or
 * by the forking thread itself; the child checks that it can unlock what
 * its thread held, lock and unlock again, and that the lock kept its kind.
 *
 *   lock_matrix KIND WHO ITER [WAIT_MS]
 *
 * KIND  normal | errorcheck | recursive | robust | robust_recursive |
 *       pshared | pi | rw_read | rw_write | rw_wpref | stdout
 *       (g_m for mutexes, g_rw for rwlocks, stdout)
 * WHO   other  another thread holds it across the fork (barrier)
 *       self   the forking thread holds it (recursive kinds and rw_read:
 *              twice; stdout: flockfile twice) and unlocks after the fork,
 *              in the parent and in the child
 *       both   rw_read only: the forking thread and another thread read-hold
 *
 * WAIT_MS  how long the child's timed lock calls wait (default 2000)
 *
 * Prints `result ok=N failed=N hung=N first=STEP:ERRNO` (first failure).
 * A failing child writes `child-fail step=S err=E` and exits with S.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

pthread_mutex_t g_m;
pthread_rwlock_t g_rw;

static const char *kind;
static const char *who;
static int iters;
static pthread_barrier_t b_held, b_done;
static int is_rw, is_stdout, holds;
static long wait_ms = 2000;

static void init_lock(void)
{
    if (is_rw) {
        pthread_rwlockattr_t a;
        pthread_rwlockattr_init(&a);
        if (!strcmp(kind, "rw_wpref")) {
            pthread_rwlockattr_setkind_np(&a, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
            pthread_rwlockattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
        }
        pthread_rwlock_init(&g_rw, &a);
        return;
    }
    pthread_mutexattr_t a;
    pthread_mutexattr_init(&a);
    if (!strcmp(kind, "errorcheck"))
        pthread_mutexattr_settype(&a, PTHREAD_MUTEX_ERRORCHECK);
    if (!strcmp(kind, "recursive") || !strcmp(kind, "robust_recursive"))
        pthread_mutexattr_settype(&a, PTHREAD_MUTEX_RECURSIVE);
    if (!strncmp(kind, "robust", 6))
        pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
    if (!strcmp(kind, "pshared"))
        pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
    if (!strcmp(kind, "pi"))
        pthread_mutexattr_setprotocol(&a, PTHREAD_PRIO_INHERIT);
    pthread_mutex_init(&g_m, &a);
}

static void take(int reader)
{
    if (is_stdout)
        flockfile(stdout);
    else if (is_rw)
        reader ? pthread_rwlock_rdlock(&g_rw) : pthread_rwlock_wrlock(&g_rw);
    else
        pthread_mutex_lock(&g_m);
}

static void give(void)
{
    if (is_stdout)
        funlockfile(stdout);
    else if (is_rw)
        pthread_rwlock_unlock(&g_rw);
    else
        pthread_mutex_unlock(&g_m);
}

static int reading(void) { return !strcmp(kind, "rw_read"); }

static void *holder(void *arg)
{
    (void)arg;
    for (int i = 0; i < iters; i++) {
        take(reading());
        pthread_barrier_wait(&b_held);
        pthread_barrier_wait(&b_done);
        give();
    }
    return NULL;
}

static void fail(int step, int err)
{
    char buf[80];
    int n = snprintf(buf, sizeof buf, "child-fail step=%d err=%s\n", step, strerrorname_np(err) ?: "?");
    (void)!write(1, buf, (size_t)n);
    _exit(step);
}

#define EXPECT(step, call, want)              \
    do {                                      \
        int r_ = (call);                      \
        if (r_ != (want))                     \
            fail(step, r_ < 0 ? errno : r_);  \
    } while (0)

static struct timespec soon(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += wait_ms / 1000;
    ts.tv_nsec += (wait_ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    return ts;
}

static void *try_stdout(void *arg)
{
    (void)arg;
    if (ftrylockfile(stdout) != 0)
        return (void *)1;
    funlockfile(stdout);
    return NULL;
}

static void child(int kind_before, unsigned flags_before, int shared_before)
{
    int self = strcmp(who, "other") != 0;
    if (is_stdout) {
        for (int k = 0; self && k < holds; k++)
            funlockfile(stdout);
        /* Lock and unlock it once more: after an unbalanced count this
         * leaves it held; then another thread must find it free. */
        flockfile(stdout);
        funlockfile(stdout);
        pthread_t t;
        void *r = (void *)1;
        if (pthread_create(&t, NULL, try_stdout, NULL) == 0)
            pthread_join(t, &r);
        if (r != NULL)
            fail(1, EBUSY);
        _exit(0);
    }
    if (is_rw) {
        if (g_rw.__data.__flags != flags_before || g_rw.__data.__shared != shared_before)
            fail(2, EINVAL);
        for (int k = 0; self && k < holds; k++)
            EXPECT(3, pthread_rwlock_unlock(&g_rw), 0);
        struct timespec ts = soon();
        EXPECT(4, pthread_rwlock_timedwrlock(&g_rw, &ts), 0);
        EXPECT(5, pthread_rwlock_tryrdlock(&g_rw), EBUSY);
        EXPECT(6, pthread_rwlock_unlock(&g_rw), 0);
        ts = soon();
        EXPECT(7, pthread_rwlock_timedrdlock(&g_rw, &ts), 0);
        EXPECT(8, pthread_rwlock_tryrdlock(&g_rw), 0);
        EXPECT(9, pthread_rwlock_trywrlock(&g_rw), EBUSY);
        EXPECT(10, pthread_rwlock_unlock(&g_rw), 0);
        EXPECT(11, pthread_rwlock_unlock(&g_rw), 0);
        EXPECT(12, pthread_rwlock_trywrlock(&g_rw), 0);
        EXPECT(13, pthread_rwlock_unlock(&g_rw), 0);
        _exit(0);
    }
    if (g_m.__data.__kind != kind_before)
        fail(20, EINVAL);
    for (int k = 0; self && k < holds; k++)
        EXPECT(21, pthread_mutex_unlock(&g_m), 0);
    struct timespec ts = soon();
    EXPECT(22, pthread_mutex_timedlock(&g_m, &ts), 0);
    if (!strcmp(kind, "errorcheck"))
        EXPECT(23, pthread_mutex_lock(&g_m), EDEADLK);
    if (strstr(kind, "recursive")) {
        EXPECT(24, pthread_mutex_lock(&g_m), 0);
        EXPECT(25, pthread_mutex_unlock(&g_m), 0);
    }
    EXPECT(26, pthread_mutex_unlock(&g_m), 0);
    if (strcmp(kind, "normal") && strcmp(kind, "pshared"))
        EXPECT(27, pthread_mutex_unlock(&g_m), EPERM);
    EXPECT(28, pthread_mutex_trylock(&g_m), 0);
    EXPECT(29, pthread_mutex_unlock(&g_m), 0);
    if (g_m.__data.__kind != kind_before)
        fail(30, EINVAL);
    _exit(0);
}

static void *idle_thread(void *arg)
{
    (void)arg;
    for (;;)
        pause();
    return NULL;
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: lock_matrix KIND WHO ITER\n");
        return 2;
    }
    kind = argv[1];
    who = argv[2];
    iters = atoi(argv[3]);
    if (argc > 4)
        wait_ms = atol(argv[4]);
    is_rw = !strncmp(kind, "rw_", 3);
    is_stdout = !strcmp(kind, "stdout");
    init_lock();
    int self = strcmp(who, "other") != 0;
    int other = strcmp(who, "self") != 0;
    holds = (strstr(kind, "recursive") || reading() || is_stdout) ? 2 : 1;
    pthread_barrier_init(&b_held, NULL, 2);
    pthread_barrier_init(&b_done, NULL, 2);
    pthread_t th;
    if (other)
        pthread_create(&th, NULL, holder, NULL);
    else
        /* An idle second thread: the parent is multi-threaded either way. */
        pthread_create(&th, NULL, idle_thread, NULL);

    int ok = 0, failed = 0, hung = 0;
    char first[64] = "none";
    for (int i = 0; i < iters; i++) {
        if (other)
            pthread_barrier_wait(&b_held);
        for (int k = 0; self && k < holds; k++)
            take(reading());
        int kind_before = g_m.__data.__kind;
        unsigned flags_before = g_rw.__data.__flags;
        int shared_before = g_rw.__data.__shared;
        if (!is_stdout) /* the holder may have stdout locked */
            fflush(stdout);
        pid_t pid = fork();
        if (pid == 0)
            child(kind_before, flags_before, shared_before);
        if (pid < 0) {
            perror("fork");
            return 1;
        }
        for (int k = 0; self && k < holds; k++)
            give();
        if (other)
            pthread_barrier_wait(&b_done);
        int st = 0, done = 0;
        double deadline = now_ms() + 5000;
        while (now_ms() < deadline) {
            if (waitpid(pid, &st, WNOHANG) == pid) {
                done = 1;
                break;
            }
            usleep(200);
        }
        if (!done) {
            kill(pid, SIGKILL);
            waitpid(pid, &st, 0);
            hung++;
            if (!strcmp(first, "none"))
                snprintf(first, sizeof first, "hung");
        } else if (WIFEXITED(st) && WEXITSTATUS(st) == 0) {
            ok++;
        } else {
            failed++;
            if (!strcmp(first, "none"))
                snprintf(first, sizeof first, "step%d", WIFEXITED(st) ? WEXITSTATUS(st) : -WTERMSIG(st));
        }
    }
    printf("result ok=%d failed=%d hung=%d first=%s\n", ok, failed, hung, first);
    return 0;
}
