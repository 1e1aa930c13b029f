/* fd_fix: descriptors for forkguard's [[fd]] tests, one mode per case.
 *
 *   fd_fix devnull        fd 5 a file opened write-only, fd 6 one opened read-only
 *   fd_fix memfd          fd 5 a memfd, fds 6 and 7 tmpfs files (7 unlinked);
 *                         the child reports which are open
 *   fd_fix std            the child writes "child-stdout" to fd 1
 *   fd_fix cloexec        fds 5, 6, 7 without FD_CLOEXEC; the child execs `fd_fix list`
 *   fd_fix list           report the open descriptors
 *   fd_fix keep           fd 5 = $FD_DIR/orig, fd 6 = $FD_DIR/other; report both in the child
 *   fd_fix reopen N M     fd 5 = $FD_DIR/app.log (append); N children and the
 *                         parent each write M lines "PID I" to fd 5 at once
 *   fd_fix many N         N more descriptors (dups of /dev/null); the child
 *                         counts what is left at >= 3
 *   fd_fix listen PORT [FD [SOFT]]
 *                         listen on 127.0.0.1:PORT at fd FD (default 10), then
 *                         (if SOFT is given) lower the soft RLIMIT_NOFILE to
 *                         SOFT, fork a child that execs `sleep 60`, and exit
 *   fd_fix epoll          fd 10 an epoll watching a pipe; the child deletes the
 *                         registration; the parent then waits for an event
 *   fd_fix kinds          eventfd, timerfd, inotify, epoll, signalfd: what the
 *                         child has in their place
 *   fd_fix sock P4 P6     TCP over IPv4 and IPv6, unix sockets: which ones the
 *                         child still shares with the parent
 *
 * Reports are lines "parent k=v ..." / "child k=v ..." appended to $FD_OUT
 * (opened for each line, so no descriptor of the report survives to be
 * selected). The child of a single-threaded program may use stdio-free
 * formatting freely; everything here is single-threaded. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char *role = "parent";

static void say(const char *fmt, ...)
{
    char buf[4096];
    int n = snprintf(buf, sizeof buf, "%s ", role);
    va_list ap;
    va_start(ap, fmt);
    n += vsnprintf(buf + n, sizeof buf - n - 1, fmt, ap);
    va_end(ap);
    if (n > (int)sizeof buf - 2)
        n = sizeof buf - 2;
    buf[n++] = '\n';
    const char *out = getenv("FD_OUT");
    int fd = out ? open(out, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644) : -1;
    (void)!write(fd >= 0 ? fd : 2, buf, n);
    if (fd >= 0)
        close(fd);
}

static void die(const char *what)
{
    say("error=%s errno=%d", what, errno);
    _exit(3);
}

static void place(int fd, int at)
{
    if (fd < 0)
        die("open");
    if (fd != at) {
        if (dup2(fd, at) != at)
            die("dup2");
        close(fd);
    }
}

static const char *dir(void)
{
    const char *d = getenv("FD_DIR");
    return d ? d : ".";
}

static int open_in_dir(const char *name, int flags)
{
    char p[4096];
    snprintf(p, sizeof p, "%s/%s", dir(), name);
    return open(p, flags, 0644);
}

/* The target of /proc/self/fd/N, or "closed". */
static const char *link_of(int fd, char *buf, size_t len)
{
    char p[64];
    snprintf(p, sizeof p, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(p, buf, len - 1);
    if (n < 0)
        return "closed";
    buf[n] = 0;
    return buf;
}

static const char *acc(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0)
        return "closed";
    switch (fl & O_ACCMODE) {
    case O_RDONLY: return "r";
    case O_WRONLY: return "w";
    default: return "rw";
    }
}

static int cloexec_of(int fd)
{
    int f = fcntl(fd, F_GETFD);
    return f < 0 ? -1 : !!(f & FD_CLOEXEC);
}

static int nonblock_of(int fd)
{
    int f = fcntl(fd, F_GETFL);
    return f < 0 ? -1 : !!(f & O_NONBLOCK);
}

static unsigned long ino_of(int fd)
{
    struct stat st;
    return fstat(fd, &st) == 0 ? (unsigned long)st.st_ino : 0;
}

