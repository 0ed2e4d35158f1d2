// FlashAttention forward pass with 8-bit (or fp16) tensor-core GEMMs on mma.sync: one design,
// three element types, following docs/SCHEMES.md block by block (key blocks of 64). The
// default `int8` scheme has its own kernel, attention_mma_int8.cu.
//
// Compile-time options (NVRTC -D), all required except where a default is given:
//   INTFA_METHOD      one of INTFA_M_INT8_PAPER, INTFA_M_FP8 (sm_89+), INTFA_M_FP16, whose
//                     values the host passes too (MMAKernelDescriptor.methodMacros)
//   INTFA_Q_IN_REGISTERS  1: Q fragments held in registers, 0: re-read per key block
//   INTFA_HEAD_DIM    8-bit methods: 64, 128; fp16: 32, 64, 128 (256 compiles but spills)
//   INTFA_BLOCK_M     query rows per CTA: 64 or 128
//   INTFA_KEY_BLOCK   keys per block: 64 (MMAKernelDescriptor.blockKeys)
//   INTFA_WARP_ROWS   query rows per warp: 16 or 32 (default 16)
//   INTFA_SPLIT_ROW_TILES  1: a warp's two row tiles go through S and softmax one at a time
//   INTFA_STAGES      K/V shared-memory pipeline depth, 2 to 4
//   INTFA_CAUSAL      0 or 1 (bottom-right aligned)
//   INTFA_OUT_BF16    0: fp16 output, 1: bf16 output
//   INTFA_WRITE_LSE   0 or 1: also write the log-sum-exp (fp32, natural log)
//   INTFA_MIN_BLOCKS  CTAs per SM promised to the register allocator (default 1)
//
// Launch: grid (ceil(Nq / BLOCK_M), H, B), block BLOCK_M / WARP_ROWS · 32 threads, dynamic
// shared memory MMAKernelDescriptor.sharedMemoryBytes (INTFA_SMEM_BYTES, checked here
// when given; above 48 KiB the launcher must raise the function's dynamic shared-memory
// limit), one AttentionParams argument by value. Pointers must be 16-byte aligned and the
// token strides of fp16 Q/K/V multiples of 8 elements (16-byte copies); the 8-bit tensors are
// the quantizers' outputs.
//
// Structure. Each warp owns 16 or 32 query rows (one or two MMA row tiles) and keeps its Q
// fragments in registers or re-reads them per key block. K (and the per-key K scales) and V
// tiles of 64 keys stream through a cp.async ring of shared memory, rows padded by 16 bytes
// so that ldmatrix reads are free of bank conflicts. S = Q·Kᵀ stays in registers; after the
// softmax its accumulator fragment is re-packed in place as the A fragment of P·V. For 8-bit
// P that only works because the quantizer wrote each 32-key group of Vt in the order the
// fragments imply (docs/SCHEMES.md); fp16 needs no permutation.
#include "params.cuh"
#include "variant_name.cuh"
#include "mma_tiles.cuh"

#ifndef INTFA_METHOD
#error "INTFA_METHOD must be defined"
#endif
#ifndef INTFA_KEY_BLOCK
#error "INTFA_KEY_BLOCK must be defined (MMAKernelDescriptor.blockKeys)"
#endif
#ifndef INTFA_HEAD_DIM
#error "INTFA_HEAD_DIM must be defined"
#endif
#ifndef INTFA_BLOCK_M
#define INTFA_BLOCK_M 128
#endif
#ifndef INTFA_STAGES
#define INTFA_STAGES 2
#endif
#ifndef INTFA_WARP_ROWS
#define INTFA_WARP_ROWS 16
#endif
#ifndef INTFA_SPLIT_ROW_TILES
#define INTFA_SPLIT_ROW_TILES 0
#endif
#ifndef INTFA_MIN_BLOCKS
#define INTFA_MIN_BLOCKS 1
#endif

#if !defined(INTFA_M_INT8_PAPER) || !defined(INTFA_M_FP8) || !defined(INTFA_M_FP16) || !defined(INTFA_Q_IN_REGISTERS)
#error "the host passes the method ids and the Q placement (MMAKernelDescriptor.compileOptions)"
#endif

#if INTFA_METHOD == INTFA_M_FP8 && defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 890
#error "fp8-e4m3 attention needs sm_89 or newer"
#endif

// Kernel name: intfa_attention_<method>_d<D>_<full|causal>_<f16|bf16>[_lse]_m<BLOCK_M>_s<STAGES>_w<WARP_ROWS>[_split][_b<MIN_BLOCKS>]
#if INTFA_METHOD == INTFA_M_INT8_PAPER
#define INTFA_METHOD_NAME int8paper
#elif INTFA_METHOD == INTFA_M_FP8
#define INTFA_METHOD_NAME fp8e4m3
#else
#define INTFA_METHOD_NAME fp16
#endif
#define INTFA_KERNEL_NAME                                                                                  \
    INTFA_CAT(INTFA_CAT(INTFA_CAT(INTFA_CAT(INTFA_CAT(INTFA_CAT(INTFA_CAT(INTFA_CAT(INTFA_CAT(             \
        intfa_attention_, INTFA_METHOD_NAME), _d), INTFA_HEAD_DIM), INTFA_MASK_NAME), INTFA_OUT_NAME),    \
        INTFA_LSE_NAME), _m), INTFA_BLOCK_M), INTFA_CAT(INTFA_CAT(INTFA_CAT(INTFA_CAT(_s, INTFA_STAGES), _w),      \
        INTFA_WARP_ROWS), INTFA_CAT(INTFA_SPLIT_NAME, INTFA_MIN_BLOCKS_NAME)))
#if INTFA_MIN_BLOCKS > 1
#define INTFA_MIN_BLOCKS_NAME INTFA_CAT(_b, INTFA_MIN_BLOCKS)
#else
#define INTFA_MIN_BLOCKS_NAME
#endif
#if INTFA_SPLIT_ROW_TILES
#define INTFA_SPLIT_NAME _split
#else
#define INTFA_SPLIT_NAME
#endif

