// FlashAttention forward pass with 8-bit (or fp16) tensor-core GEMMs: one design, four
// element types, following docs/SCHEMES.md block by block (key blocks of 64).
//
// Compile-time options (NVRTC -D), all required except where a default is given:
//   INTFA_METHOD      0 int8 (default scheme), 1 int8-paper, 2 fp8-e4m3 (sm_89+), 3 fp16
//   INTFA_HEAD_DIM    8-bit methods: 64, 128, 256; fp16: 32, 64, 128, 256
//   INTFA_BLOCK_M     query rows per CTA: 64 or 128 (one warp per 16 rows)
//   INTFA_STAGES      K/V shared-memory pipeline depth, 2 or 3
//   INTFA_CAUSAL      0 or 1 (bottom-right aligned)
//   INTFA_OUT_BF16    0: fp16 output, 1: bf16 output
//   INTFA_WRITE_LSE   0 or 1: also write the log-sum-exp (fp32, natural log)
//   INTFA_MIN_BLOCKS  CTAs per SM promised to the register allocator (default 1)
//
// Launch: grid (ceil(Nq / BLOCK_M), H, B), block BLOCK_M / 16 · 32 threads, dynamic shared
// memory INTFA_SMEM_BYTES (see AttentionKernelDescriptor.sharedMemoryBytes; above 48 KiB the
// launcher must raise CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES), one AttentionParams
// argument by value. Pointers must be 16-byte aligned and the token strides of fp16 Q/K/V
// multiples of 8 elements (16-byte copies); the 8-bit tensors are the quantizers' outputs.
//
// Structure. Each warp owns 16 query rows and keeps its Q fragments in registers. K (and the
// per-key K scales) and V tiles of 64 keys stream through a cp.async ring of shared memory,
// rows padded by 16 bytes so that ldmatrix reads are free of bank conflicts. S = Q·Kᵀ stays
// in registers; after the softmax its accumulator fragment is re-packed in place as the A
// fragment of P·V. For 8-bit P that only works because the quantizer wrote each 32-key group
// of Vt in the order the fragments imply (docs/SCHEMES.md); fp16 needs no permutation.
#include "params.cuh"
#include "variant_name.cuh"

#ifndef INTFA_METHOD
#error "INTFA_METHOD must be defined"
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
#ifndef INTFA_MIN_BLOCKS
#define INTFA_MIN_BLOCKS 1
#endif

#define INTFA_M_INT8 0
#define INTFA_M_INT8_PAPER 1
#define INTFA_M_FP8 2
#define INTFA_M_FP16 3

#if INTFA_METHOD == INTFA_M_FP8 && defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 890
#error "fp8-e4m3 attention needs sm_89 or newer"
#endif

// Kernel name: intfa_attention_<method>_d<D>_<full|causal>_<f16|bf16>[_lse]_m<BLOCK_M>_s<STAGES>
#if INTFA_METHOD == INTFA_M_INT8
#define INTFA_METHOD_NAME int8
#elif INTFA_METHOD == INTFA_M_INT8_PAPER
#define INTFA_METHOD_NAME int8paper
#elif INTFA_METHOD == INTFA_M_FP8
#define INTFA_METHOD_NAME fp8e4m3
#else
#define INTFA_METHOD_NAME fp16
#endif
#define INTFA_KERNEL_NAME                                                                                  \
    INTFA_CAT(INTFA_CAT(INTFA_CAT(INTFA_CAT(INTFA_CAT(INTFA_CAT(INTFA_CAT(INTFA_CAT(INTFA_CAT(             \
        intfa_attention_, INTFA_METHOD_NAME), _d), INTFA_HEAD_DIM), INTFA_MASK_NAME), INTFA_OUT_NAME),    \
        INTFA_LSE_NAME), _m), INTFA_BLOCK_M), INTFA_CAT(_s, INTFA_STAGES))

