/* held_sqlite: SQLite (the real, unmodified, stripped libsqlite3) used by
 * threads while the main thread forks; each child uses it too.
 *
 *   held_sqlite FORKS CHILD_TIMEOUT_MS [THREADS]
 *
 * THREADS threads (default 4) open an in-memory database, create a table,
 * insert a row and close it, in a loop. With memory statistics on (SQLite's
 * default) every sqlite3_malloc and sqlite3_free takes the STATIC_MEM mutex,
 * one of the pthread mutexes in SQLite's static mutex array (a static inside
 * the library, which Debian ships stripped). The main thread waits until
 * each thread has been round once, then forks FORKS times, not in step with
 * them; each child opens, uses and closes a database and exits 0 (3 if a
 * call fails). A fork while a thread holds the mutex leaves the child
 * waiting forever. The parent waits for each child with a deadline
 * (pidfd + poll) and kills a child that does not finish. Last line on
 * stdout:
 *   forks N hung H failed F
 */
#define _GNU_SOURCE
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "wait_child.h"

static volatile int stop;
static pthread_barrier_t started;

static void die(const char *what) {
    fprintf(stderr, "held_sqlite: %s failed\n", what);
    exit(2);
}

/* One round: 0 when every call succeeded. */
static int round_trip(void) {
    sqlite3 *db = NULL;
    if (sqlite3_open(":memory:", &db) != SQLITE_OK) return 1;
    int rc = sqlite3_exec(db,
                          "CREATE TABLE t(a INTEGER, b TEXT);"
                          "INSERT INTO t VALUES (1, 'one');",
                          NULL, NULL, NULL);
    void *p = sqlite3_malloc(64);
    sqlite3_free(p);
    return (sqlite3_close(db) != SQLITE_OK || rc != SQLITE_OK || !p) ? 1 : 0;
}

static void *user_main(void *arg) {
    (void)arg;
    if (round_trip()) die("a round");
    pthread_barrier_wait(&started);
    while (!stop)
        if (round_trip()) die("a round");
    return NULL;
}

static int child(void) { return round_trip() ? 3 : 0; }

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: held_sqlite FORKS CHILD_TIMEOUT_MS [THREADS]\n");
        return 2;
    }
    int forks = atoi(argv[1]), ms = atoi(argv[2]);
    int nthreads = argc > 3 ? atoi(argv[3]) : 4;
    if (nthreads < 1 || nthreads > 64) nthreads = 4;
    if (!sqlite3_threadsafe()) die("sqlite3_threadsafe");
    if (round_trip()) die("a round");
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
