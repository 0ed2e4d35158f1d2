// FlashAttention forward with the `int8` scheme of docs/SCHEMES.md on mma.sync (sm_80 and
// later): Q·Kᵀ as s8·s8 and P·V as u8·u8 m16n8k32 MMAs (Vt in excess-128 form) over key tiles
// of 128 streamed through a cp.async ring, with the softmax and the fold of int8_scheme.cuh
// (the Hopper kernel's) on each warp's fragments.
//
// Compile-time options (NVRTC -D):
//   INTFA_HEAD_DIM       64 or 128
//   INTFA_BLOCK_M        query rows per CTA: 64 or 128 (16 per warp)
//   INTFA_STAGES         K/V pipeline depth, 2 to 4
//   INTFA_Q_IN_REGISTERS 1: the warp's Q fragments stay in registers; 0: re-read per tile
//   INTFA_MIN_BLOCKS     CTAs per SM promised to the register allocator (default 1)
//   INTFA_CAUSAL         0 or 1 (bottom-right aligned)
//   INTFA_OUT_BF16       0: fp16 output, 1: bf16 output
//   INTFA_WRITE_LSE      0 or 1: also write the log-sum-exp (fp32, natural log)
//   INTFA_SMEM_BYTES     the dynamic shared memory the host reserves; checked here
//
// Launch: grid (ceil(Nq / BLOCK_M), H, B), block BLOCK_M / 16 · 32 threads, one
// AttentionParams argument by value. Pointers must be 16-byte aligned.
//
// Structure. Each warp owns 16 query rows. Per key tile, S = Q·Kᵀ (16 n-tiles of 8 keys) stays
// in registers in the layout of the wgmma accumulator, block_softmax turns it into the P·V A
// fragments in place (the quantizer's Vt stores each 32-key group in the fragments' order), and
// each P block's u8·u8 product P·(V + 128) is folded into the fp32 output O' with one FFMA per
// element; the offset leaves with the rows' code sums. The first tile has two P blocks (keys
// 0–31 and 32–127), folded one after the other.
#include "params.cuh"
#include "variant_name.cuh"
#include "mma_tiles.cuh"
#include "int8_scheme.cuh"

using namespace int8_scheme;

#ifndef INTFA_HEAD_DIM
#error "INTFA_HEAD_DIM must be defined"
#endif
#ifndef INTFA_BLOCK_M
#define INTFA_BLOCK_M 64
#endif
#ifndef INTFA_STAGES
#define INTFA_STAGES 2
#endif
#ifndef INTFA_Q_IN_REGISTERS
#define INTFA_Q_IN_REGISTERS 1
#endif
#ifndef INTFA_MIN_BLOCKS
#define INTFA_MIN_BLOCKS 1
#endif

// Kernel name: intfa_attention_int8_d<D>_<full|causal>_<f16|bf16>[_lse]_m<BLOCK_M>_s<STAGES>_w16[_b<MIN_BLOCKS>]
#if INTFA_MIN_BLOCKS > 1
#define INTFA_MIN_BLOCKS_NAME INTFA_CAT(_b, INTFA_MIN_BLOCKS)
#else
#define INTFA_MIN_BLOCKS_NAME
#endif
#define INTFA_KERNEL_NAME                                                                              \
    INTFA_CAT(INTFA_CAT(INTFA_CAT(INTFA_CAT(INTFA_CAT(INTFA_CAT(INTFA_CAT(INTFA_CAT(INTFA_CAT(          \
        intfa_attention_int8_d, INTFA_HEAD_DIM), INTFA_MASK_NAME), INTFA_OUT_NAME), INTFA_LSE_NAME), _m), \
        INTFA_BLOCK_M), _s), INTFA_STAGES), INTFA_CAT(_w16, INTFA_MIN_BLOCKS_NAME))

