/* torture_fork: the fork torture fixture (tests/torture_*.rs, issue 6).
 *
 *   torture_fork concurrent FORKERS ITER   FORKERS threads fork ITER times each
 *                                          while noise threads malloc, print to
 *                                          stdout and hold torture_lock
 *                                          ($TORTURE_HOLD_ITERS: busy loop while
 *                                          holding it; -1: hold it all the run)
 *   torture_fork sigalrm ITER              fork ITER times in main while a
 *                                          SIGALRM every 200 us forks in its handler
 *   torture_fork nested DEPTH FANOUT       a tree of forks, FANOUT per process
 *   torture_fork atfork                    own pthread_atfork handlers, a dlopened
 *                                          library's ($TORTURE_ATFORK_LIB), one
 *                                          that forks and one that registers more
 *   torture_fork atfork_mt                 the same with a second thread alive and
 *                                          only the program's and library's handlers
 *   torture_fork failfork                  seccomp makes fork fail (EAGAIN)
 *   torture_fork nproc                     RLIMIT_NPROC 0 makes fork fail (non-root)
 *   torture_fork seccomp                   fds of every kind, one fork; the child
 *                                          runs under tests/c/torture_seccomp.c's
 *                                          allow-list ($TORTURE_PROBE=mmap|brk: the
 *                                          child makes that call after fork returns)
 *
 * Results are `key=value` lines on stdout (fd 1 is kept for them even where
 * the FILE stdout is pointed at /dev/null to be hammered). Exit status 0 when
 * every check of the mode held. Call-action targets count phases in this
 * process (tort_*), or trace through trace.h (fgt_*). */
#define _GNU_SOURCE
#include "fork_failure.h"
#include "trace.h"

#include <dlfcn.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <semaphore.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/timerfd.h>
#include <sys/wait.h>

/* ---- [[lock]], [[zero]] and [[call]] targets ---------------------------- */

pthread_mutex_t torture_lock = PTHREAD_MUTEX_INITIALIZER;
pthread_rwlock_t torture_rwlock = PTHREAD_RWLOCK_INITIALIZER;
sem_t torture_sem;
long torture_zero[8] = {1, 2, 3, 4, 5, 6, 7, 8};
int torture_futex; /* a futex word: type = "futex" */

static volatile long n_prepare, n_parent, n_child;
/* Counted atomically: the sigalrm mode's handler forks concurrently with main. */
void tort_prepare(void) { __atomic_fetch_add(&n_prepare, 1, __ATOMIC_SEQ_CST); }
void tort_parent(void) { __atomic_fetch_add(&n_parent, 1, __ATOMIC_SEQ_CST); }
void tort_child(void) { __atomic_fetch_add(&n_child, 1, __ATOMIC_SEQ_CST); }

static int out_fd = 1;

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n > 0)
        (void)!write(out_fd, buf, (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1);
}

/* Wait for pid with a deadline; on timeout kill it: a hung child is a
 * failure the test can report, not a stalled run. Returns the wait status,
 * or -1 for "hung". */
static int wait_deadline(pid_t pid, int ms)
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
            while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {
            }
            return -1;
        }
    }
    int st = 0;
    while (waitpid(pid, &st, 0) < 0) {
        if (errno != EINTR)
            return -2;
    }
    return st;
}

/* ---- concurrent ---------------------------------------------------------- */

static volatile int stop_noise;

static void *noise_malloc(void *arg)
{
    (void)arg;
    unsigned i = 0;
    while (!__atomic_load_n(&stop_noise, __ATOMIC_RELAXED)) {
        void *p[16];
        for (int k = 0; k < 16; k++)
            p[k] = malloc(16 + (size_t)((i * 7 + k * 131) % 4000));
        for (int k = 0; k < 16; k++)
            free(p[k]);
        i++;
    }
    return NULL;
}

static void *noise_stdout(void *arg)
{
    (void)arg;
    unsigned long i = 0;
    while (!__atomic_load_n(&stop_noise, __ATOMIC_RELAXED)) {
        printf("noise line %lu with some padding to fill the buffer\n", i++);
        if (i % 64 == 0)
            fflush(stdout);
    }
    return NULL;
}

static long hold_iters = 100000;
static int held_all_along;

