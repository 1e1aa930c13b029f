/*
 * A tiny "server" with a process-local cache guarded by a mutex that is NOT
 * exported (static): a background thread refreshes the cache while the main
 * thread forks a worker. If the refresher holds the lock at the moment of
 * fork(), the worker's copy of the lock is held by a thread that does not
 * exist in the child: the worker blocks forever on its first cache lookup.
 *
 * The main thread forks as soon as the refresher is inside the lock (it
 * stays there 200 ms), so without forkguard the worker hangs every time;
 * with `[[lock]] symbol = "cache_lock"` forkguard's prepare phase waits
 * for the refresh to finish, and the worker finishes.
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;
static char cache[64] = "empty";

static pthread_mutex_t state_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t state_cond = PTHREAD_COND_INITIALIZER;
static int refreshing = 0;

static void *refresher(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&cache_lock); /* a refresh starts */
    pthread_mutex_lock(&state_lock);
    refreshing = 1;
    pthread_cond_signal(&state_cond);
    pthread_mutex_unlock(&state_lock);
    usleep(200 * 1000); /* a slow refresh */
    snprintf(cache, sizeof cache, "refreshed");
    pthread_mutex_unlock(&cache_lock);
    return NULL;
}

static void lookup(const char *who)
{
    pthread_mutex_lock(&cache_lock);
    printf("%s: cache says \"%s\"\n", who, cache);
    fflush(stdout);
    pthread_mutex_unlock(&cache_lock);
}

int main(void)
{
    pthread_t t;
    pthread_create(&t, NULL, refresher, NULL);
    pthread_mutex_lock(&state_lock);
    while (!refreshing)
        pthread_cond_wait(&state_cond, &state_lock);
    pthread_mutex_unlock(&state_lock);

    /* The refresher holds cache_lock right now. */
    pid_t pid = fork();
    if (pid == 0) {
        lookup("worker");
        _exit(0);
    }
    pthread_join(t, NULL);
    lookup("server");
    int st;
    waitpid(pid, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 1;
}