namespace {

constexpr int kHeadDim = INTFA_HEAD_DIM;
constexpr int kBlockM = INTFA_BLOCK_M;
// The schemes' key block, from MMAKernelDescriptor.blockKeys; the fragment loops below
// are written for 64 keys.
constexpr int kBlockN = INTFA_KEY_BLOCK;
static_assert(kBlockN == 64, "the kernel is written for 64-key blocks");
// Query rows per warp: one or two 16-row MMA tiles. Two share every K and V fragment a warp
// loads and give the scheduler two independent softmax chains per key block.
constexpr int kWarpRows = INTFA_WARP_ROWS;
constexpr int kRowTiles = kWarpRows / 16;
constexpr int kWarps = kBlockM / kWarpRows;
// Row tiles taken from S through P together: all of them (each K fragment read once for all)
// or one at a time (K fragments read per tile, one tile's S live at a time: fewer registers).
constexpr int kGroupTiles = INTFA_SPLIT_ROW_TILES ? 1 : kRowTiles;
// With more than one CTA promised per SM the register budget is tight (168 for three), and
// ptxas, left free, hoists a dozen K or V fragment loads ahead of their MMAs and spills. A
// __syncwarp every 64 bytes of Q·Kᵀ depth and every two P·V n-tiles (every one with two row
// tiles, whose output accumulator leaves no slack) bounds that hoisting.
constexpr bool kFenceFragmentLoads = INTFA_MIN_BLOCKS > 1;
constexpr int kFencedOutTiles = kRowTiles == 2 ? 1 : 2;
// How the output accumulator takes alpha: a warp vote skips the whole rescale when no row
// maximum moved (fp16 at D >= 128 without a mask, where the per-tile form spills on sm_90),
// otherwise each n-tile is rescaled just before its MMAs (the vote's branch would hold
// every P·V MMA of fp16 until the whole softmax is done: 3–7% slower at D = 64, 1–2% causal
// at D = 128), or, in the paper scheme and fp8, alpha is folded into the P·V update.
constexpr bool kRescaleByVote = INTFA_METHOD == INTFA_M_FP16 && kHeadDim >= 128 && !INTFA_CAUSAL;
constexpr int kThreads = kWarps * 32;
constexpr int kStages = INTFA_STAGES;
constexpr bool kEightBit = INTFA_METHOD != INTFA_M_FP16;
constexpr bool kPerKeyScale = INTFA_METHOD == INTFA_M_INT8_PAPER;
constexpr int kElementBytes = kEightBit ? 1 : 2;

// K tile: 64 key rows of D elements. V tile: 8-bit Vt has D channel rows of 64 keys; fp16 V
// has 64 key rows of D elements. Rows are padded by 16 bytes: the 8 rows read by one
// ldmatrix then start in 8 distinct 16-byte bank groups.
constexpr int kKRowBytes = kHeadDim * kElementBytes;
constexpr int kKStride = kKRowBytes + 16;
constexpr int kVRows = kEightBit ? kHeadDim : kBlockN;
constexpr int kVRowBytes = kEightBit ? kBlockN : kHeadDim * 2;
constexpr int kVStride = kVRowBytes + 16;
constexpr int kKBytes = kBlockN * kKStride;
constexpr int kVBytes = kVRows * kVStride;
constexpr int kKScaleBytes = kPerKeyScale ? kBlockN * 4 : 0;
constexpr int kStageBytes = kKBytes + kVBytes + kKScaleBytes;
// After the ring: the CTA's Q tile, rows padded like K, then (the paper scheme) its per-token Q
// scales, read per key block rather than held in registers through the loop.
constexpr int kQBytes = kBlockM * kKStride;
constexpr int kQScaleBytes = kPerKeyScale ? kBlockM * 4 : 0;
// Last, the CTA's K and V source pointers: the loop reads them per key block instead of
// holding six registers through it.
constexpr int kSourcesOffset = kStages * kStageBytes + kQBytes + kQScaleBytes;
// Then, for two row tiles at D >= 128 (where the output accumulator and S alone take 192 of
// the 255 registers), each thread's parts of its rows' sums l, read and written once per key
// block rather than held in registers through the loop (ptxas would spill them), and, with
// the log-sum-exp, its rows' maxima, stored once after the loop for the epilogue. Two float4
// arrays of kThreads entries.
constexpr bool kRowStateInShared = kRowTiles == 2 && kHeadDim >= 128;
constexpr int kRowStateOffset = kSourcesOffset + 32;
constexpr int kSharedBytes = kRowStateOffset + (kRowStateInShared ? 2 * kThreads * 16 : 0);
#ifdef INTFA_SMEM_BYTES
static_assert(INTFA_SMEM_BYTES == kSharedBytes, "the host's shared-memory size disagrees with the kernel's");
#endif

// Q·Kᵀ: k-chunks of 32 bytes (32 codes or 16 halves); one ldmatrix.x4 covers two of them.
constexpr int kQKChunks = kKRowBytes / 32;
constexpr int kOutTiles = kHeadDim / 8;  // n-tiles of 8 channels in O
// Q fragments held in registers for the whole CTA (fast, costs 4 registers per 32-byte
// chunk) or re-read from shared memory for each key block (saves registers at D >= 128):
// INTFA_Q_IN_REGISTERS, chosen by the host (MMAKernelDescriptor.Tiles).

static_assert(kBlockM == 64 || kBlockM == 128, "BLOCK_M must be 64 or 128");
static_assert(kWarpRows == 16 || kWarpRows == 32, "16 or 32 rows per warp");
static_assert(kBlockM % kWarpRows == 0, "BLOCK_M must be a multiple of the warp's rows");
static_assert(kKRowBytes % 64 == 0, "head dim: 8-bit needs a multiple of 64, fp16 of 32");
static_assert(kStages >= 2 && kStages <= 4, "2 to 4 pipeline stages");

}  // namespace

// threadIdx.x read afresh (a volatile %tid.x): values derived from it are formed again at each
// use instead of being held in registers through the key loop, where they would spill.
static INTFA_DEVICE int fresh_thread_index() {
    unsigned thread;
    asm volatile("mov.u32 %0, %%tid.x;\n" : "=r"(thread));
    return (int)thread;
}

// This thread's entry of row state array `array` (0: sums, 1: maxima; kRowStateInShared): its
// value of each of its rows, row tile t and half r at 2t + r.
static INTFA_DEVICE float4* row_state_slot(unsigned char* smem, int array) {
    return (float4*)(smem + kRowStateOffset) + array * kThreads + fresh_thread_index();
}
static INTFA_DEVICE void store_row_state(unsigned char* smem, int array, const float (&rows)[kRowTiles][2]) {
    float4 packed = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    float* entry = &packed.x;
#pragma unroll
    for (int t = 0; t < kRowTiles; ++t) entry[2 * t] = rows[t][0], entry[2 * t + 1] = rows[t][1];
    *row_state_slot(smem, array) = packed;
}
static INTFA_DEVICE void load_row_state(unsigned char* smem, int array, float (&rows)[kRowTiles][2]) {
    float4 packed = *row_state_slot(smem, array);
    const float* entry = &packed.x;
#pragma unroll
    for (int t = 0; t < kRowTiles; ++t) rows[t][0] = entry[2 * t], rows[t][1] = entry[2 * t + 1];
}

