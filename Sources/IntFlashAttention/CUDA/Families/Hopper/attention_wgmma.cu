// FlashAttention forward for Hopper (sm_90a) with the `int8` scheme of docs/SCHEMES.md: Q·Kᵀ
// as s8·s8 and P·V as u8·u8 warpgroup MMAs (wgmma; the quantizer stores Vt in excess-128
// form) over key tiles of 128 brought in by TMA, one P row scale per P block (the first
// tile's keys 0–31 and 32–127, then each whole tile), one K scale per group of 8 keys.
//
// Compile-time options (NVRTC -D):
//   INTFA_HEAD_DIM     64 or 128
//   INTFA_CAUSAL       0 or 1 (bottom-right aligned)
//   INTFA_OUT_BF16     0: fp16 output, 1: bf16 output
//   INTFA_WRITE_LSE    0 or 1: also write the log-sum-exp (fp32, natural log)
//   INTFA_STAGES       K/V pipeline depth, 2…8
//   INTFA_CONSUMERS    consumer warpgroups of 64 query rows each, 2 or 3
//   INTFA_PINGPONG     1: consumers take turns issuing their GEMMs (named barriers), so one
//                      warpgroup's softmax runs under the other's tensor-core work
//   INTFA_SMEM_BYTES   the dynamic shared memory the host reserves; checked here
//   INTFA_Q_INPUT      0: Q as s8 codes with their scales (the quantizer's output); 1 or 2:
//                      Q as fp16 or bf16, quantized by the consumers into their Q tiles
//                      (docs/SCHEMES.md's rule, the Q quantizer's bits)
//   INTFA_LAYOUT_TEST  1: compile the fragment-layout test kernel instead (see the end)
//   INTFA_K_SWIZZLE_BYTES, INTFA_V_SWIZZLE_BYTES  the swizzles of the host's K and Vt tensor
//                      maps (HopperKernelDescriptor.keySwizzle, .valueSwizzle), required
//
// Roles. Warpgroup 0 is the producer: one thread waits for a free ring slot, then issues the
// TMA copies of the K tile (128 keys × D) and the Vt tile (D × 128 keys) and a bulk copy of
// the tile's 16 K group scales, all completing on the slot's "full" mbarrier; the producer's
// other warps leave. Warpgroups 1… are consumers,
// each owning 64 query rows, whose Q codes it stores once per tile into its own Q tile in
// shared memory (the A operand of S = Q·Kᵀ). Per key tile n a consumer runs the softmax of
// S(n) into u8 codes, then issues P·V(n) and, behind it, S(n + 1) (two commit groups), waits
// for P·V(n) only and folds it into the output while S(n + 1) is still on the tensor cores,
// then releases tile n's slot ("empty" mbarrier). The first tile holds two P blocks, whose
// P·V products are folded one after the other.
//
// Arithmetic (fp32; agrees with the CPU scheme to rounding, see docs/SCHEMES.md):
//   c    = qs · ks                           (per row and group of 8 keys: Q scale · sm · log2 e
//                                             times the group's K scale)
//   mb   = max over the block of I2F(max acc) · c    (the maximum of the int32 scores of each
//                                             group first, with VIMNMX3: c ≥ 0 keeps the order)
//   t    = mb + |mb| · 2^-22                 (so no code exceeds 255)
//   Pq   = rne(255 · fp16(exp2(fma(acc, c, −t))))    u8 codes (F2FP + one HFMA2 per pair),
//                                             packed in place as the A fragment
//   A    = Pq · (Vq + 128)                   u8·u8 wgmma: 0 ≤ A < 128·255·255 < 2^23, so the
//                                             bits of A read as an fp32 are A · 2^-149 exactly
//   O'   = O' · alpha + (w · 2^117) · bits(A)     one FFMA per element: O' = Σ w · A · 2^-32
//   R    = R · alpha + w · Σ Pq                     (the offset's weight, per row)
//   O    = (O' − 2^-25 · R) · 2^32 · sV / l        (the 128 · Σ Pq of every block removed)
#include "params.cuh"
#include "variant_name.cuh"
#include "hopper.cuh"
#include "int8_scheme.cuh"

using namespace int8_scheme;

#if !defined(__CUDA_ARCH__) || __CUDA_ARCH__ < 900
#error "attention_wgmma.cu needs sm_90a"
#endif
#ifndef INTFA_HEAD_DIM
#error "INTFA_HEAD_DIM must be defined"
#endif
#ifndef INTFA_STAGES
#define INTFA_STAGES 3
#endif
#ifndef INTFA_CONSUMERS
#define INTFA_CONSUMERS 2
#endif
#ifndef INTFA_PINGPONG
#define INTFA_PINGPONG 1
#endif
#ifndef INTFA_LAYOUT_TEST
#define INTFA_LAYOUT_TEST 0
#endif
#ifndef INTFA_Q_INPUT
#define INTFA_Q_INPUT 0
#endif

