/* handshake: what the parent can see when fork() returns.
 *
 *   handshake marker   child-phase call fgt_slow_marker sleeps ~200 ms, then
 *                      creates $FGT_MARKER. The parent prints
 *                      "marker_at_return=0|1" right after fork returned.
 *   handshake gate     child-phase call fgt_gate_wait blocks until the parent
 *                      writes to a pipe after its fork returned, then creates
 *                      $FGT_MARKER: with a handshake timeout the parent must
 *                      still come back (marker_at_return=0), then
 *                      marker_after_wait=1.
 *
 * Both modes compare /proc/self/fd before the fork with what the parent has
 * after fork returned ("parent_fds_same=1") and what the child has after
 * fork returned ("child_fds_same=1"); differences are printed as
 * "extra_fd=WHO:N:TARGET". */
#define _GNU_SOURCE
#include "trace.h"

#include <dirent.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

static const char *marker;
static int gate[2] = {-1, -1};

static void make_marker(void)
{
    int fd = open(marker, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    if (fd >= 0)
        close(fd);
}

void fgt_slow_marker(void)
{
    struct timespec ts = {0, 200 * 1000 * 1000};
    int saved = errno;
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
    }
    make_marker();
    errno = saved;
}

void fgt_gate_wait(void)
{
    char c;
    int saved = errno;
    while (read(gate[0], &c, 1) < 0 && errno == EINTR) {
    }
    make_marker();
    errno = saved;
}

#define MAX_FDS 256

/* Open descriptors of this process, without the one used to list them. */
static int list_fds(int *out)
{
    int n = 0;
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return -1;
    struct dirent *e;
    while ((e = readdir(d)) && n < MAX_FDS) {
        if (e->d_name[0] == '.')
            continue;
        int fd = atoi(e->d_name);
        if (fd != dirfd(d))
            out[n++] = fd;
    }
    closedir(d);
    return n;
}

/* Prints extra/missing descriptors; returns 1 when the sets are equal. */
static int same_fds(const char *who, const int *before, int nb)
{
    int now[MAX_FDS];
    int nn = list_fds(now);
    int same = nn == nb;
    for (int i = 0; i < nn; i++) {
        int found = 0;
        for (int j = 0; j < nb; j++)
            found |= now[i] == before[j];
        if (!found) {
            char link[64], target[256] = "?";
            snprintf(link, sizeof link, "/proc/self/fd/%d", now[i]);
            ssize_t t = readlink(link, target, sizeof target - 1);
            if (t >= 0)
                target[t] = 0;
            printf("extra_fd=%s:%d:%s\n", who, now[i], target);
            same = 0;
        }
    }
    return same;
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "marker";
    int use_gate = !strcmp(mode, "gate");
    int before[MAX_FDS];

    fgt_trace_open();
    setvbuf(stdout, NULL, _IONBF, 0);
    marker = getenv("FGT_MARKER");
    if (!marker) {
        fprintf(stderr, "handshake: FGT_MARKER not set\n");
        return 2;
    }
    if (use_gate && pipe(gate) != 0)
        return 2;
    int nb = list_fds(before);
    if (nb < 0)
        return 2;

    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        return 1;
    }
    if (pid == 0) {
        printf("child_fds_same=%d\n", same_fds("child", before, nb));
        _exit(0);
    }
    int at_return = access(marker, F_OK) == 0;
    printf("marker_at_return=%d\n", at_return);
    printf("parent_fds_same=%d\n", same_fds("parent", before, nb));
    if (use_gate)
        (void)!write(gate[1], "x", 1);
    int st;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    printf("marker_after_wait=%d\n", access(marker, F_OK) == 0);
    printf("child-status=%d\n", st);
    return !(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}