static void *noise_lock(void *arg)
{
    (void)arg;
    if (hold_iters < 0) {
        /* Held for the whole run: a fork can never take it. */
        pthread_mutex_lock(&torture_lock);
        __atomic_store_n(&held_all_along, 1, __ATOMIC_SEQ_CST);
        while (!__atomic_load_n(&stop_noise, __ATOMIC_RELAXED))
            usleep(1000);
        pthread_mutex_unlock(&torture_lock);
        return NULL;
    }
    while (!__atomic_load_n(&stop_noise, __ATOMIC_RELAXED)) {
        pthread_mutex_lock(&torture_lock);
        /* Hold it across a little work, so a fork often finds it taken. */
        for (volatile long k = 0; k < hold_iters; k++) {
        }
        pthread_mutex_unlock(&torture_lock);
        sched_yield();
    }
    return NULL;
}

struct forker {
    pthread_t th;
    int iter;
    int ok, bad, hung, failed;
};

static void *forker_main(void *arg)
{
    struct forker *f = arg;
    for (int i = 0; i < f->iter; i++) {
        pid_t pid = fork();
        if (pid == 0) {
            /* The child: the configured locks must be usable at once, and
             * stdio and malloc must work (glibc resets its own; forkguard's
             * stdio lock action must not break that). */
            int code = 0;
            if (pthread_mutex_trylock(&torture_lock) != 0)
                code = 3;
            else
                pthread_mutex_unlock(&torture_lock);
            if (ftrylockfile(stdout) != 0)
                code = code ? code : 4;
            else
                funlockfile(stdout);
            char *p = malloc(64);
            if (!p)
                code = 5;
            free(p);
            _exit(code);
        }
        if (pid < 0) {
            f->failed++;
            continue;
        }
        int st = wait_deadline(pid, 5000);
        if (st == -1)
            f->hung++;
        else if (st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0)
            f->ok++;
        else
            f->bad++;
    }
    return NULL;
}

static int do_concurrent(int nforkers, int iter)
{
    /* Keep fd 1 for results; hammer the FILE stdout on /dev/null. */
    out_fd = dup(1);
    if (out_fd < 0 || !freopen("/dev/null", "w", stdout))
        return 2;
    const char *hold = getenv("TORTURE_HOLD_ITERS");
    if (hold && *hold)
        hold_iters = atol(hold);
    pthread_t noise[4];
    pthread_create(&noise[0], NULL, noise_malloc, NULL);
    pthread_create(&noise[1], NULL, noise_malloc, NULL);
    pthread_create(&noise[2], NULL, noise_stdout, NULL);
    pthread_create(&noise[3], NULL, noise_lock, NULL);
    while (hold_iters < 0 && !__atomic_load_n(&held_all_along, __ATOMIC_SEQ_CST))
        usleep(100);
    struct forker *f = calloc((size_t)nforkers, sizeof *f);
    for (int i = 0; i < nforkers; i++) {
        f[i].iter = iter;
        pthread_create(&f[i].th, NULL, forker_main, &f[i]);
    }
    int ok = 0, bad = 0, hung = 0, failed = 0;
    for (int i = 0; i < nforkers; i++) {
        pthread_join(f[i].th, NULL);
        ok += f[i].ok;
        bad += f[i].bad;
        hung += f[i].hung;
        failed += f[i].failed;
    }
    __atomic_store_n(&stop_noise, 1, __ATOMIC_RELAXED);
    for (int i = 0; i < 4; i++)
        pthread_join(noise[i], NULL);
    /* Nothing left held in the parent: every lock forkguard took in prepare
     * was given back. */
    int lock_free = pthread_mutex_trylock(&torture_lock) == 0;
    if (lock_free)
        pthread_mutex_unlock(&torture_lock);
    int stdout_free = ftrylockfile(stdout) == 0;
    if (stdout_free)
        funlockfile(stdout);
    say("forks=%d ok=%d bad=%d hung=%d failed=%d lock_free=%d stdout_free=%d "
        "prepare=%ld parent=%ld\n",
        nforkers * iter, ok, bad, hung, failed, lock_free, stdout_free, n_prepare, n_parent);
    return !(ok == nforkers * iter && lock_free && stdout_free);
}

/* ---- sigalrm ------------------------------------------------------------- */

static volatile long h_forks, h_fail;