namespace {

constexpr int kHeadDim = INTFA_HEAD_DIM;
constexpr int kBlockM = INTFA_BLOCK_M;
constexpr int kBlockN = 64;  // the scheme's key block
constexpr int kWarps = kBlockM / 16;
constexpr int kThreads = kWarps * 32;
constexpr int kStages = INTFA_STAGES;
constexpr bool kEightBit = INTFA_METHOD != INTFA_M_FP16;
constexpr bool kPerKeyScale = INTFA_METHOD == INTFA_M_INT8 || INTFA_METHOD == INTFA_M_INT8_PAPER;
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
// After the ring: the CTA's Q tile, rows padded like K.
constexpr int kQBytes = kBlockM * kKStride;
constexpr int kSharedBytes = kStages * kStageBytes + kQBytes;

// Q·Kᵀ: k-chunks of 32 bytes (32 codes or 16 halves); one ldmatrix.x4 covers two of them.
constexpr int kQKChunks = kKRowBytes / 32;
constexpr int kOutTiles = kHeadDim / 8;  // n-tiles of 8 channels in O
// Q fragments held in registers for the whole CTA (fast, costs 4 registers per 32-byte
// chunk) or re-read from shared memory for each key block (saves registers at D >= 128).
#ifndef INTFA_Q_IN_REGISTERS
#define INTFA_Q_IN_REGISTERS (INTFA_HEAD_DIM * (INTFA_METHOD == 3 ? 2 : 1) <= 64)
#endif

static_assert(kBlockM == 64 || kBlockM == 128, "BLOCK_M must be 64 or 128");
static_assert(kKRowBytes % 64 == 0, "head dim: 8-bit needs a multiple of 64, fp16 of 32");
static_assert(kStages >= 2 && kStages <= 4, "2 to 4 pipeline stages");

#if INTFA_METHOD == INTFA_M_INT8 || INTFA_METHOD == INTFA_M_INT8_PAPER
typedef intfa_s32 ScoreAccumulator;
#else
typedef float ScoreAccumulator;
#endif

}  // namespace

