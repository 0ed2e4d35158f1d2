// Run-time choice of the tile's instruction set.
#include "intfa_cpu.h"
#include <stdlib.h>
#include <string.h>

void intfa_int_tile_scalar(const intfa_int_tile *);
void intfa_int_tile_avx2(const intfa_int_tile *);
void intfa_int_tile_avxvnni(const intfa_int_tile *);
void intfa_int_tile_avx512(const intfa_int_tile *);
void intfa_float_tile_scalar(const intfa_float_tile *);
void intfa_float_tile_avx2(const intfa_float_tile *);
void intfa_float_tile_avxvnni(const intfa_float_tile *);
void intfa_float_tile_avx512(const intfa_float_tile *);
float intfa_exp2_scalar(float);

#define DECLARE_QUANTIZERS(suffix)                                                                          \
    void intfa_quantize_rows_##suffix(const float *, long, long, int, float, int8_t *, float *);            \
    void intfa_quantize_channels_##suffix(const float *, long, int, int, int8_t *, float *, float *);       \
    void intfa_smooth_keys_##suffix(const float *, long, int, float *, double *);                          \
    void intfa_quantize_key_groups_##suffix(const float *, long, long, int, int, int8_t *, float *);
DECLARE_QUANTIZERS(scalar)
DECLARE_QUANTIZERS(avx2)
DECLARE_QUANTIZERS(avxvnni)
DECLARE_QUANTIZERS(avx512)

int intfa_cpu_isa_supported(intfa_isa isa) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    int avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    switch (isa) {
    case INTFA_ISA_SCALAR: return 1;
    case INTFA_ISA_AVX2: return avx2;
    case INTFA_ISA_AVXVNNI: return avx2 && __builtin_cpu_supports("avxvnni");
    case INTFA_ISA_AVX512:
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
               __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni") && avx2;
    }
    return 0;
#else
    return isa == INTFA_ISA_SCALAR;
#endif
}

intfa_isa intfa_cpu_clamp_isa(intfa_isa requested) {
    int level = (int)requested;
    if (level > INTFA_ISA_AVX512) level = INTFA_ISA_AVX512;
    while (level > INTFA_ISA_SCALAR && !intfa_cpu_isa_supported((intfa_isa)level)) level--;
    return level < 0 ? INTFA_ISA_SCALAR : (intfa_isa)level;
}

intfa_isa intfa_cpu_default_isa(void) {
    intfa_isa ceiling = INTFA_ISA_AVX512;
    const char *forced = getenv("INTFA_CPU_ISA");
    if (forced) {
        if (strcmp(forced, "scalar") == 0) ceiling = INTFA_ISA_SCALAR;
        else if (strcmp(forced, "avx2") == 0) ceiling = INTFA_ISA_AVX2;
        else if (strcmp(forced, "avxvnni") == 0 || strcmp(forced, "avx-vnni") == 0) ceiling = INTFA_ISA_AVXVNNI;
        // "avx512", "avx512-vnni" and unknown values keep the best; the Swift entry points
        // refuse unknown values (CPUKernelISA.fromEnvironment).
    }
    return intfa_cpu_clamp_isa(ceiling);
}

const char *intfa_cpu_isa_name(intfa_isa isa) {
    switch (isa) {
    case INTFA_ISA_SCALAR: return "scalar";
    case INTFA_ISA_AVX2: return "avx2";
    case INTFA_ISA_AVXVNNI: return "avx-vnni";
    case INTFA_ISA_AVX512: return "avx512-vnni";
    }
    return "unknown";
}

void intfa_int_tile_run(intfa_isa isa, const intfa_int_tile *tile) {
    switch (intfa_cpu_clamp_isa(isa)) {
    case INTFA_ISA_AVX512: intfa_int_tile_avx512(tile); break;
    case INTFA_ISA_AVXVNNI: intfa_int_tile_avxvnni(tile); break;
    case INTFA_ISA_AVX2: intfa_int_tile_avx2(tile); break;
    default: intfa_int_tile_scalar(tile); break;
    }
}

void intfa_float_tile_run(intfa_isa isa, const intfa_float_tile *tile) {
    switch (intfa_cpu_clamp_isa(isa)) {
    case INTFA_ISA_AVX512: intfa_float_tile_avx512(tile); break;
    case INTFA_ISA_AVXVNNI: intfa_float_tile_avxvnni(tile); break;
    case INTFA_ISA_AVX2: intfa_float_tile_avx2(tile); break;
    default: intfa_float_tile_scalar(tile); break;
    }
}

#define DISPATCH(isa, name, ...)                                    \
    switch (intfa_cpu_clamp_isa(isa)) {                             \
    case INTFA_ISA_AVX512: name##_avx512(__VA_ARGS__); break;       \
    case INTFA_ISA_AVXVNNI: name##_avxvnni(__VA_ARGS__); break;     \
    case INTFA_ISA_AVX2: name##_avx2(__VA_ARGS__); break;           \
    default: name##_scalar(__VA_ARGS__); break;                     \
    }

void intfa_quantize_rows(intfa_isa isa, const float *x, long rows, long length, int levels, float scale_multiplier,
                         int8_t *codes, float *scales) {
    DISPATCH(isa, intfa_quantize_rows, x, rows, length, levels, scale_multiplier, codes, scales)
}

void intfa_quantize_channels(intfa_isa isa, const float *x, long tokens, int channels, int levels, int8_t *codes,
                             float *scales, float *scratch) {
    DISPATCH(isa, intfa_quantize_channels, x, tokens, channels, levels, codes, scales, scratch)
}

void intfa_quantize_key_groups(intfa_isa isa, const float *x, long tokens, long padded_tokens, int channels, int levels,
                               int8_t *codes, float *scales) {
    DISPATCH(isa, intfa_quantize_key_groups, x, tokens, padded_tokens, channels, levels, codes, scales)
}

void intfa_smooth_keys(intfa_isa isa, const float *k, long tokens, int channels, float *out, double *scratch) {
    DISPATCH(isa, intfa_smooth_keys, k, tokens, channels, out, scratch)
}

float intfa_exp2(float x) { return intfa_exp2_scalar(x); }

long intfa_next_work_item(long *counter) { return __atomic_fetch_add(counter, 1, __ATOMIC_RELAXED); }
