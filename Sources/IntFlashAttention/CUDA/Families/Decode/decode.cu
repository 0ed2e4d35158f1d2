// Decode attention on the paged INT8 KV cache (docs/SCHEMES.md, "The INT8 KV cache"): new
// query tokens per sequence (a decode step, or a chunk of a prompt) against its cached keys and
// values, in blocks of 64 keys as the CPU oracle (PagedKVCache.decode) computes them.
//
// Two kernels, one module:
//   intfa_decode_int8_…    grid (splits × query tiles, Hkv, B), INTFA_DECODE_WARPS warps. A CTA
//                          takes one sequence's KV head and one split of its keys (splitKeys keys,
//                          a multiple of the block) with the query rows of one tile that read that
//                          KV head (the G = H / Hkv query heads × tokensPerTile new tokens, at most
//                          INTFA_DECODE_ROWS): each page is read once for all of them. A decode
//                          step is one tile; more new tokens (a chunk of a prompt on the cache's
//                          pages) are several, each reading the keys its tokens see. Its warps
//                          take the split's key blocks in turn, each on its own: cp.async brings the
//                          block's K, V and scales into the warp's shared buffers (K of the
//                          next block loads during this block's P·V, V during its Q·Kᵀ), Q·Kᵀ
//                          and P·V run on the tensor cores (mma.sync m16n8k32, the query rows
//                          as the M dimension), and the warp keeps its own running maximum,
//                          sum and output. At the end the warps merge by their maxima; with one
//                          split that is the output, else the split's fp32 partials.
//   intfa_decode_combine_… one warp per query row: merges the splits' partials by their
//                          log-sum-exps into the output and the log-sum-exp. Launched as the
//                          attention kernel's programmatic dependent on sm_90+.
// A block's P codes do not depend on the running maximum it is coded under (u / r cancels
// it), so the result is the oracle's up to fp32 rounding whichever warp or split takes a block.
//
// P·V reuses the Q·Kᵀ accumulator layout as its A fragment (keys in the order 2t, 2t+1,
// 8+2t, 9+2t of each 16), so V is read with ldmatrix.trans (b16: two keys × two channels per
// register) and two byte permutes give each lane four keys of one channel in that order; the
// even and odd channels of each 16 form two n-tiles.
//
// Compile-time options (NVRTC -D), all required:
//   INTFA_HEAD_DIM      64 or 128
//   INTFA_DECODE_ROWS   query rows per CTA at most (G · tokensPerTile): 8 or 16
//   INTFA_DECODE_BLOCK  keys per P block (64)
//   INTFA_DECODE_WARPS  warps per CTA
//   INTFA_INPUT_BF16    Q: 0 fp16, 1 bf16;  INTFA_OUT_BF16  output: 0 fp16, 1 bf16
// Kernel names spell the shape and types; see DecodeKernelDescriptor.swift.
#include "params.cuh"
#include "input_type.cuh"
#include "variant_name.cuh"

#if !defined(INTFA_HEAD_DIM) || !defined(INTFA_DECODE_ROWS) || !defined(INTFA_DECODE_BLOCK) || !defined(INTFA_DECODE_WARPS)
#error "the host passes the head dim, the rows per CTA, the key block and the warps (DecodeKernelDescriptor.compileOptions)"
#endif
// intfa_decode_int8_d<D>_r<rows>_<f16|bf16 Q>_<f16|bf16 out>, and …_combine_… alike.
#define INTFA_DECODE_NAME(stage)                                                                             \
    INTFA_CAT(INTFA_CAT(INTFA_CAT(INTFA_CAT(INTFA_CAT(stage, INTFA_HEAD_DIM), _r), INTFA_DECODE_ROWS),          \
                        INTFA_CAT(_, INTFA_IN_SUFFIX)), INTFA_OUT_NAME)

namespace {
constexpr int kHeadDim = INTFA_HEAD_DIM;
constexpr int kMaxRows = INTFA_DECODE_ROWS;
constexpr int kBlock = INTFA_DECODE_BLOCK;      // keys per P block, fixed by the scheme
constexpr int kWarps = INTFA_DECODE_WARPS;
constexpr int kThreads = 32 * kWarps;
constexpr bool kUpperRows = kMaxRows > 8;       // rows 8…15 (the mma's c2, c3) hold queries
constexpr int kChunks = kHeadDim / 16;          // 16-byte pieces of a K or V row
constexpr int kScoreSteps = kHeadDim / 32;      // k32 steps of Q·Kᵀ
constexpr int kKeyTiles = kBlock / 8;           // n8 tiles of S
constexpr int kValueSteps = kBlock / 32;        // k32 steps of P·V
constexpr int kTileBytes = kBlock * kHeadDim;   // one block's K (or V) codes
// A warp's buffers: K codes, V codes, K scales, V scales.
constexpr int kWarpBytes = 2 * kTileBytes + 2 * kBlock * 4;
constexpr int kQueryBytes = 16 * kHeadDim;      // s8 Q codes of 16 rows (the mma's M)
static_assert(kBlock % 32 == 0 && kBlock <= 128, "whole 32-key steps, one key per lane per 32");
static_assert(kHeadDim == 64 || kHeadDim == 128, "head dims 64 and 128");
static_assert(kMaxRows == 8 || kMaxRows == 16, "8 or 16 query rows per CTA");
static_assert(16 % kWarps == 0, "the warps code the 16 Q rows alike");
static_assert(16 * kHeadDim * 4 + 2 * 16 * 4 <= kWarpBytes, "the warps' merge fits their buffers");
}  // namespace

