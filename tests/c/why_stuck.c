/* Stuck (and not stuck) processes for `forkguard why` (tests/why.rs).
 *
 *   why_stuck MODE
 *
 * prints "ready PID" once the process to look at (PID) is in the state the
 * mode describes, then waits (pause) until the test kills its process
 * group. Every stuck state is reached deterministically, by design, never
 * by retrying forks:
 *
 *   env      a thread is inside setenv (holding glibc's envlock) when the
 *            main thread forks: this program's own realloc/malloc, which
 *            setenv calls with the lock held, stops that thread until the
 *            fork is done. The child calls setenv: PID is the child.
 *   heap     a thread holds a heap pthread mutex at the fork; the child
 *            locks it: PID is the child.
 *   global   the same with a global mutex (g_lock): PID is the child.
 *   rwlock   a thread holds the global g_rwlock for writing at the fork;
 *            the child takes it for reading: PID is the child.
 *   sem      a thread has taken a heap binary semaphore at the fork; the
 *            child waits on it: PID is the child.
 *   deadlock two threads take g_lock_a and g_lock_b in opposite orders:
 *            PID is this process.
 *   idle     threads in read, nanosleep, poll and a condition wait, one
 *            waiting on a mutex that a thread blocked in read holds (a live
 *            owner), the main thread in pause: PID is this process.
 *   idlechild a forked child that does not touch the lock held at the fork
 *            (g_lock), in pause: PID is the child.
 */
#define _GNU_SOURCE
#include <poll.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
pthread_mutex_t g_lock_a = PTHREAD_MUTEX_INITIALIZER;
pthread_mutex_t g_lock_b = PTHREAD_MUTEX_INITIALIZER;
pthread_rwlock_t g_rwlock = PTHREAD_RWLOCK_INITIALIZER;
static pthread_mutex_t *heap_lock;
static sem_t *heap_sem;

static sem_t held;   /* the thread holds its lock */
static sem_t forked; /* the main thread has forked */
static pthread_barrier_t both;
static int never[2]; /* a pipe nobody writes to */

static void ready(pid_t pid) {
    printf("ready %d\n", (int)pid);
    fflush(stdout);
}

static void wait_forever(void) {
    for (;;)
        pause();
}

/* ---- env: stop a thread inside setenv, with envlock held ---- */

extern void *__libc_malloc(size_t);
extern void *__libc_realloc(void *, size_t);
static volatile pid_t stop_tid; /* the thread to stop at its next allocation */

static void maybe_stop(void) {
    if (stop_tid != 0 && stop_tid == (pid_t)syscall(SYS_gettid)) {
        stop_tid = 0;
        sem_post(&held);
        sem_wait(&forked);
    }
}

void *malloc(size_t n) {
    maybe_stop();
    return __libc_malloc(n);
}

void *realloc(void *p, size_t n) {
    maybe_stop();
    return __libc_realloc(p, n);
}

static void *env_thread(void *arg) {
    stop_tid = (pid_t)syscall(SYS_gettid);
    /* A new variable: setenv allocates with envlock held. */
    setenv("FGT_WHY_NEW_VARIABLE", "1", 1);
    return NULL;
}

/* ---- threads that hold a lock across the fork ---- */

static void *hold_heap(void *arg) {
    pthread_mutex_lock(heap_lock);
    sem_post(&held);
    wait_forever();
    return NULL;
}

static void *hold_global(void *arg) {
    pthread_mutex_lock(&g_lock);
    sem_post(&held);
    wait_forever();
    return NULL;
}

static void *hold_rwlock(void *arg) {
    pthread_rwlock_wrlock(&g_rwlock);
    sem_post(&held);
    wait_forever();
    return NULL;
}

static void *hold_sem(void *arg) {
    sem_wait(heap_sem);
    sem_post(&held);
    wait_forever();
    return NULL;
}

/* Fork once the thread holds its lock; the child runs `child`. */
static void fork_stuck(void *(*thread)(void *), void (*child)(void)) {
    pthread_t t;
    pthread_create(&t, NULL, thread, NULL);
    sem_wait(&held);
    pid_t pid = fork();
    if (pid == 0) {
        child();
        _exit(0);
    }
    sem_post(&forked);
    ready(pid);
    wait_forever();
}

