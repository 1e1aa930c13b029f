/* held_ssl: OpenSSL 3's random generator (the real, unmodified libcrypto)
 * used by threads while the main thread forks; each child uses it too.
 *
 *   held_ssl FORKS CHILD_TIMEOUT_MS [THREADS]
 *
 * THREADS threads (default 4) call RAND_bytes in a loop. The main thread
 * waits until each has made its first call, then forks FORKS times, not in
 * step with them; each child calls RAND_bytes and exits 0 (3 if it fails).
 * OpenSSL 3.0's random generators (DRBGs) are guarded by heap
 * CRYPTO_RWLOCKs (pthread_rwlock_t) that RAND_bytes write-locks: a fork
 * while a thread holds one leaves the child's first RAND_bytes waiting
 * forever (seen with gdb in a hung child: RAND_bytes_ex -> EVP_RAND_generate
 * -> ... -> CRYPTO_THREAD_write_lock -> pthread_rwlock_wrlock). The parent waits for each child with a
 * deadline (pidfd + poll) and kills a child that does not finish. Last
 * line on stdout:
 *   forks N hung H failed F
 */
#define _GNU_SOURCE
#include <openssl/rand.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "wait_child.h"

static volatile int stop;
static pthread_barrier_t started;

static void die(const char *what) {
    perror(what);
    exit(2);
}

static void *user_main(void *arg) {
    (void)arg;
    unsigned char buf[16];
    if (RAND_bytes(buf, sizeof buf) != 1) die("RAND_bytes");
    pthread_barrier_wait(&started);
    while (!stop)
        if (RAND_bytes(buf, sizeof buf) != 1) die("RAND_bytes");
    return NULL;
}

static int child(void) {
    unsigned char buf[16];
    for (int i = 0; i < 4; i++)
        if (RAND_bytes(buf, sizeof buf) != 1) return 3;
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: held_ssl FORKS CHILD_TIMEOUT_MS [THREADS]\n");
        return 2;
    }
    int forks = atoi(argv[1]), ms = atoi(argv[2]);
    int nthreads = argc > 3 ? atoi(argv[3]) : 4;
    if (nthreads < 1 || nthreads > 64) nthreads = 4;
    unsigned char buf[16];
    if (RAND_bytes(buf, sizeof buf) != 1) die("RAND_bytes");
    pthread_barrier_init(&started, NULL, (unsigned)nthreads + 1);
    pthread_t th[64];
    for (int i = 0; i < nthreads; i++) pthread_create(&th[i], NULL, user_main, NULL);
    pthread_barrier_wait(&started);
    int hung, failed;
    fork_children(forks, ms, child, &hung, &failed);
    stop = 1;
    for (int i = 0; i < nthreads; i++) pthread_join(th[i], NULL);
    printf("forks %d hung %d failed %d\n", forks, hung, failed);
    return 0;
}
