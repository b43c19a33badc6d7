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
    const size_t align = bytes >= (size_t)HUGE_PAGE ? (size_t)HUGE_PAGE : 64;
    const size_t rounded = (bytes + align - 1) / align * align;
    if (posix_memalign(&p, align, rounded) != 0) return NULL;
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    if (align == (size_t)HUGE_PAGE) (void)madvise(p, rounded, MADV_HUGEPAGE);  // advice: failure is harmless
#endif
    memset(p, 0, rounded);
    return p;
}

void hm_free(void *p) { free(p); }