namespace {

constexpr int kHeadDim = INTFA_HEAD_DIM;
constexpr int kBlockM = INTFA_BLOCK_M;
constexpr int kWarps = kBlockM / 16;
constexpr int kThreads = kWarps * 32;
constexpr int kStages = INTFA_STAGES;
static_assert(kHeadDim == 64 || kHeadDim == 128, "head dim 64 or 128");
static_assert(kBlockM == 64 || kBlockM == 128, "BLOCK_M must be 64 or 128");
static_assert(kStages >= 2 && kStages <= 4, "2 to 4 pipeline stages");

// K tile: 128 key rows of D bytes; Vt tile: D channel rows of 128 keys; both padded by 16 bytes
// so that the 8 rows one ldmatrix reads start in 8 distinct 16-byte bank groups. Then the
// tile's 16 K group scales.
constexpr int kKStride = kHeadDim + 16;
constexpr int kVStride = kTileKeys + 16;
constexpr int kKBytes = kTileKeys * kKStride;
constexpr int kVBytes = kHeadDim * kVStride;
constexpr int kScaleBytes = kTileKeys / 8 * 4;
constexpr int kStageBytes = kKBytes + kVBytes + kScaleBytes;
// After the ring: the CTA's Q tile, rows padded like K.
constexpr int kQBytes = kBlockM * kKStride;
constexpr int kSharedBytes = kStages * kStageBytes + kQBytes;
#ifdef INTFA_SMEM_BYTES
static_assert(INTFA_SMEM_BYTES == kSharedBytes, "the host's shared-memory size disagrees with the kernel's");
#endif

constexpr int kQKChunks = kHeadDim / 32;  // k32 steps of Q·Kᵀ
// With more than one CTA promised per SM the register budget is tight, and ptxas, left free,
// hoists a tile's K or V fragment loads (64 registers for the 16 n-tiles of S) ahead of their
// MMAs and spills. A __syncwarp every kFencedKeyTiles n-tiles of S and every kFencedOutTiles
// n-tiles of P·V bounds that hoisting.
constexpr bool kFenceFragmentLoads = INTFA_MIN_BLOCKS > 1;
constexpr int kFencedKeyTiles = 4;
constexpr int kFencedOutTiles = 2;
constexpr int kOutTiles = kHeadDim / 8;   // n-tiles of 8 channels in O

}  // namespace

// Issues the cp.async copies of key tile `tile` into ring slot `slot`: the K rows (zeros past
// Nk), the Vt rows (padded to NkPad by the quantizer: always in range) and the 16 group scales.
static INTFA_DEVICE void load_key_tile(const AttentionParams& p, unsigned char* smem, int slot, int tile,
                                       const unsigned char* kBase, const unsigned char* vBase, const float* kScaleBase) {
    unsigned char* kTile = smem + slot * kStageBytes;
    unsigned char* vTile = kTile + kKBytes;
    const int key0 = tile * kTileKeys;
    copy_tile_rows<kThreads, kTileKeys, kHeadDim / 16>(kTile, kKStride, kBase + (intfa_i64)key0 * p.kStrideToken, p.kStrideToken,
                                                       (int)p.keyLength - key0);
    copy_tile_rows<kThreads, kHeadDim, kTileKeys / 16>(vTile, kVStride, vBase + key0, p.vStrideRow, kHeadDim);
    if (threadIdx.x < kScaleBytes / 16) {
        intfa_cp_async_16(intfa_smem_address(vTile + kVBytes + 16 * threadIdx.x), kScaleBase + key0 / 8 + 4 * threadIdx.x, 16u);
    }
}

// The products of one P block for output n-tile n: chunks First…Last − 1 of the A fragments
// against the Vt fragments b (chunks 0, 1 in b01; 2, 3 in b23).
template <int First, int Last>
static INTFA_DEVICE void block_product(intfa_s32 (&product)[4], const intfa_u32 (&codes)[kChunks][4], const intfa_u32 (&b01)[4],
                                       const intfa_u32 (&b23)[4]) {
    product[0] = product[1] = product[2] = product[3] = 0;
#pragma unroll
    for (int c = First; c < Last; ++c) {
        const intfa_u32(&b)[4] = c < 2 ? b01 : b23;
        intfa_mma_u8u8(product, codes[c], b[2 * (c & 1)], b[2 * (c & 1) + 1]);
    }
}

