// held_cache: a C++ program whose cache object (new-ed, so its std::mutex
// is on the heap, with no symbol to name it) is refreshed by a thread that
// holds the mutex while it works. The main thread forks workers that read
// the cache: a worker forked while the refresher held the mutex blocks
// forever on it, unless forkguard frees (or waits for) it.
//
//   held_cache WORKERS CHILD_TIMEOUT_MS
//
// Last line: workers N hung H failed F
#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <string>
#include <thread>

class Cache {
   public:
    void refresh() {
        std::lock_guard<std::mutex> g(mu_);
        for (int i = 0; i < 20000; i++) entries_[std::to_string(i % 500)] = i;
        version_++;
    }
    long get() {
        std::lock_guard<std::mutex> g(mu_);
        return version_ + (long)entries_.size();
    }

   private:
    std::mutex mu_;
    std::map<std::string, long> entries_;
    long version_ = 0;
};

static int wait_child(pid_t pid, int ms) {
    int pfd = (int)syscall(SYS_pidfd_open, pid, 0);
    struct pollfd p = {pfd, POLLIN, 0};
    int status = 0;
    if (poll(&p, 1, ms) == 0) {
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
        close(pfd);
        return -1;
    }
    waitpid(pid, &status, 0);
    close(pfd);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

int main(int argc, char **argv) {
    int workers = argc > 1 ? atoi(argv[1]) : 10;
    int ms = argc > 2 ? atoi(argv[2]) : 1000;
    Cache *cache = new Cache;
    std::atomic<bool> stop{false}, ready{false};
    std::thread refresher([&] {
        while (!stop) {
            cache->refresh();
            ready = true;
        }
    });
    // Fork only once the cache has content: a worker forked before the
    // first refresh would find it empty (and fail, not hang).
    while (!ready) std::this_thread::yield();
    int hung = 0, failed = 0;
    for (int i = 0; i < workers; i++) {
        pid_t pid = fork();
        if (pid == 0) _exit(cache->get() > 0 ? 0 : 1);
        int r = wait_child(pid, ms);
        if (r < 0)
            hung++;
        else if (r != 0)
            failed++;
    }
    stop = true;
    refresher.join();
    printf("workers %d hung %d failed %d\n", workers, hung, failed);
    return 0;
}
