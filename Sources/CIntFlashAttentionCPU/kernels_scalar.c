// Portable tile: 16-lane "vectors" are plain arrays. Always correct, and bit-identical to
// the SIMD paths because every operation is the same IEEE operation lane by lane.
#include "intfa_cpu.h"
#include <math.h>
#include <string.h>

#define TILE_SUFFIX scalar
#define CHUNK_ROWS 1

typedef struct { float v[16]; } vf;
typedef struct { int32_t v[16]; } vi;

#define LANES for (int k = 0; k < 16; k++)
#define SINLINE static inline __attribute__((always_inline))

SINLINE vf vf_load(const float *p) { vf r; memcpy(r.v, p, sizeof r.v); return r; }
SINLINE void vf_store(float *p, vf x) { memcpy(p, x.v, sizeof x.v); }
SINLINE vf vf_set1(float x) { vf r; LANES r.v[k] = x; return r; }
SINLINE vf vf_add(vf a, vf b) { LANES a.v[k] = a.v[k] + b.v[k]; return a; }
SINLINE vf vf_sub(vf a, vf b) { LANES a.v[k] = a.v[k] - b.v[k]; return a; }
SINLINE vf vf_mul(vf a, vf b) { LANES a.v[k] = a.v[k] * b.v[k]; return a; }
SINLINE vf vf_max(vf a, vf b) { LANES a.v[k] = a.v[k] > b.v[k] ? a.v[k] : b.v[k]; return a; }
SINLINE vf vf_min(vf a, vf b) { LANES a.v[k] = a.v[k] < b.v[k] ? a.v[k] : b.v[k]; return a; }
SINLINE vf vf_fmadd(vf a, vf b, vf c) { LANES a.v[k] = fmaf(a.v[k], b.v[k], c.v[k]); return a; }
SINLINE vf vf_from_vi(vi a) { vf r; LANES r.v[k] = (float)a.v[k]; return r; }
SINLINE vi vi_from_vf_rne(vf a) { vi r; LANES r.v[k] = (int32_t)rintf(a.v[k]); return r; }
SINLINE vf vf_from_bits(vi a) { vf r; memcpy(r.v, a.v, sizeof r.v); return r; }
SINLINE vi vi_load(const void *p) { vi r; memcpy(r.v, p, sizeof r.v); return r; }
SINLINE void vi_store(int32_t *p, vi x) { memcpy(p, x.v, sizeof x.v); }
SINLINE vi vi_set1(int32_t x) { vi r; LANES r.v[k] = x; return r; }
SINLINE vi vi_zero(void) { return vi_set1(0); }
SINLINE vi vi_add(vi a, vi b) { LANES a.v[k] = a.v[k] + b.v[k]; return a; }
SINLINE vi vi_sub(vi a, vi b) { LANES a.v[k] = a.v[k] - b.v[k]; return a; }
SINLINE vi vi_max(vi a, vi b) { LANES a.v[k] = a.v[k] > b.v[k] ? a.v[k] : b.v[k]; return a; }
SINLINE vi vi_min(vi a, vi b) { LANES a.v[k] = a.v[k] < b.v[k] ? a.v[k] : b.v[k]; return a; }
SINLINE vi vi_slli23(vi a) { LANES a.v[k] = (int32_t)((uint32_t)a.v[k] << 23); return a; }
SINLINE vi vf_floor_exponent(vf a) {
    vi r;
    LANES {
        uint32_t bits;
        memcpy(&bits, &a.v[k], sizeof bits);
        r.v[k] = (int32_t)((bits >> 23) & 0xFF);
    }
    return r;
}
SINLINE vi vi_broadcast32(const void *p) { int32_t x; memcpy(&x, p, sizeof x); return vi_set1(x); }
// Each lane: acc + sum of the four products of its unsigned bytes of u and signed bytes of s.
SINLINE vi vi_dpbusd(vi acc, vi u, vi s) {
    LANES {
        uint32_t ub = (uint32_t)u.v[k], sb = (uint32_t)s.v[k];
        int32_t sum = 0;
        for (int b = 0; b < 4; b++) sum += (int32_t)((ub >> (8 * b)) & 0xFF) * (int32_t)(int8_t)((sb >> (8 * b)) & 0xFF);
        acc.v[k] += sum;
    }
    return acc;
}
SINLINE vf vf_mask_tail(vf a, int limit) { LANES if (k >= limit) a.v[k] = -INFINITY; return a; }
SINLINE float vf_reduce_max(vf a) { float m = a.v[0]; for (int k = 1; k < 16; k++) m = a.v[k] > m ? a.v[k] : m; return m; }
// The canonical lane tree: fold 16 -> 8 -> 4 -> 2 -> 1, lane k + lane k + half.
SINLINE float vf_reduce_add(vf a) {
    for (int half = 8; half >= 1; half /= 2)
        for (int k = 0; k < half; k++) a.v[k] = a.v[k] + a.v[k + half];
    return a.v[0];
}
SINLINE int32_t vi_reduce_add(vi a) { int32_t s = 0; LANES s += a.v[k]; return s; }
SINLINE void vi_store_u8(uint8_t *p, vi a) { LANES p[k] = (uint8_t)a.v[k]; }
SINLINE void vi_store_s8(int8_t *p, vi a) { LANES p[k] = (int8_t)a.v[k]; }

#include "tile_impl.h"
#include "quantize_impl.h"