// Kernel name: intfa_wgmma_int8_d<D>_<full|causal>_<f16|bf16>[_lse]_c<CONSUMERS>_s<STAGES>[_pp][_qf16|_qbf16]
#if INTFA_PINGPONG
#define INTFA_PINGPONG_NAME _pp
#else
#define INTFA_PINGPONG_NAME
#endif
#if INTFA_Q_INPUT == 1
#define INTFA_Q_INPUT_NAME _qf16
#elif INTFA_Q_INPUT == 2
#define INTFA_Q_INPUT_NAME _qbf16
#else
#define INTFA_Q_INPUT_NAME
#endif
#define INTFA_KERNEL_NAME                                                                              \
    INTFA_CAT(INTFA_CAT(INTFA_CAT(INTFA_CAT(INTFA_CAT(INTFA_CAT(INTFA_CAT(INTFA_CAT(INTFA_CAT(INTFA_CAT( \
        intfa_wgmma_int8_d, INTFA_HEAD_DIM), INTFA_MASK_NAME), INTFA_OUT_NAME), INTFA_LSE_NAME), _c), \
        INTFA_CONSUMERS), _s), INTFA_STAGES), INTFA_PINGPONG_NAME), INTFA_Q_INPUT_NAME)

namespace {

constexpr int kHeadDim = INTFA_HEAD_DIM;
constexpr int kBlockN = kTileKeys;  // keys per tile (ring slot)
constexpr int kConsumers = INTFA_CONSUMERS;
constexpr int kBlockM = 64 * kConsumers;
constexpr int kThreads = 128 * (kConsumers + 1);
constexpr int kStages = INTFA_STAGES;

static_assert(kHeadDim == 64 || kHeadDim == 128, "head dim 64 or 128");
static_assert(kConsumers == 2 || kConsumers == 3, "2 or 3 consumer warpgroups");
static_assert(kStages >= 2 && kStages <= 8, "2 to 8 pipeline stages");

// Register budgets after the role split; the sum over the CTA stays within 64K.
constexpr int kProducerRegisters = 24;
constexpr int kConsumerRegisters = kConsumers == 2 ? 240 : 160;
static_assert(128 * (kProducerRegisters + kConsumers * kConsumerRegisters) <= 65536, "register file");

// One ring slot: K tile, Vt tile, the 16 K group scales; aligned to the 1 KiB swizzle repeat.
constexpr int kKTileBytes = kBlockN * kHeadDim;
constexpr int kVTileBytes = kHeadDim * kBlockN;
constexpr int kScaleBytes = kBlockN / 8 * 4;
constexpr int kSlotBytes = (kKTileBytes + kVTileBytes + kScaleBytes + 1023) / 1024 * 1024;
constexpr intfa_u32 kSlotTransactionBytes = kKTileBytes + kVTileBytes + kScaleBytes;
// Each consumer's Q tile (64 rows × D, K-major, swizzled like the K tile), after the ring.
constexpr int kQTileBytes = 64 * kHeadDim;
// Dynamic shared memory: the ring, the Q tiles, and 1 KiB to align the start to 1024 bytes.
constexpr int kSharedBytes = kStages * kSlotBytes + kConsumers * kQTileBytes + 1024;
#ifdef INTFA_SMEM_BYTES
static_assert(INTFA_SMEM_BYTES == kSharedBytes, "the host's shared-memory size disagrees with the kernel's");
#endif

// The tiles' swizzles, from the host (HopperKernelDescriptor.keySwizzle, .valueSwizzle), whose
// tensor maps write them: K rows are D bytes, swizzled over their width, in 8-row groups of
// 8·D bytes; Vt rows are 128 bytes.
#if !defined(INTFA_K_SWIZZLE_BYTES) || !defined(INTFA_V_SWIZZLE_BYTES)
#error "the host passes the tiles' swizzles (HopperKernelDescriptor.compileOptions)"
#endif
static_assert(INTFA_K_SWIZZLE_BYTES == kHeadDim, "the K and Q tiles are written for a swizzle as wide as their rows");
static_assert(INTFA_V_SWIZZLE_BYTES == kBlockN, "the Vt tile is written for a swizzle as wide as its 128-byte rows");
constexpr int kKSwizzleBytes = INTFA_K_SWIZZLE_BYTES;
constexpr int kKSwizzle = intfa_swizzle_mode(kKSwizzleBytes);
constexpr intfa_u32 kKGroupBytes = 8 * kHeadDim;
constexpr int kVSwizzle = intfa_swizzle_mode(INTFA_V_SWIZZLE_BYTES);
constexpr intfa_u32 kVGroupBytes = 8 * kBlockN;

constexpr int kQChunks = kHeadDim / 32;  // k32 steps of Q·Kᵀ
constexpr int kOutRegisters = kHeadDim / 2;
// Named barriers: 1…kConsumers take turns (TurnTaking), kQTileBarrier + group guards a
// consumer's Q tile.
constexpr int kQTileBarrier = 4;

}  // namespace