// Byte offset within a [rows × kHeadDim] tile of 16-byte pieces, swizzled (the pieces of
// each 128-byte line XORed with its index mod 8) so that ldmatrix reads eight consecutive
// rows of one piece without bank conflicts.
static INTFA_DEVICE intfa_u32 decode_swizzle(intfa_u32 offset) { return offset ^ (((offset >> 7) & 7u) << 4); }

static INTFA_DEVICE void cp_async_4(intfa_u32 shared_address, const void* global, intfa_u32 source_bytes) {
    asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" :: "r"(shared_address), "l"(global), "r"(source_bytes) : "memory");
}

// The u8 code of x ≥ 0 (clamped to 255, rounded to nearest even) in the low byte.
static INTFA_DEVICE intfa_u32 encode_u8(float x) { return __float_as_uint(__fadd_rn(fminf(x, 255.0f), 12582912.0f)) & 0xFFu; }

static INTFA_DEVICE float quad_max(float x) {
    x = intfa_max_nan(x, __shfl_xor_sync(0xFFFFFFFFu, x, 1));
    return intfa_max_nan(x, __shfl_xor_sync(0xFFFFFFFFu, x, 2));
}

static INTFA_DEVICE float quad_sum(float x) {
    x += __shfl_xor_sync(0xFFFFFFFFu, x, 1);
    return x + __shfl_xor_sync(0xFFFFFFFFu, x, 2);
}

// One query row's state in a warp: running maximum (log2 domain), this lane's part of the
// sum of p, and the block's code reference over 255.
struct DecodeRow {
    float max = kNegativeInfinity;
    float sum = 0.0f;
    float alpha = 0.0f;
    float weight = 0.0f;
    float scale = 0.0f;  // qs = sQ · sm·L
    int visible = 0;     // keys this row sees
};

// The softmax of one row over the block: x in, P codes (low bytes) out, state updated.
// `values` are the V scales of the lane's keys (x[t][0..1] ↔ keys 8t + 2·(lane%4) + 0..1).
static INTFA_DEVICE void block_softmax(DecodeRow& row, float (&x)[kKeyTiles][2], const float2 (&valueScale)[kKeyTiles],
                                       intfa_u32 (&code)[kKeyTiles][2]) {
    float blockMax = kNegativeInfinity;
#pragma unroll
    for (int t = 0; t < kKeyTiles; ++t) blockMax = intfa_max_nan(blockMax, intfa_max_nan(x[t][0], x[t][1]));
    const float newMax = intfa_max_nan(row.max, quad_max(blockMax));
    row.alpha = row.max == kNegativeInfinity ? 0.0f : intfa_exp2(__fsub_rn(row.max, newMax));
    row.max = newMax;
    float sum = 0.0f, reference = 0.0f;
    float u[kKeyTiles][2];
#pragma unroll
    for (int t = 0; t < kKeyTiles; ++t) {
#pragma unroll
        for (int e = 0; e < 2; ++e) {
            const float p = x[t][e] == kNegativeInfinity ? 0.0f : intfa_exp2(__fsub_rn(x[t][e], newMax));
            sum += p;
            u[t][e] = __fmul_rn(p, e == 0 ? valueScale[t].x : valueScale[t].y);
            reference = intfa_max_nan(reference, u[t][e]);
        }
    }
    reference = quad_max(reference);
    row.sum = __fadd_rn(__fmul_rn(row.sum, row.alpha), sum);
    row.weight = __fdiv_rn(reference, 255.0f);
    // A row that sees none of the block's keys (a padding row of the tile) divides by 1, not 0:
    // a zero divisor sends the IEEE division down its slow path, once per block for every such lane.
    const float inverse = reference > 0.0f ? __fdiv_rn(255.0f, reference > 0.0f ? reference : 1.0f) : 0.0f;
#pragma unroll
    for (int t = 0; t < kKeyTiles; ++t) {
#pragma unroll
        for (int e = 0; e < 2; ++e) code[t][e] = encode_u8(__fmul_rn(u[t][e], inverse));
    }
}