/* /proc/self/fdinfo/N into buf, NUL-terminated; 0 if it cannot be read. */
static int fdinfo_text(int fd, char *buf, size_t size)
{
    char p[64];
    snprintf(p, sizeof p, "/proc/self/fdinfo/%d", fd);
    int f = open(p, O_RDONLY);
    if (f < 0)
        return 0;
    ssize_t n = read(f, buf, size - 1);
    close(f);
    if (n <= 0)
        return 0;
    buf[n] = 0;
    return 1;
}

/* A numeric field of /proc/self/fdinfo/N, or -1. */
static long fdinfo(int fd, const char *key)
{
    char buf[2048];
    if (!fdinfo_text(fd, buf, sizeof buf))
        return -1;
    char *at = strstr(buf, key);
    return at ? strtol(at + strlen(key), NULL, 10) : -1;
}

/* How many lines of /proc/self/fdinfo/N start with `prefix` (epoll
 * registrations "tfd:", inotify watches "inotify wd:"). */
static int fdinfo_lines(int fd, const char *prefix)
{
    char buf[4096];
    if (!fdinfo_text(fd, buf, sizeof buf))
        return -1;
    int count = 0;
    for (char *line = buf; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL)
        if (!strncmp(line, prefix, strlen(prefix)))
            count++;
    return count;
}

static int reap(pid_t pid)
{
    int st;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR)
            return -1;
    return st;
}

