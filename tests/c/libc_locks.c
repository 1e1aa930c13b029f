/* libc_locks: a thread calls an ordinary glibc function in a loop while the
 * main thread forks; each child calls the same function, as a real program
 * would. glibc's fork does not reset the internal lock that function takes,
 * so without forkguard a child hangs whenever the thread was inside it at
 * the fork (or, for dlopen, aborts on the loader's half-done state).
 *
 *   libc_locks CLASS ITER [CHILD_WAIT_MS] [stop] [atfork]
 *
 * CLASS  setenv | localtime | syslog | setlocale | random | getaddrinfo |
 *        gethostbyname | atexit | dlopen | futex_struct
 *        (futex_struct: g_obj.lock, a futex word 8 bytes into a struct,
 *        taken the way glibc/GLib take one: for type = "futex", offset = 8)
 * ITER   forks to make
 * CHILD_WAIT_MS  how long to wait for each child before killing it and
 *        counting it as hung (default 3000)
 * stop   stop at the first hung or failed child (for the controls)
 * atfork also register fork handlers that use the guarded functions: a
 *        prepare handler that calls syslog and setenv, a child handler that
 *        calls setenv and localtime_r (SPEC 8.3: they must neither hang nor
 *        fail)
 *
 * dlopen needs FGT_DL_LIB (a small shared library) in the environment.
 *
 * Prints one line:
 *   result ok=N hung=N failed=N forks=N
 * A child that exits 0 is ok; one killed after the wait is hung; any other
 * end (abort, non-zero exit) is failed.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <locale.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>
#include <linux/futex.h>

/* A lock inside a larger object, for `offset`. */
struct obj {
    long pad;
    atomic_int lock;
    int value;
} g_obj;

static const char *cls;
static const char *dl_lib;
static atomic_int stop_worker;
static atomic_int worker_running;
static int token;

extern int __cxa_atexit(void (*f)(void *), void *arg, void *dso);
extern void __cxa_finalize(void *dso);

static void noop(void *arg) { (void)arg; }

static void futex_lock(atomic_int *w)
{
    int c = 0;
    if (atomic_compare_exchange_strong(w, &c, 1))
        return;
    while (atomic_exchange(w, 2) != 0)
        syscall(SYS_futex, w, FUTEX_WAIT_PRIVATE, 2, NULL, NULL, 0);
}