// S = Q·Kᵀ of one block: n-tiles 2t2 and 2t2 + 1 (keys 16t2…16t2 + 15) from one ldmatrix.x4.
static INTFA_DEVICE void block_scores(intfa_s32 (&score)[kKeyTiles][4], const intfa_u32 (&queryFragment)[kScoreSteps][4],
                                      intfa_u32 keyTile, int lane) {
#pragma unroll
    for (int t = 0; t < kKeyTiles; ++t) score[t][0] = score[t][1] = score[t][2] = score[t][3] = 0;
#pragma unroll
    for (int t2 = 0; t2 < kKeyTiles / 2; ++t2) {
#pragma unroll
        for (int s = 0; s < kScoreSteps; ++s) {
            const int key = 16 * t2 + 8 * (lane / 16) + lane % 8, byte = 32 * s + 16 * ((lane / 8) % 2);
            intfa_u32 b[4];
            intfa_ldmatrix_x4(b, keyTile + decode_swizzle(key * kHeadDim + byte));
            intfa_mma_s8s8(score[2 * t2], queryFragment[s], b[0], b[1]);
            intfa_mma_s8s8(score[2 * t2 + 1], queryFragment[s], b[2], b[3]);
        }
    }
}

// x = S · (qs · sK) for rows g and g + 8, −∞ where the row does not see the key; the lane's
// keys' V scales beside them.
static INTFA_DEVICE void block_logits(float (&x)[2][kKeyTiles][2], float2 (&valueScale)[kKeyTiles], const intfa_s32 (&score)[kKeyTiles][4],
                                      const float* keyScales, const float* valueScales, int key0, int quad,
                                      const DecodeRow& lower, const DecodeRow& upper) {
#pragma unroll
    for (int t = 0; t < kKeyTiles; ++t) {
        const int k = 8 * t + 2 * quad, key = key0 + k;
        const float2 keyScale = *(const float2*)(keyScales + k);
        valueScale[t] = *(const float2*)(valueScales + k);
#pragma unroll
        for (int e = 0; e < 2; ++e) {
            const float sk = e == 0 ? keyScale.x : keyScale.y;
            x[0][t][e] = key + e < lower.visible
                ? __fmul_rn(intfa_small_int_to_float(score[t][e]), __fmul_rn(lower.scale, sk)) : kNegativeInfinity;
            x[1][t][e] = kUpperRows && key + e < upper.visible
                ? __fmul_rn(intfa_small_int_to_float(score[t][2 + e]), __fmul_rn(upper.scale, sk)) : kNegativeInfinity;
        }
    }
}

// The block's softmax for both rows, and P's A fragments: k-step s covers n-tiles 4s…4s + 3
// (keys 2q, 2q+1, 8+2q, 9+2q, … of 32s).
static INTFA_DEVICE void block_probabilities(intfa_u32 (&probability)[kValueSteps][4], DecodeRow& lower, DecodeRow& upper,
                                             float (&x)[2][kKeyTiles][2], const float2 (&valueScale)[kKeyTiles]) {
    intfa_u32 code[2][kKeyTiles][2];
    block_softmax(lower, x[0], valueScale, code[0]);
    if (kUpperRows) block_softmax(upper, x[1], valueScale, code[1]);
#pragma unroll
    for (int s = 0; s < kValueSteps; ++s) {
        probability[s][0] = intfa_pack_low_bytes(code[0][4 * s][0], code[0][4 * s][1], code[0][4 * s + 1][0], code[0][4 * s + 1][1]);
        probability[s][2] = intfa_pack_low_bytes(code[0][4 * s + 2][0], code[0][4 * s + 2][1], code[0][4 * s + 3][0], code[0][4 * s + 3][1]);
        probability[s][1] = kUpperRows
            ? intfa_pack_low_bytes(code[1][4 * s][0], code[1][4 * s][1], code[1][4 * s + 1][0], code[1][4 * s + 1][1]) : 0u;
        probability[s][3] = kUpperRows
            ? intfa_pack_low_bytes(code[1][4 * s + 2][0], code[1][4 * s + 2][1], code[1][4 * s + 3][0], code[1][4 * s + 3][1]) : 0u;
    }
}