// Descriptors of every k32 step of one slot's K and Vt tiles (each step advances the start
// address by 32 bytes). They are computed, and pinned in registers, before the wgmma.fence:
// an ordinary instruction that defines a wgmma operand between the fence and the MMAs makes
// ptxas serialize every wgmma of the kernel (warning C7513).
struct TileDescriptors {
    intfa_u64 keys[kQChunks];
    intfa_u64 values[kChunks];
};
static INTFA_DEVICE TileDescriptors tile_descriptors(intfa_u32 kTile) {
    // The start address is the low field (address >> 4, below 2^14 for any shared-memory
    // address), so one 32-byte step is + 2 and the Vt tile is + kKTileBytes / 16.
    const intfa_u64 keys = intfa_matrix_descriptor(kTile, kKGroupBytes, kKSwizzle);
    const intfa_u64 values = intfa_matrix_descriptor(0, kVGroupBytes, kVSwizzle) + ((keys & 0x3FFF) + kKTileBytes / 16);
    TileDescriptors d;
#pragma unroll
    for (int c = 0; c < kQChunks; ++c) {
        d.keys[c] = keys + 2 * c;
        asm volatile("" : "+l"(d.keys[c]));
    }
#pragma unroll
    for (int c = 0; c < kChunks; ++c) {
        d.values[c] = values + 2 * c;
        asm volatile("" : "+l"(d.values[c]));
    }
    return d;
}

// S = Q·Kᵀ for one key tile: D/32 k-steps, the first overwriting the accumulator.
static INTFA_DEVICE void issue_scores(intfa_s32 (&s)[kScoreRegisters], const intfa_u64 (&q)[kQChunks], const TileDescriptors& d) {
    intfa_wgmma_m64n128k32_s8s8_shared<0>(s, q[0], d.keys[0]);
#pragma unroll
    for (int c = 1; c < kQChunks; ++c) intfa_wgmma_m64n128k32_s8s8_shared<1>(s, q[c], d.keys[c]);
}

#if !INTFA_Q_INPUT
// Stores 64 Q rows (rows past Nq as zeros) into a Q tile in the K tile's swizzled layout: the
// 16-byte chunk c of row r lands at chunk c ^ (r % 8) (128-byte rows) or c ^ (r / 2 % 4)
// (64-byte rows), as TMA writes the K tile. Called by the 128 threads of a warpgroup.
static INTFA_DEVICE void store_query_tile(unsigned char* tile, const unsigned char* rows, intfa_i64 strideToken, int validRows, int thread) {
    constexpr int kChunksPerRow = kHeadDim / 16;
#pragma unroll
    for (int i = 0; i < 64 * kChunksPerRow / 128; ++i) {
        const int index = thread + 128 * i;
        const int row = index / kChunksPerRow, chunk = index % kChunksPerRow;
        const uint4 value = row < validRows ? __ldg((const uint4*)(rows + row * strideToken) + chunk) : make_uint4(0u, 0u, 0u, 0u);
        const int swizzled = kKSwizzleBytes == 128 ? chunk ^ (row & 7) : chunk ^ ((row >> 1) & 3);
        *(uint4*)(tile + row * kHeadDim + 16 * swizzled) = value;
    }
}
#endif

#if INTFA_Q_INPUT
// Quantizes 64 fp16 or bf16 Q rows (rows past Nq as zeros) into a Q tile, swizzled as
// store_query_tile does, by the rule and with the bits of the Q quantizer (quantize.cu): per
// row amax = max |x|, codes rne(x · 127 / amax) clamped, offending elements (NaN, ±Inf) as 0
// and their rows marked in `marks`. Writes each row's qs = amax / 127 · sm·L to `rowScales`.
// Two threads per row, each with half of its channels; called by the 128 threads of a
// warpgroup.
static INTFA_DEVICE void quantize_query_tile(unsigned char* tile, const intfa_u16* rows, intfa_i64 strideToken, int validRows,
                                             int thread, float scaleMultiplier, float* rowScales, intfa_u8* marks) {
    constexpr int kHalf = kHeadDim / 2;  // channels per thread
    const int row = thread >> 1, half = thread & 1;
    const bool valid = row < validRows;
    uint4 raw[kHalf / 8];
    const uint4* source = (const uint4*)(rows + row * strideToken + half * kHalf);
#pragma unroll
    for (int i = 0; i < kHalf / 8; ++i) raw[i] = valid ? __ldg(source + i) : make_uint4(0u, 0u, 0u, 0u);
    const intfa_u32* words = (const intfa_u32*)raw;
    auto value = [&](int i, bool& offends) {
        const intfa_u16 bits = (intfa_u16)(words[i / 2] >> (16 * (i & 1)));
#if INTFA_Q_INPUT == 2
        return intfa_usable(intfa_bf16_to_float(bits), offends);
#else
        return intfa_usable(intfa_half_to_float(bits), offends);
#endif
    };
    bool offends = false;
    float amax = 0.0f;
#pragma unroll
    for (int i = 0; i < kHalf; ++i) amax = fmaxf(amax, fabsf(value(i, offends)));
    amax = fmaxf(amax, __shfl_xor_sync(0xFFFFFFFFu, amax, 1));
    offends = __shfl_xor_sync(0xFFFFFFFFu, (int)offends, 1) != 0 || offends;
    const float inverse = intfa_inverse_scale(amax, 127.0f);
    bool ignored = false;
#pragma unroll
    for (int k = 0; k < kHalf / 16; ++k) {
        intfa_u32 w[4];
#pragma unroll
        for (int j = 0; j < 4; ++j) {
            const int i = 16 * k + 4 * j;
            w[j] = intfa_pack_low_bytes(intfa_encode_s8(value(i, ignored), inverse), intfa_encode_s8(value(i + 1, ignored), inverse),
                                        intfa_encode_s8(value(i + 2, ignored), inverse), intfa_encode_s8(value(i + 3, ignored), inverse));
        }
        const int chunk = half * (kHalf / 16) + k;
        const int swizzled = kKSwizzleBytes == 128 ? chunk ^ (row & 7) : chunk ^ ((row >> 1) & 3);
        *(uint4*)(tile + row * kHeadDim + 16 * swizzled) = make_uint4(w[0], w[1], w[2], w[3]);
    }
    if (half == 0) {
        rowScales[row] = valid ? __fmul_rn(__fdiv_rn(amax, 127.0f), scaleMultiplier) : 0.0f;
        if (valid && marks != nullptr) marks[row] = offends ? 1 : 0;
    }
}
#endif

