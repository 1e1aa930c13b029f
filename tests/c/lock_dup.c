/* lock_dup: a second `static pthread_mutex_t prog_private_lock` in another
 * translation unit, linked into lock_static_dup: the static symbol table
 * then has two objects of that name, and forkguard must refuse the name as
 * ambiguous rather than pick one. */
#include <pthread.h>

static pthread_mutex_t prog_private_lock = PTHREAD_MUTEX_INITIALIZER;

int lock_dup_touch(void)
{
    return pthread_mutex_trylock(&prog_private_lock);
}
