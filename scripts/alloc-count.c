// A counting allocator to preload under `hidden-mpi bench`: it counts every malloc, calloc,
// realloc and aligned allocation of the process; bench reads the count before and after the
// timed steps through hidden_mpi_alloc_count and reports allocations per step.
//   cc -O2 -shared -fPIC scripts/alloc-count.c -o /tmp/alloc-count.so -ldl
//   LD_PRELOAD=/tmp/alloc-count.so hidden-mpi bench --model conv4
#define _GNU_SOURCE
#include <stddef.h>
#include <stdint.h>
#include <stdatomic.h>

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);

static atomic_uint_fast64_t count;

uint64_t hidden_mpi_alloc_count(void) { return atomic_load(&count); }

void *malloc(size_t n) { atomic_fetch_add(&count, 1); return __libc_malloc(n); }
void *calloc(size_t a, size_t b) { atomic_fetch_add(&count, 1); return __libc_calloc(a, b); }
void *realloc(void *p, size_t n) { atomic_fetch_add(&count, 1); return __libc_realloc(p, n); }
void *memalign(size_t a, size_t n) { atomic_fetch_add(&count, 1); return __libc_memalign(a, n); }
void *aligned_alloc(size_t a, size_t n) { atomic_fetch_add(&count, 1); return __libc_memalign(a, n); }
int posix_memalign(void **p, size_t a, size_t n) {
    atomic_fetch_add(&count, 1);
    *p = __libc_memalign(a, n);
    return *p ? 0 : 12;
}
