// See include/memory.h.
#include "memory.h"
#include <stdlib.h>
#include <string.h>
#if defined(__linux__)
#include <sys/mman.h>
#endif

#define HUGE_PAGE (2L << 20)

void *hm_alloc(size_t bytes) {
    if (bytes == 0) bytes = 1;
    void *p = NULL;
    // Only the start is aligned to a huge page: the size is not rounded up to one, so a buffer
    // just over 2 MiB does not hold (and zero) 4; a tail short of a whole huge page keeps small ones.
    const size_t align = bytes >= (size_t)HUGE_PAGE ? (size_t)HUGE_PAGE : 64;
    if (posix_memalign(&p, align, bytes) != 0) return NULL;
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    if (align == (size_t)HUGE_PAGE) (void)madvise(p, bytes, MADV_HUGEPAGE);  // advice: failure is harmless
#endif
    memset(p, 0, bytes);
    return p;
}

void hm_free(void *p) { free(p); }
