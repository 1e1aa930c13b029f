/* held: threads hold pthread locks (and binary semaphores) at a fork; the
 * child then takes every one of them. Without forkguard's held_locks the
 * child blocks forever on each lock another thread held.
 *
 *   held SCENE FORKS CHILD_TIMEOUT_MS
 *
 * For every fork, "holder" threads take the scene's locks, say so (a pipe),
 * and keep them until the parent has forked (another pipe); "hammer"
 * threads lock and unlock the scene's locks in a loop meanwhile. The child
 * takes and releases each lock and exits 0 (an unlock that fails: exit 3).
 * The parent waits for each child with a deadline (pidfd + poll) and kills
 * a child that does not finish. Last line on stdout:
 *   forks N hung H failed F
 *
 * Scenes:
 *   mutex-heap      2 holders, each a heap mutex (malloc'd object)
 *   mutex-global    a holder of g_lock (exported global)
 *   mutex-array     a holder of g_locks[5] (global array)
 *   mutex-static    a holder of s_lock (a static: only in .symtab)
 *   rwlock-readers  3 threads read-hold one heap rwlock; the child write-locks
 *   rwlock-writer   a holder write-holds a heap rwlock
 *   spin            a holder of a heap spinlock
 *   sem             a holder of a heap binary semaphore (sem_init 1)
 *   sem-other-post  a thread takes a semaphore, another posts it, a third takes it and holds it
 *   counting        a counting semaphore (value 3, 1 taken): the child sees 2
 *   exit-holding    a thread locks a heap mutex and exits (once, before the forks)
 *   many            32 threads, each holding 4 heap mutexes
 *   unordered       a holder of 4 heap mutexes (one of each: mutex, rwlock
 *                   write, spinlock, binary semaphore) that, before each
 *                   fork, takes and releases them 40 times in the order it
 *                   took them (not the reverse): every release but the
 *                   last one's is not the record's last entry
 *   reuse           a heap mutex locked, unlocked, destroyed and freed; its
 *                   memory reused (pattern) before each fork; the child
 *                   checks the pattern is intact
 *   recursive-mine  the forking thread holds a recursive mutex twice; the
 *                   child unlocks it twice (EPERM without forkguard: exit 3)
 *   errorcheck-mine the forking thread holds an errorcheck mutex
 *   robust-mine     the forking thread holds a robust mutex
 *   rwlock-mine     the forking thread write-holds an rwlock; the child
 *                   unlocks it, then must be able to write-lock it again
 *   consistent      a thread updates two counters under a heap mutex, which
 *                   it holds briefly, again and again (not in step with the
 *                   forks); the child checks they are equal (exit 6 if not):
 *                   with acquire they always are
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "wait_child.h"

pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
pthread_mutex_t g_locks[8] = {
    PTHREAD_MUTEX_INITIALIZER, PTHREAD_MUTEX_INITIALIZER, PTHREAD_MUTEX_INITIALIZER,
    PTHREAD_MUTEX_INITIALIZER, PTHREAD_MUTEX_INITIALIZER, PTHREAD_MUTEX_INITIALIZER,
    PTHREAD_MUTEX_INITIALIZER, PTHREAD_MUTEX_INITIALIZER,
};

static pthread_mutex_t s_lock = PTHREAD_MUTEX_INITIALIZER;

enum kind { MUTEX, RWREAD, RWWRITE, SPIN, SEM };

struct lock {
    enum kind kind;
    void *p;
};

#define MAX_LOCKS 160
static struct lock locks[MAX_LOCKS];
static int nlocks;
static const char *scene;

struct holder {
    int first, count; /* locks[first .. first+count) */
    int held_w, go_r; /* pipes: "held" to main, "go" from main */
    int go_w, held_r;
    int fifo_rounds; /* take all, release all in taking order, this often */
};
#define MAX_HOLDERS 40
static struct holder holders[MAX_HOLDERS];
static int nholders;
static volatile int stop;

static void die(const char *what) {
    perror(what);
    exit(2);
}

static void *heap(size_t size) {
    void *p = calloc(1, size);
    if (!p) die("calloc");
    return p;
}