// o = o · alpha + (r / 255) · P·V per 16-channel chunk: even and odd channels.
static INTFA_DEVICE void block_values(float (&output)[kChunks][2][4], const intfa_u32 (&probability)[kValueSteps][4], intfa_u32 valueTile,
                                      int lane, const DecodeRow& lower, const DecodeRow& upper) {
#pragma unroll
    for (int u = 0; u < kChunks; ++u) {
        intfa_s32 even[4] = {0, 0, 0, 0}, odd[4] = {0, 0, 0, 0};
#pragma unroll
        for (int s = 0; s < kValueSteps; ++s) {
            const int key = 32 * s + 8 * (lane / 8) + lane % 8;
            intfa_u32 v[4];
            intfa_ldmatrix_x4_trans(v, valueTile + decode_swizzle(key * kHeadDim + 16 * u));
            intfa_mma_u8s8(even, probability[s], __byte_perm(v[0], v[1], 0x6420), __byte_perm(v[2], v[3], 0x6420));
            intfa_mma_u8s8(odd, probability[s], __byte_perm(v[0], v[1], 0x7531), __byte_perm(v[2], v[3], 0x7531));
        }
        const intfa_s32 sums[2][4] = {{even[0], odd[0], even[1], odd[1]}, {even[2], odd[2], even[3], odd[3]}};
#pragma unroll
        for (int h = 0; h < (kUpperRows ? 2 : 1); ++h) {
            const DecodeRow& row = h == 0 ? lower : upper;
#pragma unroll
            for (int e = 0; e < 4; ++e) {
                output[u][h][e] = __fadd_rn(__fmul_rn(output[u][h][e], row.alpha),
                                            __fmul_rn(row.weight, intfa_small_int_to_float(sums[h][e])));
            }
        }
    }
}

// One Q row coded as s8 with its absolute maximum: lane l holds elements l + 32i. Returns
// the maximum (the row's scale is it over 127).
static INTFA_DEVICE float code_query_row(const float (&values)[kHeadDim / 32], intfa_s8* codes, int lane) {
    float amax = 0.0f;
#pragma unroll
    for (int i = 0; i < kHeadDim / 32; ++i) amax = fmaxf(amax, fabsf(values[i]));
    for (int offset = 16; offset > 0; offset /= 2) amax = fmaxf(amax, __shfl_xor_sync(0xFFFFFFFFu, amax, offset));
    const float inverse = intfa_inverse_scale(amax, 127.0f);
#pragma unroll
    for (int i = 0; i < kHeadDim / 32; ++i) codes[lane + 32 * i] = (intfa_s8)intfa_encode_s8(values[i], inverse);
    return amax;
}

// Q's A fragments of 16 coded rows: rows g and g + 8, channels 32s + 4·quad… and 32s + 16 + 4·quad….
static INTFA_DEVICE void query_fragments(intfa_u32 (&fragment)[kScoreSteps][4], const int* queryWords, int g, int quad) {
#pragma unroll
    for (int s = 0; s < kScoreSteps; ++s) {
        fragment[s][0] = queryWords[g * (kHeadDim / 4) + 8 * s + quad];
        fragment[s][1] = queryWords[(g + 8) * (kHeadDim / 4) + 8 * s + quad];
        fragment[s][2] = queryWords[g * (kHeadDim / 4) + 8 * s + 4 + quad];
        fragment[s][3] = queryWords[(g + 8) * (kHeadDim / 4) + 8 * s + 4 + quad];
    }
}

// A row's output element from its unnormalized sum o, its sum of p l and its maximum m (log2
// domain): o / l, 0 for a row that saw no key, NaN for one that saw a NaN.
static INTFA_DEVICE float row_value(float o, float l, float m) { return l > 0.0f ? o / l : (m != m ? kQuietNaN : 0.0f); }

// A row's natural-log log-sum-exp; −∞ for a row that sees no key.
static INTFA_DEVICE float row_lse(float m, float l) { return m == kNegativeInfinity ? m : __fdiv_rn(m + log2f(l), INTFA_LOG2E); }

// Writes one output element of a row (token, head) of sequence `batch`.
static INTFA_DEVICE void store_output(const DecodeParams& p, int batch, int token, int head, int channel, float value) {
    intfa_u16* out = (intfa_u16*)p.out + batch * p.oStrideBatch + token * p.oStrideToken + head * p.oStrideHead;
#if INTFA_OUT_BF16
    out[channel] = (intfa_u16)(intfa_pack_bf162(value, 0.0f) & 0xFFFFu);
#else
    out[channel] = intfa_float_to_half(value);
#endif
}