// Where a CTA's key blocks come from: its (batch, KV head)'s K, V (or Vt) and K scales, and
// the V scales its epilogue applies.
struct KeySources {
    const unsigned char* k;
    const unsigned char* v;
    const float* kScale;
    const float* vScale;
};

// The online softmax's maximum of one row after a block with maximum `blockMax` (the
// schemes that take P against the running maximum): the rescale alpha of the state, and the
// value P's exponent subtracts (0 while every key so far was masked, so that P = 0).
static INTFA_DEVICE void advance_row_max(float& rowMax, float blockMax, float& alpha, float& subtract) {
    const float newMax = fmaxf(rowMax, blockMax);
    subtract = newMax == kNegativeInfinity ? 0.0f : newMax;
    alpha = intfa_exp2(rowMax - subtract);
    rowMax = newMax;
}

// A row tile's block of P (fragment elements 0, 1 of the first row, 2, 3 of the second, in 8
// key n-tiles) summed per row as a tree of independent adds. A serial chain of 16 adds per row
// kept the fp32 P live next to the output accumulator, and ptxas spilled (the paper scheme at
// D = 128 on sm_90: 255 registers; with the tree, 228). Only the order of the fp32 additions
// differs from the scheme's.
static INTFA_DEVICE void sum_block_rows(const float (&p)[8][4], float (&rowSums)[2]) {
#pragma unroll
    for (int r = 0; r < 2; ++r) {
        float pairSum[4];  // keys of n-tiles 2k and 2k + 1
#pragma unroll
        for (int k = 0; k < 4; ++k) pairSum[k] = (p[2 * k][2 * r] + p[2 * k][2 * r + 1]) + (p[2 * k + 1][2 * r] + p[2 * k + 1][2 * r + 1]);
        rowSums[r] = (pairSum[0] + pairSum[1]) + (pairSum[2] + pairSum[3]);
    }
}

// The B fragments of V for P·V from 8-bit Vt (channel rows of 64 permuted keys): for each
// n-tile of 8 channels one ldmatrix.x4 (matrices 0,1: key positions 0-31, 2,3: 32-63), which
// serves every row tile; `Scheme::accumulate_values` folds one tile's product into the output.
template <typename Scheme>
static INTFA_DEVICE void multiply_transposed_values(
    float (&output)[kRowTiles][kOutTiles][4], const intfa_u32 (&pFragment)[kRowTiles][2][4], const float (&alpha)[kRowTiles][2],
    intfa_u32 vTileAddress, int lane) {
#pragma unroll
    for (int n = 0; n < kOutTiles; ++n) {
        if (kFenceFragmentLoads && n % kFencedOutTiles == 0) __syncwarp();
        intfa_u32 b[4];
        intfa_ldmatrix_x4(b, vTileAddress + (8 * n + (lane & 7)) * kVStride + 16 * (lane >> 3));
#pragma unroll
        for (int t = 0; t < kRowTiles; ++t) Scheme::accumulate_values(output[t][n], pFragment[t], b, alpha[t]);
    }
}

// What the schemes do differently, as small inline policies: the S = Q·Kᵀ instruction and
// its accumulator, the scores' row and key scales, the softmax and P's A fragments, P·V, and
// the output's scale. `Scheme` is the compiled method's.
struct Int8PaperScheme {
    typedef intfa_s32 Score;
    static constexpr bool kReadsRawValues = false;
    // Per-token Q scales, in shared memory after the Q tile (0 past Nq), ordered so that a
    // thread's 2·kRowTiles rows (16t + 8r + g) are one vector: [warp][g][t][r]. The loop's
    // first barrier publishes them.
    struct RowScales {
        const float* thread;
        float tensorKeyScale;  // none: the K scales are per key, in the K/V tile
    };
    static INTFA_DEVICE RowScales row_scales(const AttentionParams& p, unsigned char* scaleTile, int batch, int head, int, int rowBlock0) {
        float* tile = (float*)scaleTile;
        const float* qScale = (const float*)p.qScale + ((intfa_i64)batch * p.heads + head) * p.queryLength;
        for (int i = threadIdx.x; i < kBlockM; i += kThreads) {
            const int inWarp = i % kWarpRows;
            const int position = (i - inWarp) + (inWarp & 7) * 2 * kRowTiles + 2 * (inWarp >> 4) + ((inWarp >> 3) & 1);
            tile[position] = rowBlock0 + i < (int)p.queryLength ? qScale[rowBlock0 + i] : 0.0f;
        }
        const int warp = threadIdx.x >> 5, group = (threadIdx.x & 31) >> 2;
        return RowScales{tile + warp * kWarpRows + group * 2 * kRowTiles, 0.0f};
    }
    // Every row tile's scales at once: one 16- or 8-byte load.
    static INTFA_DEVICE void load_row_scales(const RowScales& scales, float (&rowScale)[kRowTiles][2], int) {
        if constexpr (kRowTiles == 2) {
            const float4 q = *(const float4*)scales.thread;
            rowScale[0][0] = q.x, rowScale[0][1] = q.y, rowScale[1][0] = q.z, rowScale[1][1] = q.w;
        } else {
            const float2 q = *(const float2*)scales.thread;
            rowScale[0][0] = q.x, rowScale[0][1] = q.y;
        }
    }
    // The K scales of this thread's two keys of n-tile j: per key, after the tile's Vt.
    static INTFA_DEVICE float2 key_scales(const unsigned char* vTile, int j, int quad, float) {
        return *(const float2*)((const float*)(vTile + kVBytes) + 8 * j + 2 * quad);
    }
    // S = (acc · qs) · ks, in the CPU's order.
    static INTFA_DEVICE float score(Score acc, float rowScale, float keyScale) {
        return __fmul_rn(__fmul_rn(intfa_small_int_to_float(acc), rowScale), keyScale);
    }
    static constexpr int kPChunks = 2;  // 32-key chunks of P·V's A fragment
    // P = exp2(S − mnew) in fp32, coded as round(127 · P) (the add of 1.5 · 2^23 rounds to
    // an integer in the low bits) and packed as u8; l sums fp32 P.
    static INTFA_DEVICE void softmax(
        float (&s)[8][4], float (&rowMax)[2], const float (&blockMax)[2], const float (&)[2], float (&alpha)[2],
        float (&probabilitySum)[2], intfa_u32 (&pFragment)[kPChunks][4]) {
        constexpr float kRound = 12582912.0f;
        float subtract[2];
#pragma unroll
        for (int r = 0; r < 2; ++r) advance_row_max(rowMax[r], blockMax[r], alpha[r], subtract[r]);
        intfa_u32 codeBits[32];  // n-tile j, element e at 4j + e
#pragma unroll
        for (int j = 0; j < 8; ++j) {
#pragma unroll
            for (int e = 0; e < 4; ++e) {
                s[j][e] = intfa_exp2(__fsub_rn(s[j][e], subtract[e >> 1]));  // P, in place
                codeBits[4 * j + e] = __float_as_uint(__fadd_rn(__fmul_rn(s[j][e], 127.0f), kRound));
            }
        }
        intfa_pack_code_fragment(codeBits, pFragment);
        sum_block_rows(s, probabilitySum);
    }
    // Its codes were packed by its softmax.
    static INTFA_DEVICE void pack_probabilities(const float (&)[8][4], intfa_u32 (&)[kPChunks][4]) {}
    static INTFA_DEVICE void mma_scores(Score (&s)[4], const intfa_u32 (&a)[4], intfa_u32 b0, intfa_u32 b1) { intfa_mma_s8s8(s, a, b0, b1); }
    // One n-tile of P·V: the block's integer product, then o = o · alpha + product.
    static INTFA_DEVICE void accumulate_values(float (&o)[4], const intfa_u32 (&p)[kPChunks][4], const intfa_u32 (&b)[4], const float (&alpha)[2]) {
        intfa_s32 blockProduct[4] = {0, 0, 0, 0};
        intfa_mma_s8s8(blockProduct, p[0], b[0], b[1]);
        intfa_mma_s8s8(blockProduct, p[1], b[2], b[3]);
#pragma unroll
        for (int e = 0; e < 4; ++e) o[e] = o[e] * alpha[e >> 1] + intfa_small_int_to_float(blockProduct[e]);
    }
    static INTFA_DEVICE void multiply_values(
        float (&output)[kRowTiles][kOutTiles][4], const intfa_u32 (&pFragment)[kRowTiles][kPChunks][4], const float (&alpha)[kRowTiles][2],
        intfa_u32 vTileAddress, int lane) {
        multiply_transposed_values<Int8PaperScheme>(output, pFragment, alpha, vTileAddress, lane);
    }
    // V's per-tensor scale (its amax, stored) over the 127 levels of the codes.
    static INTFA_DEVICE float value_scale(const KeySources& sources) { return __fdiv_rn(sources.vScale[0], 127.0f); }
    static INTFA_DEVICE float scaled_output(float o, float vScale) { return __fmul_rn(o, vScale); }
};