static int add(enum kind k, void *p) {
    locks[nlocks].kind = k;
    locks[nlocks].p = p;
    return nlocks++;
}

static int add_new(enum kind k) {
    switch (k) {
    case MUTEX: {
        pthread_mutex_t *m = heap(sizeof *m);
        pthread_mutex_init(m, NULL);
        return add(k, m);
    }
    case RWREAD:
    case RWWRITE: {
        pthread_rwlock_t *l = heap(sizeof *l);
        pthread_rwlock_init(l, NULL);
        return add(k, l);
    }
    case SPIN: {
        pthread_spinlock_t *s = heap(sizeof *s);
        pthread_spin_init(s, PTHREAD_PROCESS_PRIVATE);
        return add(k, (void *)s);
    }
    case SEM: {
        sem_t *s = heap(sizeof *s);
        sem_init(s, 0, 1);
        return add(k, s);
    }
    }
    return -1;
}

static void take(struct lock *l) {
    switch (l->kind) {
    case MUTEX: pthread_mutex_lock(l->p); break;
    case RWREAD: pthread_rwlock_rdlock(l->p); break;
    case RWWRITE: pthread_rwlock_wrlock(l->p); break;
    case SPIN: pthread_spin_lock(l->p); break;
    case SEM: while (sem_wait(l->p) != 0) {} break;
    }
}

static int give(struct lock *l) {
    switch (l->kind) {
    case MUTEX: return pthread_mutex_unlock(l->p);
    case RWREAD:
    case RWWRITE: return pthread_rwlock_unlock(l->p);
    case SPIN: return pthread_spin_unlock(l->p);
    case SEM: return sem_post(l->p);
    }
    return 0;
}

static void holder_add(int first, int count) {
    struct holder *h = &holders[nholders++];
    int a[2], b[2];
    if (pipe(a) || pipe(b)) die("pipe");
    h->first = first;
    h->count = count;
    h->held_r = a[0];
    h->held_w = a[1];
    h->go_r = b[0];
    h->go_w = b[1];
}

static void *holder_main(void *arg) {
    struct holder *h = arg;
    char c;
    for (;;) {
        for (int r = 0; r < h->fifo_rounds; r++) {
            for (int i = 0; i < h->count; i++) take(&locks[h->first + i]);
            for (int i = 0; i < h->count; i++)
                if (give(&locks[h->first + i]) != 0) die("unlock");
        }
        for (int i = 0; i < h->count; i++) take(&locks[h->first + i]);
        if (write(h->held_w, "h", 1) != 1) break;
        if (read(h->go_r, &c, 1) != 1 || c == 'q') break;
        for (int i = h->count - 1; i >= 0; i--) give(&locks[h->first + i]);
    }
    return NULL;
}

static void *hammer_main(void *arg) {
    (void)arg;
    unsigned r = 12345;
    while (!stop) {
        r = r * 1103515245u + 12345u;
        struct lock *l = &locks[(r >> 8) % nlocks];
        if (l->kind == RWREAD) {
            pthread_rwlock_rdlock(l->p);
            pthread_rwlock_unlock(l->p);
        } else if (l->kind == MUTEX) {
            if (pthread_mutex_trylock(l->p) == 0) pthread_mutex_unlock(l->p);
        }
    }
    return NULL;
}

static void *exit_holding(void *arg) {
    pthread_mutex_lock(arg);
    return NULL; /* exits holding it */
}

static void *sem_taker(void *arg) {
    while (sem_wait(arg) != 0) {}
    return NULL;
}

static pthread_mutex_t *counted;
static volatile long count_a, count_b;

static void *counter_main(void *arg) {
    (void)arg;
    struct timespec ts = {0, 200000};
    while (!stop) {
        pthread_mutex_lock(counted);
        count_a++;
        nanosleep(&ts, NULL);
        count_b++;
        pthread_mutex_unlock(counted);
    }
    return NULL;
}

static pthread_mutex_t *reused;
static unsigned char *reuse_block;

