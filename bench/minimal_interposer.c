/* minimal_interposer.so: the smallest possible C fork interposer.
 *
 * It only forwards fork() to the next definition (glibc's). Preloaded, it
 * shows the floor of what any LD_PRELOAD fork wrapper costs at process
 * start (one more object for ld.so to map and relocate) and per fork
 * (one indirect call). scripts/bench.sh compares forkguard against it.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <sys/types.h>
#include <unistd.h>

pid_t fork(void)
{
    static pid_t (*real_fork)(void);
    if (!real_fork)
        real_fork = (pid_t (*)(void))dlsym(RTLD_NEXT, "fork");
    return real_fork();
}