// The schemes whose P is a float rounded to the MMA's input type: P = exp2(S − mnew) in fp32
// against the running maximum (fp16 takes the maximum on the accumulator and scales inside
// the exponent's FFMA), l sums fp32 P.
struct TensorScaleRows {
    // One Q scale (and K scale) per tensor, or sm·L for fp16: a value for every row.
    struct RowScales {
        float row;
        float tensorKeyScale;
    };
    static INTFA_DEVICE void load_row_scales(const RowScales& scales, float (&rowScale)[kRowTiles][2], int t0) {
#pragma unroll
        for (int t = t0; t < t0 + kGroupTiles; ++t) rowScale[t][0] = rowScale[t][1] = scales.row;
    }
};

#if !defined(__CUDA_ARCH__) || __CUDA_ARCH__ >= 890  // FP8 tensor cores
struct FP8Scheme : TensorScaleRows {
    typedef float Score;
    static constexpr bool kReadsRawValues = false;
    static INTFA_DEVICE RowScales row_scales(const AttentionParams& p, unsigned char*, int batch, int head, int kvHead, int) {
        return RowScales{((const float*)p.qScale)[(intfa_i64)batch * p.heads + head], ((const float*)p.kScale)[(intfa_i64)batch * p.kvHeads + kvHead]};
    }
    // One K scale per tensor.
    static INTFA_DEVICE float2 key_scales(const unsigned char*, int, int, float tensorScale) { return make_float2(tensorScale, tensorScale); }
    static INTFA_DEVICE float score(Score acc, float rowScale, float keyScale) { return __fmul_rn(__fmul_rn(acc, rowScale), keyScale); }
    static constexpr int kPChunks = 2;
    static INTFA_DEVICE void softmax(
        float (&s)[8][4], float (&rowMax)[2], const float (&blockMax)[2], const float (&)[2], float (&alpha)[2],
        float (&probabilitySum)[2], intfa_u32 (&)[kPChunks][4]) {
        float subtract[2];
#pragma unroll
        for (int r = 0; r < 2; ++r) {
            advance_row_max(rowMax[r], blockMax[r], alpha[r], subtract[r]);
            probabilitySum[r] = 0.0f;
        }
#pragma unroll
        for (int j = 0; j < 8; ++j) {
#pragma unroll
            for (int e = 0; e < 4; ++e) {
                s[j][e] = intfa_exp2(__fsub_rn(s[j][e], subtract[e >> 1]));
                probabilitySum[e >> 1] += s[j][e];
            }
        }
    }
    // Chunk c from S n-tiles 4c..4c+3: this thread's keys of those tiles, rounded to e4m3, in
    // the order the permuted Vt stores them.
    static INTFA_DEVICE void pack_probabilities(const float (&s)[8][4], intfa_u32 (&p)[kPChunks][4]) {
#pragma unroll
        for (int c = 0; c < 2; ++c) {
            const int j = 4 * c;
            p[c][0] = (intfa_u32)intfa_pack_e4m3x2(s[j][0], s[j][1]) | ((intfa_u32)intfa_pack_e4m3x2(s[j + 1][0], s[j + 1][1]) << 16);
            p[c][1] = (intfa_u32)intfa_pack_e4m3x2(s[j][2], s[j][3]) | ((intfa_u32)intfa_pack_e4m3x2(s[j + 1][2], s[j + 1][3]) << 16);
            p[c][2] = (intfa_u32)intfa_pack_e4m3x2(s[j + 2][0], s[j + 2][1]) | ((intfa_u32)intfa_pack_e4m3x2(s[j + 3][0], s[j + 3][1]) << 16);
            p[c][3] = (intfa_u32)intfa_pack_e4m3x2(s[j + 2][2], s[j + 2][3]) | ((intfa_u32)intfa_pack_e4m3x2(s[j + 3][2], s[j + 3][3]) << 16);
        }
    }
    static INTFA_DEVICE void mma_scores(Score (&s)[4], const intfa_u32 (&a)[4], intfa_u32 b0, intfa_u32 b1) { intfa_mma_e4m3(s, a, b0, b1); }
    // One n-tile of P·V: the output rescaled by alpha, then the MMAs accumulate into it.
    static INTFA_DEVICE void accumulate_values(float (&o)[4], const intfa_u32 (&p)[kPChunks][4], const intfa_u32 (&b)[4], const float (&alpha)[2]) {
#pragma unroll
        for (int e = 0; e < 4; ++e) o[e] *= alpha[e >> 1];
        intfa_mma_e4m3(o, p[0], b[0], b[1]);
        intfa_mma_e4m3(o, p[1], b[2], b[3]);
    }
    static INTFA_DEVICE void multiply_values(
        float (&output)[kRowTiles][kOutTiles][4], const intfa_u32 (&pFragment)[kRowTiles][kPChunks][4], const float (&alpha)[kRowTiles][2],
        intfa_u32 vTileAddress, int lane) {
        multiply_transposed_values<FP8Scheme>(output, pFragment, alpha, vTileAddress, lane);
    }
    static INTFA_DEVICE float value_scale(const KeySources& sources) { return sources.vScale[0]; }
    static INTFA_DEVICE float scaled_output(float o, float vScale) { return __fmul_rn(o, vScale); }
};
#endif