/* The child: take and give back every lock. With FGT_ALLOC_CHECK set (and
 * tests/c/alloccount.c preloaded after forkguard), first exit 7 if
 * anything allocated since the fork (in forkguard's child phase). */
static unsigned long (*allocs_since)(void);

static int child(void) {
    if (allocs_since && allocs_since() != 0) return 7;
    if (reuse_block) {
        for (size_t i = 0; i < sizeof(pthread_mutex_t); i++)
            if (reuse_block[i] != 0xa5) return 4;
    }
    if (counted) {
        pthread_mutex_lock(counted);
        return count_a == count_b ? 0 : 6;
    }
    if (!strcmp(scene, "counting")) {
        int v = -1;
        sem_getvalue(locks[0].p, &v);
        return v == 2 ? 0 : 5;
    }
    if (!strcmp(scene, "recursive-mine") || !strcmp(scene, "errorcheck-mine") ||
        !strcmp(scene, "robust-mine")) {
        int times = !strcmp(scene, "recursive-mine") ? 2 : 1;
        for (int i = 0; i < times; i++)
            if (pthread_mutex_unlock(locks[0].p) != 0) return 3;
        if (pthread_mutex_lock(locks[0].p) != 0) return 3;
        return pthread_mutex_unlock(locks[0].p) ? 3 : 0;
    }
    if (!strcmp(scene, "rwlock-mine")) {
        if (pthread_rwlock_unlock(locks[0].p) != 0) return 3;
        if (pthread_rwlock_trywrlock(locks[0].p) != 0) return 3;
        return pthread_rwlock_unlock(locks[0].p) ? 3 : 0;
    }
    for (int i = 0; i < nlocks; i++) {
        struct lock l = locks[i];
        if (l.kind == RWREAD) l.kind = RWWRITE;
        take(&l);
        if (give(&l) != 0) return 3;
    }
    return 0;
}