extern "C" __global__ void __launch_bounds__(kThreads) INTFA_DECODE_NAME(intfa_decode_int8_d)(const DecodeParams p) {
    extern __shared__ __align__(128) unsigned char shared[];
    int* queryWords = (int*)(shared + kWarps * kWarpBytes);  // [16][kHeadDim / 4], four s8 codes per word
    float* queryScale = (float*)(shared + kWarps * kWarpBytes + kQueryBytes);
    int* visibleKeys = (int*)(queryScale + 16);
    int* rowOutput = visibleKeys + 16;  // the row's head · Nq + token, −1 for padding: for the merge

#if __CUDA_ARCH__ >= 900
    // The combine kernel, launched as a programmatic dependent, may be scheduled now: its CTAs
    // wait for this grid's completion (griddepcontrol.wait) before they read the partials.
    asm volatile("griddepcontrol.launch_dependents;\n" ::: "memory");
#endif
    const int split = blockIdx.x % (int)p.splits, tile = blockIdx.x / (int)p.splits;
    const int kvHead = blockIdx.y, batch = blockIdx.z;
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, quad = lane % 4;
    const int queryLength = (int)p.queryLength, group = (int)(p.heads / p.kvHeads);
    // The CTA's query tile: tokens tile · T … (T = tokensPerTile) of the G heads, row r being
    // token tile · T + r % T of head kvHead · G + r / T; rows past the last token are padding.
    const int tokensPerTile = (int)p.tokensPerTile, firstToken = tile * tokensPerTile;
    const int rows = group * tokensPerTile;
    auto row_head = [&](int r) { return kvHead * group + r / tokensPerTile; };
    auto row_token = [&](int r) { return firstToken + r % tokensPerTile; };
    auto row_valid = [&](int r) { return r < rows && row_token(r) < queryLength; };
    auto query_row = [&](int r) {
        return (const intfa_u16*)p.query + batch * p.qStrideBatch + row_token(r) * p.qStrideToken + row_head(r) * p.qStrideHead;
    };
    // The warp codes Q rows warp, warp + kWarps, …. With two rows a warp (8 warps) their
    // elements are read first: they depend on nothing, and their latency then overlaps the
    // length's, the block table's and the first blocks'. Four rows a warp (4 warps) held that
    // long spill (sm_120); those are read where they are coded.
    constexpr int kRowsPerWarp = 16 / kWarps;
    constexpr bool kQueryFirst = kRowsPerWarp <= 2;
    intfa_u16 queryBits[kRowsPerWarp][kHeadDim / 32];
    if constexpr (kQueryFirst) {
#pragma unroll
        for (int k = 0; k < kRowsPerWarp; ++k) {
            const int r = warp + kWarps * k;
            const intfa_u16* q = query_row(r);
#pragma unroll
            for (int i = 0; i < kHeadDim / 32; ++i) queryBits[k][i] = row_valid(r) ? q[lane + 32 * i] : (intfa_u16)0;
        }
    }
    const int length = ((const int*)p.lengths)[batch];
    const int first = split * (int)p.splitKeys;
    // Causal: no row of the tile sees past its last token's keys.
    const int tileKeys = p.causal ? length - queryLength + min(firstToken + tokensPerTile, queryLength) : length;
    const int last = min(first + (int)p.splitKeys, tileKeys);

    unsigned char* buffers = shared + warp * kWarpBytes;
    const intfa_u32 keyTile = intfa_smem_address(buffers), valueTile = keyTile + kTileBytes;
    float* keyScales = (float*)(buffers + 2 * kTileBytes);
    float* valueScales = keyScales + kBlock;
    const int* blockTable = (const int*)p.blockTable + (intfa_i64)batch * p.maxPages;
    const int pageSize = (int)p.pageSize;
    const intfa_s8* keyCodes = (const intfa_s8*)p.keyCodes;
    const intfa_s8* valueCodes = (const intfa_s8*)p.valueCodes;

    // The slots of the block's keys lane + 32j (−1: past the split, or outside the pool).
    int slot[kBlock / 32];
    auto find_slots = [&](int key0) {
#pragma unroll
        for (int j = 0; j < kBlock / 32; ++j) {
            const int key = key0 + lane + 32 * j, entry = key / pageSize;
            const int page = key < last && entry < p.maxPages ? blockTable[entry] : -1;
            slot[j] = page >= 0 && page < p.pageCount ? (page * (int)p.kvHeads + kvHead) * pageSize + key % pageSize : -1;
        }
    };
    // Queues one block's codes of K or V: piece lane + 32i is piece lane % kChunks of key
    // (lane + 32i) / kChunks, so that eight lanes copy one 128-byte row; zeros for missing keys.
    auto load_codes = [&](intfa_u32 tile, const intfa_s8* codes) {
#pragma unroll
        for (int i = 0; i < kBlock * kChunks / 32; ++i) {
            const int key = (lane + 32 * i) / kChunks, piece = lane % kChunks;
            const int at = __shfl_sync(0xFFFFFFFFu, slot[i / kChunks], key % 32);
            const intfa_s8* source = codes + (intfa_i64)max(at, 0) * kHeadDim + 16 * piece;
            intfa_cp_async_16(tile + decode_swizzle(key * kHeadDim + 16 * piece), source, at >= 0 ? 16 : 0);
        }
    };
    // A block that lies in one page with its page in the pool is a run of kBlock slots from
    // `run`: its codes are one contiguous kTileBytes (lane + 32i copies piece lane + 32i, a
    // coalesced 512 bytes per i) and its scales 64 floats (lanes 0…15 K's, 16…31 V's, 16 bytes
    // each, zeros past the split). That holds for every block when the page size is a multiple
    // of the block and the scales are 16-byte aligned; other blocks take the per-key path.
    const bool pagedRuns = pageSize % kBlock == 0 && ((p.keyScales | p.valueScales) & 15u) == 0;
    intfa_i64 run = -1;
    // Piece lane + 32i lands at 512i plus one of two lane offsets: the swizzle's line index
    // (lane / 8 + 4i) mod 8 depends on i only through its parity.
    const intfa_u32 runOffset[2] = {decode_swizzle(16 * lane), decode_swizzle(16 * lane + 512) - 512};
    auto load_run = [&](intfa_u32 tile, const intfa_s8* codes) {
        const intfa_s8* source = codes + run * kHeadDim + 16 * lane;
        // Unrolled by 4, not fully: Blackwell's ptxas (sm_100, sm_120) otherwise keeps the 16
        // addresses live across the loop and spills at D = 128.
#pragma unroll 4
        for (int i = 0; i < kBlock * kChunks / 32; ++i) {
            intfa_cp_async_16(tile + runOffset[i % 2] + 512 * i, source + 512 * i, 16);
        }
    };
    // The warps take the split's blocks in turn: a warp's next block is `stride` keys on.
    const int stride = kBlock * kWarps;
    // The block table entry and page offset of the warp's next block, advanced by the stride
    // without a division per block, and its page, read a block ahead (the first before the
    // sequence's length is known) so that no table read waits in front of a block's loads.
    const int stridePages = stride / pageSize, strideRest = stride % pageSize;
    int runEntry = (first + kBlock * warp) / pageSize, runOffsetKeys = (first + kBlock * warp) % pageSize;
    int runPage = pagedRuns && runEntry < p.maxPages ? blockTable[runEntry] : -1;
    // Queues K's codes and both scales (a key outside the pool gets NaN scales: the rows that
    // would see it become NaN), then V's codes, as two groups.
    auto load_keys = [&](int key0) {
        run = -1;
        if (pagedRuns) {
            if (runPage >= 0 && runPage < p.pageCount) run = ((intfa_i64)runPage * p.kvHeads + kvHead) * pageSize + runOffsetKeys;
            runEntry += stridePages;
            runOffsetKeys += strideRest;
            if (runOffsetKeys >= pageSize) runOffsetKeys -= pageSize, ++runEntry;
            runPage = runEntry < p.maxPages ? blockTable[runEntry] : -1;
        }
        if (run >= 0) {
            load_run(keyTile, keyCodes);
            const int k = 4 * (lane % 16);
            const float* source = (const float*)(lane < 16 ? p.keyScales : p.valueScales) + run + k;
            const intfa_u32 bytes = (intfa_u32)min(max(last - key0 - k, 0), 4) * 4;
            intfa_cp_async_16(intfa_smem_address((lane < 16 ? keyScales : valueScales) + k), source, bytes);
            intfa_cp_async_commit();
            return;
        }
        find_slots(key0);
        load_codes(keyTile, keyCodes);
#pragma unroll
        for (int j = 0; j < kBlock / 32; ++j) {
            const int k = lane + 32 * j;
            const bool outside = slot[j] < 0 && key0 + k < last;
            const intfa_i64 at = max(slot[j], 0);
            if (outside) {
                keyScales[k] = kQuietNaN;
                valueScales[k] = kQuietNaN;
            } else {
                cp_async_4(intfa_smem_address(keyScales + k), (const float*)p.keyScales + at, slot[j] >= 0 ? 4 : 0);
                cp_async_4(intfa_smem_address(valueScales + k), (const float*)p.valueScales + at, slot[j] >= 0 ? 4 : 0);
            }
        }
        intfa_cp_async_commit();
    };
    auto load_values = [&]() {
        if (run >= 0) load_run(valueTile, valueCodes); else load_codes(valueTile, valueCodes);
        intfa_cp_async_commit();
    };

    // The first block's loads go out before Q is coded: they do not depend on it (Q's elements,
    // read first of all on 8-warp CTAs, are in flight meanwhile).
    int key0 = first + kBlock * warp;
    if (key0 < last) {
        load_keys(key0);
        load_values();
    }

    // ---- Q, coded per token; padding rows (up to the mma's 16) are zeros that see no key.
#pragma unroll
    for (int k = 0; k < kRowsPerWarp; ++k) {
        const int r = warp + kWarps * k;
        intfa_s8* codes = (intfa_s8*)(queryWords + r * (kHeadDim / 4));
        if (!row_valid(r)) {
            for (int c = lane; c < kHeadDim; c += 32) codes[c] = 0;
            if (lane == 0) queryScale[r] = 0.0f, visibleKeys[r] = 0, rowOutput[r] = -1;
            continue;
        }
        const int token = row_token(r);
        float values[kHeadDim / 32];
#pragma unroll
        for (int i = 0; i < kHeadDim / 32; ++i) values[i] = input_to_float(kQueryFirst ? queryBits[k][i] : query_row(r)[lane + 32 * i]);
        const float amax = code_query_row(values, codes, lane);
        if (lane == 0) {
            queryScale[r] = __fmul_rn(__fdiv_rn(amax, 127.0f), p.softmaxScaleLog2);
            // Causal: token i of Nq sees keys j <= n - Nq + i; else every cached key.
            visibleKeys[r] = p.causal ? max(length - queryLength + token + 1, 0) : length;
            rowOutput[r] = row_head(r) * queryLength + token;
        }
    }
    __syncthreads();
    intfa_u32 queryFragment[kScoreSteps][4];
    query_fragments(queryFragment, queryWords, g, quad);
    DecodeRow lower, upper;  // rows g and g + 8
    lower.scale = queryScale[g], lower.visible = visibleKeys[g];
    upper.scale = queryScale[g + 8], upper.visible = visibleKeys[g + 8];
    float output[kChunks][2][4];  // [16-channel chunk][row g, g + 8][channels 16u + 4·quad + 0…3]
#pragma unroll
    for (int u = 0; u < kChunks; ++u)
#pragma unroll
        for (int h = 0; h < 2; ++h)
#pragma unroll
            for (int e = 0; e < 4; ++e) output[u][h][e] = 0.0f;

    for (; key0 < last; key0 += stride) {
        const bool more = key0 + stride < last;
        intfa_cp_async_wait<1>();  // K and the scales of this block
        __syncwarp();
        intfa_s32 score[kKeyTiles][4];
        block_scores(score, queryFragment, keyTile, lane);
        float2 valueScale[kKeyTiles];
        float x[2][kKeyTiles][2];
        block_logits(x, valueScale, score, keyScales, valueScales, key0, quad, lower, upper);
        __syncwarp();  // every lane has read the block's scales and K
        if (more) load_keys(key0 + stride); else intfa_cp_async_commit();
        intfa_u32 probability[kValueSteps][4];
        block_probabilities(probability, lower, upper, x, valueScale);
        intfa_cp_async_wait<1>();  // V of this block
        __syncwarp();
        block_values(output, probability, valueTile, lane, lower, upper);
        __syncwarp();  // every lane has read the block's V
        if (more) load_values(); else intfa_cp_async_commit();
    }
    intfa_cp_async_wait<0>();
    __syncthreads();

    // ---- The warps' states into shared memory (over their buffers), then merged.
    float* warpOutput = (float*)(shared + warp * kWarpBytes);  // [16][kHeadDim]
    float* warpMax = warpOutput + 16 * kHeadDim;                // [16]
    float* warpSum = warpMax + 16;                              // [16]
    lower.sum = quad_sum(lower.sum);
    upper.sum = quad_sum(upper.sum);
#pragma unroll
    for (int h = 0; h < 2; ++h) {
        const int r = g + 8 * h;
#pragma unroll
        for (int u = 0; u < kChunks; ++u) {
            *(float4*)(warpOutput + r * kHeadDim + 16 * u + 4 * quad) =
                make_float4(output[u][h][0], output[u][h][1], output[u][h][2], output[u][h][3]);
        }
        if (quad == 0) {
            warpMax[r] = h == 0 ? lower.max : upper.max;
            warpSum[r] = h == 0 ? lower.sum : upper.sum;
        }
    }
    __syncthreads();
    const bool single = p.splits == 1;
    const intfa_i64 slice = ((intfa_i64)split * p.batch + batch) * p.heads;
    for (int index = threadIdx.x; index < rows * kHeadDim; index += kThreads) {
        const int r = index / kHeadDim, c = index % kHeadDim;
        const int headToken = rowOutput[r];
        if (headToken < 0) continue;
        float m = kNegativeInfinity;
#pragma unroll
        for (int w = 0; w < kWarps; ++w) m = intfa_max_nan(m, ((const float*)(shared + w * kWarpBytes))[16 * kHeadDim + r]);
        float l = 0.0f, o = 0.0f;
        if (m != kNegativeInfinity) {
#pragma unroll
            for (int w = 0; w < kWarps; ++w) {
                const float* state = (const float*)(shared + w * kWarpBytes);
                const float wm = state[16 * kHeadDim + r];
                const float scale = wm == kNegativeInfinity ? 0.0f : intfa_exp2(__fsub_rn(wm, m));
                l += scale * state[16 * kHeadDim + 16 + r];
                o += scale * state[r * kHeadDim + c];
            }
        }
        const float value = row_value(o, l, m), lse = row_lse(m, l);
        const int head = headToken / queryLength, token = headToken % queryLength;
        if (single) {
            store_output(p, batch, token, head, c, value);
            if (c == 0 && p.lse != 0) ((float*)p.lse)[((intfa_i64)batch * p.heads + head) * queryLength + token] = lse;
        } else {
            ((float*)p.partialOut)[((slice + head) * queryLength + token) * kHeadDim + c] = value;
            if (c == 0) ((float*)p.partialLse)[(slice + head) * queryLength + token] = lse;
        }
    }
}