struct FP16Scheme : TensorScaleRows {
    typedef float Score;
    // V is the caller's, read as it is: see zero_nonfinite_values.
    static constexpr bool kReadsRawValues = true;
    static INTFA_DEVICE RowScales row_scales(const AttentionParams& p, unsigned char*, int, int, int, int) {
        return RowScales{p.softmaxScaleLog2, 0.0f};
    }
    static INTFA_DEVICE float2 key_scales(const unsigned char*, int, int, float) { return make_float2(0.0f, 0.0f); }
    // The accumulator itself: sm·L is applied in the exponent's FFMA of the softmax.
    static INTFA_DEVICE float score(Score acc, float, float) { return acc; }
    static constexpr int kPChunks = 4;  // 16-key chunks
    // The maximum is taken on the accumulator (sm·L > 0 keeps its key), so each score costs
    // one FFMA before its exp2, as in FlashAttention-2.
    static INTFA_DEVICE void softmax(
        float (&s)[8][4], float (&rowMax)[2], const float (&blockMax)[2], const float (&rowScale)[2], float (&alpha)[2],
        float (&probabilitySum)[2], intfa_u32 (&)[kPChunks][4]) {
        float negatedSubtract[2];
#pragma unroll
        for (int r = 0; r < 2; ++r) {
            float subtract;
            advance_row_max(rowMax[r], blockMax[r] * rowScale[r], alpha[r], subtract);
            negatedSubtract[r] = -subtract;
        }
#pragma unroll
        for (int j = 0; j < 8; ++j) {
#pragma unroll
            for (int e = 0; e < 4; ++e) s[j][e] = intfa_exp2(fmaf(s[j][e], rowScale[e >> 1], negatedSubtract[e >> 1]));
        }
        sum_block_rows(s, probabilitySum);
    }
    // Chunk c from S n-tiles 2c, 2c + 1, rounded to fp16 (no permutation).
    static INTFA_DEVICE void pack_probabilities(const float (&s)[8][4], intfa_u32 (&p)[kPChunks][4]) {
#pragma unroll
        for (int c = 0; c < 4; ++c) {
            p[c][0] = intfa_pack_half2(s[2 * c][0], s[2 * c][1]);
            p[c][1] = intfa_pack_half2(s[2 * c][2], s[2 * c][3]);
            p[c][2] = intfa_pack_half2(s[2 * c + 1][0], s[2 * c + 1][1]);
            p[c][3] = intfa_pack_half2(s[2 * c + 1][2], s[2 * c + 1][3]);
        }
    }
    static INTFA_DEVICE void mma_scores(Score (&s)[4], const intfa_u32 (&a)[4], intfa_u32 b0, intfa_u32 b1) { intfa_mma_f16(s, a, b0, b1); }
    // P·V from V's key rows, transposed by ldmatrix: per n-tile of 8 channels and half of the
    // keys, matrices 0,1 are the B fragment of key chunk 2·half, matrices 2,3 of 2·half + 1.
    // Without the vote (kRescaleByVote) each n-tile takes alpha just before its MMAs.
    static INTFA_DEVICE void multiply_values(
        float (&output)[kRowTiles][kOutTiles][4], const intfa_u32 (&pFragment)[kRowTiles][kPChunks][4], const float (&alpha)[kRowTiles][2],
        intfa_u32 vTileAddress, int lane) {
#pragma unroll
        for (int n = 0; n < kOutTiles; ++n) {
            if constexpr (!kRescaleByVote) {
#pragma unroll
                for (int t = 0; t < kRowTiles; ++t) {
#pragma unroll
                    for (int e = 0; e < 4; ++e) output[t][n][e] *= alpha[t][e >> 1];
                }
            }
#pragma unroll
            for (int half = 0; half < 2; ++half) {
                intfa_u32 b[4];
                intfa_ldmatrix_x4_trans(b, vTileAddress + (32 * half + lane) * kVStride + 16 * n);
#pragma unroll
                for (int t = 0; t < kRowTiles; ++t) {
                    intfa_mma_f16(output[t][n], pFragment[t][2 * half], b[0], b[1]);
                    intfa_mma_f16(output[t][n], pFragment[t][2 * half + 1], b[2], b[3]);
                }
            }
        }
    }
    static INTFA_DEVICE float value_scale(const KeySources&) { return 1.0f; }
    static INTFA_DEVICE float scaled_output(float o, float) { return o; }  // V is not scaled
};
#if INTFA_METHOD == INTFA_M_INT8_PAPER
typedef Int8PaperScheme Scheme;
#elif INTFA_METHOD == INTFA_M_FP8
typedef FP8Scheme Scheme;
#else
typedef FP16Scheme Scheme;
#endif

// Sets the non-finite fp16 values of a V tile in shared memory (64 key rows) to 0. CTA-wide.
static INTFA_DEVICE void zero_nonfinite_values(unsigned char* vTile) {
    constexpr int kChunksPerRow = kHeadDim * 2 / 16;
    for (int i = threadIdx.x; i < kBlockN * kChunksPerRow; i += kThreads) {
        intfa_u32* chunk = (intfa_u32*)(vTile + (i / kChunksPerRow) * kVStride + 16 * (i % kChunksPerRow));
#pragma unroll
        for (int w = 0; w < 4; ++w) {
            intfa_u32 bits = chunk[w];
            if ((bits & 0x7C00u) == 0x7C00u) bits &= 0xFFFF0000u;  // exponent all ones: Inf or NaN
            if ((bits & 0x7C000000u) == 0x7C000000u) bits &= 0x0000FFFFu;
            chunk[w] = bits;
        }
    }
}