static void futex_unlock(atomic_int *w)
{
    if (atomic_exchange(w, 0) == 2)
        syscall(SYS_futex, w, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

/* One call of the class's function. Returns 0 when it worked. */
static int once(int in_child)
{
    if (!strcmp(cls, "setenv")) {
        if (setenv("FGT_VAR", in_child ? "child" : "parent", 1) != 0)
            return 1;
        return in_child ? 0 : unsetenv("FGT_VAR");
    }
    if (!strcmp(cls, "localtime")) {
        time_t t = time(NULL);
        struct tm tm;
        if (!localtime_r(&t, &tm))
            return 1;
        return mktime(&tm) == (time_t)-1;
    }
    if (!strcmp(cls, "syslog")) {
        syslog(LOG_DEBUG, "forkguard test %d", in_child);
        return 0;
    }
    if (!strcmp(cls, "setlocale"))
        return setlocale(LC_ALL, "C") == NULL;
    if (!strcmp(cls, "random")) {
        (void)random();
        return 0;
    }
    if (!strcmp(cls, "getaddrinfo")) {
        struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_flags = AI_ADDRCONFIG,
                                 .ai_socktype = SOCK_STREAM};
        struct addrinfo *res = NULL;
        int r = getaddrinfo("localhost", "80", &hints, &res);
        if (res)
            freeaddrinfo(res);
        /* No network needed: any answer (even "no address") means the
         * call came back. */
        (void)r;
        return 0;
    }
    if (!strcmp(cls, "gethostbyname")) {
        (void)gethostbyname("localhost");
        return 0;
    }
    if (!strcmp(cls, "atexit")) {
        if (in_child)
            exit(0); /* runs the exit handlers: __exit_funcs_lock */
        if (__cxa_atexit(noop, NULL, &token) != 0)
            return 1;
        __cxa_finalize(&token);
        return 0;
    }
    if (!strcmp(cls, "dlopen")) {
        void *h = dlopen(dl_lib, RTLD_NOW | RTLD_LOCAL);
        if (!h)
            return 1;
        return dlclose(h) != 0;
    }
    if (!strcmp(cls, "futex_struct")) {
        futex_lock(&g_obj.lock);
        g_obj.value++;
        /* The worker holds it a while, as a real critical section would. */
        for (volatile int k = 0; !in_child && k < 20000; k++) {
        }
        futex_unlock(&g_obj.lock);
        return 0;
    }
    fprintf(stderr, "unknown class %s\n", cls);
    exit(2);
}

static void *worker(void *arg)
{
    (void)arg;
    atomic_store(&worker_running, 1);
    while (!atomic_load(&stop_worker))
        if (once(0) != 0) {
            fprintf(stderr, "worker: %s failed\n", cls);
            exit(3);
        }
    return NULL;
}

static void at_prepare(void)
{
    syslog(LOG_DEBUG, "forkguard test: prepare handler");
    setenv("FGT_PREPARE", "1", 1);
}

static void at_child(void)
{
    time_t t = time(NULL);
    struct tm tm;
    setenv("FGT_IN_CHILD", "1", 1);
    localtime_r(&t, &tm);
}

/* Wait up to ms for the child; 0 ok, 1 hung (killed), 2 failed. */
static int reap(pid_t pid, int ms)
{
    int pfd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (pfd >= 0) {
        struct pollfd p = {.fd = pfd, .events = POLLIN};
        int r;
        while ((r = poll(&p, 1, ms)) < 0 && errno == EINTR) {
        }
        close(pfd);
        if (r == 0) {
            kill(pid, SIGKILL);
            waitpid(pid, NULL, 0);
            return 1;
        }
    }
    int st;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : 2;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: libc_locks CLASS ITER [CHILD_WAIT_MS] [stop] [atfork]\n");
        return 2;
    }
    cls = argv[1];
    int iters = atoi(argv[2]);
    int wait_ms = argc > 3 ? atoi(argv[3]) : 3000;
    int stop = 0, handlers = 0;
    for (int i = 4; i < argc; i++) {
        stop |= !strcmp(argv[i], "stop");
        handlers |= !strcmp(argv[i], "atfork");
    }
    dl_lib = getenv("FGT_DL_LIB");
    if (!strcmp(cls, "dlopen") && !dl_lib) {
        fprintf(stderr, "dlopen needs FGT_DL_LIB\n");
        return 2;
    }
    if (handlers)
        pthread_atfork(at_prepare, NULL, at_child);
    /* Warm up once on the main thread (time zone read, NSS modules
     * loaded, locale data), so the children measure the lock alone. */
    if (strcmp(cls, "atexit") && once(0) != 0) {
        fprintf(stderr, "%s does not work here\n", cls);
        return 2;
    }
    pthread_t t;
    pthread_create(&t, NULL, worker, NULL);
    while (!atomic_load(&worker_running))
        sched_yield();
    int ok = 0, hung = 0, failed = 0, forks = 0;
    for (int i = 0; i < iters; i++) {
        pid_t pid = fork();
        if (pid < 0) {
            perror("fork");
            return 1;
        }
        if (pid == 0) {
            alarm(30); /* a leftover child never outlives the test */
            _exit(once(1));
        }
        forks++;
        switch (reap(pid, wait_ms)) {
        case 0:
            ok++;
            break;
        case 1:
            hung++;
            break;
        default:
            failed++;
        }
        if (stop && (hung || failed))
            break;
    }
    atomic_store(&stop_worker, 1);
    pthread_join(t, NULL);
    printf("result ok=%d hung=%d failed=%d forks=%d\n", ok, hung, failed, forks);
    fflush(stdout);
    _exit(0);
}