// Descriptors of the k32 steps of a Q tile (pinned in registers, as for TileDescriptors).
static INTFA_DEVICE void query_descriptors(intfa_u32 tile, intfa_u64 (&q)[kQChunks]) {
    const intfa_u64 base = intfa_matrix_descriptor(tile, kKGroupBytes, kKSwizzle);
#pragma unroll
    for (int c = 0; c < kQChunks; ++c) {
        q[c] = base + 2 * c;
        asm volatile("" : "+l"(q[c]));
    }
}

// acc = P·(V + 128) over the k32 steps First…Last − 1 of a tile (32 keys each) from the
// excess-128 Vt tile, overwriting the accumulator.
template <int First, int Last>
static INTFA_DEVICE void issue_values(intfa_s32 (&acc)[kOutRegisters], const intfa_u32 (&p)[kChunks][4], const TileDescriptors& d) {
#pragma unroll
    for (int c = First; c < Last; ++c) {
#if INTFA_HEAD_DIM == 128
        if (c == First) intfa_wgmma_m64n128k32_u8u8<0>(acc, p[c], d.values[c]);
        else intfa_wgmma_m64n128k32_u8u8<1>(acc, p[c], d.values[c]);
#else
        if (c == First) intfa_wgmma_m64n64k32_u8u8<0>(acc, p[c], d.values[c]);
        else intfa_wgmma_m64n64k32_u8u8<1>(acc, p[c], d.values[c]);
#endif
    }
}

#if !INTFA_LAYOUT_TEST

// Folds one P block's finished P·V into the output: O' = O' · alpha + w · 2^117 · bits(acc)
// (one FFMA per element, plus a multiply when some row of the warp has a new maximum).
static INTFA_DEVICE void fold_block(float (&o)[kOutRegisters], const intfa_s32 (&acc)[kOutRegisters], const BlockFactors& f,
                                    RowState& state) {
    float foldWeight[2];
    begin_fold(o, f, state, foldWeight);
#pragma unroll
    for (int i = 0; i < kOutRegisters; ++i) o[i] = fmaf(foldWeight[(i >> 1) & 1], __int_as_float(acc[i]), o[i]);
}

// Consumer warpgroups take turns issuing GEMMs: group i waits on barrier 1 + i, then lets
// group i + 1 go. The last group lets group 0 go first and skips its own final hand-over.
struct TurnTaking {
    int group;
    INTFA_DEVICE void wait() const {
        if (INTFA_PINGPONG) intfa_named_sync(1 + group, 256);
    }
    INTFA_DEVICE void pass(bool last) const {
        if (INTFA_PINGPONG && !(last && group == kConsumers - 1)) intfa_named_arrive(1 + (group + 1) % kConsumers, 256);
    }
    INTFA_DEVICE void start() const {
        if (INTFA_PINGPONG && group == kConsumers - 1) intfa_named_arrive(1, 256);
    }
};

// One CTA tile: kBlockM query rows of one (batch, head). Tiles are numbered query block
// first (last block first when causal: the longest rows start early), then head, then
// batch, so the CTAs that run at the same time read the same heads' K and V from L2.
struct Tile {
    int queryBlock;
    int head;
    int batch;
};
static INTFA_DEVICE Tile tile_at(intfa_i64 index, int queryBlocks, int heads) {
    const int queryRank = (int)(index % queryBlocks);
    const intfa_i64 headIndex = index / queryBlocks;
    return Tile{INTFA_CAUSAL ? queryBlocks - 1 - queryRank : queryRank, (int)(headIndex % heads), (int)(headIndex / heads)};
}