extern "C" __global__ void __launch_bounds__(kThreads, INTFA_MIN_BLOCKS) INTFA_KERNEL_NAME(const AttentionParams p) {
    extern __shared__ __align__(128) unsigned char smem[];

    const int warp = threadIdx.x >> 5;
    const int lane = threadIdx.x & 31;
    const int quad = lane & 3;
    // Heavy causal blocks (late query rows) first, so the tail of the grid is light.
    const int queryBlock = INTFA_CAUSAL ? (int)(gridDim.x - 1 - blockIdx.x) : (int)blockIdx.x;
    const int head = blockIdx.y;
    const int batch = blockIdx.z;
    const int kvHead = head / (int)(p.heads / p.kvHeads);
    const int queryLength = (int)p.queryLength;
    const int keyLength = (int)p.keyLength;
    const int rowBlock0 = queryBlock * kBlockM;
    const int warpRow0 = rowBlock0 + 16 * warp;
    const int threadRow0 = warpRow0 + (lane >> 2);  // and + 8
    const int causalShift = keyLength - queryLength;  // row i sees key j iff j <= i + shift

    // ---- Key tiles this CTA needs.
    const int keyTiles = (keyLength + kTileKeys - 1) / kTileKeys;
    int tileCount = keyTiles;
    if (INTFA_CAUSAL) {
        const int lastKey = min(rowBlock0 + kBlockM, queryLength) - 1 + causalShift;
        tileCount = lastKey < 0 ? 0 : min(lastKey / kTileKeys + 1, keyTiles);
    }
    const unsigned char* kBase = (const unsigned char*)p.k + (intfa_i64)batch * p.kStrideBatch + (intfa_i64)kvHead * p.kStrideHead;
    const unsigned char* vBase = (const unsigned char*)p.v + (intfa_i64)batch * p.vStrideBatch + (intfa_i64)kvHead * p.vStrideHead;
    const float* kScaleBase = (const float*)p.kScale + ((intfa_i64)batch * p.kvHeads + kvHead) * (p.keyLengthPadded / 8);

    // ---- Q tile → shared memory (rows past Nq zero-filled), then the key pipeline.
    unsigned char* qTile = smem + kStages * kStageBytes;
    {
        const unsigned char* qBase = (const unsigned char*)p.q + (intfa_i64)batch * p.qStrideBatch + (intfa_i64)head * p.qStrideHead;
        copy_tile_rows<kThreads, kBlockM, kHeadDim / 16>(qTile, kKStride, qBase + (intfa_i64)rowBlock0 * p.qStrideToken, p.qStrideToken,
                                                         queryLength - rowBlock0);
        intfa_cp_async_commit();
    }
#pragma unroll
    for (int s = 0; s < kStages - 1; ++s) {
        if (s < tileCount) load_key_tile(p, smem, s, s, kBase, vBase, kScaleBase);
        intfa_cp_async_commit();
    }
    // A fragments of the warp's rows: matrices (rows 0-7 | 8-15) × (bytes 0-15 | 16-31) of a
    // 32-byte k-chunk are registers 0-3.
    const intfa_u32 qFragmentAddress = intfa_smem_address(qTile) + (16 * warp + (lane & 7) + 8 * ((lane >> 3) & 1)) * kKStride + 16 * (lane >> 4);
#if INTFA_Q_IN_REGISTERS
    intfa_u32 qFragment[kQKChunks][4];
    intfa_cp_async_wait<kStages - 1>();  // the Q group (committed first) has landed
    __syncthreads();
#pragma unroll
    for (int c = 0; c < kQKChunks; ++c) intfa_ldmatrix_x4(qFragment[c], qFragmentAddress + 32 * c);
#endif
    float qs[2];
    {
        const float* qScale = (const float*)p.qScale + ((intfa_i64)batch * p.heads + head) * p.queryLength;
#pragma unroll
        for (int r = 0; r < 2; ++r) qs[r] = threadRow0 + 8 * r < queryLength ? qScale[threadRow0 + 8 * r] : 0.0f;
    }

    RowState state;
    float o[kOutTiles * 4];  // O' (int8_scheme.cuh): n-tile n, element e at 4n + e
#pragma unroll
    for (int r = 0; r < 2; ++r) state.max[r] = kNegativeInfinity, state.sum[r] = 0.0f, state.offsetWeight[r] = 0.0f;
#pragma unroll
    for (int i = 0; i < kOutTiles * 4; ++i) o[i] = 0.0f;

    const int ldRow = lane & 7;      // row inside the 8x8 matrix whose address this lane gives
    const int ldMatrix = lane >> 3;  // which of the four matrices
    // The first tile that needs the mask for this warp: past Nk, or (causal) right of its first row.
    const int firstRowKeys = INTFA_CAUSAL ? max(min(keyLength, warpRow0 + causalShift + 1), 0) : keyLength;
    const int firstMasked = firstRowKeys / kTileKeys;

    for (int tile = 0; tile < tileCount; ++tile) {
        intfa_cp_async_wait<kStages - 2>();
        __syncthreads();
        {
            const int next = tile + kStages - 1;
            if (next < tileCount) load_key_tile(p, smem, next % kStages, next, kBase, vBase, kScaleBase);
            intfa_cp_async_commit();
        }
        const int key0 = tile * kTileKeys;
        // A warp whose rows see none of this tile's keys (causal, above the diagonal) has
        // nothing to add: the scheme's update would leave its state unchanged.
        if (INTFA_CAUSAL && key0 > warpRow0 + 15 + causalShift) continue;
        const unsigned char* kTile = smem + (tile % kStages) * kStageBytes;
        const unsigned char* vTile = kTile + kKBytes;
        const intfa_u32 kTileAddress = intfa_smem_address(kTile);
        const intfa_u32 vTileAddress = intfa_smem_address(vTile);

        // ---- S = Q·Kᵀ: 16 n-tiles of 8 keys, n-tile j element e at 4j + e.
        intfa_s32 s[kScoreRegisters];
#pragma unroll
        for (int i = 0; i < kScoreRegisters; ++i) s[i] = 0;
#pragma unroll
        for (int x = 0; x < kQKChunks / 2; ++x) {
#if INTFA_Q_IN_REGISTERS
            const intfa_u32(&a0)[4] = qFragment[2 * x];
            const intfa_u32(&a1)[4] = qFragment[2 * x + 1];
#else
            intfa_u32 a0[4], a1[4];
            intfa_ldmatrix_x4(a0, qFragmentAddress + 64 * x);
            intfa_ldmatrix_x4(a1, qFragmentAddress + 64 * x + 32);
#endif
#pragma unroll
            for (int j = 0; j < kTileKeys / 8; ++j) {
                if (kFenceFragmentLoads && j % kFencedKeyTiles == 0) __syncwarp();
                // Keys 8j..8j+7; matrices 0,1 are chunk 2x, matrices 2,3 chunk 2x + 1.
                intfa_u32 b[4];
                intfa_ldmatrix_x4(b, kTileAddress + (8 * j + ldRow) * kKStride + 64 * x + 16 * ldMatrix);
                intfa_s32(&d)[4] = *(intfa_s32(*)[4])&s[4 * j];
                intfa_mma_s8s8(d, a0, b[0], b[1]);
                intfa_mma_s8s8(d, a1, b[2], b[3]);
            }
        }

        // ---- Softmax: codes and the factors of the tile's P blocks.
        const float4 keyScales = *(const float4*)(vTile + kVBytes + 16 * quad);
        intfa_u32 codes[kChunks][4];
        BlockFactors factors[2];
        auto softmax = [&](auto masked, auto split) {
            constexpr bool Masked = decltype(masked)::value, Split = decltype(split)::value;
            block_softmax<Masked, Split>(s, qs, keyScales, state, codes, factors, key0, threadRow0, keyLength, causalShift, quad);
        };
        const bool masked = tile >= firstMasked;
        if (tile == 0) {
            if (masked) softmax(Constant<true>(), Constant<true>());
            else softmax(Constant<false>(), Constant<true>());
        } else {
            if (masked) softmax(Constant<true>(), Constant<false>());
            else softmax(Constant<false>(), Constant<false>());
        }

        // ---- P·V, each P block's product folded with its weight: O' = O' · alpha + w · 2^117 · bits(A).
        auto fold = [&](auto firstChunk, auto lastChunk, const BlockFactors& f) {
            constexpr int First = decltype(firstChunk)::value, Last = decltype(lastChunk)::value;
            float foldWeight[2];
            begin_fold(o, f, state, foldWeight);
#pragma unroll
            for (int n = 0; n < kOutTiles; ++n) {
                if (kFenceFragmentLoads && n % kFencedOutTiles == 0) __syncwarp();
                // Vt rows 8n..8n+7 (channels); matrices 0,1 hold positions 0-31, 2,3 positions
                // 32-63 (b01), then 64-127 (b23).
                intfa_u32 b01[4], b23[4];
                if (First < 2) intfa_ldmatrix_x4(b01, vTileAddress + (8 * n + ldRow) * kVStride + 16 * ldMatrix);
                if (Last > 2) intfa_ldmatrix_x4(b23, vTileAddress + (8 * n + ldRow) * kVStride + 64 + 16 * ldMatrix);
                intfa_s32 product[4];
                block_product<First, Last>(product, codes, b01, b23);
#pragma unroll
                for (int e = 0; e < 4; ++e) o[4 * n + e] = fmaf(foldWeight[e >> 1], __int_as_float(product[e]), o[4 * n + e]);
            }
        };
        if (tile == 0) {
            fold(Constant<0>(), Constant<1>(), factors[0]);
            fold(Constant<1>(), Constant<kChunks>(), factors[1]);
        } else {
            fold(Constant<0>(), Constant<kChunks>(), factors[0]);
        }
        if ((tile + 1) % kRebaseTiles == 0) rebase_output(o, state);
    }

    // ---- Epilogue: O = (O' − 2^-25 · R) · 2^32 · sV / l (0 when no key was visible), and the
    // log-sum-exp.
    const float* vScale = (const float*)p.vScale + ((intfa_i64)batch * p.kvHeads + kvHead) * kHeadDim;
    unsigned char* outBase = (unsigned char*)p.out + ((intfa_i64)batch * p.oStrideBatch + (intfa_i64)head * p.oStrideHead) * 2;
    float l[2];
#pragma unroll
    for (int r = 0; r < 2; ++r) {
        l[r] = row_total(state.sum[r]);
        const float offset = kExcessOffset * row_total(state.offsetWeight[r]);
        const int row = threadRow0 + 8 * r;
        if (row >= queryLength) continue;
        // One division per row (the IEEE division has a slow-path call; one per element would
        // keep the whole accumulator live across calls).
        const float outputScale = l[r] > 0.0f ? __fdiv_rn(kOutputScale, l[r]) : 0.0f;
        store_output_row<kHeadDim>((intfa_u32*)(outBase + (intfa_i64)row * p.oStrideToken * 2), o, r, quad, vScale, offset, outputScale);
    }
#if INTFA_WRITE_LSE
    // After every output row is written, so that log2f and the division (calls with their own
    // registers) do not meet a live accumulator.
    if (quad == 0) {
        float* lse = (float*)p.lse + ((intfa_i64)batch * p.heads + head) * p.queryLength;
#pragma unroll
        for (int r = 0; r < 2; ++r) {
            const int row = threadRow0 + 8 * r;
            if (row < queryLength) lse[row] = l[r] > 0.0f ? __fdiv_rn(state.max[r] + log2f(l[r]), INTFA_LOG2E) : kNegativeInfinity;
        }
    }
#endif
}
