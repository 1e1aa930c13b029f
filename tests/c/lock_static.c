/* lock_static: a mutex that is not exported (a `static` in the program,
 * built without -rdynamic, not stripped), and one inside a library loaded
 * later with dlopen; other threads hold both at the fork.
 *
 *   lock_static MODE LIBPATH ITER
 *
 * MODE  static   the program's own static mutex
 *       dl       the dlopen'ed library's static mutex (locklib_*)
 *       dlclose  fork once with the library loaded, dlclose it, fork again:
 *                forkguard must not touch the unloaded library
 *
 * Prints `result ok=N hung=N failed=N`. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static pthread_mutex_t prog_private_lock = PTHREAD_MUTEX_INITIALIZER;

static void (*lib_hold)(void);
static void (*lib_release)(void);
static int (*lib_use)(void);
static const char *mode;
static int iters;
static pthread_barrier_t b_held, b_done;

static void hold(void) { !strcmp(mode, "static") ? (void)pthread_mutex_lock(&prog_private_lock) : lib_hold(); }
static void release(void) { !strcmp(mode, "static") ? (void)pthread_mutex_unlock(&prog_private_lock) : lib_release(); }
static void use(void)
{
    if (!strcmp(mode, "static")) {
        pthread_mutex_lock(&prog_private_lock);
        pthread_mutex_unlock(&prog_private_lock);
    } else {
        lib_use();
    }
}

static void *holder(void *arg)
{
    (void)arg;
    for (int i = 0; i < iters; i++) {
        hold();
        pthread_barrier_wait(&b_held);
        pthread_barrier_wait(&b_done);
        release();
    }
    return NULL;
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

/* 0 exited 0, 1 failed, 2 hung (killed). */
static int reap(pid_t pid, int ms)
{
    int st = 0;
    double deadline = now_ms() + ms;
    while (now_ms() < deadline) {
        if (waitpid(pid, &st, WNOHANG) == pid)
            return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : 1;
        usleep(200);
    }
    kill(pid, SIGKILL);
    waitpid(pid, &st, 0);
    return 2;
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: lock_static MODE LIBPATH ITER\n");
        return 2;
    }
    mode = argv[1];
    iters = atoi(argv[3]);
    int wait_ms = argc > 4 ? atoi(argv[4]) : 3000;
    void *h = NULL;
    if (strcmp(mode, "static")) {
        h = dlopen(argv[2], RTLD_NOW | RTLD_LOCAL);
        if (!h) {
            fprintf(stderr, "dlopen: %s\n", dlerror());
            return 2;
        }
        lib_hold = (void (*)(void))dlsym(h, "locklib_hold");
        lib_release = (void (*)(void))dlsym(h, "locklib_release");
        lib_use = (int (*)(void))dlsym(h, "locklib_use");
    }
    if (!strcmp(mode, "dlclose")) {
        /* A second thread, so glibc takes its multi-threaded fork path. */
        pthread_t idle;
        pthread_create(&idle, NULL, idle_thread, NULL);
        int results[2];
        for (int k = 0; k < 2; k++) {
            fflush(stdout);
            pid_t pid = fork();
            if (pid == 0) {
                if (k == 0)
                    lib_use();
                _exit(0);
            }
            results[k] = reap(pid, wait_ms);
            if (k == 0) {
                lib_hold = NULL;
                lib_release = NULL;
                lib_use = NULL;
                dlclose(h);
                /* Map something else where the library was. */
                void *junk = malloc(1 << 20);
                memset(junk, 0x5a, 1 << 20);
            }
        }
        printf("result first=%d second=%d\n", results[0], results[1]);
        return 0;
    }
    pthread_barrier_init(&b_held, NULL, 2);
    pthread_barrier_init(&b_done, NULL, 2);
    pthread_t th;
    pthread_create(&th, NULL, holder, NULL);
    int ok = 0, hung = 0, failed = 0;
    for (int i = 0; i < iters; i++) {
        pthread_barrier_wait(&b_held);
        fflush(stdout);
        pid_t pid = fork();
        if (pid == 0) {
            use();
            _exit(0);
        }
        pthread_barrier_wait(&b_done);
        int r = reap(pid, wait_ms);
        ok += r == 0;
        failed += r == 1;
        hung += r == 2;
    }
    pthread_join(th, NULL);
    printf("result ok=%d hung=%d failed=%d\n", ok, hung, failed);
    return 0;
}
