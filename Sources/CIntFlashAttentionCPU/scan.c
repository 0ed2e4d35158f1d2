// The input scan behind the non-finite contract (docs/VALIDATION.md): one pass over a tensor
// that finds its first NaN, +-Inf or value too large for the format a method rounds it to.
#include "intfa_cpu.h"
#include <math.h>

long intfa_first_outside(const float *x, long n, float limit) {
    // Blocks without a branch per element vectorize; only a block that holds an offending
    // value is searched again for its first one.
    enum { BLOCK = 1024 };
    for (long start = 0; start < n; start += BLOCK) {
        long end = n - start < BLOCK ? n : start + BLOCK;
        int outside = 0;
        for (long i = start; i < end; i++) outside |= !(fabsf(x[i]) < limit);  // NaN compares false
        if (!outside) continue;
        for (long i = start; i < end; i++) {
            if (!(fabsf(x[i]) < limit)) return i;
        }
    }
    return -1;
}
