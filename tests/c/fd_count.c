/* fd_count: a test-only preload library that counts close(2) and
 * close_range(2) calls made through glibc since the last fork, in the child.
 *
 * Listed last in LD_PRELOAD, its constructor runs before forkguard's, so its
 * pthread_atfork child handler (which resets the counts) runs before
 * forkguard's child phase: fdcount_closes() and fdcount_close_ranges() then
 * tell what the child phase did. Used to check that `from = 3` + `close`
 * takes the close_range path and never loops over descriptors. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <sys/syscall.h>
#include <unistd.h>

static long closes, ranges;

int close(int fd)
{
    __atomic_fetch_add(&closes, 1, __ATOMIC_RELAXED);
    return (int)syscall(SYS_close, fd);
}

int close_range(unsigned int first, unsigned int last, int flags)
{
    __atomic_fetch_add(&ranges, 1, __ATOMIC_RELAXED);
    return (int)syscall(SYS_close_range, first, last, flags);
}

long fdcount_closes(void) { return __atomic_load_n(&closes, __ATOMIC_RELAXED); }
long fdcount_close_ranges(void) { return __atomic_load_n(&ranges, __ATOMIC_RELAXED); }

static void reset(void)
{
    closes = 0;
    ranges = 0;
}

__attribute__((constructor)) static void fdcount_init(void) { pthread_atfork(NULL, NULL, reset); }
