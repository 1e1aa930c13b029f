/* lockloop KIND N [THREADS]: N lock/unlock (wait/post) pairs of one lock,
 * uncontended (or THREADS threads each on the shared lock: contended).
 * KIND: mutex | rwlock-rd | rwlock-wr | spin | sem. For callgrind:
 *   per pair = (Ir(2N) - Ir(N)) / N  (docs/BENCHMARKS.md, "Lock calls"). */
#include <pthread.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
static pthread_rwlock_t rw = PTHREAD_RWLOCK_INITIALIZER;
static pthread_spinlock_t sp;
static sem_t sem;
static const char *kind;
static long n;

static void *loop(void *arg) {
    (void)arg;
    if (!strcmp(kind, "mutex"))
        for (long i = 0; i < n; i++) { pthread_mutex_lock(&m); pthread_mutex_unlock(&m); }
    else if (!strcmp(kind, "rwlock-rd"))
        for (long i = 0; i < n; i++) { pthread_rwlock_rdlock(&rw); pthread_rwlock_unlock(&rw); }
    else if (!strcmp(kind, "rwlock-wr"))
        for (long i = 0; i < n; i++) { pthread_rwlock_wrlock(&rw); pthread_rwlock_unlock(&rw); }
    else if (!strcmp(kind, "spin"))
        for (long i = 0; i < n; i++) { pthread_spin_lock(&sp); pthread_spin_unlock(&sp); }
    else if (!strcmp(kind, "sem"))
        for (long i = 0; i < n; i++) { sem_wait(&sem); sem_post(&sem); }
    return NULL;
}

int main(int argc, char **argv) {
    if (argc < 3) return 2;
    kind = argv[1];
    n = atol(argv[2]);
    int threads = argc > 3 ? atoi(argv[3]) : 1;
    pthread_spin_init(&sp, 0);
    sem_init(&sem, 0, 1);
    pthread_t t[64];
    for (int i = 0; i < threads; i++) pthread_create(&t[i], NULL, loop, NULL);
    for (int i = 0; i < threads; i++) pthread_join(t[i], NULL);
    return 0;
}
