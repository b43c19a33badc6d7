// OpenBLAS's CBLAS interface (Debian ships cblas.h under openblas-pthread/, found via pkg-config).
#include <cblas.h>