// Issues the cp.async copies of key block `block` into ring slot `slot`.
static INTFA_DEVICE void load_key_block(const AttentionParams& p, unsigned char* smem, int slot, int block,
                                        const unsigned char* kBase, const unsigned char* vBase, const float* kScaleBase) {
    unsigned char* kTile = smem + slot * kStageBytes;
    unsigned char* vTile = kTile + kKBytes;
    const int key0 = block * kBlockN;
    constexpr int kKChunksPerRow = kKRowBytes / 16;
    for (int i = threadIdx.x; i < kBlockN * kKChunksPerRow; i += kThreads) {
        const int row = i / kKChunksPerRow, chunk = i % kKChunksPerRow;
        const int key = key0 + row;
        const bool valid = key < p.keyLength;
        const unsigned char* source = kBase + (valid ? key : 0) * p.kStrideToken * kElementBytes + chunk * 16;
        intfa_cp_async_16(intfa_smem_address(kTile + row * kKStride + chunk * 16), source, valid ? 16u : 0u);
    }
    if constexpr (kEightBit) {
        // Vt rows are padded to NkPad with zero codes: every copy is in range.
        for (int i = threadIdx.x; i < kHeadDim * 4; i += kThreads) {
            const int row = i >> 2, chunk = i & 3;
            const unsigned char* source = vBase + row * p.vStrideRow + (key0 + chunk * 16);
            intfa_cp_async_16(intfa_smem_address(vTile + row * kVStride + chunk * 16), source, 16u);
        }
    } else {
        // Rows past Nk must be zeros, not stale data: P is 0 there, but 0 · NaN is NaN.
        constexpr int kVChunksPerRow = kVRowBytes / 16;
        for (int i = threadIdx.x; i < kBlockN * kVChunksPerRow; i += kThreads) {
            const int row = i / kVChunksPerRow, chunk = i % kVChunksPerRow;
            const int key = key0 + row;
            const bool valid = key < p.keyLength;
            const unsigned char* source = vBase + (valid ? key : 0) * p.vStrideRow * 2 + chunk * 16;
            intfa_cp_async_16(intfa_smem_address(vTile + row * kVStride + chunk * 16), source, valid ? 16u : 0u);
        }
    }
    if constexpr (kPerKeyScale) {
        // sK is padded per head to NkPad (zeros), so 16-byte copies stay in range.
        float* scaleTile = (float*)(vTile + kVBytes);
        if (threadIdx.x < kBlockN / 4) {
            intfa_cp_async_16(intfa_smem_address(scaleTile + 4 * threadIdx.x), kScaleBase + key0 + 4 * threadIdx.x, 16u);
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
    const int warpRow0 = rowBlock0 + warp * 16;
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

    const unsigned char* kBase = (const unsigned char*)p.k + ((intfa_i64)batch * p.kStrideBatch + (intfa_i64)kvHead * p.kStrideHead) * kElementBytes;
    const unsigned char* vBase = (const unsigned char*)p.v + ((intfa_i64)batch * p.vStrideBatch + (intfa_i64)kvHead * p.vStrideHead) * kElementBytes;
    const float* kScaleBase = kPerKeyScale ? (const float*)p.kScale + ((intfa_i64)batch * p.kvHeads + kvHead) * p.keyLengthPadded : nullptr;

    // ---- Q tile → shared memory (rows past Nq zero-filled), then the key pipeline.
    const int row0 = warpRow0 + group;  // this thread's two rows: row0, row0 + 8
    const int row1 = row0 + 8;
    unsigned char* qTile = smem + kStages * kStageBytes;
    {
        const unsigned char* qBase = (const unsigned char*)p.q + ((intfa_i64)batch * p.qStrideBatch + (intfa_i64)head * p.qStrideHead) * kElementBytes;
        constexpr int kChunksPerRow = kKRowBytes / 16;
        for (int i = threadIdx.x; i < kBlockM * kChunksPerRow; i += kThreads) {
            const int row = i / kChunksPerRow, chunk = i % kChunksPerRow;
            const int token = rowBlock0 + row;
            const bool valid = token < queryLength;
            const unsigned char* source = qBase + (intfa_i64)(valid ? token : 0) * p.qStrideToken * kElementBytes + chunk * 16;
            intfa_cp_async_16(intfa_smem_address(qTile + row * kKStride + chunk * 16), source, valid ? 16u : 0u);
        }
        intfa_cp_async_commit();
    }
#pragma unroll
    for (int s = 0; s < kStages - 1; ++s) {
        if (s < blockCount) load_key_block(p, smem, s, s, kBase, vBase, kScaleBase);
        intfa_cp_async_commit();
    }
    // A fragments of the warp's 16 rows: matrices (rows 0-7 | 8-15) × (bytes 0-15 | 16-31)
    // of a 32-byte k-chunk are registers 0-3, for 8-bit and fp16 alike.
    const intfa_u32 qFragmentAddress = intfa_smem_address(qTile) + (warp * 16 + (lane & 7) + 8 * ((lane >> 3) & 1)) * kKStride + 16 * (lane >> 4);
#if INTFA_Q_IN_REGISTERS
    intfa_u32 qFragment[kQKChunks][4];
    intfa_cp_async_wait<kStages - 1>();  // the Q group (committed first) has landed
    __syncthreads();
#pragma unroll
    for (int c = 0; c < kQKChunks; ++c) intfa_ldmatrix_x4(qFragment[c], qFragmentAddress + 32 * c);
#endif

    // Per-row score factor: S = (acc · qs) · ks (8-bit) or acc · sm·L (fp16).
    float rowScale[2];
#if INTFA_METHOD == INTFA_M_INT8 || INTFA_METHOD == INTFA_M_INT8_PAPER
    {
        const float* qScale = (const float*)p.qScale + ((intfa_i64)batch * p.heads + head) * p.queryLength;
        rowScale[0] = row0 < queryLength ? qScale[row0] : 0.0f;
        rowScale[1] = row1 < queryLength ? qScale[row1] : 0.0f;
    }
#elif INTFA_METHOD == INTFA_M_FP8
    rowScale[0] = rowScale[1] = ((const float*)p.qScale)[(intfa_i64)batch * p.heads + head];
    const float keyScale = ((const float*)p.kScale)[(intfa_i64)batch * p.kvHeads + kvHead];
#else
    rowScale[0] = rowScale[1] = p.softmaxScaleLog2;
#endif

    // Online-softmax state of rows row0 and row1, and the fp32 output accumulator.
    float rowMax[2] = {kNegativeInfinity, kNegativeInfinity};
    float rowSum[2] = {0.0f, 0.0f};
    float output[kOutTiles][4];
#pragma unroll
    for (int n = 0; n < kOutTiles; ++n) output[n][0] = output[n][1] = output[n][2] = output[n][3] = 0.0f;

    const int ldRow = lane & 7;     // row inside the 8x8 matrix whose address this lane gives
    const int ldMatrix = lane >> 3; // which of the four matrices

    for (int block = 0; block < blockCount; ++block) {
        intfa_cp_async_wait<kStages - 2>();
        __syncthreads();
        {
            const int next = block + kStages - 1;
            if (next < blockCount) load_key_block(p, smem, next % kStages, next, kBase, vBase, kScaleBase);
            intfa_cp_async_commit();
        }
        const int key0 = block * kBlockN;
        // A warp whose rows see none of this block's keys (causal, above the diagonal) has
        // nothing to add: the scheme's update would leave its state unchanged.
        if (INTFA_CAUSAL && key0 > warpRow0 + 15 + causalShift) continue;

        const unsigned char* kTile = smem + (block % kStages) * kStageBytes;
        const unsigned char* vTile = kTile + kKBytes;
        const intfa_u32 kTileAddress = intfa_smem_address(kTile);
        const intfa_u32 vTileAddress = intfa_smem_address(vTile);

        // ---- S = Q·Kᵀ: 8 n-tiles of 8 keys.
        ScoreAccumulator score[8][4];
#pragma unroll
        for (int j = 0; j < 8; ++j) score[j][0] = score[j][1] = score[j][2] = score[j][3] = 0;
#pragma unroll
        for (int x = 0; x < kQKChunks / 2; ++x) {
#if INTFA_Q_IN_REGISTERS
            const intfa_u32 (&qa)[4] = qFragment[2 * x];
            const intfa_u32 (&qb)[4] = qFragment[2 * x + 1];
#else
            intfa_u32 qa[4], qb[4];
            intfa_ldmatrix_x4(qa, qFragmentAddress + 64 * x);
            intfa_ldmatrix_x4(qb, qFragmentAddress + 64 * x + 32);
#endif
#pragma unroll
            for (int j = 0; j < 8; ++j) {
                // Keys 8j..8j+7; matrices 0,1 are chunk 2x, matrices 2,3 chunk 2x + 1.
                intfa_u32 b[4];
                intfa_ldmatrix_x4(b, kTileAddress + (8 * j + ldRow) * kKStride + 64 * x + 16 * ldMatrix);
#if INTFA_METHOD == INTFA_M_INT8 || INTFA_METHOD == INTFA_M_INT8_PAPER
                intfa_mma_s8s8(score[j], qa, b[0], b[1]);
                intfa_mma_s8s8(score[j], qb, b[2], b[3]);
#elif INTFA_METHOD == INTFA_M_FP8
                intfa_mma_e4m3(score[j], qa, b[0], b[1]);
                intfa_mma_e4m3(score[j], qb, b[2], b[3]);
#else
                intfa_mma_f16(score[j], qa, b[0], b[1]);
                intfa_mma_f16(score[j], qb, b[2], b[3]);
#endif
            }
        }

        // ---- Scores in the log2 domain, masked.
        float s[8][4];
#if INTFA_METHOD == INTFA_M_INT8 || INTFA_METHOD == INTFA_M_INT8_PAPER
        const float* keyScales = (const float*)(vTile + kVBytes);
#endif
#pragma unroll
        for (int j = 0; j < 8; ++j) {
#if INTFA_METHOD == INTFA_M_INT8 || INTFA_METHOD == INTFA_M_INT8_PAPER
            const float2 ks = *(const float2*)(keyScales + 8 * j + 2 * quad);
#pragma unroll
            for (int e = 0; e < 4; ++e) {
                s[j][e] = __fmul_rn(__fmul_rn(intfa_small_int_to_float(score[j][e]), rowScale[e >> 1]), (e & 1) ? ks.y : ks.x);
            }
#elif INTFA_METHOD == INTFA_M_FP8
#pragma unroll
            for (int e = 0; e < 4; ++e) s[j][e] = __fmul_rn(__fmul_rn(score[j][e], rowScale[e >> 1]), keyScale);
#else
#pragma unroll
            for (int e = 0; e < 4; ++e) s[j][e] = __fmul_rn(score[j][e], rowScale[e >> 1]);
#endif
        }
        const bool needsMask = key0 + kBlockN > keyLength || (INTFA_CAUSAL && key0 + kBlockN - 1 > warpRow0 + causalShift);
        if (needsMask) {
#pragma unroll
            for (int j = 0; j < 8; ++j) {
#pragma unroll
                for (int e = 0; e < 4; ++e) {
                    const int key = key0 + 8 * j + 2 * quad + (e & 1);
                    const int row = (e >> 1) ? row1 : row0;
                    const bool visible = key < keyLength && (!INTFA_CAUSAL || key <= row + causalShift);
                    if (!visible) s[j][e] = kNegativeInfinity;
                }
            }
        }

        // ---- Block maximum per row (the quad's four threads share a row).
        float blockMax[2] = {kNegativeInfinity, kNegativeInfinity};
#pragma unroll
        for (int j = 0; j < 8; ++j) {
            blockMax[0] = fmaxf(blockMax[0], fmaxf(s[j][0], s[j][1]));
            blockMax[1] = fmaxf(blockMax[1], fmaxf(s[j][2], s[j][3]));
        }
#pragma unroll
        for (int r = 0; r < 2; ++r) {
            blockMax[r] = fmaxf(blockMax[r], __shfl_xor_sync(0xFFFFFFFFu, blockMax[r], 1));
            blockMax[r] = fmaxf(blockMax[r], __shfl_xor_sync(0xFFFFFFFFu, blockMax[r], 2));
        }

        // ---- Softmax and P fragments.
        float alpha[2];
#if INTFA_METHOD == INTFA_M_INT8
        // Pq = rne(exp2(S − mb) · 255) against the block's own maximum mb; the block then
        // enters the state with weight w = exp2(mb − mnew) / 255.
        float weight[2];
        float subtract[2];
#pragma unroll
        for (int r = 0; r < 2; ++r) {
            const bool empty = blockMax[r] == kNegativeInfinity;  // no visible key: skip
            const float newMax = fmaxf(rowMax[r], blockMax[r]);
            alpha[r] = empty ? 1.0f : intfa_exp2(rowMax[r] - newMax);
            weight[r] = empty ? 0.0f : __fmul_rn(intfa_exp2(blockMax[r] - newMax), 1.0f / 255.0f);
            subtract[r] = empty ? 0.0f : blockMax[r];
            rowMax[r] = newMax;
        }
        // Codes via the 1.5·2^23 trick: adding it rounds to an integer (ties to even) and
        // leaves the integer in the low mantissa bits.
        constexpr float kRound = 12582912.0f;
        intfa_u32 codeBits[32];  // n-tile j, element e at 4j + e
#pragma unroll
        for (int j = 0; j < 8; ++j) {
#pragma unroll
            for (int e = 0; e < 4; ++e) {
                const float scaled = __fmul_rn(intfa_exp2(__fsub_rn(s[j][e], subtract[e >> 1])), 255.0f);
                codeBits[4 * j + e] = __float_as_uint(__fadd_rn(scaled, kRound));
            }
        }
        // The P·V A fragments, and the rows' code sums from them (dp4a: four codes per
        // instruction; integers, so exact).
        intfa_u32 pFragment[2][4];
        intfa_pack_code_fragment(codeBits, pFragment);
        float codeSum[2];
        {
            intfa_u32 sum0 = 0, sum1 = 0;
#pragma unroll
            for (int c = 0; c < 2; ++c) {
                sum0 = __dp4a(pFragment[c][0], 0x01010101u, __dp4a(pFragment[c][2], 0x01010101u, sum0));
                sum1 = __dp4a(pFragment[c][1], 0x01010101u, __dp4a(pFragment[c][3], 0x01010101u, sum1));
            }
            codeSum[0] = (float)sum0;
            codeSum[1] = (float)sum1;
        }
#elif INTFA_METHOD == INTFA_M_INT8_PAPER
        constexpr float kRound = 12582912.0f;
        intfa_u32 codeBits[32];  // n-tile j, element e at 4j + e
        float probabilitySum[2];
        float subtract[2];
#pragma unroll
        for (int r = 0; r < 2; ++r) {
            const float newMax = fmaxf(rowMax[r], blockMax[r]);
            subtract[r] = newMax == kNegativeInfinity ? 0.0f : newMax;  // all masked so far: P = 0
            alpha[r] = intfa_exp2(rowMax[r] - subtract[r]);
            rowMax[r] = newMax;
        }
#pragma unroll
        for (int j = 0; j < 8; ++j) {
#pragma unroll
            for (int e = 0; e < 4; ++e) {
                s[j][e] = intfa_exp2(__fsub_rn(s[j][e], subtract[e >> 1]));  // P, in place
                codeBits[4 * j + e] = __float_as_uint(__fadd_rn(__fmul_rn(s[j][e], 127.0f), kRound));
            }
        }
        // Σ P as a tree of independent adds rather than one serial chain of 16 per row: with
        // the chain, ptxas kept the fp32 P live next to the codes and the output accumulator
        // (sm_90, d=128: 255 registers and spills); with the tree, 228 and none. Only the
        // order of the fp32 additions differs from the scheme.
#pragma unroll
        for (int r = 0; r < 2; ++r) {
            float pairSum[4];  // keys of S n-tiles 2k and 2k + 1
#pragma unroll
            for (int k = 0; k < 4; ++k) {
                pairSum[k] = (s[2 * k][2 * r] + s[2 * k][2 * r + 1]) + (s[2 * k + 1][2 * r] + s[2 * k + 1][2 * r + 1]);
            }
            probabilitySum[r] = (pairSum[0] + pairSum[1]) + (pairSum[2] + pairSum[3]);
        }
#else
        // fp8 / fp16: P = exp2(S − mnew) in fp32, rounded to the GEMM's type; l sums fp32 P.
        float probabilitySum[2] = {0.0f, 0.0f};
        float subtract[2];
#pragma unroll
        for (int r = 0; r < 2; ++r) {
            const float newMax = fmaxf(rowMax[r], blockMax[r]);
            subtract[r] = newMax == kNegativeInfinity ? 0.0f : newMax;
            alpha[r] = intfa_exp2(rowMax[r] - subtract[r]);
            rowMax[r] = newMax;
        }
#pragma unroll
        for (int j = 0; j < 8; ++j) {
#pragma unroll
            for (int e = 0; e < 4; ++e) {
                s[j][e] = intfa_exp2(__fsub_rn(s[j][e], subtract[e >> 1]));
                probabilitySum[e >> 1] += s[j][e];
            }
        }
#endif

        // ---- Row sums across the quad, and the l update.
#if INTFA_METHOD == INTFA_M_INT8
#pragma unroll
        for (int r = 0; r < 2; ++r) {
            codeSum[r] += __shfl_xor_sync(0xFFFFFFFFu, codeSum[r], 1);
            codeSum[r] += __shfl_xor_sync(0xFFFFFFFFu, codeSum[r], 2);
            rowSum[r] = rowSum[r] * alpha[r] + weight[r] * codeSum[r];
        }
#else
#pragma unroll
        for (int r = 0; r < 2; ++r) {
            probabilitySum[r] += __shfl_xor_sync(0xFFFFFFFFu, probabilitySum[r], 1);
            probabilitySum[r] += __shfl_xor_sync(0xFFFFFFFFu, probabilitySum[r], 2);
            rowSum[r] = rowSum[r] * alpha[r] + probabilitySum[r];
        }
#endif

        // ---- P·V.
#if INTFA_METHOD == INTFA_M_INT8 || INTFA_METHOD == INTFA_M_INT8_PAPER || INTFA_METHOD == INTFA_M_FP8
        // A fragment of 32-key chunk c from S n-tiles 4c..4c+3: this thread's keys of those
        // tiles, in the order the permuted Vt stores them (int8: packed with the codes above).
#if INTFA_METHOD == INTFA_M_FP8
        intfa_u32 pFragment[2][4];
#pragma unroll
        for (int c = 0; c < 2; ++c) {
            const int j = 4 * c;
            pFragment[c][0] = (intfa_u32)intfa_pack_e4m3x2(s[j][0], s[j][1]) | ((intfa_u32)intfa_pack_e4m3x2(s[j + 1][0], s[j + 1][1]) << 16);
            pFragment[c][1] = (intfa_u32)intfa_pack_e4m3x2(s[j][2], s[j][3]) | ((intfa_u32)intfa_pack_e4m3x2(s[j + 1][2], s[j + 1][3]) << 16);
            pFragment[c][2] = (intfa_u32)intfa_pack_e4m3x2(s[j + 2][0], s[j + 2][1]) | ((intfa_u32)intfa_pack_e4m3x2(s[j + 3][0], s[j + 3][1]) << 16);
            pFragment[c][3] = (intfa_u32)intfa_pack_e4m3x2(s[j + 2][2], s[j + 2][3]) | ((intfa_u32)intfa_pack_e4m3x2(s[j + 3][2], s[j + 3][3]) << 16);
        }
#elif INTFA_METHOD == INTFA_M_INT8_PAPER
        intfa_u32 pFragment[2][4];
        intfa_pack_code_fragment(codeBits, pFragment);
#endif
#if INTFA_METHOD == INTFA_M_INT8
        // The rescale of the output, skipped when no row of the warp has a new maximum
        // (alpha = 1 exactly): most blocks after the first few. (The paper scheme's fold is
        // one FFMA with alpha, cheaper than the vote.)
        if (!__all_sync(0xFFFFFFFFu, alpha[0] == 1.0f && alpha[1] == 1.0f)) {
#pragma unroll
            for (int n = 0; n < kOutTiles; ++n) {
#pragma unroll
                for (int e = 0; e < 4; ++e) output[n][e] *= alpha[e >> 1];
            }
        }
#endif
#pragma unroll
        for (int n = 0; n < kOutTiles; ++n) {
            // Vt rows 8n..8n+7 (channels); matrices 0,1 hold positions 0-31, 2,3 positions 32-63.
            intfa_u32 b[4];
            intfa_ldmatrix_x4(b, vTileAddress + (8 * n + ldRow) * kVStride + 16 * ldMatrix);
#if INTFA_METHOD == INTFA_M_FP8
#pragma unroll
            for (int e = 0; e < 4; ++e) output[n][e] *= alpha[e >> 1];
            intfa_mma_e4m3(output[n], pFragment[0], b[0], b[1]);
            intfa_mma_e4m3(output[n], pFragment[1], b[2], b[3]);
#else
            intfa_s32 blockProduct[4] = {0, 0, 0, 0};
#if INTFA_METHOD == INTFA_M_INT8
            intfa_mma_u8s8(blockProduct, pFragment[0], b[0], b[1]);
            intfa_mma_u8s8(blockProduct, pFragment[1], b[2], b[3]);
#pragma unroll
            for (int e = 0; e < 4; ++e) output[n][e] = fmaf(weight[e >> 1], intfa_small_int_to_float(blockProduct[e]), output[n][e]);
#else
            intfa_mma_s8s8(blockProduct, pFragment[0], b[0], b[1]);
            intfa_mma_s8s8(blockProduct, pFragment[1], b[2], b[3]);
#pragma unroll
            for (int e = 0; e < 4; ++e) output[n][e] = output[n][e] * alpha[e >> 1] + intfa_small_int_to_float(blockProduct[e]);
#endif
#endif
        }
#else
        // fp16: A fragment of 16-key chunk c from S n-tiles 2c, 2c+1 (no permutation).
        intfa_u32 pFragment[4][4];
#pragma unroll
        for (int c = 0; c < 4; ++c) {
            pFragment[c][0] = intfa_pack_half2(s[2 * c][0], s[2 * c][1]);
            pFragment[c][1] = intfa_pack_half2(s[2 * c][2], s[2 * c][3]);
            pFragment[c][2] = intfa_pack_half2(s[2 * c + 1][0], s[2 * c + 1][1]);
            pFragment[c][3] = intfa_pack_half2(s[2 * c + 1][2], s[2 * c + 1][3]);
        }
#pragma unroll
        for (int n = 0; n < kOutTiles; ++n) {
#pragma unroll
            for (int e = 0; e < 4; ++e) output[n][e] *= alpha[e >> 1];
#pragma unroll
            for (int half = 0; half < 2; ++half) {
                // Key rows 32·half + lane, channels 8n..8n+7, transposed: matrices 0,1 are the
                // B fragment of key chunk 2·half, matrices 2,3 of chunk 2·half + 1.
                intfa_u32 b[4];
                intfa_ldmatrix_x4_trans(b, vTileAddress + (32 * half + lane) * kVStride + 16 * n);
                intfa_mma_f16(output[n], pFragment[2 * half], b[0], b[1]);
                intfa_mma_f16(output[n], pFragment[2 * half + 1], b[2], b[3]);
            }
        }
#endif
    }

    // ---- Epilogue: O = acc · sV / l (0 when no key was visible), and the log-sum-exp.
    intfa_cp_async_wait<0>();
#if INTFA_METHOD == INTFA_M_INT8
    const float* vScale = (const float*)p.vScale + ((intfa_i64)batch * p.kvHeads + kvHead) * kHeadDim;
#elif INTFA_METHOD == INTFA_M_INT8_PAPER
    const float vScale = __fdiv_rn(((const float*)p.vScale)[(intfa_i64)batch * p.kvHeads + kvHead], 127.0f);
#elif INTFA_METHOD == INTFA_M_FP8
    const float vScale = ((const float*)p.vScale)[(intfa_i64)batch * p.kvHeads + kvHead];
#endif
    unsigned char* outBase = (unsigned char*)p.out + ((intfa_i64)batch * p.oStrideBatch + (intfa_i64)head * p.oStrideHead) * 2;
#pragma unroll
    for (int r = 0; r < 2; ++r) {
        const int row = r ? row1 : row0;
        if (row >= queryLength) continue;
        const float l = rowSum[r];
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
#if INTFA_METHOD == INTFA_M_INT8
                const float scaled = __fmul_rn(output[n][2 * r + e], vScale[channel + e]);
#elif INTFA_METHOD == INTFA_M_FP16
                const float scaled = output[n][2 * r + e];
#else
                const float scaled = __fmul_rn(output[n][2 * r + e], vScale);
#endif
                value[e] = __fmul_rn(scaled, inverseSum);
            }
#if INTFA_OUT_BF16
            outRow[channel / 2] = intfa_pack_bf162(value[0], value[1]);
#else
            outRow[channel / 2] = intfa_pack_half2(value[0], value[1]);
#endif
        }
#if INTFA_WRITE_LSE
        if (quad == 0) {
            float* lse = (float*)p.lse + ((intfa_i64)batch * p.heads + head) * p.queryLength;
            lse[row] = l > 0.0f ? __fdiv_rn(rowMax[r] + log2f(l), INTFA_LOG2E) : kNegativeInfinity;
        }
#endif
    }
}
