/* spawnloop: process start-up benchmark harness for scripts/bench.sh.
 *
 *   spawnloop [-e NAME=VALUE]... COUNT PROGRAM [ARGS...]
 *
 * Starts PROGRAM COUNT times, one after the other, with posix_spawn and
 * waits for each. The child's
 * environment is this harness's own, minus LD_PRELOAD and every FORKGUARD_*
 * variable, plus the -e assignments: so a preload is given to the measured
 * program only, never to the harness itself.
 *
 * Prints one line: "spawns=COUNT total_ns=T per_spawn_us=U".
 * Exits 1 if any child failed to start or did not exit with status 0.
 * (Peak RSS is measured by bench/peakrss.c: a posix_spawned child's
 * ru_maxrss includes this harness's own size.)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static long long now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void usage(const char *argv0)
{
    fprintf(stderr, "usage: %s [-e NAME=VALUE]... COUNT PROGRAM [ARGS...]\n",
            argv0);
    exit(2);
}

int main(int argc, char **argv)
{
    size_t nextra = 0;
    char **extra = calloc((size_t)argc, sizeof *extra);
    int opt;
    while ((opt = getopt(argc, argv, "+e:")) != -1) {
        if (opt != 'e' || !strchr(optarg, '='))
            usage(argv[0]);
        extra[nextra++] = optarg;
    }
    if (argc - optind < 2)
        usage(argv[0]);
    long count = strtol(argv[optind], NULL, 10);
    if (count <= 0)
        usage(argv[0]);
    char **child_argv = &argv[optind + 1];

    size_t nenv = 0;
    while (environ[nenv])
        nenv++;
    char **child_env = calloc(nenv + nextra + 1, sizeof *child_env);
    size_t j = 0;
    for (size_t i = 0; i < nenv; i++) {
        if (strncmp(environ[i], "LD_PRELOAD=", 11) == 0 ||
            strncmp(environ[i], "FORKGUARD_", 10) == 0)
            continue;
        child_env[j++] = environ[i];
    }
    for (size_t i = 0; i < nextra; i++)
        child_env[j++] = extra[i];
    child_env[j] = NULL;

    if (!extra || !child_env) {
        perror("spawnloop: calloc");
        return 1;
    }

    long long t0 = now_ns();
    for (long i = 0; i < count; i++) {
        pid_t pid;
        int rc = posix_spawn(&pid, child_argv[0], NULL, NULL, child_argv,
                             child_env);
        if (rc != 0) {
            fprintf(stderr, "spawnloop: posix_spawn %s: %s\n", child_argv[0],
                    strerror(rc));
            return 1;
        }
        int status;
        while (waitpid(pid, &status, 0) < 0) {
            if (errno != EINTR) {
                perror("spawnloop: waitpid");
                return 1;
            }
        }
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            fprintf(stderr, "spawnloop: %s ended with status %#x\n",
                    child_argv[0], status);
            return 1;
        }
    }
    long long dt = now_ns() - t0;

    printf("spawns=%ld total_ns=%lld per_spawn_us=%.3f\n", count, dt,
           (double)dt / 1000.0 / (double)count);
    return 0;
}