static void child_env(void) { setenv("FGT_WHY_CHILD", "1", 1); }
static void child_heap(void) { pthread_mutex_lock(heap_lock); }
static void child_global(void) { pthread_mutex_lock(&g_lock); }
static void child_rwlock(void) { pthread_rwlock_rdlock(&g_rwlock); }
static void child_sem(void) { sem_wait(heap_sem); }
static void child_idle(void) { wait_forever(); }

/* ---- deadlock ---- */

static void *ab(void *arg) {
    int first = arg != NULL;
    pthread_mutex_lock(first ? &g_lock_a : &g_lock_b);
    pthread_barrier_wait(&both);
    pthread_mutex_lock(first ? &g_lock_b : &g_lock_a);
    return NULL;
}

/* ---- idle ---- */

static pthread_mutex_t cv_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static pthread_mutex_t busy = PTHREAD_MUTEX_INITIALIZER;

static void *in_read(void *arg) {
    char c;
    if (arg != NULL) {
        pthread_mutex_lock(&busy);
        sem_post(&held);
    }
    return read(never[0], &c, 1) < 0 ? NULL : arg;
}
static void *in_sleep(void *arg) {
    struct timespec ts = {3600, 0};
    nanosleep(&ts, NULL);
    return NULL;
}
static void *in_poll(void *arg) {
    struct pollfd p = {.fd = never[0], .events = POLLIN};
    poll(&p, 1, -1);
    return NULL;
}
static void *in_cond(void *arg) {
    pthread_mutex_lock(&cv_lock);
    for (;;)
        pthread_cond_wait(&cv, &cv_lock);
    return NULL;
}
static void *on_busy(void *arg) {
    pthread_mutex_lock(&busy);
    return NULL;
}

/* Threads are running (not yet blocked) when this returns: the test
 * waits until /proc shows each one asleep. */
static void idle(void) {
    pthread_t t;
    pthread_create(&t, NULL, in_read, NULL);
    pthread_create(&t, NULL, in_sleep, NULL);
    pthread_create(&t, NULL, in_poll, NULL);
    pthread_create(&t, NULL, in_cond, NULL);
    pthread_create(&t, NULL, in_read, (void *)1); /* holds `busy` */
    sem_wait(&held);
    pthread_create(&t, NULL, on_busy, NULL);
    ready(getpid());
    wait_forever();
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: why_stuck env|heap|global|rwlock|sem|deadlock|idle|idlechild\n");
        return 2;
    }
    const char *mode = argv[1];
    sem_init(&held, 0, 0);
    sem_init(&forked, 0, 0);
    if (pipe(never) != 0)
        return 1;
    if (strcmp(mode, "env") == 0) {
        fork_stuck(env_thread, child_env);
    } else if (strcmp(mode, "heap") == 0) {
        heap_lock = malloc(sizeof *heap_lock);
        pthread_mutex_init(heap_lock, NULL);
        fork_stuck(hold_heap, child_heap);
    } else if (strcmp(mode, "global") == 0) {
        fork_stuck(hold_global, child_global);
    } else if (strcmp(mode, "rwlock") == 0) {
        fork_stuck(hold_rwlock, child_rwlock);
    } else if (strcmp(mode, "sem") == 0) {
        heap_sem = malloc(sizeof *heap_sem);
        sem_init(heap_sem, 0, 1);
        fork_stuck(hold_sem, child_sem);
    } else if (strcmp(mode, "deadlock") == 0) {
        pthread_t t1, t2;
        pthread_barrier_init(&both, NULL, 2);
        pthread_create(&t1, NULL, ab, (void *)1);
        pthread_create(&t2, NULL, ab, NULL);
        ready(getpid());
        wait_forever();
    } else if (strcmp(mode, "idle") == 0) {
        idle();
    } else if (strcmp(mode, "idlechild") == 0) {
        fork_stuck(hold_global, child_idle);
    }
    fprintf(stderr, "why_stuck: unknown mode %s\n", mode);
    return 2;
}