// The CTA's work: tiles, and the key tiles each reads. Each role builds its own copy after
// its register budget changes, so that nothing stays live across setmaxnreg (ptxas spilled
// such values).
struct Schedule {
    int heads, queryLength, keyLength, queryBlocks, keyBlocks;
    int causalShift;  // row i sees key j iff j <= i + shift
    intfa_i64 tiles;
    INTFA_DEVICE explicit Schedule(const AttentionParams& p)
        : heads((int)p.heads), queryLength((int)p.queryLength), keyLength((int)p.keyLength),
          queryBlocks((queryLength + kBlockM - 1) / kBlockM), keyBlocks((keyLength + kBlockN - 1) / kBlockN),
          causalShift(keyLength - queryLength), tiles((intfa_i64)queryBlocks * heads * p.batch) {}
    // Key tiles that rows through lastRow need (all of them without a mask).
    INTFA_DEVICE int blocksThrough(int lastRow) const {
        if (!INTFA_CAUSAL) return keyBlocks;
        const int lastKey = lastRow + causalShift;
        return lastKey < 0 ? 0 : min(lastKey / kBlockN + 1, keyBlocks);
    }
    // Key tiles of the CTA tile with query block `queryBlock`.
    INTFA_DEVICE int tileBlocks(int queryBlock) const {
        return blocksThrough(min((queryBlock + 1) * kBlockM, queryLength) - 1);
    }
};

