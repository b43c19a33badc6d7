// A counting allocator to preload under `hidden-mpi bench`: it counts every malloc, calloc,
// realloc and aligned allocation of the process; bench reads the count before and after the
// timed steps through hidden_mpi_alloc_count and reports allocations per step. Those made from
// inside the BLAS library (OpenBLAS's small-matrix sgemm kernels for AVX-512, SkylakeX and
// Cooperlake, malloc a buffer per call) are also counted apart, in hidden_mpi_alloc_count_blas,
// by the library that the allocation's immediate caller lies in.
//   cc -O2 -shared -fPIC scripts/alloc-count.c -o /tmp/alloc-count.so -ldl
//   LD_PRELOAD=/tmp/alloc-count.so hidden-mpi bench --model conv4
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stddef.h>
#include <stdint.h>
#include <stdatomic.h>
#include <string.h>

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);

static atomic_uint_fast64_t count, blas_count;
static __thread int looking;  // dladdr inside an allocation: not counted again

uint64_t hidden_mpi_alloc_count(void) { return atomic_load(&count); }
uint64_t hidden_mpi_alloc_count_blas(void) { return atomic_load(&blas_count); }

static void counted(void *caller) {
    atomic_fetch_add(&count, 1);
    if (looking) return;
    looking = 1;
    Dl_info info;
    if (dladdr(caller, &info) && info.dli_fname && (strstr(info.dli_fname, "blas") || strstr(info.dli_fname, "lapack")))
        atomic_fetch_add(&blas_count, 1);
    looking = 0;
}
#define COUNT() counted(__builtin_return_address(0))

void *malloc(size_t n) { COUNT(); return __libc_malloc(n); }
void *calloc(size_t a, size_t b) { COUNT(); return __libc_calloc(a, b); }
void *realloc(void *p, size_t n) { COUNT(); return __libc_realloc(p, n); }
void *memalign(size_t a, size_t n) { COUNT(); return __libc_memalign(a, n); }
void *aligned_alloc(size_t a, size_t n) { COUNT(); return __libc_memalign(a, n); }
int posix_memalign(void **p, size_t a, size_t n) {
    COUNT();
    *p = __libc_memalign(a, n);
    return *p ? 0 : 12;
}
