/* lock_alloc: forkguard's child phase with lock and zero actions must not
 * allocate. Run with LD_PRELOAD="<forkguard> <alloccount>" (alloccount's
 * atfork child handler snapshots the allocation count; see alloccount.c).
 *
 * At the fork another thread holds g_mutex and g_file's lock; the forking
 * thread holds g_rw for reading and g_rec (recursive) twice. g_zero_me
 * (exported) and zero_private (static, .symtab only) are non-zero.
 * The child prints `child_allocs=N zeroed=B locks=B` and the parent
 * `child-status=S`. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdio_ext.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

pthread_mutex_t g_mutex = PTHREAD_MUTEX_INITIALIZER;
pthread_mutex_t g_rec = PTHREAD_RECURSIVE_MUTEX_INITIALIZER_NP;
pthread_rwlock_t g_rw = PTHREAD_RWLOCK_INITIALIZER;
FILE *g_file;
long g_zero_me[16] = {1, 2, 3, 4, 5, 6, 7, 8};
static char zero_private[100] = "not yet zeroed";

static pthread_barrier_t b_held, b_done;

static void *holder(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&g_mutex);
    flockfile(g_file);
    pthread_barrier_wait(&b_held);
    pthread_barrier_wait(&b_done);
    funlockfile(g_file);
    pthread_mutex_unlock(&g_mutex);
    return NULL;
}

int main(void)
{
    unsigned long (*since)(void) = (unsigned long (*)(void))dlsym(RTLD_DEFAULT, "alloccount_since_snapshot");
    if (!since) {
        fprintf(stderr, "lock_alloc: alloccount is not preloaded\n");
        return 2;
    }
    setvbuf(stdout, NULL, _IONBF, 0);
    /* Written once, so the compiler keeps it in .data (a static that is
     * never written may be placed in .rodata, which forkguard refuses). */
    zero_private[0] = (char)getpid() | 1;
    g_file = fopen("/dev/null", "w");
    __fsetlocking(g_file, FSETLOCKING_BYCALLER);
    pthread_barrier_init(&b_held, NULL, 2);
    pthread_barrier_init(&b_done, NULL, 2);
    pthread_t th;
    pthread_create(&th, NULL, holder, NULL);
    pthread_barrier_wait(&b_held);
    pthread_rwlock_rdlock(&g_rw);
    pthread_mutex_lock(&g_rec);
    pthread_mutex_lock(&g_rec);

    pid_t pid = fork();
    if (pid == 0) {
        unsigned long n = since();
        int zeroed = 1;
        for (size_t i = 0; i < sizeof g_zero_me / sizeof g_zero_me[0]; i++)
            zeroed &= g_zero_me[i] == 0;
        for (size_t i = 0; i < sizeof zero_private; i++)
            zeroed &= zero_private[i] == 0;
        int locks = pthread_mutex_trylock(&g_mutex) == 0 && ftrylockfile(g_file) == 0 &&
                    pthread_rwlock_unlock(&g_rw) == 0 && pthread_rwlock_trywrlock(&g_rw) == 0 &&
                    pthread_mutex_unlock(&g_rec) == 0 && pthread_mutex_unlock(&g_rec) == 0 &&
                    pthread_mutex_unlock(&g_rec) != 0;
        char buf[96];
        int len = snprintf(buf, sizeof buf, "child_allocs=%lu zeroed=%d locks=%d\n", n, zeroed, locks);
        (void)!write(1, buf, (size_t)len);
        _exit(0);
    }
    pthread_mutex_unlock(&g_rec);
    pthread_mutex_unlock(&g_rec);
    pthread_rwlock_unlock(&g_rw);
    pthread_barrier_wait(&b_done);
    int st = 0;
    waitpid(pid, &st, 0);
    printf("child-status=%d parent_zero=%ld\n", st, g_zero_me[0]);
    pthread_join(th, NULL);
    return 0;
}
