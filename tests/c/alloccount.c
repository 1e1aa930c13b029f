/* alloccount: a test-only preload library that counts heap allocations.
 *
 * It interposes the malloc family and forwards to glibc's __libc_* entry
 * points (no dlsym, so no recursion while the loader is still resolving).
 * Its constructor registers a pthread_atfork child handler that snapshots
 * the count; listed last in LD_PRELOAD, its constructor runs before the
 * other preloaded objects' ones, so that handler is the first registered
 * and runs first in the child, before anything else that could allocate.
 *
 * alloccount_since_snapshot() tells how many allocation calls (free not
 * counted, but realloc is) happened since the last fork in this child. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stddef.h>

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void __libc_free(void *);
extern void *__libc_memalign(size_t, size_t);
extern void *__libc_valloc(size_t);
extern void *__libc_pvalloc(size_t);

static unsigned long count;
static unsigned long snapshot;

static void bump(void) { __atomic_fetch_add(&count, 1, __ATOMIC_RELAXED); }

void *malloc(size_t n)
{
    bump();
    return __libc_malloc(n);
}

void *calloc(size_t a, size_t b)
{
    bump();
    return __libc_calloc(a, b);
}

void *realloc(void *p, size_t n)
{
    bump();
    return __libc_realloc(p, n);
}

void free(void *p)
{
    /* Freeing in a forked child takes malloc's arena lock just as much as
     * allocating does: count it too. */
    if (p)
        bump();
    __libc_free(p);
}

void *memalign(size_t align, size_t n)
{
    bump();
    return __libc_memalign(align, n);
}

void *aligned_alloc(size_t align, size_t n)
{
    bump();
    return __libc_memalign(align, n);
}

int posix_memalign(void **out, size_t align, size_t n)
{
    bump();
    if (align < sizeof(void *) || (align & (align - 1)) != 0)
        return EINVAL;
    void *p = __libc_memalign(align, n);
    if (!p)
        return ENOMEM;
    *out = p;
    return 0;
}

void *valloc(size_t n)
{
    bump();
    return __libc_valloc(n);
}

void *pvalloc(size_t n)
{
    bump();
    return __libc_pvalloc(n);
}

static void take_snapshot(void)
{
    snapshot = __atomic_load_n(&count, __ATOMIC_RELAXED);
}

unsigned long alloccount_since_snapshot(void)
{
    return __atomic_load_n(&count, __ATOMIC_RELAXED) - snapshot;
}

__attribute__((constructor)) static void alloccount_init(void)
{
    pthread_atfork(NULL, NULL, take_snapshot);
}