static int wait_child(pid_t pid)
{
    int st = reap(pid);
    say("child-status=%d", st);
    return !(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

static pid_t do_fork(void)
{
    pid_t p = fork();
    if (p < 0)
        die("fork");
    if (p == 0)
        role = "child";
    return p;
}

/* ---- modes ---- */

static int m_devnull(void)
{
    place(open_in_dir("w.txt", O_WRONLY | O_CREAT | O_TRUNC), 5);
    int r = open_in_dir("r.txt", O_WRONLY | O_CREAT | O_TRUNC);
    (void)!write(r, "data", 4);
    close(r);
    place(open_in_dir("r.txt", O_RDONLY), 6);
    fcntl(6, F_SETFD, FD_CLOEXEC);
    pid_t p = do_fork();
    if (p == 0) {
        char l5[512], l6[512], b[8];
        ssize_t w = write(5, "child\n", 6);
        ssize_t rd = read(6, b, sizeof b);
        say("fd5=%s acc5=%s cx5=%d fd6=%s acc6=%s cx6=%d write5=%zd read6=%zd", link_of(5, l5, sizeof l5), acc(5),
            cloexec_of(5), link_of(6, l6, sizeof l6), acc(6), cloexec_of(6), w, rd);
        _exit(0);
    }
    int rc = wait_child(p);
    (void)!write(5, "parent\n", 7);
    return rc;
}

/* fd 5 a memfd, fd 6 a linked file on tmpfs (/dev/shm), fd 7 an unlinked
 * one: all three are shmem files; only fd 5 is a memfd. */
static int m_memfd(void)
{
    place(memfd_create("fgt", MFD_CLOEXEC), 5);
    char path[64];
    snprintf(path, sizeof path, "/dev/shm/fgt-memfd-%d", (int)getpid());
    place(open(path, O_RDWR | O_CREAT | O_TRUNC, 0600), 6);
    char gone[64];
    snprintf(gone, sizeof gone, "/dev/shm/fgt-gone-%d", (int)getpid());
    place(open(gone, O_RDWR | O_CREAT | O_TRUNC, 0600), 7);
    unlink(gone);
    pid_t p = do_fork();
    if (p == 0) {
        say("fd5=%d fd6=%d fd7=%d", fcntl(5, F_GETFD) >= 0, fcntl(6, F_GETFD) >= 0, fcntl(7, F_GETFD) >= 0);
        _exit(0);
    }
    int rc = wait_child(p);
    unlink(path);
    return rc;
}

static int m_std(void)
{
    pid_t p = do_fork();
    if (p == 0) {
        char l0[512], l1[512], l2[512];
        ssize_t w = write(1, "child-stdout\n", 13);
        say("fd0=%s fd1=%s fd2=%s acc0=%s acc1=%s acc2=%s write1=%zd", link_of(0, l0, sizeof l0),
            link_of(1, l1, sizeof l1), link_of(2, l2, sizeof l2), acc(0), acc(1), acc(2), w);
        _exit(0);
    }
    int rc = wait_child(p);
    (void)!write(1, "parent-stdout\n", 14);
    return rc;
}

static int m_list(void)
{
    role = "exec";
    char out[4096] = "";
    size_t len = 0;
    for (int fd = 0; fd < 1024; fd++) {
        if (fcntl(fd, F_GETFD) >= 0)
            len += snprintf(out + len, sizeof out - len, "%s%d", len ? "," : "", fd);
        if (len >= sizeof out - 16)
            break;
    }
    say("open=%s", out);
    return 0;
}

static int m_cloexec(const char *self)
{
    for (int fd = 5; fd <= 7; fd++)
        place(open("/dev/null", O_RDWR), fd);
    pid_t p = do_fork();
    if (p == 0) {
        say("cx5=%d cx6=%d cx7=%d", cloexec_of(5), cloexec_of(6), cloexec_of(7));
        execl(self, self, "list", (char *)NULL);
        die("exec");
    }
    return wait_child(p);
}

static int m_keep(void)
{
    place(open_in_dir("orig", O_WRONLY | O_CREAT | O_TRUNC), 5);
    place(open_in_dir("other", O_WRONLY | O_CREAT | O_TRUNC), 6);
    pid_t p = do_fork();
    if (p == 0) {
        char l5[512], l6[512];
        ssize_t w = write(5, "child\n", 6);
        say("fd5=%s fd6=%s write5=%zd", link_of(5, l5, sizeof l5), link_of(6, l6, sizeof l6), w);
        _exit(0);
    }
    return wait_child(p);
}

static void write_lines(int fd, int m)
{
    char line[64];
    for (int i = 0; i < m; i++) {
        int n = snprintf(line, sizeof line, "%d %d\n", (int)getpid(), i);
        if (write(fd, line, n) != n)
            die("write");
    }
}

static int m_reopen(int n, int m)
{
    place(open_in_dir("app.log", O_WRONLY | O_APPEND | O_CREAT), 5);
    int go[2];
    if (pipe(go) != 0)
        die("pipe");
    pid_t kids[64];
    if (n > 64)
        n = 64;
    for (int k = 0; k < n; k++) {
        kids[k] = do_fork();
        if (kids[k] == 0) {
            char c, l5[512];
            close(go[1]);
            while (read(go[0], &c, 1) < 0 && errno == EINTR) {
            }
            say("pid=%d parent=%d fd5=%s", (int)getpid(), (int)getppid(), link_of(5, l5, sizeof l5));
            write_lines(5, m);
            _exit(0);
        }
    }
    role = "parent";
    close(go[0]);
    close(go[1]); /* every child starts now */
    write_lines(5, m);
    int bad = 0;
    for (int k = 0; k < n; k++)
        bad |= wait_child(kids[k]);
    say("pid=%d", (int)getpid());
    return bad;
}

static int m_many(int n)
{
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    int base = open("/dev/null", O_RDWR);
    if (base < 0)
        die("open");
    int made = 1;
    while (made < n) {
        if (dup(base) < 0)
            die("dup");
        made++;
    }
    long (*closes)(void) = (long (*)(void))dlsym(RTLD_DEFAULT, "fdcount_closes");
    long (*ranges)(void) = (long (*)(void))dlsym(RTLD_DEFAULT, "fdcount_close_ranges");
    say("opened=%d limit=%ld", made, (long)rl.rlim_cur);
    pid_t p = do_fork();
    if (p == 0) {
        long c = closes ? closes() : -1, r = ranges ? ranges() : -1;
        int left = 0;
        for (int fd = 3; fd < (int)rl.rlim_cur; fd++)
            if (fcntl(fd, F_GETFD) >= 0)
                left++;
        say("left=%d closes=%ld close_ranges=%ld", left, c, r);
        _exit(0);
    }
    return wait_child(p);
}

static int m_listen(int port, int at, int soft)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(s, (struct sockaddr *)&a, sizeof a) != 0 || listen(s, 8) != 0)
        die("listen");
    place(s, at > 0 ? at : 10);
    if (soft > 0) {
        struct rlimit lim;
        getrlimit(RLIMIT_NOFILE, &lim);
        lim.rlim_cur = (rlim_t)soft;
        if (setrlimit(RLIMIT_NOFILE, &lim) != 0)
            die("setrlimit");
    }
    pid_t p = do_fork();
    if (p == 0) {
        execlp("sleep", "sleep", "60", (char *)NULL);
        die("exec");
    }
    say("sleeper=%d", (int)p);
    return 0;
}