// Persistent by default (the grid at most one CTA per SM, each CTA taking tiles blockIdx.x,
// blockIdx.x + gridDim.x, …), or one CTA per tile (the causal default, GridPolicy). The producer runs ahead into the next tile
// while the consumers finish the epilogue of this one; the ring's slots and phases continue
// across tiles.
extern "C" __global__ void __launch_bounds__(kThreads, 1) INTFA_KERNEL_NAME(const __grid_constant__ HopperAttentionParams params) {
    extern __shared__ unsigned char dynamicShared[];
    __shared__ __align__(8) intfa_u64 fullBarriers[kStages];
    __shared__ __align__(8) intfa_u64 emptyBarriers[kStages];
#if INTFA_Q_INPUT
    __shared__ float queryScales[kConsumers][64];  // each consumer's rows' qs
#endif
    const AttentionParams& p = params.attention;

    const intfa_u32 ring = (intfa_smem_address(dynamicShared) + 1023) & ~1023u;
    const intfa_u32 full0 = intfa_smem_address(fullBarriers);
    const intfa_u32 empty0 = intfa_smem_address(emptyBarriers);

    // Read from lane 0 so the compiler knows it is warp-uniform: values derived from it (the
    // loop bounds, the ring addresses) then live in uniform registers, and the wgmma
    // descriptors need no per-thread moves between the MMAs (which would serialize them).
    const int warpgroup = __shfl_sync(0xFFFFFFFFu, threadIdx.x >> 7, 0);

    if (threadIdx.x == 0) {
        for (int s = 0; s < kStages; ++s) {
            intfa_mbarrier_init(full0 + 8 * s, 1);
            intfa_mbarrier_init(empty0 + 8 * s, 4 * kConsumers);  // one arrival per consumer warp
        }
        intfa_fence_barrier_init();
    }
    __syncthreads();

    if (warpgroup == 0) {
        // ---- Producer.
        intfa_registers_decrease<kProducerRegisters>();
        const Schedule schedule(p);
        // Thread 0 issues the TMA copies; the others leave before the loop, so that its values
        // stay in uniform registers (ptxas spilled them under the producer's budget when the
        // roles were branches of one if/else).
        if (threadIdx.x != 0) return;
        intfa_prefetch_tensor_map(&params.keys);
        intfa_prefetch_tensor_map(&params.values);
        int ringBlock = 0;  // tiles loaded so far by this CTA: slot and phase
        for (intfa_i64 index = blockIdx.x; index < schedule.tiles; index += gridDim.x) {
            const Tile tile = tile_at(index, schedule.queryBlocks, schedule.heads);
            const int kvHead = tile.head / (int)(p.heads / p.kvHeads);
            const float* kScales = (const float*)p.kScale + ((intfa_i64)tile.batch * p.kvHeads + kvHead) * (p.keyLengthPadded / 8);
            const int blockCount = schedule.tileBlocks(tile.queryBlock);
            for (int block = 0; block < blockCount; ++block, ++ringBlock) {
                const int slot = ringBlock % kStages;
                const intfa_u32 phase = (ringBlock / kStages) & 1;
                intfa_mbarrier_wait(empty0 + 8 * slot, phase ^ 1);
                const intfa_u32 full = full0 + 8 * slot;
                const intfa_u32 kTile = ring + slot * kSlotBytes;
                intfa_mbarrier_arrive_expect_tx(full, kSlotTransactionBytes);
                intfa_tma_load_4d(kTile, &params.keys, full, 0, block * kBlockN, kvHead, tile.batch);
                intfa_tma_load_4d(kTile + kKTileBytes, &params.values, full, block * kBlockN, 0, kvHead, tile.batch);
                intfa_bulk_load(kTile + kKTileBytes + kVTileBytes, kScales + block * (kBlockN / 8), kScaleBytes, full);
            }
        }
        return;
    }

    // ---- Consumers.
    intfa_registers_increase<kConsumerRegisters>();
    const Schedule schedule(p);
    const int group = warpgroup - 1;
    const int thread = threadIdx.x & 127;
    const int warp = thread >> 5;
    const int lane = thread & 31;
    const int quad = lane & 3;
    const TurnTaking turns{group};
    const intfa_u32 qTile = ring + kStages * kSlotBytes + group * kQTileBytes;
    int ringBlock0 = 0;  // ring index of the tile's first key tile
    for (intfa_i64 index = blockIdx.x; index < schedule.tiles; index += gridDim.x) {
        const Tile tile = tile_at(index, schedule.queryBlocks, schedule.heads);
        const int batch = tile.batch;
        const int head = tile.head;
        const int blockCount = schedule.tileBlocks(tile.queryBlock);
        const int groupRow0 = tile.queryBlock * kBlockM + 64 * group;
        const int row0 = groupRow0 + 16 * warp + (lane >> 2);  // and row0 + 8

        // Q codes into the group's Q tile (rows past Nq as zeros), once the group's last GEMM of
        // the previous tile is done with it; and the rows' Q scales.
        float qs[2];
        {
            unsigned char* tileBytes = dynamicShared + (qTile - intfa_smem_address(dynamicShared));
            const int validRows = schedule.queryLength - groupRow0;
            intfa_named_sync(kQTileBarrier + group, 128);
#if INTFA_Q_INPUT
            const intfa_u16* qBase = (const intfa_u16*)p.q + (intfa_i64)batch * p.qStrideBatch + (intfa_i64)head * p.qStrideHead;
            const intfa_i64 rowIndex = ((intfa_i64)batch * p.heads + head) * p.queryLength + groupRow0;
            quantize_query_tile(tileBytes, qBase + (intfa_i64)groupRow0 * p.qStrideToken, p.qStrideToken, validRows, thread,
                                p.softmaxScaleLog2, queryScales[group], p.rowMarks != 0 ? (intfa_u8*)p.rowMarks + rowIndex : nullptr);
#else
            const unsigned char* qBase = (const unsigned char*)p.q + (intfa_i64)batch * p.qStrideBatch + (intfa_i64)head * p.qStrideHead;
            store_query_tile(tileBytes, qBase + (intfa_i64)groupRow0 * p.qStrideToken, p.qStrideToken, validRows, thread);
#endif
            intfa_fence_proxy_async();  // read by wgmma, an async-proxy access
            intfa_named_sync(kQTileBarrier + group, 128);
#pragma unroll
            for (int r = 0; r < 2; ++r) {
                const int row = row0 + 8 * r;
#if INTFA_Q_INPUT
                qs[r] = queryScales[group][row - groupRow0];
#else
                const float* qScale = (const float*)p.qScale + ((intfa_i64)batch * p.heads + head) * p.queryLength;
                qs[r] = row < schedule.queryLength ? qScale[row] : 0.0f;
#endif
            }
        }

        // Tiles this warpgroup reads; the rest of the CTA's tiles it only releases.
        const int groupBlocks = groupRow0 < schedule.queryLength ? schedule.blocksThrough(min(groupRow0 + 64, schedule.queryLength) - 1) : 0;
        // The first tile that needs the mask: past Nk, or (causal) right of the group's first row.
        const int firstRowKeys = INTFA_CAUSAL ? max(min(schedule.keyLength, groupRow0 + schedule.causalShift + 1), 0) : schedule.keyLength;
        const int firstMasked = firstRowKeys / kBlockN;

        RowState state;
        float o[kOutRegisters];
#pragma unroll
        for (int r = 0; r < 2; ++r) state.max[r] = kNegativeInfinity, state.sum[r] = 0.0f, state.offsetWeight[r] = 0.0f;
#pragma unroll
        for (int i = 0; i < kOutRegisters; ++i) o[i] = 0.0f;

        // Ring slot and phase of the tile's key tile `block` (unsigned: a power-of-two ring
        // then needs a mask and a shift, not signed division).
        auto slotOf = [&](int block) { return ((unsigned)ringBlock0 + (unsigned)block) % kStages; };
        auto phaseOf = [&](int block) { return (((unsigned)ringBlock0 + (unsigned)block) / kStages) & 1; };
        auto slotAddress = [&](int block) { return ring + slotOf(block) * kSlotBytes; };
        auto waitFull = [&](int block) { intfa_mbarrier_wait(full0 + 8 * slotOf(block), phaseOf(block)); };
        auto release = [&](int block) {
            if (lane == 0) intfa_mbarrier_arrive(empty0 + 8 * slotOf(block));
        };
        // The K group scales of the thread's keys of a tile (group 4·chunk + quad of each
        // 32-key chunk, stored quad-major), read before its S is waited for.
        auto loadKeyScales = [&](int block) {
            const float* keyScales = (const float*)(dynamicShared + (slotAddress(block) - intfa_smem_address(dynamicShared)) + kKTileBytes + kVTileBytes);
            return *(const float4*)(keyScales + 4 * quad);
        };
        // The softmax of tile `block`: the first tile's two P blocks when `split`, masked from
        // the first tile that needs it.
        auto softmax = [&](const intfa_s32 (&s)[kScoreRegisters], float4 keyScales, int block, intfa_u32 (&pOut)[kChunks][4],
                           BlockFactors (&f)[2], auto split) {
            constexpr bool Split = decltype(split)::value;
            const int key0 = block * kBlockN;
            if (block >= firstMasked) {
                block_softmax<true, Split>(s, qs, keyScales, state, pOut, f, key0, row0, schedule.keyLength, schedule.causalShift, quad);
            } else {
                block_softmax<false, Split>(s, qs, keyScales, state, pOut, f, key0, row0, schedule.keyLength, schedule.causalShift, quad);
            }
        };

        intfa_u64 qDescriptors[kQChunks];
        query_descriptors(qTile, qDescriptors);
        turns.start();
        intfa_s32 s[kScoreRegisters];
        intfa_s32 acc[kOutRegisters];
        intfa_u32 codes[kChunks][4];
        BlockFactors factors[2];
        float4 keyScales;
        // Equal for every consumer, as turn-taking needs: S(0), the first tile's P·V of keys
        // 0–31, then each tile's (remaining) P·V, with the next tile's S behind it.
        const int issuePoints = blockCount + 2;
        int turn = 0;
        // The P·V of tile `block` from chunk First on, with S(block + 1) behind it when
        // `withNext`; then the fold, and the softmax of the next tile. The wgmma regions hold no
        // branch (ptxas would otherwise inject waits around them), hence the two instances.
        auto step = [&](auto firstChunk, int block, auto withNext) {
            constexpr int First = decltype(firstChunk)::value;
            constexpr bool Next = decltype(withNext)::value;
            if (Next) {
                waitFull(block + 1);
                keyScales = loadKeyScales(block + 1);
            }
            const TileDescriptors current = tile_descriptors(slotAddress(block));
            const TileDescriptors following = tile_descriptors(slotAddress(Next ? block + 1 : block));
            turns.wait();
            intfa_wgmma_fence();
            issue_values<First, kChunks>(acc, codes, current);
            intfa_wgmma_commit();
            if (Next) {
                issue_scores(s, qDescriptors, following);
                intfa_wgmma_commit();
            }
            turns.pass(++turn == issuePoints);
            if (Next) intfa_wgmma_wait<1>();
            else intfa_wgmma_wait<0>();
            intfa_fence_registers(acc);
            release(block);
            fold_block(o, acc, factors[0], state);
            if ((block + 1) % kRebaseTiles == 0) rebase_output(o, state);
            if (Next) {
                intfa_wgmma_wait<0>();
                intfa_fence_registers(s);
                softmax(s, keyScales, block + 1, codes, factors, Constant<false>());
            }
        };
        if (groupBlocks > 0) {
            // Tile 0: S(0), its softmax (two P blocks), and the P·V of the first alone.
            waitFull(0);
            keyScales = loadKeyScales(0);
            {
                const TileDescriptors first = tile_descriptors(slotAddress(0));
                turns.wait();
                intfa_wgmma_fence();
                issue_scores(s, qDescriptors, first);
                intfa_wgmma_commit();
                turns.pass(++turn == issuePoints);
                intfa_wgmma_wait<0>();
                intfa_fence_registers(s);
            }
            softmax(s, keyScales, 0, codes, factors, Constant<true>());
            {
                const TileDescriptors first = tile_descriptors(slotAddress(0));
                turns.wait();
                intfa_wgmma_fence();
                issue_values<0, 1>(acc, codes, first);
                intfa_wgmma_commit();
                turns.pass(++turn == issuePoints);
                intfa_wgmma_wait<0>();
                intfa_fence_registers(acc);
            }
            fold_block(o, acc, factors[0], state);
            factors[0] = factors[1];
            // Then each tile's P·V with the next S behind it; the last tile's alone.
            if (groupBlocks == 1) {
                step(Constant<1>(), 0, Constant<false>());
            } else {
                step(Constant<1>(), 0, Constant<true>());
                for (int block = 1; block < groupBlocks - 1; ++block) step(Constant<0>(), block, Constant<true>());
                step(Constant<0>(), groupBlocks - 1, Constant<false>());
            }
        }
        // Tiles only later rows of the CTA see: keep the ring and the turns in step (one turn per
        // tile, so a group waiting here never holds back the turn another group needs first).
        for (int block = groupBlocks; block < blockCount; ++block) {
            waitFull(block);
            release(block);
            turns.wait();
            turns.pass(++turn == issuePoints);
        }
        while (turn < issuePoints) {
            turns.wait();
            turns.pass(++turn == issuePoints);
        }

        // ---- Epilogue: O = (O' − 2^-25 · R) · 2^32 · sV / l (0 when no key was visible), and the
        // log-sum-exp.
        const float* vScale = (const float*)p.vScale + ((intfa_i64)batch * p.kvHeads + head / (int)(p.heads / p.kvHeads)) * kHeadDim;
        unsigned char* outBase = (unsigned char*)p.out + ((intfa_i64)batch * p.oStrideBatch + (intfa_i64)head * p.oStrideHead) * 2;
#pragma unroll
        for (int r = 0; r < 2; ++r) {
            const float l = row_total(state.sum[r]);
            const float offset = kExcessOffset * row_total(state.offsetWeight[r]);
            const int row = row0 + 8 * r;
            if (row >= schedule.queryLength) continue;
            // Approximate reciprocal and log (MUFU): the IEEE routines' slow paths cost registers
            // that the D = 128 accumulators do not leave.
            const float outputScale = l > 0.0f ? __fdividef(kOutputScale, l) : 0.0f;
            store_output_row<kHeadDim>((intfa_u32*)(outBase + (intfa_i64)row * p.oStrideToken * 2), o, r, quad, vScale, offset,
                                       outputScale);
#if INTFA_WRITE_LSE
            if (quad == 0) {
                float* lse = (float*)p.lse + ((intfa_i64)batch * p.heads + head) * p.queryLength;
                lse[row] = l > 0.0f ? (state.max[r] + __log2f(l)) * (1.0f / INTFA_LOG2E) : kNegativeInfinity;
            }
#endif
        }
        ringBlock0 += blockCount;
    }
}

