/* call_args: [[call]] targets that take integer arguments (SPEC 8.8).
 *
 *   call_args     fork once; the child exits 0; the parent reaps it
 *
 * fgt_args6 appends "args6 PID A B C D E F" to $FGT_TRACE, fgt_args2
 * "args2 PID A B" (see trace.h: one write(2), async-signal-safe). The
 * program writes "reaped CHILD STATUS". Built with -rdynamic so that
 * dlsym finds the targets. */
#include "trace.h"

#include <stdint.h>
#include <sys/wait.h>

void fgt_args6(int64_t a, int64_t b, int64_t c, int64_t d, int64_t e, int64_t f)
{
    long v[7] = {(long)getpid(), a, b, c, d, e, f};
    fgt_trace_nums("args6", v, 7);
}

void fgt_args2(int64_t a, int64_t b)
{
    long v[3] = {(long)getpid(), a, b};
    fgt_trace_nums("args2", v, 3);
}

int main(void)
{
    fgt_trace_open();
    pid_t pid = fork();
    if (pid < 0)
        return 2;
    if (pid == 0)
        _exit(0);
    int st = 0;
    if (waitpid(pid, &st, 0) != pid)
        return 2;
    long v[2] = {(long)pid, (long)st};
    fgt_trace_nums("reaped", v, 2);
    return 0;
}
