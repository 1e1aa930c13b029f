/* liblock_lib.so: a library with a private (static, non-exported) mutex,
 * like a library's internal cache lock. Used `dlopen`ed by lock_static and
 * through ctypes by tests/py/lock_ctypes.py. Built unstripped, so the
 * mutex is in its .symtab only: forkguard finds it as
 * "liblock_lib.so:ll_cache_lock". */
#include <pthread.h>

static pthread_mutex_t ll_cache_lock = PTHREAD_MUTEX_INITIALIZER;
static int ll_cache_hits;

/* Take the lock and keep it (another thread "inside the cache"). */
void locklib_hold(void) { pthread_mutex_lock(&ll_cache_lock); }

void locklib_release(void) { pthread_mutex_unlock(&ll_cache_lock); }

/* What a child does with the cache: lock, use, unlock. Blocks forever if
 * the lock was held by a thread that does not exist in the child. */
int locklib_use(void)
{
    pthread_mutex_lock(&ll_cache_lock);
    int n = ++ll_cache_hits;
    pthread_mutex_unlock(&ll_cache_lock);
    return n;
}
