// Vectorized CPU kernels of IntFlashAttention.
//
// One attention "tile" is a block of consecutive query rows of one (batch, query head)
// against every key block they can see, following docs/SCHEMES.md block by block. The
// same tile source is compiled once per instruction set (AVX-512 VNNI, AVX-VNNI, AVX2,
// portable scalar); the instruction set is chosen at run time. Every path computes the
// same bits: integer GEMMs are exact, floating-point steps run in the same order on every
// path (including the horizontal sums), and exp2 is one shared polynomial.
#pragma once

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// Instruction sets with a kernel, lowest first.
typedef enum intfa_isa {
    INTFA_ISA_SCALAR = 0,
    INTFA_ISA_AVX2 = 1,     // AVX2 + FMA; exact u8*s8 dot products through vpmaddwd
    INTFA_ISA_AVXVNNI = 2,  // AVX2 + FMA + AVX-VNNI (vpdpbusd on 256 bits)
    INTFA_ISA_AVX512 = 3,   // AVX-512 F/BW/VL/VNNI
} intfa_isa;

/// Keys per block (AttentionMethod.keyBlock).
#define INTFA_KEY_BLOCK 64

/// Whether this CPU (and OS) can run the kernels of `isa`.
int intfa_cpu_isa_supported(intfa_isa isa);
/// The best supported instruction set, lowered by the environment variable
/// INTFA_CPU_ISA=scalar|avx2|avxvnni|avx512 when set (never raised above what the CPU has).
intfa_isa intfa_cpu_default_isa(void);
/// Short name of an instruction set ("avx512-vnni", "avx-vnni", "avx2", "scalar").
const char *intfa_cpu_isa_name(intfa_isa isa);
/// The supported instruction set closest to `requested` from below.
intfa_isa intfa_cpu_clamp_isa(intfa_isa requested);

/// Softmax / P-quantization variants of the integer tile.
typedef enum intfa_int_scheme {
    INTFA_INT_SCHEME_INT8 = 0,   // u8 P of fp16-rounded exp2, P blocks of 32, 96, then 128 keys (int8, int4)
    INTFA_INT_SCHEME_PAPER = 1,  // P = rne(127 * exp2(S - m_new)), l sums fp32 P (int8-paper)
} intfa_int_scheme;

/// Rounding applied to P before the P*V product of the floating-point tile.
typedef enum intfa_p_rounding {
    INTFA_P_FP32 = 0,
    INTFA_P_FP16 = 1,
    INTFA_P_FP8_E4M3 = 2,
    INTFA_P_FP8_E5M2 = 3,
} intfa_p_rounding;

/// Causal limit and output of one tile, shared by both tile kinds.
typedef struct intfa_tile_rows {
    int rows;              // query rows in the tile (>= 1)
    int padded_dim;        // head dim rounded up to a multiple of 16 (the packing width)
    int head_dim;          // real head dim: output columns written per row
    int key_length;        // Nk (keys past it are padding)
    // Keys visible to local row r: clamp(first_visible + r, 0, key_length), i.e. for a causal
    // problem first_visible = firstRow + Nk - Nq + 1; for a non-causal one key_length.
    int first_visible;
    int causal;
    float *output;         // row r is written at output + r * output_row_stride (head_dim floats)
    ptrdiff_t output_row_stride;
    float *log_sum_exp;    // natural log, one per row; NULL to skip
} intfa_tile_rows;

/// Integer tile (int8, int8-paper, int4): exact int32 Q*K^T and P*V.
typedef struct intfa_int_tile {
    intfa_tile_rows rows;
    intfa_int_scheme scheme;
    const int8_t *q;          // rows x padded_dim signed codes (zero padded)
    const float *q_scale;     // rows: sQ * (sm * log2 e)
    // Per key block of 64: [padded_dim/4][64 keys][4 channels] unsigned bytes K + 128. The int8
    // scheme reads them in tiles of two blocks (padded keys a multiple of 128).
    const uint8_t *k_packed;
    const float *k_scale;     // one per (padded) key: the key's own (int8-paper, int4) or its
                              // group's (int8) scale, 0 past Nk
    // Per key block of 64: [16 key quads][padded_dim][4 keys] signed V codes.
    const int8_t *v_packed;
    const float *v_scale;     // padded_dim final multipliers: sV[c] (int8) or sV/127 (paper)
} intfa_int_tile;

