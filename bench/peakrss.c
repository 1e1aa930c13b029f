/* peakrss: peak resident set size of a program, for scripts/bench.sh.
 *
 *   peakrss [-e NAME=VALUE]... COUNT PROGRAM [ARGS...]
 *
 * Runs PROGRAM COUNT times (fork + execve + wait4) and prints
 *   "runs=COUNT maxrss_kb_median=M maxrss_kb_min=LO maxrss_kb_max=HI self_hwm_kb=S"
 * where maxrss is the child's ru_maxrss.
 *
 * Why a separate, statically linked harness: the kernel folds the peak RSS
 * of the memory image a process had *before* its execve into ru_maxrss, and
 * a forked (or posix_spawned) child starts with its parent's image. Started
 * from bash or from a 1 MiB dynamic harness, /bin/true "peaks" at its
 * parent's size. This harness is static and small (self_hwm_kb is its own
 * peak, printed so the report can show the floor is below the figures), and
 * builds everything before it forks, so the child's pre-exec image stays
 * small. The child's environment is the harness's own minus LD_PRELOAD and
 * FORKGUARD_*, plus the -e assignments.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

#define MAX_RUNS 1000
#define MAX_ENV 4096

static int cmp_long(const void *a, const void *b)
{
    long x = *(const long *)a, y = *(const long *)b;
    return (x > y) - (x < y);
}

/* VmHWM of this process in KiB, read without stdio. */
static long self_hwm_kb(void)
{
    static char buf[8192];
    int fd = open("/proc/self/status", O_RDONLY);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return -1;
    buf[n] = '\0';
    char *p = strstr(buf, "VmHWM:");
    return p ? strtol(p + 6, NULL, 10) : -1;
}

static void usage(const char *argv0)
{
    fprintf(stderr, "usage: %s [-e NAME=VALUE]... COUNT PROGRAM [ARGS...]\n",
            argv0);
    exit(2);
}

int main(int argc, char **argv)
{
    static char *child_env[MAX_ENV];
    static long rss[MAX_RUNS];
    size_t j = 0;

    for (size_t i = 0; environ[i] && j < MAX_ENV - 1; i++) {
        if (strncmp(environ[i], "LD_PRELOAD=", 11) == 0 ||
            strncmp(environ[i], "FORKGUARD_", 10) == 0)
            continue;
        child_env[j++] = environ[i];
    }
    int opt;
    while ((opt = getopt(argc, argv, "+e:")) != -1) {
        if (opt != 'e' || !strchr(optarg, '=') || j >= MAX_ENV - 1)
            usage(argv[0]);
        child_env[j++] = optarg;
    }
    child_env[j] = NULL;
    if (argc - optind < 2)
        usage(argv[0]);
    long count = strtol(argv[optind], NULL, 10);
    if (count <= 0 || count > MAX_RUNS)
        usage(argv[0]);
    char **child_argv = &argv[optind + 1];

    for (long i = 0; i < count; i++) {
        pid_t pid = fork();
        if (pid < 0) {
            perror("peakrss: fork");
            return 1;
        }
        if (pid == 0) {
            execve(child_argv[0], child_argv, child_env);
            _exit(127);
        }
        int status;
        struct rusage ru;
        while (wait4(pid, &status, 0, &ru) < 0) {
            if (errno != EINTR) {
                perror("peakrss: wait4");
                return 1;
            }
        }
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            fprintf(stderr, "peakrss: %s ended with status %#x\n",
                    child_argv[0], status);
            return 1;
        }
        rss[i] = ru.ru_maxrss;
    }

    qsort(rss, (size_t)count, sizeof *rss, cmp_long);
    printf("runs=%ld maxrss_kb_median=%ld maxrss_kb_min=%ld maxrss_kb_max=%ld "
           "self_hwm_kb=%ld\n",
           count, rss[count / 2], rss[0], rss[count - 1], self_hwm_kb());
    return 0;
}