static int m_epoll(void)
{
    int pp[2];
    if (pipe(pp) != 0)
        die("pipe");
    place(epoll_create1(0), 10);
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = pp[0]};
    if (epoll_ctl(10, EPOLL_CTL_ADD, pp[0], &ev) != 0)
        die("epoll_ctl");
    pid_t p = do_fork();
    if (p == 0) {
        int r = epoll_ctl(10, EPOLL_CTL_DEL, pp[0], NULL);
        int e = r ? errno : 0;
        /* The child's own instance still works. */
        struct epoll_event ev2 = {.events = EPOLLIN, .data.fd = pp[0]};
        int add = epoll_ctl(10, EPOLL_CTL_ADD, pp[0], &ev2);
        if (add == 0)
            epoll_ctl(10, EPOLL_CTL_DEL, pp[0], NULL);
        say("del=%d del_errno=%d add=%d", r, e, add);
        _exit(0);
    }
    int rc = wait_child(p);
    (void)!write(pp[1], "x", 1);
    struct epoll_event out;
    int n = epoll_wait(10, &out, 1, 1000);
    say("events=%d", n);
    return rc;
}

static int m_kinds(void)
{
    place(eventfd(3, EFD_SEMAPHORE | EFD_NONBLOCK), 10);
    place(timerfd_create(CLOCK_BOOTTIME, TFD_NONBLOCK | TFD_CLOEXEC), 11);
    struct itimerspec its = {.it_value = {.tv_nsec = 1000000}, .it_interval = {.tv_sec = 100}};
    timerfd_settime(11, 0, &its, NULL);
    place(inotify_init1(IN_CLOEXEC), 12);
    inotify_add_watch(12, dir(), IN_CREATE);
    fcntl(11, F_SETFD, FD_CLOEXEC); /* dup2 in place() dropped it */
    fcntl(12, F_SETFD, FD_CLOEXEC);
    int pp[2];
    if (pipe(pp) != 0)
        die("pipe");
    place(epoll_create1(0), 13);
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = pp[0]};
    epoll_ctl(13, EPOLL_CTL_ADD, pp[0], &ev);
    (void)!write(pp[1], "x", 1);
    sigset_t m;
    sigemptyset(&m);
    sigaddset(&m, SIGUSR1);
    place(signalfd(-1, &m, 0), 14);
    struct timespec ms5 = {0, 5000000};
    nanosleep(&ms5, NULL); /* the timer expires, the epoll has an event */
    /* Anonymous inodes share one inode number: tell instances apart by
     * what /proc/self/fdinfo shows of their state instead. */
    say("ev_id=%ld ep_regs=%d ino_watches=%d tfd_interval=%ld", fdinfo(10, "eventfd-id:"), fdinfo_lines(13, "tfd:"),
        fdinfo_lines(12, "inotify wd:"), fdinfo(11, "it_interval: ("));
    pid_t p = do_fork();
    if (p == 0) {
        char l[5][128];
        uint64_t v = 0;
        ssize_t ev_read = read(10, &v, sizeof v);
        int ev_errno = ev_read < 0 ? errno : 0;
        uint64_t ticks = 0;
        ssize_t tr = read(11, &ticks, sizeof ticks);
        struct epoll_event out;
        int ep = epoll_wait(13, &out, 1, 0);
        say("link10=%s link11=%s link12=%s link13=%s link14=%s", link_of(10, l[0], 128), link_of(11, l[1], 128),
            link_of(12, l[2], 128), link_of(13, l[3], 128), link_of(14, l[4], 128));
        say("ev_id=%ld ep_regs=%d ino_watches=%d tfd_interval=%ld sigmask=%ld", fdinfo(10, "eventfd-id:"),
            fdinfo_lines(13, "tfd:"), fdinfo_lines(12, "inotify wd:"), fdinfo(11, "it_interval: ("),
            fdinfo(14, "sigmask:"));
        say("ev_read=%zd ev_errno=%d ev_sem=%ld ev_nb=%d ev_cx=%d", ev_read, ev_errno,
            fdinfo(10, "eventfd-semaphore:"), nonblock_of(10), cloexec_of(10));
        say("tfd_read=%zd tfd_clock=%ld tfd_nb=%d tfd_cx=%d", tr, fdinfo(11, "clockid:"), nonblock_of(11),
            cloexec_of(11));
        say("ino_cx=%d ino_nb=%d ep_events=%d ep_cx=%d", cloexec_of(12), nonblock_of(12), ep, cloexec_of(13));
        _exit(0);
    }
    int rc = wait_child(p);
    uint64_t v = 0;
    ssize_t r = read(10, &v, sizeof v);
    struct epoll_event out;
    int ep = epoll_wait(13, &out, 1, 0);
    say("ev_read=%zd ev_value=%llu ep_events=%d ep_regs_after=%d ino_watches_after=%d", r, (unsigned long long)v, ep,
        fdinfo_lines(13, "tfd:"), fdinfo_lines(12, "inotify wd:"));
    return rc;
}

