/* childcheck: what the [child] settings and the child phase's order did.
 *
 *   childcheck settings   fork once; the child prints, as seen right after
 *                         fork() returned: pdeathsig= name= sid_is_pid=
 *                         usr1_blocked= usr2_default= oom=, on one line
 *                         starting "child:"; the parent prints the same for
 *                         itself on a line starting "parent:".
 *   childcheck order      the same, while another thread holds fgt_lock.
 *
 * In both modes a child-phase call fgt_child_probe, if configured, records
 * what the earlier child steps had already done (see below).
 *
 * Before forking the parent blocks SIGUSR1, catches SIGUSR2, puts a
 * descriptor on fd 50 and fills fgt_zero_me. */
#define _GNU_SOURCE
#include "trace.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <sys/wait.h>

/* [[zero]] target: 32 bytes of non-zero data. */
long fgt_zero_me[4] = {1, 2, 3, 4};

/* [[lock]] target, held by another thread when the process forks. */
pthread_mutex_t fgt_lock = PTHREAD_MUTEX_INITIALIZER;

#define PROBE_FD 50

static void on_usr2(int sig) { (void)sig; }

/* Child-phase call: "probe PID LOCK_FREE ZEROED FD_CLOSED NAME_SET"
 * (1 = that earlier step of the child phase has already happened). The
 * signal mask is not probed: signals stay blocked while phases run. */
void fgt_child_probe(void)
{
    char name[17] = {0};
    long v[5];
    int saved = errno;

    v[0] = getpid();
    v[1] = pthread_mutex_trylock(&fgt_lock) == 0;
    if (v[1])
        pthread_mutex_unlock(&fgt_lock);
    v[2] = fgt_zero_me[0] == 0 && fgt_zero_me[1] == 0 && fgt_zero_me[2] == 0 &&
           fgt_zero_me[3] == 0;
    v[3] = fcntl(PROBE_FD, F_GETFD) == -1 && errno == EBADF;
    prctl(PR_GET_NAME, name, 0, 0, 0);
    v[4] = strcmp(name, "fgtworker") == 0;
    fgt_trace_nums("probe", v, 5);
    errno = saved;
}

static void describe(const char *who)
{
    int pdeath = -1;
    char name[17] = {0};
    sigset_t cur;
    struct sigaction sa;
    char oom[32] = "?";

    prctl(PR_GET_PDEATHSIG, &pdeath, 0, 0, 0);
    prctl(PR_GET_NAME, name, 0, 0, 0);
    sigprocmask(SIG_BLOCK, NULL, &cur);
    sigaction(SIGUSR2, NULL, &sa);
    int fd = open("/proc/self/oom_score_adj", O_RDONLY);
    if (fd >= 0) {
        ssize_t n = read(fd, oom, sizeof oom - 1);
        oom[n > 0 ? n : 0] = 0;
        close(fd);
        char *nl = strchr(oom, '\n');
        if (nl)
            *nl = 0;
    }
    printf("%s: pdeathsig=%d name=%s sid_is_pid=%d usr1_blocked=%d usr2_default=%d oom=%s\n",
           who, pdeath, name, getsid(0) == getpid(), sigismember(&cur, SIGUSR1),
           sa.sa_handler == SIG_DFL, oom);
    fflush(stdout);
}

static int lock_pipe[2];
static pthread_barrier_t locked;

static void *hold_lock(void *arg)
{
    (void)arg;
    char c;
    pthread_mutex_lock(&fgt_lock);
    pthread_barrier_wait(&locked);
    /* Keep it until main says so (never, in the child: this thread is gone). */
    while (read(lock_pipe[0], &c, 1) < 0 && errno == EINTR) {
    }
    pthread_mutex_unlock(&fgt_lock);
    return NULL;
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "settings";
    pthread_t th;
    int holder = !strcmp(mode, "order");

    fgt_trace_open();
    setvbuf(stdout, NULL, _IOLBF, 0);

    sigset_t block;
    sigemptyset(&block);
    sigaddset(&block, SIGUSR1);
    sigprocmask(SIG_SETMASK, &block, NULL);
    struct sigaction sa = {0};
    sa.sa_handler = on_usr2;
    sigaction(SIGUSR2, &sa, NULL);
    int nul = open("/dev/null", O_RDONLY);
    if (nul < 0 || dup2(nul, PROBE_FD) != PROBE_FD)
        return 2;
    close(nul);

    if (holder) {
        if (pipe(lock_pipe) != 0)
            return 2;
        pthread_barrier_init(&locked, NULL, 2);
        pthread_create(&th, NULL, hold_lock, NULL);
        pthread_barrier_wait(&locked);
    }

    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        return 1;
    }
    if (pid == 0) {
        describe("child");
        _exit(0);
    }
    int st;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    describe("parent");
    printf("child-status=%d\n", st);
    if (holder) {
        (void)!write(lock_pipe[1], "x", 1);
        pthread_join(th, NULL);
    }
    return !(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}
