// zlib, for reading gzipped IDX files (Debian zlib1g-dev).
#include <zlib.h>