// Issues the cp.async copies of key block `block` into ring slot `slot`.
static INTFA_DEVICE void load_key_block(const AttentionParams& p, unsigned char* smem, int slot, int block, const KeySources& sources) {
    const unsigned char* kBase = sources.k;
    const unsigned char* vBase = sources.v;
    const float* kScaleBase = sources.kScale;
    unsigned char* kTile = smem + slot * kStageBytes;
    unsigned char* vTile = kTile + kKBytes;
    const int key0 = block * kBlockN;
    const int validKeys = (int)p.keyLength - key0;
    const intfa_i64 kRowBytesGlobal = p.kStrideToken * kElementBytes;
    copy_tile_rows<kThreads, kBlockN, kKRowBytes / 16>(kTile, kKStride, kBase + key0 * kRowBytesGlobal, kRowBytesGlobal, validKeys);
    if constexpr (kEightBit) {
        // Vt rows are padded to NkPad with zero codes: every copy is in range.
        copy_tile_rows<kThreads, kHeadDim, kVRowBytes / 16>(vTile, kVStride, vBase + key0, p.vStrideRow, kHeadDim);
    } else {
        // Rows past Nk must be zeros, not stale data: P is 0 there, but 0 · NaN is NaN.
        const intfa_i64 vRowBytesGlobal = p.vStrideRow * 2;
        copy_tile_rows<kThreads, kBlockN, kVRowBytes / 16>(vTile, kVStride, vBase + key0 * vRowBytesGlobal, vRowBytesGlobal, validKeys);
    }
    if constexpr (kPerKeyScale) {
        // sK is padded per head to NkPad (zeros), so 16-byte copies stay in range.
        float* scaleTile = (float*)(vTile + kVBytes);
        if (threadIdx.x < kBlockN / 4) {
            intfa_cp_async_16(intfa_smem_address(scaleTile + 4 * threadIdx.x), kScaleBase + key0 + 4 * threadIdx.x, 16u);
        }
    }
}

// The epilogue's output rows: the quad's parts of each row's l summed (left in rowSum), then
// O = acc · sV / l (0 when no key was visible) for this thread's rows below Nq.
static INTFA_DEVICE void store_output(
    const AttentionParams& p, int batch, int head, int queryLength, int threadRow0, int quad, const float (&output)[kRowTiles][kOutTiles][4],
    float (&rowSum)[kRowTiles][2], float vScale) {
    unsigned char* outBase = (unsigned char*)p.out + ((intfa_i64)batch * p.oStrideBatch + (intfa_i64)head * p.oStrideHead) * 2;
#pragma unroll
    for (int t = 0; t < kRowTiles; ++t) {
#pragma unroll
        for (int r = 0; r < 2; ++r) {
            rowSum[t][r] += __shfl_xor_sync(0xFFFFFFFFu, rowSum[t][r], 1);
            rowSum[t][r] += __shfl_xor_sync(0xFFFFFFFFu, rowSum[t][r], 2);
            const float l = rowSum[t][r];
            const int row = threadRow0 + 16 * t + 8 * r;
            if (row >= queryLength) continue;
            // One division per row (the IEEE division has a slow-path call; one per element
            // would keep the whole accumulator live across calls).
            const float inverseSum = l > 0.0f ? __fdiv_rn(1.0f, l) : 0.0f;
            intfa_u32* outRow = (intfa_u32*)(outBase + (intfa_i64)row * p.oStrideToken * 2);
#pragma unroll
            for (int n = 0; n < kOutTiles; ++n) {
                const int channel = 8 * n + 2 * quad;
                float value[2];
#pragma unroll
                for (int e = 0; e < 2; ++e) {
                    value[e] = __fmul_rn(Scheme::scaled_output(output[t][n][2 * r + e], vScale), inverseSum);
                }
                outRow[channel / 2] = INTFA_OUT_BF16 ? intfa_pack_bf162(value[0], value[1]) : intfa_pack_half2(value[0], value[1]);
            }
        }
    }
}

// The natural-log log-sum-exp of this thread's rows below Nq from their running maximum
// (log2 domain) and summed l; −∞ for a row that saw no key.
static INTFA_DEVICE void store_log_sum_exp(
    const AttentionParams& p, int batch, int head, int queryLength, int threadRow0, const float (&rowMax)[kRowTiles][2], const float (&rowSum)[kRowTiles][2]) {
    float* lse = (float*)p.lse + ((intfa_i64)batch * p.heads + head) * p.queryLength;
#pragma unroll
    for (int t = 0; t < kRowTiles; ++t) {
#pragma unroll
        for (int r = 0; r < 2; ++r) {
            const float l = rowSum[t][r];
            const int row = threadRow0 + 16 * t + 8 * r;
            if (row < queryLength) lse[row] = l > 0.0f ? __fdiv_rn(rowMax[t][r] + log2f(l), INTFA_LOG2E) : kNegativeInfinity;
        }
    }
}