static void on_alarm(int sig)
{
    (void)sig;
    int saved = errno;
    pid_t pid = fork();
    if (pid == 0)
        _exit(n_child == 1 ? 0 : 30 + (int)n_child);
    if (pid > 0)
        h_forks++;
    else
        h_fail++;
    errno = saved;
}

/* Reaps the handler's children (the main loop's own child is already
 * reaped when this runs). Exit status 30: the child phase did not run in
 * that child (the fork passed through unguarded). */
static void reap_handler_children(int flags, int *ok, int *bad, int *unguarded)
{
    int st;
    pid_t p;
    while ((p = waitpid(-1, &st, flags)) > 0 || (p < 0 && errno == EINTR)) {
        if (p <= 0)
            continue;
        if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
            (*ok)++;
        else if (WIFEXITED(st) && WEXITSTATUS(st) == 30)
            (*unguarded)++;
        else
            (*bad)++;
    }
}

static int do_sigalrm(int iter)
{
    struct sigaction sa = {.sa_handler = on_alarm};
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    sigaction(SIGALRM, &sa, NULL);
    struct itimerval it = {.it_interval = {0, 200}, .it_value = {0, 200}};
    setitimer(ITIMER_REAL, &it, NULL);
    int done = 0, bad = 0, failed = 0;
    int h_ok = 0, h_bad = 0, h_unguarded = 0;
    for (int i = 0; i < iter; i++) {
        pid_t pid = fork();
        if (pid == 0)
            _exit(n_child == 1 ? 0 : 30 + (int)n_child);
        if (pid < 0) {
            failed++;
            continue;
        }
        int st;
        while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
        }
        if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
            done++;
        else
            bad++;
        /* The handler's children are reaped as the loop goes: thousands of
         * zombies would exhaust the machine's process ids under load. */
        reap_handler_children(WNOHANG, &h_ok, &h_bad, &h_unguarded);
    }
    struct itimerval off = {{0, 0}, {0, 0}};
    setitimer(ITIMER_REAL, &off, NULL);
    signal(SIGALRM, SIG_IGN);
    /* The handler's last children. */
    reap_handler_children(0, &h_ok, &h_bad, &h_unguarded);
    long total = iter + h_forks;
    say("iterations=%d done=%d bad=%d failed=%d handler_forks=%ld handler_ok=%d "
        "handler_bad=%d handler_unguarded=%d handler_failed=%ld prepare=%ld parent=%ld\n",
        iter, done, bad, failed, h_forks, h_ok, h_bad, h_unguarded, h_fail, n_prepare,
        n_parent);
    return !(done == iter && h_bad == 0 && h_ok + h_unguarded == h_forks &&
             n_prepare + h_unguarded == total && n_parent + h_unguarded == total);
}

/* ---- nested -------------------------------------------------------------- */

/* A prepare-phase call that forks: that fork must pass straight through. */
void tort_fork_inside(void)
{
    int saved = errno;
    pid_t pid = fork();
    if (pid == 0) {
        fgt_trace("inner-child");
        _exit(0);
    }
    if (pid > 0) {
        long v[2] = {getpid(), pid};
        fgt_trace_nums("inner", v, 2);
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {
        }
    }
    errno = saved;
}

static int nest(int level, int depth, int fanout)
{
    long v[3] = {getpid(), getppid(), level};
    fgt_trace_nums("level", v, 3);
    if (level == depth)
        return 0;
    int bad = 0;
    for (int i = 0; i < fanout; i++) {
        pid_t pid = fork();
        if (pid == 0)
            _exit(nest(level + 1, depth, fanout));
        if (pid < 0) {
            bad++;
            continue;
        }
        int st = wait_deadline(pid, 10000);
        if (!(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0))
            bad++;
    }
    return bad != 0;
}

/* ---- atfork -------------------------------------------------------------- */

static void af_prep1(void) { fgt_trace("af-prep-1"); }
static void af_par1(void) { fgt_trace("af-parent-1"); }
static void af_chi1(void) { fgt_trace("af-child-1"); }
static void af_prep_late(void) { fgt_trace("af-prep-late"); }
static void af_par_late(void) { fgt_trace("af-parent-late"); }
static void af_chi_late(void) { fgt_trace("af-child-late"); }

static int registered_late;
/* Registers more handlers from inside a handler (possible in a
 * single-threaded process only: glibc holds its atfork lock across a
 * multi-threaded fork). */
