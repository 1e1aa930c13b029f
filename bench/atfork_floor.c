/* atfork_floor.so: hand-written pthread_atfork equivalent of forkguard's
 * [[call]] actions, the floor for per-fork cost.
 *
 * FGB_ATFORK_CALLS=K (default 4) builds the same plan as the K-call configs
 * that scripts/bench.sh writes: action i (0-based) runs in phase
 * prepare/parent/child for i % 3 == 0/1/2 and calls fgb_call<(i % 4) + 1>,
 * resolved once at load time with dlsym (the subject, bench/forkloop, exports
 * them with -rdynamic). Prepare runs its actions in declared order, parent
 * and child in reverse order, as forkguard does (SPEC section 4).
 *
 * FGB_ATFORK_LOCKS=K (default 0; replaces the calls when set) is the floor of
 * K [[lock]] actions, type = "mutex", strategy = "acquire": prepare takes
 * fgb_lock1 .. fgb_lockK in order with pthread_mutex_lock, parent unlocks them
 * in reverse order, child re-initialises them in reverse order keeping their
 * kind (pthread_mutexattr_settype with the kind read in prepare), which is
 * what forkguard's acquire does without its timeout and its bookkeeping.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#define MAX_CALLS 64

typedef void (*fn_t)(void);

static fn_t phase_fns[3][MAX_CALLS];
static int phase_len[3];

static void run_forward(int phase)
{
    for (int i = 0; i < phase_len[phase]; i++)
        phase_fns[phase][i]();
}

static void run_reverse(int phase)
{
    for (int i = phase_len[phase] - 1; i >= 0; i--)
        phase_fns[phase][i]();
}

static void on_prepare(void) { run_forward(0); }
static void on_parent(void) { run_reverse(1); }
static void on_child(void) { run_reverse(2); }

static pthread_mutex_t *locks[MAX_CALLS];
static int lock_kind[MAX_CALLS];
static int nlocks;

static void lock_prepare(void)
{
    for (int i = 0; i < nlocks; i++) {
        /* There is no getter for a mutex's kind: glibc keeps it in
         * __data.__kind (the low bits are the type), read like forkguard
         * reads it. */
        lock_kind[i] = locks[i]->__data.__kind & 3;
        pthread_mutex_lock(locks[i]);
    }
}

static void lock_parent(void)
{
    for (int i = nlocks - 1; i >= 0; i--)
        pthread_mutex_unlock(locks[i]);
}

static void lock_child(void)
{
    for (int i = nlocks - 1; i >= 0; i--) {
        pthread_mutexattr_t a;
        pthread_mutexattr_init(&a);
        pthread_mutexattr_settype(&a, lock_kind[i]);
        pthread_mutex_init(locks[i], &a);
        pthread_mutexattr_destroy(&a);
    }
}

/* FGB_ATFORK_LOCKS=K: returns 1 when the lock floor was installed. */
static int install_locks(void)
{
    const char *env = getenv("FGB_ATFORK_LOCKS");
    if (!env)
        return 0;
    long k = strtol(env, NULL, 10);
    if (k < 0)
        k = 0;
    if (k > MAX_CALLS)
        k = MAX_CALLS;
    for (long i = 0; i < k; i++) {
        char name[16];
        snprintf(name, sizeof name, "fgb_lock%ld", i + 1);
        pthread_mutex_t *m = dlsym(RTLD_DEFAULT, name);
        if (!m)
            return 1; /* not inside bench/forkloop: stay inert */
        locks[i] = m;
    }
    nlocks = (int)k;
    pthread_atfork(lock_prepare, lock_parent, lock_child);
    return 1;
}

__attribute__((constructor)) static void atfork_floor_init(void)
{
    if (install_locks())
        return;
    const char *env = getenv("FGB_ATFORK_CALLS");
    long k = env ? strtol(env, NULL, 10) : 4;
    if (k < 0)
        k = 0;
    if (k > MAX_CALLS)
        k = MAX_CALLS;
    for (long i = 0; i < k; i++) {
        char name[16];
        snprintf(name, sizeof name, "fgb_call%ld", (i % 4) + 1);
        fn_t f = (fn_t)dlsym(RTLD_DEFAULT, name);
        if (!f) {
            /* Not inside bench/forkloop: stay inert rather than crash. */
            phase_len[0] = phase_len[1] = phase_len[2] = 0;
            return;
        }
        int phase = (int)(i % 3);
        phase_fns[phase][phase_len[phase]++] = f;
    }
    pthread_atfork(on_prepare, on_parent, on_child);
}