static void setup(void) {
    pthread_mutexattr_t a;
    pthread_mutexattr_init(&a);
    if (!strcmp(scene, "mutex-heap")) {
        holder_add(add_new(MUTEX), 1);
        holder_add(add_new(MUTEX), 1);
    } else if (!strcmp(scene, "mutex-global")) {
        holder_add(add(MUTEX, &g_lock), 1);
    } else if (!strcmp(scene, "mutex-static")) {
        holder_add(add(MUTEX, &s_lock), 1);
    } else if (!strcmp(scene, "mutex-array")) {
        holder_add(add(MUTEX, &g_locks[5]), 1);
    } else if (!strcmp(scene, "rwlock-readers")) {
        int i = add_new(RWREAD);
        for (int k = 0; k < 3; k++) holder_add(i, 1);
    } else if (!strcmp(scene, "rwlock-writer")) {
        holder_add(add_new(RWWRITE), 1);
    } else if (!strcmp(scene, "spin")) {
        holder_add(add_new(SPIN), 1);
    } else if (!strcmp(scene, "sem")) {
        holder_add(add_new(SEM), 1);
    } else if (!strcmp(scene, "sem-other-post")) {
        int i = add_new(SEM);
        /* a thread takes it and exits; this thread posts it: the taker's
         * entry is left behind (stale); then a holder takes it */
        pthread_t t;
        pthread_create(&t, NULL, sem_taker, locks[i].p);
        pthread_join(t, NULL);
        sem_post(locks[i].p);
        holder_add(i, 1);
    } else if (!strcmp(scene, "counting")) {
        sem_t *s = heap(sizeof *s);
        sem_init(s, 0, 3);
        add(SEM, s);
        sem_wait(s);
    } else if (!strcmp(scene, "exit-holding")) {
        int i = add_new(MUTEX);
        pthread_t t;
        pthread_create(&t, NULL, exit_holding, locks[i].p);
        pthread_join(t, NULL);
    } else if (!strcmp(scene, "many")) {
        for (int t = 0; t < 32; t++) {
            int first = add_new(MUTEX);
            for (int k = 1; k < 4; k++) add_new(MUTEX);
            holder_add(first, 4);
        }
    } else if (!strcmp(scene, "unordered")) {
        int first = add_new(MUTEX);
        add_new(RWWRITE);
        add_new(SPIN);
        add_new(SEM);
        holder_add(first, 4);
        holders[nholders - 1].fifo_rounds = 40;
    } else if (!strcmp(scene, "reuse")) {
        reused = heap(sizeof *reused);
        pthread_mutex_init(reused, NULL);
        pthread_mutex_lock(reused);
        pthread_mutex_unlock(reused);
        pthread_mutex_destroy(reused);
        free(reused);
        reuse_block = malloc(sizeof(pthread_mutex_t));
        memset(reuse_block, 0xa5, sizeof(pthread_mutex_t));
        holder_add(add_new(MUTEX), 1);
    } else if (!strcmp(scene, "recursive-mine") || !strcmp(scene, "errorcheck-mine") ||
               !strcmp(scene, "robust-mine")) {
        pthread_mutex_t *m = heap(sizeof *m);
        if (!strcmp(scene, "recursive-mine"))
            pthread_mutexattr_settype(&a, PTHREAD_MUTEX_RECURSIVE);
        else if (!strcmp(scene, "errorcheck-mine"))
            pthread_mutexattr_settype(&a, PTHREAD_MUTEX_ERRORCHECK);
        else
            pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
        pthread_mutex_init(m, &a);
        add(MUTEX, m);
        pthread_mutex_lock(m);
        if (!strcmp(scene, "recursive-mine")) pthread_mutex_lock(m);
    } else if (!strcmp(scene, "consistent")) {
        counted = heap(sizeof *counted);
        pthread_mutex_init(counted, NULL);
    } else if (!strcmp(scene, "rwlock-mine")) {
        int i = add_new(RWWRITE);
        pthread_rwlock_wrlock(locks[i].p);
    } else {
        fprintf(stderr, "unknown scene %s\n", scene);
        exit(2);
    }
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: held SCENE FORKS CHILD_TIMEOUT_MS\n");
        return 2;
    }
    scene = argv[1];
    int forks = atoi(argv[2]), ms = atoi(argv[3]);
    if (getenv("FGT_ALLOC_CHECK")) {
        allocs_since = (unsigned long (*)(void))dlsym(RTLD_DEFAULT, "alloccount_since_snapshot");
        if (!allocs_since) {
            fprintf(stderr, "held: alloccount is not preloaded\n");
            return 2;
        }
    }
    setup();
    pthread_t th[MAX_HOLDERS + 2];
    for (int i = 0; i < nholders; i++) pthread_create(&th[i], NULL, holder_main, &holders[i]);
    int hammers = nholders > 0 && strcmp(scene, "many") ? 2 : 0;
    pthread_t hm[2];
    for (int i = 0; i < hammers; i++) pthread_create(&hm[i], NULL, hammer_main, NULL);
    pthread_t ct;
    if (counted) pthread_create(&ct, NULL, counter_main, NULL);
    int hung = 0, failed = 0;
    for (int n = 0; n < forks; n++) {
        char c;
        for (int i = 0; i < nholders; i++)
            if (read(holders[i].held_r, &c, 1) != 1) die("read held");
        pid_t pid = fork();
        if (pid < 0) die("fork");
        if (pid == 0) _exit(child());
        for (int i = 0; i < nholders; i++)
            if (write(holders[i].go_w, "g", 1) != 1) die("write go");
        int r = wait_child(pid, ms);
        if (r < 0)
            hung++;
        else if (r != 0) {
            failed++;
            if (failed == 1) fprintf(stderr, "child exit %d\n", r);
        }
    }
    stop = 1;
    char c;
    for (int i = 0; i < nholders; i++) {
        if (read(holders[i].held_r, &c, 1) != 1) die("read held");
        if (write(holders[i].go_w, "q", 1) != 1) die("write quit");
    }
    for (int i = 0; i < nholders; i++) pthread_join(th[i], NULL);
    for (int i = 0; i < hammers; i++) pthread_join(hm[i], NULL);
    if (counted) pthread_join(ct, NULL);
    printf("forks %d hung %d failed %d\n", forks, hung, failed);
    return 0;
}