static void af_prep_register(void)
{
    fgt_trace("af-prep-register");
    if (!registered_late) {
        registered_late = 1;
        pthread_atfork(af_prep_late, af_par_late, af_chi_late);
    }
}

static int forked_inside;
/* Forks from inside a prepare handler, once. */
static void af_prep_fork(void)
{
    fgt_trace("af-prep-fork");
    if (forked_inside)
        return;
    forked_inside = 1;
    pid_t pid = fork();
    if (pid == 0) {
        fgt_trace("af-inner-child");
        _exit(0);
    }
    if (pid > 0) {
        long v[2] = {getpid(), pid};
        fgt_trace_nums("af-inner", v, 2);
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {
        }
    }
}

static int idle_pipe[2];

static void *idle_until_written(void *arg)
{
    (void)arg;
    char c;
    while (read(idle_pipe[0], &c, 1) < 0 && errno == EINTR) {
    }
    return NULL;
}

/* threaded: a second thread is alive at each fork (glibc's multi-threaded
 * path, atfork lock held across the fork), so no handler forks or
 * registers handlers: that would deadlock in glibc itself. */
static int do_atfork(int threaded)
{
    pthread_atfork(af_prep1, af_par1, af_chi1);
    const char *lib = getenv("TORTURE_ATFORK_LIB");
    if (lib && *lib && !dlopen(lib, RTLD_NOW)) {
        fprintf(stderr, "torture_fork: dlopen: %s\n", dlerror());
        return 2;
    }
    pthread_t th;
    if (threaded) {
        if (pipe(idle_pipe) != 0 || pthread_create(&th, NULL, idle_until_written, NULL) != 0)
            return 2;
    } else {
        pthread_atfork(af_prep_register, NULL, NULL);
        pthread_atfork(af_prep_fork, NULL, NULL);
    }
    int bad = 0;
    for (int round = 0; round < 2; round++) {
        long r = round;
        fgt_trace_nums("round", &r, 1);
        pid_t pid = fork();
        if (pid == 0) {
            fgt_trace("child-main");
            _exit(0);
        }
        if (pid < 0)
            return 1;
        long v[2] = {getpid(), pid};
        fgt_trace_nums("parent-main", v, 2);
        int st = wait_deadline(pid, 10000);
        if (!(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0))
            bad++;
    }
    if (threaded) {
        (void)!write(idle_pipe[1], "x", 1);
        pthread_join(th, NULL);
    }
    say("atfork bad=%d\n", bad);
    return bad;
}

/* ---- failing forks --------------------------------------------------------- */

/* install_fork_failure(): fork_failure.h */

/* One failing fork; then every lock the config names must be free. */
static int fail_once(const char *how)
{
    fgt_trace("main-before");
    errno = EDOM;
    pid_t pid = fork();
    int e = errno;
    if (pid == 0)
        _exit(0);
    if (pid > 0) {
        waitpid(pid, NULL, 0);
        say("fork unexpectedly succeeded\n");
        return 1;
    }
    int mutex_free = pthread_mutex_trylock(&torture_lock) == 0;
    if (mutex_free)
        pthread_mutex_unlock(&torture_lock);
    int rw_free = pthread_rwlock_trywrlock(&torture_rwlock) == 0;
    if (rw_free)
        pthread_rwlock_unlock(&torture_rwlock);
    int sval = -1;
    sem_getvalue(&torture_sem, &sval);
    int stdout_free = ftrylockfile(stdout) == 0;
    if (stdout_free)
        funlockfile(stdout);
    say("how=%s fork=%d errno=%d mutex_free=%d rwlock_free=%d sem_value=%d stdout_free=%d "
        "prepare=%ld parent=%ld\n",
        how, (int)pid, e, mutex_free, rw_free, sval, stdout_free, n_prepare, n_parent);
    return !(e == EAGAIN && mutex_free && rw_free && sval == 1 && stdout_free &&
             n_prepare == 1 && n_parent == 1);
}

static int do_failfork(void)
{
    if (install_fork_failure() != 0) {
        perror("torture_fork: seccomp");
        return 2;
    }
    return fail_once("seccomp");
}

