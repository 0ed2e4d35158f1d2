// AVX2 + FMA + AVX-VNNI tile: vpdpbusd on 256-bit registers.
#include "intfa_cpu.h"
#include <immintrin.h>
#include <math.h>

#pragma clang attribute push(__attribute__((target("avx2,fma,avxvnni"))), apply_to = function)

#define AVX_DPBUSD _mm256_dpbusd_avx_epi32
#define TILE_SUFFIX avxvnni
#define CHUNK_ROWS 2

#include "vector_avx2.h"
#include "tile_impl.h"
#include "quantize_impl.h"

#pragma clang attribute pop
