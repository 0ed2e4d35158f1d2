// AVX2 + FMA tile for CPUs without VNNI. vpmaddubsw would saturate (255*127*2 > 32767), so
// the u8*s8 dot product widens the bytes to 16 bits and uses vpmaddwd, which is exact.
#include "intfa_cpu.h"
#include <immintrin.h>
#include <math.h>

#pragma clang attribute push(__attribute__((target("avx2,fma"))), apply_to = function)

static inline __attribute__((always_inline)) __m256i dpbusd_avx2(__m256i acc, __m256i u, __m256i s) {
    const __m256i low_bytes = _mm256_set1_epi16(0x00FF);
    __m256i u_even = _mm256_and_si256(u, low_bytes);                     // bytes 0, 2 of each dword
    __m256i u_odd = _mm256_srli_epi16(u, 8);                             // bytes 1, 3
    __m256i s_even = _mm256_srai_epi16(_mm256_slli_epi16(s, 8), 8);      // sign-extended
    __m256i s_odd = _mm256_srai_epi16(s, 8);
    __m256i sum = _mm256_add_epi32(_mm256_madd_epi16(u_even, s_even), _mm256_madd_epi16(u_odd, s_odd));
    return _mm256_add_epi32(acc, sum);
}
#define AVX_DPBUSD dpbusd_avx2
#define TILE_SUFFIX avx2
#define CHUNK_ROWS 2

#include "vector_avx2.h"
#include "tile_impl.h"
#include "quantize_impl.h"

#pragma clang attribute pop
