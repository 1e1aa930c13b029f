/* lockpairs: the per-lock-operation benchmark subject for scripts/bench.sh
 * (held-lock tracking, issue 14).
 *
 *   lockpairs TYPE N [THREADS]
 *
 * Each of THREADS threads (default 1) takes and releases one shared lock N
 * times: TYPE is mutex, rwlock-rd, rwlock-wr, spin or sem (a binary
 * semaphore: sem_init(.., 1), sem_wait / sem_post). With THREADS > 1 the
 * threads contend for it. Prints one line:
 *   "type=TYPE threads=T pairs=P loop_ns=NS per_pair_ns=X"
 * Under callgrind, scripts/bench.sh runs two values of N and divides the
 * difference of the totals by the difference of the pairs: the instructions
 * of one lock/unlock pair, start-up and exit cancelled out. The locks are
 * exported (-rdynamic) as fgb_pair_mutex, fgb_pair_rwlock, fgb_pair_spin
 * and fgb_pair_sem, so a config can name them.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

pthread_mutex_t fgb_pair_mutex = PTHREAD_MUTEX_INITIALIZER;
pthread_rwlock_t fgb_pair_rwlock = PTHREAD_RWLOCK_INITIALIZER;
pthread_spinlock_t fgb_pair_spin;
sem_t fgb_pair_sem;

enum kind { MUTEX, RDLOCK, WRLOCK, SPIN, SEM };
static enum kind kind;
static long n;
static volatile unsigned long work;

static void *loop(void *arg)
{
    (void)arg;
    for (long i = 0; i < n; i++) {
        switch (kind) {
        case MUTEX:
            pthread_mutex_lock(&fgb_pair_mutex);
            work++;
            pthread_mutex_unlock(&fgb_pair_mutex);
            break;
        case RDLOCK:
            pthread_rwlock_rdlock(&fgb_pair_rwlock);
            work++;
            pthread_rwlock_unlock(&fgb_pair_rwlock);
            break;
        case WRLOCK:
            pthread_rwlock_wrlock(&fgb_pair_rwlock);
            work++;
            pthread_rwlock_unlock(&fgb_pair_rwlock);
            break;
        case SPIN:
            pthread_spin_lock(&fgb_pair_spin);
            work++;
            pthread_spin_unlock(&fgb_pair_spin);
            break;
        case SEM:
            while (sem_wait(&fgb_pair_sem) != 0)
                ;
            work++;
            sem_post(&fgb_pair_sem);
            break;
        }
    }
    return NULL;
}

static long long now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int main(int argc, char **argv)
{
    static const char *names[] = {"mutex", "rwlock-rd", "rwlock-wr", "spin", "sem"};
    if (argc < 3 || argc > 4) {
        fprintf(stderr, "usage: %s mutex|rwlock-rd|rwlock-wr|spin|sem N [THREADS]\n", argv[0]);
        return 2;
    }
    int k;
    for (k = 0; k < 5 && strcmp(argv[1], names[k]) != 0; k++)
        ;
    if (k == 5) {
        fprintf(stderr, "lockpairs: unknown lock type %s\n", argv[1]);
        return 2;
    }
    kind = (enum kind)k;
    n = strtol(argv[2], NULL, 10);
    long threads = argc > 3 ? strtol(argv[3], NULL, 10) : 1;
    if (n < 0 || threads < 1 || threads > 64) {
        fprintf(stderr, "lockpairs: N >= 0 and 1 <= THREADS <= 64\n");
        return 2;
    }
    pthread_spin_init(&fgb_pair_spin, PTHREAD_PROCESS_PRIVATE);
    sem_init(&fgb_pair_sem, 0, 1);

    pthread_t tid[64];
    long long t0 = now_ns();
    for (long i = 1; i < threads; i++) {
        if (pthread_create(&tid[i], NULL, loop, NULL) != 0) {
            perror("lockpairs: pthread_create");
            return 1;
        }
    }
    loop(NULL);
    for (long i = 1; i < threads; i++)
        pthread_join(tid[i], NULL);
    long long dt = now_ns() - t0;
    long pairs = n * threads;
    printf("type=%s threads=%ld pairs=%ld loop_ns=%lld per_pair_ns=%.2f\n", names[k], threads,
           pairs, dt, pairs > 0 ? (double)dt / (double)pairs : 0.0);
    return 0;
}