#else  // INTFA_LAYOUT_TEST

// Fragment-layout test (one CTA, one warpgroup, 64 query rows, 128 keys): exercises the
// kernel's own TMA maps, descriptors, wgmma forms and code packing on exact integer data.
// Its buffers: HopperLayoutTestParams (hopper_params.cuh).
extern "C" __global__ void __launch_bounds__(128, 1) INTFA_CAT(intfa_wgmma_layout_test_d, INTFA_HEAD_DIM)(const __grid_constant__ HopperLayoutTestParams params) {
    extern __shared__ unsigned char dynamicShared[];
    __shared__ __align__(8) intfa_u64 barrier;
    const intfa_u32 tiles = (intfa_smem_address(dynamicShared) + 1023) & ~1023u;
    const intfa_u32 full = intfa_smem_address(&barrier);
    if (threadIdx.x == 0) {
        intfa_mbarrier_init(full, 1);
        intfa_fence_barrier_init();
    }
    __syncthreads();
    if (threadIdx.x == 0) {
        intfa_mbarrier_arrive_expect_tx(full, kKTileBytes + kVTileBytes);
        intfa_tma_load_4d(tiles, &params.keys, full, 0, 0, 0, 0);
        intfa_tma_load_4d(tiles + kKTileBytes, &params.values, full, 0, 0, 0, 0);
    }
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, quad = lane & 3;
    const int row0 = 16 * warp + (lane >> 2);
    // The Q tile after the K and Vt tiles (a ring slot's worth is reserved for them).
    const intfa_u32 qTile = tiles + kSlotBytes;
    store_query_tile(dynamicShared + (qTile - intfa_smem_address(dynamicShared)), (const unsigned char*)params.queryCodes, kHeadDim, 64, threadIdx.x);
    intfa_fence_proxy_async();
    intfa_mbarrier_wait(full, 0);
    __syncthreads();

    const TileDescriptors descriptors = tile_descriptors(tiles);
    intfa_u64 qDescriptors[kQChunks];
    query_descriptors(qTile, qDescriptors);
    intfa_s32 s[kScoreRegisters];
    intfa_wgmma_fence();
    issue_scores(s, qDescriptors, descriptors);
    intfa_wgmma_commit();
    intfa_wgmma_wait<0>();
    intfa_fence_registers(s);
    intfa_s32* sOut = (intfa_s32*)params.scores;
    const unsigned char* pCodes = (const unsigned char*)params.probabilityCodes;
    // The codes as the probabilities code / 255, which pack_codes turns back into the codes
    // (code / 255 rounded to fp16 is within 2^-12 of it, far inside the rounding to integers).
    float prob[kScoreRegisters];
    int codeSum[2] = {0, 0};
#pragma unroll
    for (int i = 0; i < kScoreRegisters; ++i) {
        const int row = row0 + 8 * ((i >> 1) & 1), column = 8 * (i >> 2) + 2 * quad + (i & 1);
        sOut[row * kBlockN + column] = s[i];
        const int code = pCodes[row * kBlockN + column];
        prob[i] = (float)code / 255.0f;
        codeSum[(i >> 1) & 1] += code;
    }
    intfa_u32 a[kChunks][4];
    pack_codes(prob, a);
    intfa_s32 acc[kOutRegisters];
    intfa_wgmma_fence();
    issue_values<0, kChunks>(acc, a, descriptors);
    intfa_wgmma_commit();
    intfa_wgmma_wait<0>();
    intfa_fence_registers(acc);
    // acc = P·(V + 128): remove 128 · (the row's code sum).
#pragma unroll
    for (int r = 0; r < 2; ++r) {
        codeSum[r] += __shfl_xor_sync(0xFFFFFFFFu, codeSum[r], 1);
        codeSum[r] += __shfl_xor_sync(0xFFFFFFFFu, codeSum[r], 2);
    }
    intfa_s32* oOut = (intfa_s32*)params.products;
#pragma unroll
    for (int i = 0; i < kOutRegisters; ++i) {
        const int row = row0 + 8 * ((i >> 1) & 1), column = 8 * (i >> 2) + 2 * quad + (i & 1);
        oOut[row * kHeadDim + column] = acc[i] - 128 * codeSum[(i >> 1) & 1];
    }
}

#endif  // INTFA_LAYOUT_TEST