extern "C" __global__ void __launch_bounds__(kThreads, INTFA_MIN_BLOCKS) INTFA_KERNEL_NAME(const AttentionParams p) {
    extern __shared__ __align__(128) unsigned char smem[];

    const int warp = threadIdx.x >> 5;
    const int lane = threadIdx.x & 31;
    const int group = lane >> 2;   // g: fragment row (and row + 8)
    const int quad = lane & 3;     // t: position inside the row's quad
    // Heavy causal blocks (late query rows) first, so the tail of the grid is light.
    const intfa_i64 queryBlock = INTFA_CAUSAL ? (gridDim.x - 1 - blockIdx.x) : blockIdx.x;
    // 32-bit head indices (a 64-bit division is a subroutine call whose result would stay
    // live, and spill, across the whole key loop); addresses widen them to 64 bits.
    const int head = blockIdx.y;
    const int batch = blockIdx.z;
    const int kvHead = head / (int)(p.heads / p.kvHeads);
    // Sequence positions fit in 32 bits (lengths < 2^31); addresses are formed in 64 bits.
    const int queryLength = (int)p.queryLength;
    const int keyLength = (int)p.keyLength;
    const int rowBlock0 = (int)queryBlock * kBlockM;
    const int warpRow0 = rowBlock0 + warp * kWarpRows;
    // Causal: row i sees key j iff j <= i + causalShift.
    const int causalShift = keyLength - queryLength;

    // ---- Key blocks this CTA needs.
    const int keyBlocks = (keyLength + kBlockN - 1) / kBlockN;
    int blockCount = keyBlocks;
    if (INTFA_CAUSAL) {
        const int lastRow = (rowBlock0 + kBlockM < queryLength ? rowBlock0 + kBlockM : queryLength) - 1;
        const int lastKey = lastRow + causalShift;
        blockCount = lastKey < 0 ? 0 : (lastKey / kBlockN + 1 < keyBlocks ? lastKey / kBlockN + 1 : keyBlocks);
    }

    KeySources sources;
    sources.k = (const unsigned char*)p.k + ((intfa_i64)batch * p.kStrideBatch + (intfa_i64)kvHead * p.kStrideHead) * kElementBytes;
    sources.v = (const unsigned char*)p.v + ((intfa_i64)batch * p.vStrideBatch + (intfa_i64)kvHead * p.vStrideHead) * kElementBytes;
    sources.kScale = kPerKeyScale ? (const float*)p.kScale + ((intfa_i64)batch * p.kvHeads + kvHead) * p.keyLengthPadded : nullptr;
    // Per tensor.
    sources.vScale = kEightBit ? (const float*)p.vScale + ((intfa_i64)batch * p.kvHeads + kvHead) : nullptr;
    KeySources* sharedSources = (KeySources*)(smem + kSourcesOffset);
    if (threadIdx.x == 0) *sharedSources = sources;  // published by the loop's first barrier

    // ---- Q tile → shared memory (rows past Nq zero-filled), then the key pipeline.
    // This thread's rows: 16t + 8r + g of the warp's, for row tile t and half r.
    const int threadRow0 = warpRow0 + group;
    unsigned char* qTile = smem + kStages * kStageBytes;
    {
        const unsigned char* qBase = (const unsigned char*)p.q + ((intfa_i64)batch * p.qStrideBatch + (intfa_i64)head * p.qStrideHead) * kElementBytes;
        const intfa_i64 qRowBytes = p.qStrideToken * kElementBytes;
        copy_tile_rows<kThreads, kBlockM, kKRowBytes / 16>(qTile, kKStride, qBase + (intfa_i64)rowBlock0 * qRowBytes, qRowBytes, queryLength - rowBlock0);
        intfa_cp_async_commit();
    }
#pragma unroll
    for (int s = 0; s < kStages - 1; ++s) {
        if (s < blockCount) load_key_block(p, smem, s, s, sources);
        intfa_cp_async_commit();
    }
    // A fragments of row tile t: matrices (rows 0-7 | 8-15) × (bytes 0-15 | 16-31) of a
    // 32-byte k-chunk are registers 0-3, for 8-bit and fp16 alike.
    const intfa_u32 qFragmentAddress = intfa_smem_address(qTile) + (warp * kWarpRows + (lane & 7) + 8 * ((lane >> 3) & 1)) * kKStride + 16 * (lane >> 4);
    constexpr int kQTileStride = 16 * kKStride;  // from one row tile's fragments to the next
#if INTFA_Q_IN_REGISTERS
    intfa_u32 qFragment[kRowTiles][kQKChunks][4];
    intfa_cp_async_wait<kStages - 1>();  // the Q group (committed first) has landed
    __syncthreads();
#pragma unroll
    for (int t = 0; t < kRowTiles; ++t) {
#pragma unroll
        for (int c = 0; c < kQKChunks; ++c) intfa_ldmatrix_x4(qFragment[t][c], qFragmentAddress + t * kQTileStride + 32 * c);
    }
#endif

    // Per-row score factor: S = (acc · qs) · ks (8-bit) or acc · sm·L (fp16).
    const Scheme::RowScales rowScales = Scheme::row_scales(p, qTile + kQBytes, batch, head, kvHead, rowBlock0);

    // Online-softmax state of this thread's rows, and the fp32 output accumulator.
    float rowMax[kRowTiles][2];
    float rowSum[kRowTiles][2];
    float output[kRowTiles][kOutTiles][4];
#pragma unroll
    for (int t = 0; t < kRowTiles; ++t) {
        rowMax[t][0] = rowMax[t][1] = kNegativeInfinity;
        rowSum[t][0] = rowSum[t][1] = 0.0f;
#pragma unroll
        for (int n = 0; n < kOutTiles; ++n) output[t][n][0] = output[t][n][1] = output[t][n][2] = output[t][n][3] = 0.0f;
    }
    if constexpr (kRowStateInShared) store_row_state(smem, 0, rowSum);

    const int ldRow = lane & 7;     // row inside the 8x8 matrix whose address this lane gives
    const int ldMatrix = lane >> 3; // which of the four matrices

    for (int block = 0; block < blockCount; ++block) {
        intfa_cp_async_wait<kStages - 2>();
        __syncthreads();
        {
            const int next = block + kStages - 1;
            if (next < blockCount) load_key_block(p, smem, next % kStages, next, *sharedSources);
            intfa_cp_async_commit();
        }
        const int key0 = block * kBlockN;
        // A scheme that reads the caller's V as it is: a row's P is 0 at the keys it does not
        // see, but 0 · NaN is NaN. In the blocks that some row of the CTA sees only in part,
        // from the first key whose K or V row offends on, V is cleaned of non-finite values.
        if constexpr (Scheme::kReadsRawValues && INTFA_CAUSAL) {
            if (key0 + kBlockN - 1 > rowBlock0 + causalShift && key0 + kBlockN > intfa_first_offending_key(p)) {
                zero_nonfinite_values(smem + (block % kStages) * kStageBytes + kKBytes);
                __syncthreads();
            }
        }
        // A warp whose rows see none of this block's keys (causal, above the diagonal) has
        // nothing to add: the scheme's update would leave its state unchanged.
        if (INTFA_CAUSAL && key0 > warpRow0 + kWarpRows - 1 + causalShift) continue;

        const unsigned char* kTile = smem + (block % kStages) * kStageBytes;
        const unsigned char* vTile = kTile + kKBytes;
        const intfa_u32 kTileAddress = intfa_smem_address(kTile);
        const intfa_u32 vTileAddress = intfa_smem_address(vTile);

        // Softmax state and P·V operands of every row tile (filled group by group below).
        float alpha[kRowTiles][2];
        float probabilitySum[kRowTiles][2];
        intfa_u32 pFragment[kRowTiles][Scheme::kPChunks][4];
        // Row tiles in groups of kGroupTiles, each from its S through its P fragments.
#pragma unroll
        for (int t0 = 0; t0 < kRowTiles; t0 += kGroupTiles) {
            // ---- S = Q·Kᵀ: 8 n-tiles of 8 keys per row tile; each K fragment serves every row tile.
            Scheme::Score score[kRowTiles][8][4];
#pragma unroll
            for (int t = t0; t < t0 + kGroupTiles; ++t) {
#pragma unroll
                for (int j = 0; j < 8; ++j) score[t][j][0] = score[t][j][1] = score[t][j][2] = score[t][j][3] = 0;
            }
#pragma unroll
            for (int x = 0; x < kQKChunks / 2; ++x) {
                if (kFenceFragmentLoads) __syncwarp();
#if !INTFA_Q_IN_REGISTERS
                intfa_u32 qa[kRowTiles][4], qb[kRowTiles][4];
#pragma unroll
                for (int t = t0; t < t0 + kGroupTiles; ++t) {
                    intfa_ldmatrix_x4(qa[t], qFragmentAddress + t * kQTileStride + 64 * x);
                    intfa_ldmatrix_x4(qb[t], qFragmentAddress + t * kQTileStride + 64 * x + 32);
                }
#endif
#pragma unroll
                for (int j = 0; j < 8; ++j) {
                    // Keys 8j..8j+7; matrices 0,1 are chunk 2x, matrices 2,3 chunk 2x + 1.
                    intfa_u32 b[4];
                    intfa_ldmatrix_x4(b, kTileAddress + (8 * j + ldRow) * kKStride + 64 * x + 16 * ldMatrix);
#pragma unroll
                    for (int t = t0; t < t0 + kGroupTiles; ++t) {
#if INTFA_Q_IN_REGISTERS
                        const intfa_u32 (&a0)[4] = qFragment[t][2 * x];
                        const intfa_u32 (&a1)[4] = qFragment[t][2 * x + 1];
#else
                        const intfa_u32 (&a0)[4] = qa[t];
                        const intfa_u32 (&a1)[4] = qb[t];
#endif
                        Scheme::mma_scores(score[t][j], a0, b[0], b[1]);
                        Scheme::mma_scores(score[t][j], a1, b[2], b[3]);
                    }
                }
            }

            // Scores to P fragments, in the CPU's order: S = (acc · qs) · ks, masked where a block
            // needs it (the causal diagonal, the Nk tail).
            const bool needsMask = key0 + kBlockN > keyLength || (INTFA_CAUSAL && key0 + kBlockN - 1 > warpRow0 + causalShift);
            auto scoresToCodes = [&]() {
                // ---- Scores in the log2 domain, masked.
                float s[kRowTiles][8][4];
                float rowScale[kRowTiles][2];
                Scheme::load_row_scales(rowScales, rowScale, t0);
#pragma unroll
                for (int j = 0; j < 8; ++j) {
                    const float2 ks = Scheme::key_scales(vTile, j, quad, rowScales.tensorKeyScale);
#pragma unroll
                    for (int t = t0; t < t0 + kGroupTiles; ++t) {
#pragma unroll
                        for (int e = 0; e < 4; ++e) s[t][j][e] = Scheme::score(score[t][j][e], rowScale[t][e >> 1], (e & 1) ? ks.y : ks.x);
                    }
                }
                if (needsMask) {
#pragma unroll
                    for (int t = t0; t < t0 + kGroupTiles; ++t) {
#pragma unroll
                        for (int j = 0; j < 8; ++j) {
#pragma unroll
                            for (int e = 0; e < 4; ++e) {
                                const int key = key0 + 8 * j + 2 * quad + (e & 1);
                                const int row = threadRow0 + 16 * t + 8 * (e >> 1);
                                const bool visible = key < keyLength && (!INTFA_CAUSAL || key <= row + causalShift);
                                if (!visible) s[t][j][e] = kNegativeInfinity;
                            }
                        }
                    }
                }

                // ---- Block maximum per row (the quad's four threads share a row).
                float blockMax[kRowTiles][2];
#pragma unroll
                for (int t = t0; t < t0 + kGroupTiles; ++t) {
                    blockMax[t][0] = blockMax[t][1] = kNegativeInfinity;
#pragma unroll
                    for (int j = 0; j < 8; ++j) {
                        blockMax[t][0] = fmaxf(blockMax[t][0], fmaxf(s[t][j][0], s[t][j][1]));
                        blockMax[t][1] = fmaxf(blockMax[t][1], fmaxf(s[t][j][2], s[t][j][3]));
                    }
#pragma unroll
                    for (int r = 0; r < 2; ++r) {
                        blockMax[t][r] = fmaxf(blockMax[t][r], __shfl_xor_sync(0xFFFFFFFFu, blockMax[t][r], 1));
                        blockMax[t][r] = fmaxf(blockMax[t][r], __shfl_xor_sync(0xFFFFFFFFu, blockMax[t][r], 2));
                    }
                }

                // ---- Softmax and P fragments.
#pragma unroll
                for (int t = t0; t < t0 + kGroupTiles; ++t) {
                    Scheme::softmax(s[t], rowMax[t], blockMax[t], rowScale[t], alpha[t], probabilitySum[t], pFragment[t]);
                }
#pragma unroll
                for (int t = t0; t < t0 + kGroupTiles; ++t) Scheme::pack_probabilities(s[t], pFragment[t]);
            };
            scoresToCodes();
        }

        // ---- The l update, on this thread's part of each row: alpha and the weight are the
        // same across the quad, so the quad's parts are summed once, in the epilogue.
        if constexpr (kRowStateInShared) load_row_state(smem, 0, rowSum);
#pragma unroll
        for (int t = 0; t < kRowTiles; ++t) {
#pragma unroll
            for (int r = 0; r < 2; ++r) {
                rowSum[t][r] = rowSum[t][r] * alpha[t][r] + probabilitySum[t][r];
            }
        }
        if constexpr (kRowStateInShared) store_row_state(smem, 0, rowSum);

        // ---- P·V; each V fragment serves every row tile.
        // The rescale of the output, skipped when no row of the warp has a new maximum
        // (alpha = 1 exactly): most blocks after the first few (kRescaleByVote).
        if constexpr (kRescaleByVote) {
            bool unchanged = true;
#pragma unroll
            for (int t = 0; t < kRowTiles; ++t) unchanged = unchanged && alpha[t][0] == 1.0f && alpha[t][1] == 1.0f;
            if (!__all_sync(0xFFFFFFFFu, unchanged)) {
#pragma unroll
                for (int t = 0; t < kRowTiles; ++t) {
#pragma unroll
                    for (int n = 0; n < kOutTiles; ++n) {
#pragma unroll
                        for (int e = 0; e < 4; ++e) output[t][n][e] *= alpha[t][e >> 1];
                    }
                }
            }
        }
        Scheme::multiply_values(output, pFragment, alpha, vTileAddress, lane);
    }

    // ---- Epilogue: O = acc · sV / l (0 when no key was visible), and the log-sum-exp.
    if (kRowStateInShared && INTFA_WRITE_LSE) store_row_state(smem, 1, rowMax);
    intfa_cp_async_wait<0>();
    __syncthreads();  // publishes the sources where the loop ran no block (a causal CTA with no visible key)
    const float vScale = Scheme::value_scale(*sharedSources);
    if constexpr (kRowStateInShared) load_row_state(smem, 0, rowSum);
    store_output(p, batch, head, queryLength, threadRow0, quad, output, rowSum, vScale);
    // After every output row is written, so that log2f and the division (calls with their own
    // registers) do not meet a live accumulator.
    if constexpr (INTFA_WRITE_LSE) {
        if (quad == 0) {
            if constexpr (kRowStateInShared) load_row_state(smem, 1, rowMax);
            store_log_sum_exp(p, batch, head, queryLength, threadRow0, rowMax, rowSum);
        }
    }
}