/// Floating-point tile (fp32, fp16, fp8): fp32 FMA GEMMs on already-rounded values.
typedef struct intfa_float_tile {
    intfa_tile_rows rows;
    intfa_p_rounding p_rounding;
    const float *q;           // rows x padded_dim (zero padded)
    float q_scale;            // scores are (dot * q_scale) * k_scale
    float k_scale;
    const float *k_packed;    // per key block: [padded_dim][64 keys] (K transposed)
    const float *v;           // [padded keys][padded_dim], padding zero
    float v_scale;            // output = acc * v_scale / l
} intfa_float_tile;

/// Runs one integer tile on `isa` (clamped to what the CPU supports).
void intfa_int_tile_run(intfa_isa isa, const intfa_int_tile *tile);
/// Runs one floating-point tile on `isa` (clamped to what the CPU supports).
void intfa_float_tile_run(intfa_isa isa, const intfa_float_tile *tile);

/// exp2 as every kernel computes it (for tests): the shared polynomial, exact to ~2 ulp
/// for -126 <= x <= 127; 0 below about -126.5.
float intfa_exp2(float x);

/// Per-token quantization of `rows` groups of `length` floats (docs/SCHEMES.md rule);
/// scales[r] = (amax / levels) * scale_multiplier.
void intfa_quantize_rows(intfa_isa isa, const float *x, long rows, long length, int levels, float scale_multiplier,
                         int8_t *codes, float *scales);
/// Per-channel quantization of a [tokens][channels] matrix: codes row-major, one scale per
/// channel. `scratch` holds 2 * channels floats.
void intfa_quantize_channels(intfa_isa isa, const float *x, long tokens, int channels, int levels, int8_t *codes,
                             float *scales, float *scratch);
/// K of the `int8` scheme: one scale per group of 8 keys (keys 32G + 8a + 2t + e of group
/// (G, t)), codes row-major [tokens][channels], scales [padded_tokens / 8] stored per 128-key
/// tile quad-major (group (G, t) at 16 * (G / 4) + 4 * t + G % 4), 0 for groups past `tokens`.
/// `padded_tokens` is a multiple of 128.
void intfa_quantize_key_groups(intfa_isa isa, const float *x, long tokens, long padded_tokens, int channels, int levels,
                               int8_t *codes, float *scales);
/// K smoothing: out = K - channel mean (mean accumulated in double). `scratch` holds
/// 2 * channels doubles.
void intfa_smooth_keys(intfa_isa isa, const float *k, long tokens, int channels, float *out, double *scratch);

/// [tokens][channels] codes to [channels][padded_tokens], zero padded.
void intfa_transpose_codes(const int8_t *codes, long tokens, int channels, long padded_tokens, int8_t *transposed);
/// [tokens][channels] K codes to the integer tile's key layout (K + 128, padding 128).
void intfa_pack_keys(const int8_t *codes, long tokens, int channels, int padded_dim, uint8_t *packed);
/// [channels][padded_tokens] V codes to the integer tile's value layout (padding 0).
void intfa_pack_values(const int8_t *transposed, int channels, long padded_tokens, int padded_dim, int8_t *packed);

/// Index of the first of `n` floats whose magnitude is not below `limit`, NaN included, or
/// -1 when there is none: with limit = INFINITY, the first NaN or +-Inf.
long intfa_first_outside(const float *x, long n, float limit);

/// Atomically adds one to *counter and returns its previous value: hands out work items.
long intfa_next_work_item(long *counter);

#ifdef __cplusplus
}
#endif
