/* spawncost: the caller's cost of posix_spawn with forkguard preloaded in
 * the caller (spawn = true is applied there), for docs/spawn-and-exits.md.
 *
 *   spawncost COUNT [fork]
 *
 * Starts /bin/true COUNT times with posix_spawn (or fork + execve with
 * "fork") and waits for each; the children get the environment without
 * LD_PRELOAD, so only the caller's side is measured. The caller holds an
 * inheritable listening socket and a few files, as a server would. Prints
 * "per_op_us=U".
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <netinet/in.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 100;
    int use_fork = argc > 2 && !strcmp(argv[2], "fork");
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (s < 0 || bind(s, (void *)&a, sizeof a) || listen(s, 8))
        return 2;
    for (int i = 0; i < 4; i++)
        open("/etc/hostname", O_RDONLY);
    char *env[256];
    int k = 0;
    for (char **e = environ; *e && k < 255; e++)
        if (strncmp(*e, "LD_PRELOAD=", 11) && strncmp(*e, "FORKGUARD_", 10))
            env[k++] = *e;
    env[k] = NULL;
    char *args[] = {"/bin/true", NULL};
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int i = 0; i < n; i++) {
        pid_t pid;
        if (use_fork) {
            pid = fork();
            if (pid == 0) {
                execve("/bin/true", args, env);
                _exit(127);
            }
        } else if (posix_spawn(&pid, "/bin/true", NULL, NULL, args, env)) {
            return 1;
        }
        int st;
        if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st))
            return 1;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double us = ((t1.tv_sec - t0.tv_sec) * 1e9 + (t1.tv_nsec - t0.tv_nsec)) / 1e3 / n;
    printf("per_op_us=%.1f\n", us);
    return 0;
}
