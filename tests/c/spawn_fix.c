/* Spawned programs and inherited descriptors (tests/spawn.rs).
 *
 *   spawn_fix report TAG          lists its own open fds:  "report TAG fds 0 1 2 ..."
 *   spawn_fix MODE [ROUNDS THREADS]
 *
 * MODE starts `spawn_fix report MODE` through one entry point, after
 * opening: fd LSN, a listening TCP socket (inheritable); fd FILE, an
 * inheritable file; fd CLOEX, a close-on-exec file. It prints
 * "fds LSN FILE CLOEX" first and "caller MODE same 1" at the end when the
 * caller's descriptors (numbers, FD_CLOEXEC) are exactly as before every
 * spawn. Modes: posix_spawn, posix_spawnp, system, popen, vfork (vfork +
 * execve), vfork_execv, fork (fork + execv), dup2 (posix_spawn with a
 * dup2 of LSN to fd 10 in the caller's file actions), listen_fds
 * (LISTEN_FDS=1, the socket on fd 3), jobserver (MAKEFLAGS names a pipe),
 * threads (ROUNDS spawns through every entry point and forks from THREADS
 * threads at once, the descriptors checked after each).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;
static const char *self;
static int lsn, file, cloex;
static int flags_before[3];

static void report(const char *tag)
{
    char out[4096];
    int len = snprintf(out, sizeof out, "report %s fds", tag);
    DIR *d = opendir("/proc/self/fd");
    int dfd = d ? dirfd(d) : -1;
    int fds[512], n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)) && n < 512) {
        if (e->d_name[0] == '.')
            continue;
        int fd = atoi(e->d_name);
        if (fd != dfd)
            fds[n++] = fd;
    }
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++)
            if (fds[j] < fds[i]) {
                int t = fds[i];
                fds[i] = fds[j];
                fds[j] = t;
            }
    for (int i = 0; i < n && len < 4000; i++)
        len += snprintf(out + len, sizeof out - len, " %d", fds[i]);
    out[len++] = '\n';
    if (write(1, out, len) != len)
        exit(3);
}

static int listener(void)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (s < 0 || bind(s, (void *)&a, sizeof a) || listen(s, 8)) {
        perror("listener");
        exit(2);
    }
    return s;
}

static int flags_same(void)
{
    int now[3] = {fcntl(lsn, F_GETFD), fcntl(file, F_GETFD), fcntl(cloex, F_GETFD)};
    return memcmp(now, flags_before, sizeof now) == 0;
}

static char *argv_report(const char *tag, char **argv)
{
    argv[0] = (char *)self;
    argv[1] = "report";
    argv[2] = (char *)tag;
    argv[3] = NULL;
    return argv[0];
}

static int by_spawn(const char *tag, int use_path, posix_spawn_file_actions_t *fa, char **envp)
{
    char *argv[4];
    argv_report(tag, argv);
    pid_t pid;
    int r = use_path ? posix_spawnp(&pid, self, fa, NULL, argv, envp)
                     : posix_spawn(&pid, self, fa, NULL, argv, envp);
    if (r) {
        fprintf(stderr, "posix_spawn: %s\n", strerror(r));
        return 0;
    }
    int st;
    return waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

static int by_system(const char *tag)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "exec %s report %s", self, tag);
    int st = system(cmd);
    return st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

static int by_popen(const char *tag)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "exec %s report %s", self, tag);
    FILE *p = popen(cmd, "r");
    if (!p)
        return 0;
    char buf[4096];
    size_t n = fread(buf, 1, sizeof buf, p);
    int st = pclose(p);
    if (n && write(1, buf, n) != (ssize_t)n)
        return 0;
    return st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

static int by_vfork(const char *tag, int with_env)
{
    char *argv[4];
    argv_report(tag, argv);
    pid_t pid = vfork();
    if (pid == 0) {
        if (with_env)
            execve(self, argv, environ);
        else
            execv(self, argv);
        _exit(127);
    }
    int st;
    return pid > 0 && waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

static int by_fork(const char *tag)
{
    char *argv[4];
    argv_report(tag, argv);
    pid_t pid = fork();
    if (pid == 0) {
        execv(self, argv);
        _exit(127);
    }
    int st;
    return pid > 0 && waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

static int one(const char *mode, const char *tag)
{
    if (!strcmp(mode, "posix_spawn"))
        return by_spawn(tag, 0, NULL, environ);
    if (!strcmp(mode, "posix_spawnp"))
        return by_spawn(tag, 1, NULL, environ);
    if (!strcmp(mode, "system"))
        return by_system(tag);
    if (!strcmp(mode, "popen"))
        return by_popen(tag);
    if (!strcmp(mode, "vfork"))
        return by_vfork(tag, 1);
    if (!strcmp(mode, "vfork_execv"))
        return by_vfork(tag, 0);
    if (!strcmp(mode, "fork"))
        return by_fork(tag);
    fprintf(stderr, "unknown mode %s\n", mode);
    exit(2);
}

static const char *modes[] = {"posix_spawn", "system", "popen", "vfork", "fork"};
static int rounds;
static volatile int bad;

static void *worker(void *arg)
{
    long k = (long)arg;
    for (int i = 0; i < rounds; i++) {
        const char *m = modes[(k + i) % 5];
        if (!one(m, "threads") || !flags_same())
            bad = 1;
    }
    return NULL;
}

int main(int argc, char **argv)
{
    self = argv[0];
    if (argc >= 3 && !strcmp(argv[1], "report")) {
        report(argv[2]);
        return 0;
    }
    if (argc < 2)
        return 2;
    const char *mode = argv[1];
    setvbuf(stdout, NULL, _IONBF, 0);
    lsn = listener();
    file = open("/etc/hostname", O_RDONLY);
    cloex = open("/etc/hostname", O_RDONLY | O_CLOEXEC);
    int ok = 1;
    if (!strcmp(mode, "listen_fds")) {
        /* The socket on fd 3, as systemd passes it; LISTEN_FDS=1. */
        if (lsn != 3) {
            dup2(lsn, 3);
            close(lsn);
            lsn = 3;
        }
        setenv("LISTEN_FDS", "1", 1);
    }
    printf("fds %d %d %d\n", lsn, file, cloex);
    flags_before[0] = fcntl(lsn, F_GETFD);
    flags_before[1] = fcntl(file, F_GETFD);
    flags_before[2] = fcntl(cloex, F_GETFD);
    if (!strcmp(mode, "listen_fds")) {
        ok = by_spawn(mode, 0, NULL, environ) && by_system(mode);
    } else if (!strcmp(mode, "jobserver")) {
        int p[2];
        if (pipe(p))
            return 2;
        char mf[128];
        snprintf(mf, sizeof mf, " -j4 --jobserver-auth=%d,%d", p[0], p[1]);
        setenv("MAKEFLAGS", mf, 1);
        printf("jobserver %d %d\n", p[0], p[1]);
        ok = by_spawn(mode, 0, NULL, environ) && by_system(mode) && by_vfork(mode, 1);
    } else if (!strcmp(mode, "dup2")) {
        posix_spawn_file_actions_t fa;
        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_adddup2(&fa, lsn, 10);
        posix_spawn_file_actions_addopen(&fa, 11, "/dev/null", O_RDONLY, 0);
        posix_spawn_file_actions_addclose(&fa, 200);
        ok = by_spawn(mode, 0, &fa, environ);
        posix_spawn_file_actions_destroy(&fa);
    } else if (!strcmp(mode, "threads")) {
        rounds = argc > 2 ? atoi(argv[2]) : 20;
        int n = argc > 3 ? atoi(argv[3]) : 4;
        pthread_t t[16];
        for (long k = 0; k < n && k < 16; k++)
            pthread_create(&t[k], NULL, worker, (void *)k);
        for (long k = 0; k < n && k < 16; k++)
            pthread_join(t[k], NULL);
        ok = !bad;
    } else {
        ok = one(mode, mode);
    }
    printf("caller %s same %d ok %d\n", mode, flags_same(), ok);
    return ok ? 0 : 1;
}
