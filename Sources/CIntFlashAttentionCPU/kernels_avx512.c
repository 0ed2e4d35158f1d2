// AVX-512 tile: 16-lane vectors are zmm registers; u8*s8 dot products are vpdpbusd.
// Six query rows per register tile: 24 accumulators plus four key (or value) vectors.
#include "intfa_cpu.h"
#include <immintrin.h>
#include <math.h>
#include <string.h>

#pragma clang attribute push(__attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,fma"))), apply_to = function)

#define TILE_SUFFIX avx512
#define CHUNK_ROWS 6

typedef __m512 vf;
typedef __m512i vi;
#define VINLINE static inline __attribute__((always_inline))

VINLINE vf vf_load(const float *p) { return _mm512_loadu_ps(p); }
VINLINE void vf_store(float *p, vf x) { _mm512_storeu_ps(p, x); }
VINLINE vf vf_set1(float x) { return _mm512_set1_ps(x); }
VINLINE vf vf_add(vf a, vf b) { return _mm512_add_ps(a, b); }
VINLINE vf vf_sub(vf a, vf b) { return _mm512_sub_ps(a, b); }
VINLINE vf vf_mul(vf a, vf b) { return _mm512_mul_ps(a, b); }
VINLINE vf vf_max(vf a, vf b) { return _mm512_max_ps(a, b); }
VINLINE vf vf_min(vf a, vf b) { return _mm512_min_ps(a, b); }
VINLINE vf vf_fmadd(vf a, vf b, vf c) { return _mm512_fmadd_ps(a, b, c); }
VINLINE vf vf_from_vi(vi a) { return _mm512_cvtepi32_ps(a); }
VINLINE vi vi_from_vf_rne(vf a) { return _mm512_cvtps_epi32(a); }
VINLINE vf vf_from_bits(vi a) { return _mm512_castsi512_ps(a); }
VINLINE vi vi_load(const void *p) { return _mm512_loadu_si512(p); }
VINLINE void vi_store(int32_t *p, vi x) { _mm512_storeu_si512(p, x); }
VINLINE vi vi_set1(int32_t x) { return _mm512_set1_epi32(x); }
VINLINE vi vi_zero(void) { return _mm512_setzero_si512(); }
VINLINE vi vi_add(vi a, vi b) { return _mm512_add_epi32(a, b); }
VINLINE vi vi_sub(vi a, vi b) { return _mm512_sub_epi32(a, b); }
VINLINE vi vi_max(vi a, vi b) { return _mm512_max_epi32(a, b); }
VINLINE vi vi_min(vi a, vi b) { return _mm512_min_epi32(a, b); }
VINLINE vi vi_slli23(vi a) { return _mm512_slli_epi32(a, 23); }
VINLINE vi vf_floor_exponent(vf a) {
    return _mm512_and_si512(_mm512_srli_epi32(_mm512_castps_si512(a), 23), _mm512_set1_epi32(0xFF));
}
VINLINE vi vi_broadcast32(const void *p) { int32_t x; memcpy(&x, p, sizeof x); return _mm512_set1_epi32(x); }
VINLINE vi vi_dpbusd(vi acc, vi u, vi s) { return _mm512_dpbusd_epi32(acc, u, s); }
VINLINE vf vf_mask_tail(vf a, int limit) {
    __mmask16 masked = limit >= 16 ? 0 : (limit <= 0 ? 0xFFFF : (__mmask16)(0xFFFFu << limit));
    return _mm512_mask_mov_ps(a, masked, _mm512_set1_ps(-INFINITY));
}
VINLINE float vf_reduce_max(vf a) { return _mm512_reduce_max_ps(a); }
// The canonical lane tree (see kernels_scalar.c): 16 -> 8 -> 4 -> 2 -> 1.
VINLINE float vf_reduce_add(vf a) {
    __m256 low = _mm512_castps512_ps256(a);
    __m256 high = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(a), 1));
    __m256 s = _mm256_add_ps(low, high);
    __m128 h = _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1));
    h = _mm_add_ps(h, _mm_movehl_ps(h, h));
    h = _mm_add_ss(h, _mm_shuffle_ps(h, h, 1));
    return _mm_cvtss_f32(h);
}
VINLINE int32_t vi_reduce_add(vi a) { return _mm512_reduce_add_epi32(a); }
VINLINE void vi_store_u8(uint8_t *p, vi a) { _mm_storeu_si128((__m128i *)p, _mm512_cvtepi32_epi8(a)); }
VINLINE void vi_store_s8(int8_t *p, vi a) { _mm_storeu_si128((__m128i *)p, _mm512_cvtepi32_epi8(a)); }

#include "tile_impl.h"
#include "quantize_impl.h"

#pragma clang attribute pop