/* ---- sockets ---- */

static int tcp_listen(int family, int port)
{
    int s = socket(family, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (family == AF_INET) {
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (bind(s, (struct sockaddr *)&a, sizeof a) != 0)
            die("bind4");
    } else {
        int v6only = 0;
        setsockopt(s, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof v6only);
        struct sockaddr_in6 a = {.sin6_family = AF_INET6, .sin6_port = htons(port), .sin6_addr = IN6ADDR_LOOPBACK_INIT};
        if (bind(s, (struct sockaddr *)&a, sizeof a) != 0)
            die("bind6");
    }
    if (listen(s, 8) != 0)
        die("listen");
    return s;
}

static int tcp_connect(int family, const char *host, int port)
{
    int s = socket(family, SOCK_STREAM, 0);
    int r;
    if (family == AF_INET) {
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
        inet_pton(AF_INET, host, &a.sin_addr);
        r = connect(s, (struct sockaddr *)&a, sizeof a);
    } else {
        struct sockaddr_in6 a = {.sin6_family = AF_INET6, .sin6_port = htons(port)};
        inet_pton(AF_INET6, host, &a.sin6_addr);
        r = connect(s, (struct sockaddr *)&a, sizeof a);
    }
    if (r != 0)
        die("connect");
    return s;
}

static int m_sock(int p4, int p6)
{
    place(tcp_listen(AF_INET, p4), 10);
    place(tcp_connect(AF_INET, "127.0.0.1", p4), 11);
    place(accept(10, NULL, NULL), 12);
    place(tcp_listen(AF_INET6, p6), 13);
    place(tcp_connect(AF_INET6, "::1", p6), 14);
    place(accept(13, NULL, NULL), 15);
    /* An IPv6 socket talking to 127.0.0.1 (v4-mapped). */
    place(tcp_connect(AF_INET6, "::ffff:127.0.0.1", p4), 16);
    place(accept(10, NULL, NULL), 17);
    /* A unix listener at $FD_DIR/s.sock, a client and the accepted end. */
    int u = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un ua = {.sun_family = AF_UNIX};
    snprintf(ua.sun_path, sizeof ua.sun_path, "%s/s.sock", dir());
    unlink(ua.sun_path);
    if (bind(u, (struct sockaddr *)&ua, sizeof ua) != 0 || listen(u, 4) != 0)
        die("unix listen");
    place(u, 18);
    int c = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (connect(c, (struct sockaddr *)&ua, sizeof ua) != 0)
        die("unix connect");
    place(c, 19);
    place(accept(18, NULL, NULL), 20);
    /* A UDP socket bound to 127.0.0.1:p4 (same port number, other protocol). */
    int d = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in da = {.sin_family = AF_INET, .sin_port = htons(p4)};
    da.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(d, (struct sockaddr *)&da, sizeof da) != 0)
        die("udp bind");
    place(d, 21);
    unsigned long ino[12];
    for (int i = 0; i < 12; i++)
        ino[i] = ino_of(10 + i);
    pid_t p = do_fork();
    if (p == 0) {
        char out[1024] = "";
        size_t len = 0;
        for (int i = 0; i < 12; i++)
            len += snprintf(out + len, sizeof out - len, "%ssame%d=%d", i ? " " : "", 10 + i, ino_of(10 + i) == ino[i]);
        say("%s", out);
        /* A replaced client: end-of-file to read, EPIPE to write, O_NONBLOCK kept. */
        for (int fd = 11; fd <= 19; fd += 8) {
            char b[4];
            ssize_t r = recv(fd, b, sizeof b, MSG_DONTWAIT);
            int re = r < 0 ? errno : 0;
            ssize_t w = send(fd, "x", 1, MSG_NOSIGNAL | MSG_DONTWAIT);
            int we = w < 0 ? errno : 0;
            say("fd=%d read=%zd read_errno=%d write=%zd write_errno=%d nb=%d cx=%d", fd, r, re, w, we, nonblock_of(fd),
                cloexec_of(fd));
        }
        _exit(0);
    }
    int rc = wait_child(p);
    /* The parent's connections still carry data both ways. */
    int pairs[4][2] = {{11, 12}, {14, 15}, {16, 17}, {19, 20}};
    char out[256] = "";
    size_t len = 0;
    for (int i = 0; i < 4; i++) {
        char b[8] = "";
        int ok = send(pairs[i][0], "ping", 4, MSG_NOSIGNAL) == 4;
        struct timespec ms = {0, 20000000};
        nanosleep(&ms, NULL);
        ok = ok && recv(pairs[i][1], b, sizeof b, MSG_DONTWAIT) == 4 && memcmp(b, "ping", 4) == 0;
        ok = ok && send(pairs[i][1], "pong", 4, MSG_NOSIGNAL) == 4;
        nanosleep(&ms, NULL);
        ok = ok && recv(pairs[i][0], b, sizeof b, MSG_DONTWAIT) == 4 && memcmp(b, "pong", 4) == 0;
        len += snprintf(out + len, sizeof out - len, "%sconn%d=%d", i ? " " : "", pairs[i][0], ok);
    }
    say("%s", out);
    return rc;
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    if (argc < 2) {
        fprintf(stderr, "usage: fd_fix MODE [ARGS]\n");
        return 2;
    }
    const char *m = argv[1];
    /* Descriptors inherited from whoever ran the test are not ours: start
     * from 0, 1 and 2 only (`list` reports what an exec kept). */
    if (strcmp(m, "list") != 0)
        close_range(3, ~0U, 0);
    int a = argc > 2 ? atoi(argv[2]) : 0, b = argc > 3 ? atoi(argv[3]) : 0;
    int c = argc > 4 ? atoi(argv[4]) : 0;
    if (!strcmp(m, "devnull"))
        return m_devnull();
    if (!strcmp(m, "std"))
        return m_std();
    if (!strcmp(m, "memfd"))
        return m_memfd();
    if (!strcmp(m, "cloexec"))
        return m_cloexec(argv[0]);
    if (!strcmp(m, "list"))
        return m_list();
    if (!strcmp(m, "keep"))
        return m_keep();
    if (!strcmp(m, "reopen"))
        return m_reopen(a, b);
    if (!strcmp(m, "many"))
        return m_many(a);
    if (!strcmp(m, "listen"))
        return m_listen(a, b, c);
    if (!strcmp(m, "epoll"))
        return m_epoll();
    if (!strcmp(m, "kinds"))
        return m_kinds();
    if (!strcmp(m, "sock"))
        return m_sock(a, b);
    fprintf(stderr, "fd_fix: unknown mode %s\n", m);
    return 2;
}
