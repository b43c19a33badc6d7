// Storage for the step's large buffers (activations, gradients, scores).
#ifndef HIDDEN_MPI_MEMORY_H
#define HIDDEN_MPI_MEMORY_H

#include <stddef.h>

/// `bytes` of zeroed memory, 64-byte aligned; from 2 MiB up, aligned to 2 MiB and advised to be
/// backed by transparent huge pages (madvise MADV_HUGEPAGE, where the kernel offers it): the
/// channel planes a convolution tile reads lie in many 4 KiB pages, one TLB entry each. NULL when
/// out of memory. Free with hm_free.
void *hm_alloc(size_t bytes);
void hm_free(void *p);

#endif
