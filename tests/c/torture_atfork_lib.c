/* torture_atfork_lib: a library that registers its own pthread_atfork
 * handlers from its constructor, for tests/torture_forks.rs. dlopened by
 * `torture_fork atfork` after forkguard was loaded, so its handlers are
 * registered after forkguard's fallback and after the program's first ones.
 * Each handler appends one trace line (trace.h). */
#define _GNU_SOURCE
#include "trace.h"

#include <pthread.h>

static void lib_prepare(void) { fgt_trace("lib-prep"); }
static void lib_parent(void) { fgt_trace("lib-parent"); }
static void lib_child(void) { fgt_trace("lib-child"); }

__attribute__((constructor)) static void torture_atfork_lib_init(void)
{
    fgt_trace_open();
    pthread_atfork(lib_prepare, lib_parent, lib_child);
}