static int do_nproc(void)
{
    if (geteuid() == 0) {
        say("nproc mode needs a non-root user (root ignores RLIMIT_NPROC)\n");
        return 2;
    }
    struct rlimit rl = {0, 0};
    if (setrlimit(RLIMIT_NPROC, &rl) != 0) {
        perror("torture_fork: setrlimit");
        return 2;
    }
    return fail_once("nproc");
}

/* ---- seccomp (child-phase syscalls) ----------------------------------------- */

static int place(int fd, int at)
{
    if (fd < 0 || dup2(fd, at) != at)
        return -1;
    close(fd);
    return 0;
}

/* Held by the idle thread across the seccomp mode's fork: with
 * held_locks, the child phase frees it (under the allow-list). */
pthread_mutex_t torture_held = PTHREAD_MUTEX_INITIALIZER;
static int held_ready[2];

static void *idle_thread(void *arg)
{
    int fd = *(int *)arg;
    char c;
    pthread_mutex_lock(&torture_held);
    (void)!write(held_ready[1], "r", 1);
    while (read(fd, &c, 1) < 0 && errno == EINTR) {
    }
    pthread_mutex_unlock(&torture_held);
    return NULL;
}

static int do_seccomp(void)
{
    /* One descriptor of every kind an [[fd]] action can act on. */
    int sp[2], lp[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sp) != 0 || pipe(lp) != 0 || pipe(held_ready) != 0)
        return 2;
    int tcp = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (tcp < 0 || bind(tcp, (struct sockaddr *)&a, sizeof a) != 0 || listen(tcp, 4) != 0)
        return 2;
    if (place(open("/dev/null", O_RDWR), 60) || place(open("/dev/null", O_RDWR), 61) ||
        place(open("/dev/null", O_WRONLY), 62) || place(eventfd(0, 0), 63) ||
        place(sp[0], 64) || place(open("/dev/null", O_RDWR), 65) ||
        place(epoll_create1(0), 66) || place(timerfd_create(CLOCK_MONOTONIC, 0), 67) ||
        place(inotify_init1(0), 68) || place(tcp, 69) || place(sp[1], 70) ||
        place(open("/dev/null", O_RDONLY), 71))
        return 2;
    /* A second thread: glibc's multi-threaded fork path. It holds
     * torture_held at the fork. */
    pthread_t th;
    if (pthread_create(&th, NULL, idle_thread, &lp[0]) != 0)
        return 2;
    char r;
    while (read(held_ready[0], &r, 1) < 0 && errno == EINTR) {
    }
    const char *probe = getenv("TORTURE_PROBE");
    pid_t pid = fork();
    if (pid == 0) {
        /* Under the allow-list from here on: write and exit only, unless
         * probing that the filter kills. */
        if (probe && !strcmp(probe, "mmap"))
            mmap(NULL, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (probe && !strcmp(probe, "brk"))
            syscall(SYS_brk, 0);
        fgt_trace("child-after-fork");
        _exit(0);
    }
    if (pid < 0)
        return 1;
    int st = wait_deadline(pid, 10000);
    (void)!write(lp[1], "x", 1);
    pthread_join(th, NULL);
    int sig = st >= 0 && WIFSIGNALED(st) ? WTERMSIG(st) : 0;
    int code = st >= 0 && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    say("child_signal=%d child_exit=%d\n", sig, code);
    return !(code == 0);
}

int main(int argc, char **argv)
{
    fgt_trace_open();
    sem_init(&torture_sem, 0, 1);
    const char *mode = argc > 1 ? argv[1] : "";
    int a = argc > 2 ? atoi(argv[2]) : 0;
    int b = argc > 3 ? atoi(argv[3]) : 0;
    if (!strcmp(mode, "concurrent"))
        return do_concurrent(a ? a : 8, b ? b : 500);
    if (!strcmp(mode, "sigalrm"))
        return do_sigalrm(a ? a : 3000);
    if (!strcmp(mode, "nested"))
        return nest(0, a ? a : 3, b ? b : 2);
    if (!strcmp(mode, "atfork"))
        return do_atfork(0);
    if (!strcmp(mode, "atfork_mt"))
        return do_atfork(1);
    if (!strcmp(mode, "failfork"))
        return do_failfork();
    if (!strcmp(mode, "nproc"))
        return do_nproc();
    if (!strcmp(mode, "seccomp"))
        return do_seccomp();
    fprintf(stderr, "torture_fork: unknown mode %s\n", mode);
    return 2;
}
