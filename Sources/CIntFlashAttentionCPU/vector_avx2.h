// 16-lane vectors as pairs of 256-bit registers, for the AVX2 and AVX-VNNI tiles. The
// including file picks the u8*s8 dot product (AVX_DPBUSD) and the target features.
#include <immintrin.h>
#include <string.h>

typedef struct { __m256 lo, hi; } vf;
typedef struct { __m256i lo, hi; } vi;

#define VINLINE static inline __attribute__((always_inline))
#define F2(op, a, b) ((vf){op((a).lo, (b).lo), op((a).hi, (b).hi)})
#define I2(op, a, b) ((vi){op((a).lo, (b).lo), op((a).hi, (b).hi)})

VINLINE vf vf_load(const float *p) { return (vf){_mm256_loadu_ps(p), _mm256_loadu_ps(p + 8)}; }
VINLINE void vf_store(float *p, vf x) { _mm256_storeu_ps(p, x.lo); _mm256_storeu_ps(p + 8, x.hi); }
VINLINE vf vf_set1(float x) { __m256 v = _mm256_set1_ps(x); return (vf){v, v}; }
VINLINE vf vf_add(vf a, vf b) { return F2(_mm256_add_ps, a, b); }
VINLINE vf vf_sub(vf a, vf b) { return F2(_mm256_sub_ps, a, b); }
VINLINE vf vf_mul(vf a, vf b) { return F2(_mm256_mul_ps, a, b); }
VINLINE vf vf_max(vf a, vf b) { return F2(_mm256_max_ps, a, b); }
VINLINE vf vf_min(vf a, vf b) { return F2(_mm256_min_ps, a, b); }
VINLINE vf vf_fmadd(vf a, vf b, vf c) {
    return (vf){_mm256_fmadd_ps(a.lo, b.lo, c.lo), _mm256_fmadd_ps(a.hi, b.hi, c.hi)};
}
VINLINE vf vf_from_vi(vi a) { return (vf){_mm256_cvtepi32_ps(a.lo), _mm256_cvtepi32_ps(a.hi)}; }
VINLINE vi vi_from_vf_rne(vf a) { return (vi){_mm256_cvtps_epi32(a.lo), _mm256_cvtps_epi32(a.hi)}; }
VINLINE vf vf_from_bits(vi a) { return (vf){_mm256_castsi256_ps(a.lo), _mm256_castsi256_ps(a.hi)}; }
VINLINE vi vi_load(const void *p) {
    return (vi){_mm256_loadu_si256((const __m256i *)p), _mm256_loadu_si256((const __m256i *)p + 1)};
}
VINLINE void vi_store(int32_t *p, vi x) {
    _mm256_storeu_si256((__m256i *)p, x.lo);
    _mm256_storeu_si256((__m256i *)p + 1, x.hi);
}
VINLINE vi vi_set1(int32_t x) { __m256i v = _mm256_set1_epi32(x); return (vi){v, v}; }
VINLINE vi vi_zero(void) { return vi_set1(0); }
VINLINE vi vi_add(vi a, vi b) { return I2(_mm256_add_epi32, a, b); }
VINLINE vi vi_sub(vi a, vi b) { return I2(_mm256_sub_epi32, a, b); }
VINLINE vi vi_max(vi a, vi b) { return I2(_mm256_max_epi32, a, b); }
VINLINE vi vi_min(vi a, vi b) { return I2(_mm256_min_epi32, a, b); }
VINLINE vi vi_slli23(vi a) { return (vi){_mm256_slli_epi32(a.lo, 23), _mm256_slli_epi32(a.hi, 23)}; }
VINLINE vi vf_floor_exponent(vf a) {
    __m256i mask = _mm256_set1_epi32(0xFF);
    return (vi){_mm256_and_si256(_mm256_srli_epi32(_mm256_castps_si256(a.lo), 23), mask),
                _mm256_and_si256(_mm256_srli_epi32(_mm256_castps_si256(a.hi), 23), mask)};
}
VINLINE vi vi_broadcast32(const void *p) { int32_t x; memcpy(&x, p, sizeof x); return vi_set1(x); }
VINLINE vi vi_dpbusd(vi acc, vi u, vi s) {
    return (vi){AVX_DPBUSD(acc.lo, u.lo, s.lo), AVX_DPBUSD(acc.hi, u.hi, s.hi)};
}
VINLINE vf vf_mask_tail(vf a, int limit) {
    const __m256i lo_lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const __m256i hi_lanes = _mm256_setr_epi32(8, 9, 10, 11, 12, 13, 14, 15);
    __m256i bound = _mm256_set1_epi32(limit);
    __m256 neg_inf = _mm256_set1_ps(-INFINITY);
    __m256 keep_lo = _mm256_castsi256_ps(_mm256_cmpgt_epi32(bound, lo_lanes));
    __m256 keep_hi = _mm256_castsi256_ps(_mm256_cmpgt_epi32(bound, hi_lanes));
    return (vf){_mm256_blendv_ps(neg_inf, a.lo, keep_lo), _mm256_blendv_ps(neg_inf, a.hi, keep_hi)};
}
VINLINE float vf_reduce_max(vf a) {
    __m256 m = _mm256_max_ps(a.lo, a.hi);
    __m128 h = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    h = _mm_max_ps(h, _mm_movehl_ps(h, h));
    h = _mm_max_ss(h, _mm_shuffle_ps(h, h, 1));
    return _mm_cvtss_f32(h);
}
// The canonical lane tree (see kernels_scalar.c): 16 -> 8 -> 4 -> 2 -> 1.
VINLINE float vf_reduce_add(vf a) {
    __m256 s = _mm256_add_ps(a.lo, a.hi);
    __m128 h = _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1));
    h = _mm_add_ps(h, _mm_movehl_ps(h, h));
    h = _mm_add_ss(h, _mm_shuffle_ps(h, h, 1));
    return _mm_cvtss_f32(h);
}
VINLINE int32_t vi_reduce_add(vi a) {
    __m256i s = _mm256_add_epi32(a.lo, a.hi);
    __m128i h = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
    h = _mm_add_epi32(h, _mm_shuffle_epi32(h, 0x4E));
    h = _mm_add_epi32(h, _mm_shuffle_epi32(h, 0xB1));
    return _mm_cvtsi128_si32(h);
}
VINLINE void vi_store_u8(uint8_t *p, vi a) {
    // Values are 0...255: pack with unsigned saturation (exact here), then undo the
    // 128-bit-lane interleave of the packs.
    __m256i words = _mm256_packs_epi32(a.lo, a.hi);      // lo0-3 hi0-3 | lo4-7 hi4-7
    __m256i bytes = _mm256_packus_epi16(words, words);   // per 128-bit lane, twice
    __m256i ordered = _mm256_permutevar8x32_epi32(bytes, _mm256_setr_epi32(0, 4, 1, 5, 0, 0, 0, 0));
    // ordered dwords: lo0-3, lo4-7, hi0-3, hi4-7: lanes 0...15 in order
    _mm_storeu_si128((__m128i *)p, _mm256_castsi256_si128(ordered));
}
// Values -128...127: both packs saturate signed, which is exact here.
VINLINE void vi_store_s8(int8_t *p, vi a) {
    __m256i words = _mm256_packs_epi32(a.lo, a.hi);
    __m256i bytes = _mm256_packs_epi16(words, words);
    __m256i ordered = _mm256_permutevar8x32_epi32(bytes, _mm256_setr_epi32(0, 4, 1, 5, 0, 0, 0, 0));
    _mm_storeu_si128((__m128i *)p, _mm256_castsi256_si128(ordered));
}
