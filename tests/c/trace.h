/* Trace helpers shared by the C fixtures.
 *
 * The fixture calls fgt_trace_open() before it forks; the fgt_* functions
 * below are the `void f(void)` targets of [[call]] actions (found with
 * dlsym(RTLD_DEFAULT), so fixtures are built with -rdynamic). Each appends
 * one line "NAME PID\n" to $FGT_TRACE with a single write(2) on an O_APPEND
 * descriptor, formatted by hand: async-signal-safe, no allocation, so they
 * are fair to call from a child phase. errno is kept. */
#ifndef FGT_TRACE_H
#define FGT_TRACE_H

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FGT_UNUSED __attribute__((unused))

static int fgt_trace_fd = -1;

/* Open $FGT_TRACE for appending (no-op when unset). Call before forking. */
FGT_UNUSED static void fgt_trace_open(void)
{
    const char *p = getenv("FGT_TRACE");
    if (p && *p && fgt_trace_fd < 0)
        fgt_trace_fd = open(p, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
}

/* Decimal digits of v (may be negative) at out; returns the length. */
FGT_UNUSED static size_t fgt_itoa(long v, char *out)
{
    char tmp[24];
    size_t n = 0, len = 0;
    unsigned long u = v < 0 ? (unsigned long)(-(v + 1)) + 1 : (unsigned long)v;
    do {
        tmp[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0)
        out[len++] = '-';
    while (n)
        out[len++] = tmp[--n];
    return len;
}

/* Append "WORD N1 [N2 ...]\n" in one write. */
FGT_UNUSED static void fgt_trace_nums(const char *word, const long *nums, int count)
{
    char buf[256];
    size_t len = 0;
    int saved = errno;
    size_t wl = strlen(word);
    if (fgt_trace_fd < 0 || wl > 150)
        return;
    memcpy(buf, word, wl);
    len = wl;
    for (int i = 0; i < count && len < 200; i++) {
        buf[len++] = ' ';
        len += fgt_itoa(nums[i], buf + len);
    }
    buf[len++] = '\n';
    (void)!write(fgt_trace_fd, buf, len);
    errno = saved;
}

/* Append "WORD PID\n". */
FGT_UNUSED static void fgt_trace(const char *word)
{
    long pid = (long)getpid();
    fgt_trace_nums(word, &pid, 1);
}

/* The call-action targets. Non-static so dlsym finds them. */
void fgt_prepare(void) { fgt_trace("prepare"); }
void fgt_prepare2(void) { fgt_trace("prepare2"); }
void fgt_prepare3(void) { fgt_trace("prepare3"); }
void fgt_parent(void) { fgt_trace("parent"); }
void fgt_parent2(void) { fgt_trace("parent2"); }
void fgt_parent3(void) { fgt_trace("parent3"); }
void fgt_child(void) { fgt_trace("child"); }
void fgt_child2(void) { fgt_trace("child2"); }
void fgt_child3(void) { fgt_trace("child3"); }

#endif