// One warp per query row (b, h, i): out = Σ_s e^(lse_s − m) · O_s / Σ_s e^(lse_s − m), lse =
// m + log Σ_s e^(lse_s − m) with m the largest; a row no split saw gives 0 and −∞. Four CTAs
// per SM bound the registers at 128, which the batch of partials needs (sm_120's ptxas
// otherwise settles on 72 at D = 64 and spills).
extern "C" __global__ void __launch_bounds__(128, 4) INTFA_DECODE_NAME(intfa_decode_combine_d)(const DecodeParams p) {
#if __CUDA_ARCH__ >= 900
    // Launched after the attention kernel as its programmatic dependent: the partials are
    // complete and visible once this returns (a no-op for an ordinary launch).
    asm volatile("griddepcontrol.wait;\n" ::: "memory");
#endif
    const intfa_i64 rows = p.batch * p.heads * p.queryLength;
    const intfa_i64 row = (intfa_i64)blockIdx.x * 4 + threadIdx.x / 32;
    const int lane = threadIdx.x % 32;
    if (row >= rows) return;  // whole warps: the shuffles below see all 32 lanes
    const int splits = (int)p.splits;
    const intfa_i64 splitStride = rows;
    const float* partialLse = (const float*)p.partialLse + row;
    // Lane l holds channels kPerLane·l…. The first kBatch splits' partials and log-sum-exps are
    // loaded with the lanes' log-sum-exps for the maximum, before any of them is used: the
    // partials then cost one round trip to L2, not three (the maximum, then each batch).
    constexpr int kPerLane = kHeadDim / 32, kBatch = 16;
    float lse[kBatch], part[kBatch][kPerLane];
    auto load_batch = [&](int s0) {
#pragma unroll
        for (int j = 0; j < kBatch; ++j) {
            const int s = min(s0 + j, splits - 1);
            lse[j] = s0 + j < splits ? partialLse[s * splitStride] : kNegativeInfinity;
            const float* source = (const float*)p.partialOut + (s * splitStride + row) * kHeadDim + kPerLane * lane;
            if constexpr (kPerLane == 4) {
                const float4 v = *(const float4*)source;
                part[j][0] = v.x, part[j][1] = v.y, part[j][2] = v.z, part[j][3] = v.w;
            } else {
                const float2 v = *(const float2*)source;
                part[j][0] = v.x, part[j][1] = v.y;
            }
        }
    };
    load_batch(0);
    // The splits' log-sum-exps, 32 at a time across the lanes. A split that saw a token
    // stored with NaN scales (kv_append.cu) has a NaN log-sum-exp: the row becomes NaN rather
    // than losing it to fmaxf.
    float m = kNegativeInfinity;
    bool poisoned = false;
    for (int s = lane; s < splits; s += 32) {
        const float value = partialLse[s * splitStride];
        poisoned |= value != value;
        m = fmaxf(m, value);
    }
    for (int offset = 16; offset > 0; offset /= 2) m = fmaxf(m, __shfl_xor_sync(0xFFFFFFFFu, m, offset));
    poisoned = __any_sync(0xFFFFFFFFu, poisoned);
    float total = 0.0f;
    float values[kPerLane];
#pragma unroll
    for (int i = 0; i < kPerLane; ++i) values[i] = 0.0f;
    if (m != kNegativeInfinity) {
        for (int s0 = 0; s0 < splits; s0 += kBatch) {
            if (s0 > 0) load_batch(s0);
#pragma unroll
            for (int j = 0; j < kBatch; ++j) {
                const float weight = lse[j] == kNegativeInfinity ? 0.0f : expf(lse[j] - m);
                total += weight;
#pragma unroll
                for (int i = 0; i < kPerLane; ++i) values[i] += weight * part[j][i];
            }
        }
    }
    const intfa_i64 token = row % p.queryLength, bh = row / p.queryLength;
    const intfa_i64 head = bh % p.heads, batch = bh / p.heads;
    intfa_u16* out = (intfa_u16*)p.out + batch * p.oStrideBatch + token * p.oStrideToken + head * p.oStrideHead + kPerLane * lane;
    const float inverse = total > 0.0f ? 1.0f / total : 0.0f;
#pragma unroll
    for (int i = 0; i < kPerLane; ++i) {
        const float value = poisoned ? kQuietNaN : values[i] * inverse;
#if INTFA_OUT_BF16
        out[i] = (intfa_u16)(intfa_pack_bf162(value, 0.0f) & 0xFFFFu);
#else
        out[i] = intfa_float_to_half(value);
#endif
    }
    if (lane == 0 && p.lse != 0) ((float*)p.lse)[row] = poisoned ? kQuietNaN : m == kNegativeInfinity ? m : m + logf(total);
}
