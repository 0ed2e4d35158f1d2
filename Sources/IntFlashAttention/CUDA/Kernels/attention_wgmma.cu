// FlashAttention forward for Hopper (sm_90a) with the default `int8` scheme of
// docs/SCHEMES.md: Q·Kᵀ as s8·s8 and P·V as u8·u8 warpgroup MMAs (wgmma, V in excess-128
// form), key blocks of 64 with their own P row scale, K and Vt tiles brought in by TMA.
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
//   INTFA_LAYOUT_TEST  1: compile the fragment-layout test kernel instead (see the end)
//
// Roles. Warpgroup 0 is the producer: one thread waits for a free ring slot, then issues the
// TMA copies of the K tile (64 keys × D) and the Vt tile (D × 64 keys) and a bulk copy of the
// 64 K scales, all completing on the slot's "full" mbarrier. Two other producer warps then
// turn the Vt tile into excess-128 form (code + 128 as u8, an XOR of the sign bit) in place
// and arrive on the slot's "ready" mbarrier. Warpgroups 1… are consumers, each owning 64
// query rows, whose Q codes it stores once per tile into its own shared-memory Q tile (the A
// operand of S = Q·Kᵀ). Per key block n a consumer issues S(n) and, behind it, the
// P·V of block n−1 (two commit groups), waits for S(n) only, runs the softmax of block n
// while P·V(n−1) is still on the tensor cores, then folds P·V(n−1) into the output and
// releases block n−1's slot ("empty" mbarrier).
//
// Arithmetic (fp32; agrees with the CPU scheme to rounding, see docs/SCHEMES.md):
//   S'   = acc · ks                          (acc: int32 Q·Kᵀ, ks: K scale of the key)
//   mb   = max_j S' · qs                     (qs: Q scale · sm · log2 e, ≥ 0)
//   Pq   = rne(exp2(S' · qs − mb + log2 255)) u8 codes, packed in place as the A fragment
//   A    = Pq · (Vq + 128)                   u8·u8 wgmma: 0 ≤ A < 64·255·255 < 2^23, so the
//                                            bits of A read as an fp32 are A · 2^-149 exactly
//   O'   = O' · alpha + (w · 2^117) · bits(A)     one FFMA per element: O' = Σ w · A · 2^-32
//   R    = R · alpha + w · Σ Pq                     (the offset's weight, per row)
//   O    = (O' − 2^-25 · R) · 2^32 · sV / l        (the 128 · Σ Pq of every block removed)
#include "params.cuh"
#include "variant_name.cuh"
#include "hopper.cuh"

#if !defined(__CUDA_ARCH__) || __CUDA_ARCH__ < 900
#error "attention_wgmma.cu needs sm_90a"
#endif
#ifndef INTFA_HEAD_DIM
#error "INTFA_HEAD_DIM must be defined"
#endif
#ifndef INTFA_STAGES
#define INTFA_STAGES 4
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

// Kernel name: intfa_wgmma_int8_d<D>_<full|causal>_<f16|bf16>[_lse]_c<CONSUMERS>_s<STAGES>[_pp]
#if INTFA_PINGPONG
#define INTFA_PINGPONG_NAME _pp
#else
#define INTFA_PINGPONG_NAME
#endif
#define INTFA_KERNEL_NAME                                                                              \
    INTFA_CAT(INTFA_CAT(INTFA_CAT(INTFA_CAT(INTFA_CAT(INTFA_CAT(INTFA_CAT(INTFA_CAT(INTFA_CAT(          \
        intfa_wgmma_int8_d, INTFA_HEAD_DIM), INTFA_MASK_NAME), INTFA_OUT_NAME), INTFA_LSE_NAME), _c), \
        INTFA_CONSUMERS), _s), INTFA_STAGES), INTFA_PINGPONG_NAME)

// The kernel's single parameter: tensor maps first (64-byte aligned, read by TMA from the
// parameter space), then the parameter block every attention kernel shares.
struct HopperAttentionParams {
    // Kq [B, Hkv, Nk, D] as the 4-D tensor {D, Nk, Hkv, B}; box {D, 64, 1, 1}; swizzle of
    // D bytes (128 B for D = 128, 64 B for D = 64).
    IntfaTensorMap keys;     //   0
    // Vt [B, Hkv, D, NkPad] as {NkPad, D, Hkv, B}; box {64, D, 1, 1}; 64-byte swizzle.
    IntfaTensorMap values;   // 128
    AttentionParams attention;  // 256
};

namespace {

constexpr int kHeadDim = INTFA_HEAD_DIM;
constexpr int kBlockN = 64;  // the scheme's key block: one P row scale per 64 keys
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

// One ring slot: K tile, Vt tile, the 64 K scales; aligned to the 128-byte swizzle repeat.
constexpr int kKTileBytes = kBlockN * kHeadDim;
constexpr int kVTileBytes = kHeadDim * kBlockN;
constexpr int kScaleBytes = kBlockN * 4;
constexpr int kSlotBytes = (kKTileBytes + kVTileBytes + kScaleBytes + 1023) / 1024 * 1024;
constexpr intfa_u32 kSlotTransactionBytes = kKTileBytes + kVTileBytes + kScaleBytes;
// Each consumer's Q tile (64 rows × D, K-major, swizzled like the K tile), after the ring.
constexpr int kQTileBytes = 64 * kHeadDim;
// Dynamic shared memory: the ring, the Q tiles, and 1 KiB to align the start to 1024 bytes.
constexpr int kSharedBytes = kStages * kSlotBytes + kConsumers * kQTileBytes + 1024;
#ifdef INTFA_SMEM_BYTES
static_assert(INTFA_SMEM_BYTES == kSharedBytes, "the host's shared-memory size disagrees with the kernel's");
#endif

// K rows are D bytes: swizzle of that width, 8-row groups of 8·D bytes. Vt rows are 64 bytes.
constexpr int kKSwizzle = kHeadDim == 128 ? kIntfaSwizzle128B : kIntfaSwizzle64B;
constexpr intfa_u32 kKGroupBytes = 8 * kHeadDim;
constexpr int kVSwizzle = kIntfaSwizzle64B;
constexpr intfa_u32 kVGroupBytes = 8 * kBlockN;

constexpr int kQChunks = kHeadDim / 32;  // k32 steps of Q·Kᵀ
constexpr int kOutRegisters = kHeadDim / 2;
constexpr float kRound = 12582912.0f;     // 1.5·2^23: adding it rounds to an integer
// The fold reads the int32 P·V accumulator A (0 ≤ A < 2^23) as the bits of a subnormal fp32,
// A · 2^-149, which an FFMA multiplies exactly: w · 2^117 · that = w · A · 2^-32, so O' holds
// the output in units of 2^32 (w ≤ 2^8/255 keeps w · 2^117 finite).
constexpr float kFoldWeightScale = 1.6615349947311448e35f;  // 2^117
constexpr float kOutputScale = 4294967296.0f;               // 2^32
constexpr float kExcessOffset = 2.98023223876953125e-8f;    // 128 · 2^-32 = 2^-25
// Vt codes in excess-128 form: the XOR of each byte's sign bit adds 128 to an s8 code.
constexpr intfa_u32 kExcess128 = 0x80808080u;
// Producer warps 2 and 3 convert each Vt tile (16 bytes per thread per step).
constexpr int kConverterThreads = 64;
constexpr int kConverterSteps = kVTileBytes / 16 / kConverterThreads;
static_assert(kVTileBytes % (16 * kConverterThreads) == 0, "Vt tile split over the converter threads");
constexpr float kLog2Of255 = 7.99435343685885793f;
constexpr int kExactBelowKeys = 512;
// The online softmax's reference maximum trails the true one by up to this much (log2
// units): the P codes take their block's own maximum, so the reference only scales the fp32
// state, and w = exp2(mb − m)/255 ≤ 2^8/255 keeps it far from overflow.
constexpr float kRescaleSlack = 8.0f;
// Named barriers: 1…kConsumers take turns (TurnTaking), kQTileBarrier + group guards a
// consumer's Q tile.
constexpr int kQTileBarrier = 4;
// Folds between removals of the excess-128 offset from O' (fold_block).
constexpr int kRebaseBlocks = 8;

}  // namespace

// Descriptors of every k32 step of one slot's K and Vt tiles (each step advances the start
// address by 32 bytes). They are computed, and pinned in registers, before the wgmma.fence:
// an ordinary instruction that defines a wgmma operand between the fence and the MMAs makes
// ptxas serialize every wgmma of the kernel (warning C7513).
struct TileDescriptors {
    intfa_u64 keys[kQChunks];
    intfa_u64 values[2];
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
    for (int c = 0; c < 2; ++c) {
        d.values[c] = values + 2 * c;
        asm volatile("" : "+l"(d.values[c]));
    }
    return d;
}

// S = Q·Kᵀ for one key block: D/32 k-steps, the first overwriting the accumulator.
static INTFA_DEVICE void issue_scores(intfa_s32 (&s)[32], const intfa_u64 (&q)[kQChunks], const TileDescriptors& d) {
    intfa_wgmma_m64n64k32_s8s8_shared<0>(s, q[0], d.keys[0]);
#pragma unroll
    for (int c = 1; c < kQChunks; ++c) intfa_wgmma_m64n64k32_s8s8_shared<1>(s, q[c], d.keys[c]);
}

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
        const int swizzled = kHeadDim == 128 ? chunk ^ (row & 7) : chunk ^ ((row >> 1) & 3);
        *(uint4*)(tile + row * kHeadDim + 16 * swizzled) = value;
    }
}

// Descriptors of the k32 steps of a Q tile (pinned in registers, as for TileDescriptors).
static INTFA_DEVICE void query_descriptors(intfa_u32 tile, intfa_u64 (&q)[kQChunks]) {
    const intfa_u64 base = intfa_matrix_descriptor(tile, kKGroupBytes, kKSwizzle);
#pragma unroll
    for (int c = 0; c < kQChunks; ++c) {
        q[c] = base + 2 * c;
        asm volatile("" : "+l"(q[c]));
    }
}

// acc = P·(V + 128) for one key block (64 keys: two k-steps) from the excess-128 Vt tile,
// overwriting the accumulator.
static INTFA_DEVICE void issue_values(intfa_s32 (&acc)[kOutRegisters], const intfa_u32 (&p)[2][4], const TileDescriptors& d) {
#if INTFA_HEAD_DIM == 128
    intfa_wgmma_m64n128k32_u8u8<0>(acc, p[0], d.values[0]);
    intfa_wgmma_m64n128k32_u8u8<1>(acc, p[1], d.values[1]);
#else
    intfa_wgmma_m64n64k32_u8u8<0>(acc, p[0], d.values[0]);
    intfa_wgmma_m64n64k32_u8u8<1>(acc, p[1], d.values[1]);
#endif
}

// Turns the slot's Vt tile (s8 codes, as TMA wrote them) into excess-128 form in place, as
// one of the kConverterThreads converter threads.
static INTFA_DEVICE void convert_values_tile(unsigned char* vTile, int converter) {
    uint4* words = (uint4*)vTile;
#pragma unroll 1
    for (int step = 0; step < kConverterSteps; ++step) {
        uint4 w = words[step * kConverterThreads + converter];
        w.x ^= kExcess128, w.y ^= kExcess128, w.z ^= kExcess128, w.w ^= kExcess128;
        words[step * kConverterThreads + converter] = w;
    }
}

#if !INTFA_LAYOUT_TEST

// Online-softmax state of the thread's two rows (g and g + 8 of its warp's 16).
struct RowState {
    float max[2];         // reference maximum m (log2 domain, at most kRescaleSlack below the
                          // true running maximum), −∞ before any visible key
    float sum[2];         // this thread's share of l (its 16 keys of each block)
    float offsetWeight[2];// this thread's share of R: l's growth since the last rebase, the
                          // weight of the excess-128 offset left in O'
};

// The softmax of one key block: scores → u8 codes (as P·V's A fragment), the new row
// maxima, and the factors alpha (rescale of the state) and w (weight of this block's codes)
// that fold_block applies once the block's P·V is done.
template <bool Masked>
static INTFA_DEVICE void block_softmax(
    const intfa_s32 (&s)[32], const float2 (&keyScales)[8], const float (&qs)[2], RowState& state,
    intfa_u32 (&p)[2][4], float (&alpha)[2], float (&weight)[2],
    int key0, int row0, int keyLength, int causalShift, int quad) {
    // Unmasked blocks take the fast form: S' = acc · ks, the row scale and ×255 folded into
    // the exponent's FFMA. Masked blocks (the causal diagonal, the Nk tail) follow the CPU's
    // order exactly, S = (acc · qs) · ks and code = rne(exp2(S − mb) · 255): rows that see
    // only a few keys live there, and for them one code rounded the other way would move
    // the log-sum-exp by up to 1/255 (all of their keys carry most of l).
    float sv[32];
#pragma unroll
    for (int j = 0; j < 8; ++j) {
        const float2 ks = keyScales[j];
#pragma unroll
        for (int e = 0; e < 4; ++e) {
            const float k = (e & 1) ? ks.y : ks.x;
            // I2FP is exact here (|acc| < 2^24) and one instruction. (The bit trick
            // (acc + 1.5·2^23) · ks − round(1.5·2^23 · ks) costs the same but carries the
            // rounding of the constant, about one unit of acc, into every score of a key.)
            const float score = __int2float_rn(s[4 * j + e]);
            sv[4 * j + e] = Masked ? __fmul_rn(__fmul_rn(score, qs[e >> 1]), k) : score * k;
        }
    }
    // Visibility of key (j, e) for row r: key < Nk and, when causal, key ≤ row + shift.
    auto visible = [&](int j, int e) {
        const int key = key0 + 8 * j + 2 * quad + (e & 1);
        const int row = row0 + 8 * (e >> 1);
        return key < keyLength && (!INTFA_CAUSAL || key <= row + causalShift);
    };
    if (Masked) {
#pragma unroll
        for (int j = 0; j < 8; ++j) {
#pragma unroll
            for (int e = 0; e < 4; ++e) {
                if (!visible(j, e)) sv[4 * j + e] = kNegativeInfinity;
            }
        }
    }
    // Row maxima as a tree (depth 4, not a chain of 16 dependent FMNMX).
    float pairMax[2][8];
#pragma unroll
    for (int j = 0; j < 8; ++j) {
        pairMax[0][j] = fmaxf(sv[4 * j], sv[4 * j + 1]);
        pairMax[1][j] = fmaxf(sv[4 * j + 2], sv[4 * j + 3]);
    }
#pragma unroll
    for (int width = 4; width >= 1; width /= 2) {
#pragma unroll
        for (int j = 0; j < width; ++j) {
            pairMax[0][j] = fmaxf(pairMax[0][j], pairMax[0][j + width]);
            pairMax[1][j] = fmaxf(pairMax[1][j], pairMax[1][j + width]);
        }
    }
    float blockMax[2] = {pairMax[0][0], pairMax[1][0]};
    float mb[2], bias[2];
#pragma unroll
    for (int r = 0; r < 2; ++r) {
        blockMax[r] = fmaxf(blockMax[r], __shfl_xor_sync(0xFFFFFFFFu, blockMax[r], 1));
        blockMax[r] = fmaxf(blockMax[r], __shfl_xor_sync(0xFFFFFFFFu, blockMax[r], 2));
        // A row with no visible key in this block leaves its state unchanged.
        const bool empty = Masked && blockMax[r] == kNegativeInfinity;
        mb[r] = empty ? 0.0f : (Masked ? blockMax[r] : blockMax[r] * qs[r]);
        // The reference moves only when the block maximum passes it by more than the slack,
        // so most blocks leave alpha = 1 and fold_block skips the rescale of O'.
        const float newMax = (empty || mb[r] <= state.max[r] + kRescaleSlack) ? state.max[r] : mb[r];
        alpha[r] = empty ? 1.0f : intfa_exp2(state.max[r] - newMax);
        weight[r] = empty ? 0.0f : intfa_exp2(mb[r] - newMax) * (1.0f / 255.0f);
        bias[r] = kLog2Of255 - mb[r];
        state.max[r] = newMax;
    }
    intfa_u32 code[32];
#pragma unroll
    for (int j = 0; j < 8; ++j) {
#pragma unroll
        for (int e = 0; e < 4; ++e) {
            const int r = e >> 1;
            // Adding 1.5·2^23 rounds to an integer (ties to even) in the low mantissa byte;
            // masked keys have S = −∞, so exp2 gives 0.
            const float scaled = Masked ? __fmul_rn(intfa_exp2(__fsub_rn(sv[4 * j + e], mb[r])), 255.0f)
                                        : intfa_exp2(fmaf(sv[4 * j + e], qs[r], bias[r]));
            code[4 * j + e] = __float_as_uint(__fadd_rn(scaled, kRound));
        }
    }
    intfa_pack_code_fragment(code, p);
}

// Folds one finished key block into the state, once its P·V has completed: the row sums of
// its codes into l and R, and O' = O' · alpha + w · 2^117 · bits(acc) (one FFMA per element,
// plus a multiply when some row of the warp has a new maximum).
// Reading the codes here, after the wait, also keeps ptxas from giving the next block's codes
// the registers that the in-flight P·V still reads (which would serialize every wgmma).
static INTFA_DEVICE void fold_block(float (&o)[kOutRegisters], const intfa_s32 (&acc)[kOutRegisters],
                                    const intfa_u32 (&p)[2][4], const float (&alpha)[2], const float (&weight)[2],
                                    RowState& state) {
    intfa_u32 codeSum[2] = {0u, 0u};
#pragma unroll
    for (int c = 0; c < 2; ++c) {
        codeSum[0] = __dp4a(p[c][0], 0x01010101u, codeSum[0]);
        codeSum[0] = __dp4a(p[c][2], 0x01010101u, codeSum[0]);
        codeSum[1] = __dp4a(p[c][1], 0x01010101u, codeSum[1]);
        codeSum[1] = __dp4a(p[c][3], 0x01010101u, codeSum[1]);
    }
    float foldWeight[2];
#pragma unroll
    for (int r = 0; r < 2; ++r) {
        const float added = weight[r] * (float)codeSum[r];
        state.sum[r] = fmaf(state.sum[r], alpha[r], added);
        state.offsetWeight[r] = fmaf(state.offsetWeight[r], alpha[r], added);
        foldWeight[r] = weight[r] * kFoldWeightScale;
    }
    if (!__all_sync(0xFFFFFFFFu, alpha[0] == 1.0f && alpha[1] == 1.0f)) {
#pragma unroll
        for (int i = 0; i < kOutRegisters; ++i) o[i] *= alpha[(i >> 1) & 1];
    }
#pragma unroll
    for (int i = 0; i < kOutRegisters; ++i) o[i] = fmaf(foldWeight[(i >> 1) & 1], __int_as_float(acc[i]), o[i]);
}

// R for the whole row: the sum of the shares of the row's four threads.
static INTFA_DEVICE float row_total(float share) {
    share += __shfl_xor_sync(0xFFFFFFFFu, share, 1);
    return share + __shfl_xor_sync(0xFFFFFFFFu, share, 2);
}

// Removes the excess-128 offset that the folds collected in O' (O' −= 2^-25 · R, R = 0).
// Left in, it grows with l and its fp32 rounding with it: a relative error linear in the
// number of blocks. Done after every kRebaseBlocks folds, for one FFMA per element per
// kRebaseBlocks blocks, outside the loop body.
static INTFA_DEVICE void rebase_output(float (&o)[kOutRegisters], RowState& state) {
    float offset[2];
#pragma unroll
    for (int r = 0; r < 2; ++r) offset[r] = -kExcessOffset * row_total(state.offsetWeight[r]);
#pragma unroll
    for (int i = 0; i < kOutRegisters; ++i) o[i] += offset[(i >> 1) & 1];
    state.offsetWeight[0] = state.offsetWeight[1] = 0.0f;
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

// The CTA's work: tiles, and the key blocks each tile reads. Each role builds its own copy
// after its register budget changes, so that nothing stays live across setmaxnreg (ptxas
// spilled such values).
struct Schedule {
    int heads, queryLength, keyLength, queryBlocks, keyBlocks;
    int causalShift;  // row i sees key j iff j <= i + shift
    intfa_i64 tiles;
    INTFA_DEVICE explicit Schedule(const AttentionParams& p)
        : heads((int)p.heads), queryLength((int)p.queryLength), keyLength((int)p.keyLength),
          queryBlocks((queryLength + kBlockM - 1) / kBlockM), keyBlocks((keyLength + kBlockN - 1) / kBlockN),
          causalShift(keyLength - queryLength), tiles((intfa_i64)queryBlocks * heads * p.batch) {}
    // Key blocks that rows through lastRow need (all of them without a mask).
    INTFA_DEVICE int blocksThrough(int lastRow) const {
        if (!INTFA_CAUSAL) return keyBlocks;
        const int lastKey = lastRow + causalShift;
        return lastKey < 0 ? 0 : min(lastKey / kBlockN + 1, keyBlocks);
    }
    // Key blocks of the tile with query block `queryBlock`.
    INTFA_DEVICE int tileBlocks(int queryBlock) const {
        return blocksThrough(min((queryBlock + 1) * kBlockM, queryLength) - 1);
    }
};

// Persistent: the grid is at most one CTA per SM, and each CTA takes tiles blockIdx.x,
// blockIdx.x + gridDim.x, … . The producer runs ahead into the next tile while the consumers
// finish the epilogue of this one; the ring's slots and phases continue across tiles.
extern "C" __global__ void __launch_bounds__(kThreads, 1) INTFA_KERNEL_NAME(const __grid_constant__ HopperAttentionParams params) {
    extern __shared__ unsigned char dynamicShared[];
    __shared__ __align__(8) intfa_u64 fullBarriers[kStages];
    __shared__ __align__(8) intfa_u64 emptyBarriers[kStages];
    __shared__ __align__(8) intfa_u64 readyBarriers[kStages];
    const AttentionParams& p = params.attention;

    const intfa_u32 ring = (intfa_smem_address(dynamicShared) + 1023) & ~1023u;
    const intfa_u32 full0 = intfa_smem_address(fullBarriers);
    const intfa_u32 empty0 = intfa_smem_address(emptyBarriers);
    const intfa_u32 ready0 = intfa_smem_address(readyBarriers);

    // Read from lane 0 so the compiler knows it is warp-uniform: values derived from it (the
    // loop bounds, the ring addresses) then live in uniform registers, and the wgmma
    // descriptors need no per-thread moves between the MMAs (which would serialize them).
    const int warpgroup = __shfl_sync(0xFFFFFFFFu, threadIdx.x >> 7, 0);

    if (threadIdx.x == 0) {
        for (int s = 0; s < kStages; ++s) {
            intfa_mbarrier_init(full0 + 8 * s, 1);
            intfa_mbarrier_init(empty0 + 8 * s, 4 * kConsumers);  // one arrival per consumer warp
            intfa_mbarrier_init(ready0 + 8 * s, kConverterThreads);
        }
        intfa_fence_barrier_init();
    }
    __syncthreads();

    if (warpgroup == 0) {
        // ---- Producer.
        intfa_registers_decrease<kProducerRegisters>();
        const Schedule schedule(p);
        // The role tests are warp-uniform and the other threads leave before each role's loop,
        // so ptxas keeps the loops' values in uniform registers (it spilled them under the
        // producer's budget when the roles were branches of one if/else).
        const int producerWarp = __shfl_sync(0xFFFFFFFFu, threadIdx.x >> 5, 0);
        if (producerWarp >= 4 - kConverterThreads / 32) {
            // Warps 2 and 3: each loaded Vt tile into excess-128 form, in ring order.
            const int converter = threadIdx.x - (128 - kConverterThreads);
            int ringBlock = 0;
            for (intfa_i64 index = blockIdx.x; index < schedule.tiles; index += gridDim.x) {
                const int blockCount = schedule.tileBlocks(tile_at(index, schedule.queryBlocks, schedule.heads).queryBlock);
                for (int block = 0; block < blockCount; ++block, ++ringBlock) {
                    const int slot = ringBlock % kStages;
                    intfa_mbarrier_wait(full0 + 8 * slot, (ringBlock / kStages) & 1);
                    convert_values_tile(dynamicShared + (ring - intfa_smem_address(dynamicShared)) + slot * kSlotBytes + kKTileBytes, converter);
                    // The wgmma that reads the tile is an async-proxy access.
                    intfa_fence_proxy_async();
                    intfa_mbarrier_arrive(ready0 + 8 * slot);
                }
            }
            return;
        }
        if (threadIdx.x != 0) return;
        // Thread 0: the TMA copies.
        intfa_prefetch_tensor_map(&params.keys);
        intfa_prefetch_tensor_map(&params.values);
        int ringBlock = 0;  // blocks loaded so far by this CTA: slot and phase
        for (intfa_i64 index = blockIdx.x; index < schedule.tiles; index += gridDim.x) {
            const Tile tile = tile_at(index, schedule.queryBlocks, schedule.heads);
            const int kvHead = tile.head / (int)(p.heads / p.kvHeads);
            const float* kScales = (const float*)p.kScale + ((intfa_i64)tile.batch * p.kvHeads + kvHead) * p.keyLengthPadded;
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
                intfa_bulk_load(kTile + kKTileBytes + kVTileBytes, kScales + block * kBlockN, kScaleBytes, full);
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
    int ringBlock0 = 0;  // ring index of the tile's first key block
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
            const unsigned char* qBase = (const unsigned char*)p.q + (intfa_i64)batch * p.qStrideBatch + (intfa_i64)head * p.qStrideHead;
            intfa_named_sync(kQTileBarrier + group, 128);
            store_query_tile(dynamicShared + (qTile - intfa_smem_address(dynamicShared)), qBase + (intfa_i64)groupRow0 * p.qStrideToken,
                             p.qStrideToken, schedule.queryLength - groupRow0, thread);
            intfa_fence_proxy_async();  // read by wgmma, an async-proxy access
            intfa_named_sync(kQTileBarrier + group, 128);
            const float* qScale = (const float*)p.qScale + ((intfa_i64)batch * p.heads + head) * p.queryLength;
#pragma unroll
            for (int r = 0; r < 2; ++r) {
                const int row = row0 + 8 * r;
                qs[r] = row < schedule.queryLength ? qScale[row] : 0.0f;
            }
        }

        // Blocks this warpgroup reads; the rest of the CTA's blocks it only releases.
        const int groupBlocks = groupRow0 < schedule.queryLength ? schedule.blocksThrough(min(groupRow0 + 64, schedule.queryLength) - 1) : 0;
        // The first block that takes block_softmax's exact (masked) form: past Nk, or (causal)
        // right of the group's first row. Groups whose first row sees fewer than 512 keys take it
        // everywhere: for such short rows one code rounded differently from the CPU's moves the
        // log-sum-exp by up to 1e-3.
        const int firstRowKeys = INTFA_CAUSAL ? max(min(schedule.keyLength, groupRow0 + schedule.causalShift + 1), 0) : schedule.keyLength;
        const int firstMasked = firstRowKeys < kExactBelowKeys ? 0 : firstRowKeys / kBlockN;

        RowState state;
        float o[kOutRegisters];
#pragma unroll
        for (int r = 0; r < 2; ++r) state.max[r] = kNegativeInfinity, state.sum[r] = 0.0f, state.offsetWeight[r] = 0.0f;
#pragma unroll
        for (int i = 0; i < kOutRegisters; ++i) o[i] = 0.0f;

        // Ring slot and phase of the tile's key block `block` (unsigned: a power-of-two ring
        // then needs a mask and a shift, not signed division).
        auto slotOf = [&](int block) { return ((unsigned)ringBlock0 + (unsigned)block) % kStages; };
        auto phaseOf = [&](int block) { return (((unsigned)ringBlock0 + (unsigned)block) / kStages) & 1; };
        auto slotAddress = [&](int block) { return ring + slotOf(block) * kSlotBytes; };
        auto waitFull = [&](int block) { intfa_mbarrier_wait(full0 + 8 * slotOf(block), phaseOf(block)); };
        // The block's Vt tile is in excess-128 form.
        auto waitReady = [&](int block) { intfa_mbarrier_wait(ready0 + 8 * slotOf(block), phaseOf(block)); };
        auto release = [&](int block) {
            if (lane == 0) intfa_mbarrier_arrive(empty0 + 8 * slotOf(block));
        };
        // The K scales of the thread's 16 keys of a block, read before its S is waited for.
        auto loadKeyScales = [&](int block, float2 (&ks)[8]) {
            const float* keyScales = (const float*)(dynamicShared + (slotAddress(block) - intfa_smem_address(dynamicShared)) + kKTileBytes + kVTileBytes);
#pragma unroll
            for (int j = 0; j < 8; ++j) ks[j] = *(const float2*)(keyScales + 8 * j + 2 * quad);
        };
        auto softmax = [&](const intfa_s32 (&s)[32], const float2 (&keyScales)[8], int block, intfa_u32 (&pOut)[2][4], float (&alpha)[2], float (&weight)[2]) {
            if (block >= firstMasked) {
                block_softmax<true>(s, keyScales, qs, state, pOut, alpha, weight, block * kBlockN, row0, schedule.keyLength, schedule.causalShift, quad);
            } else {
                block_softmax<false>(s, keyScales, qs, state, pOut, alpha, weight, block * kBlockN, row0, schedule.keyLength, schedule.causalShift, quad);
            }
        };

        intfa_u64 qDescriptors[kQChunks];
        query_descriptors(qTile, qDescriptors);
        turns.start();
        intfa_s32 s[32];
        intfa_s32 acc[kOutRegisters];
        intfa_u32 pCurrent[2][4];
        float alphaCurrent[2], weightCurrent[2];
        const int issuePoints = blockCount + 1;  // equal for every consumer, as turn-taking needs
        int turn = 0;
        if (groupBlocks > 0) {
            waitFull(0);
            float2 keyScales[8];
            loadKeyScales(0, keyScales);
            const TileDescriptors first = tile_descriptors(slotAddress(0));
            turns.wait();
            intfa_wgmma_fence();
            issue_scores(s, qDescriptors, first);
            intfa_wgmma_commit();
            turns.pass(++turn == issuePoints);
            intfa_wgmma_wait<0>();
            intfa_fence_registers(s);
            softmax(s, keyScales, 0, pCurrent, alphaCurrent, weightCurrent);

            // Runs of kRebaseBlocks folds, with the offset removed between runs: a rebase branch
            // inside the loop body cost 3–5% on the H200 (ptxas schedules the body around it),
            // this form −2% to +2.4%.
            for (int block = 1; block < groupBlocks;) {
                const int runEnd = min(groupBlocks, block + kRebaseBlocks);
                // Two copies of the body take turns holding the current and next codes, which
                // removes the register moves between iterations (407 against 435 SASS
                // instructions per unmasked iteration at D = 128).
#pragma unroll 2
                for (; block < runEnd; ++block) {
                    waitFull(block);
                    loadKeyScales(block, keyScales);
                    waitReady(block - 1);
                    const TileDescriptors current = tile_descriptors(slotAddress(block));
                    const TileDescriptors previous = tile_descriptors(slotAddress(block - 1));
                    turns.wait();
                    intfa_wgmma_fence();
                    issue_scores(s, qDescriptors, current);
                    intfa_wgmma_commit();
                    issue_values(acc, pCurrent, previous);
                    intfa_wgmma_commit();
                    turns.pass(++turn == issuePoints);
                    intfa_wgmma_wait<1>();
                    intfa_fence_registers(s);
                    intfa_u32 pNext[2][4];
                    float alphaNext[2], weightNext[2];
                    softmax(s, keyScales, block, pNext, alphaNext, weightNext);
                    intfa_wgmma_wait<0>();
                    intfa_fence_registers(acc);
                    release(block - 1);
                    // Folds block − 1.
                    fold_block(o, acc, pCurrent, alphaCurrent, weightCurrent, state);
#pragma unroll
                    for (int c = 0; c < 2; ++c) {
#pragma unroll
                        for (int i = 0; i < 4; ++i) pCurrent[c][i] = pNext[c][i];
                    }
#pragma unroll
                    for (int r = 0; r < 2; ++r) alphaCurrent[r] = alphaNext[r], weightCurrent[r] = weightNext[r];
                }
                rebase_output(o, state);
            }

            waitReady(groupBlocks - 1);
            const TileDescriptors last = tile_descriptors(slotAddress(groupBlocks - 1));
            turns.wait();
            intfa_wgmma_fence();
            issue_values(acc, pCurrent, last);
            intfa_wgmma_commit();
            turns.pass(++turn == issuePoints);
            intfa_wgmma_wait<0>();
            intfa_fence_registers(acc);
            release(groupBlocks - 1);
            fold_block(o, acc, pCurrent, alphaCurrent, weightCurrent, state);  // the epilogue removes the rest
        }
        // Blocks only later rows of the CTA see: keep the ring and the turns in step (one turn per
        // block, so a group waiting here never holds back the turn another group needs first).
        for (int block = groupBlocks; block < blockCount; ++block) {
            waitReady(block);  // the converters are done with the slot too
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
        const int headOut = head;
        const float* vScale = (const float*)p.vScale + ((intfa_i64)batch * p.kvHeads + headOut / (int)(p.heads / p.kvHeads)) * kHeadDim;
        unsigned char* outBase = (unsigned char*)p.out + ((intfa_i64)batch * p.oStrideBatch + (intfa_i64)headOut * p.oStrideHead) * 2;
#pragma unroll
        for (int r = 0; r < 2; ++r) {
            const float l = row_total(state.sum[r]);
            const float offset = kExcessOffset * row_total(state.offsetWeight[r]);
            const int row = row0 + 8 * r;
            if (row >= schedule.queryLength) continue;
            // Approximate reciprocal and log (MUFU): the IEEE routines' slow paths cost registers
            // that the D = 128 accumulators do not leave (ptxas spilled with them).
            const float outputScale = l > 0.0f ? __fdividef(kOutputScale, l) : 0.0f;
            intfa_u32* outRow = (intfa_u32*)(outBase + (intfa_i64)row * p.oStrideToken * 2);
#pragma unroll
            for (int n = 0; n < kHeadDim / 8; ++n) {
                const int channel = 8 * n + 2 * quad;
                const float2 sv = *(const float2*)(vScale + channel);
                const float value0 = (o[4 * n + 2 * r] - offset) * sv.x * outputScale;
                const float value1 = (o[4 * n + 2 * r + 1] - offset) * sv.y * outputScale;
#if INTFA_OUT_BF16
                outRow[channel / 2] = intfa_pack_bf162(value0, value1);
#else
                outRow[channel / 2] = intfa_pack_half2(value0, value1);
#endif
            }
#if INTFA_WRITE_LSE
            if (quad == 0) {
                float* lse = (float*)p.lse + ((intfa_i64)batch * p.heads + headOut) * p.queryLength;
                lse[row] = l > 0.0f ? (state.max[r] + __log2f(l)) * (1.0f / INTFA_LOG2E) : kNegativeInfinity;
            }
#endif
        }
        ringBlock0 += blockCount;
    }
}

#else  // INTFA_LAYOUT_TEST

// Fragment-layout test (one CTA, one warpgroup, 64 query rows, 64 keys): exercises the
// kernel's own TMA maps, descriptors, excess-128 conversion, wgmma forms and P packing on
// exact integer data.
//   in:  attention.q      Q codes s8 [64, D]
//        keys, values     the tensor maps of K codes [64, D] and the permuted Vt [D, 64]
//        attention.kScale P codes u8 [64, 64] (row, key), in natural key order
//   out: attention.out    S = Q·Kᵀ as int32 [64, 64]
//        attention.lse    O = P·V as int32 [64, D]
extern "C" __global__ void __launch_bounds__(128, 1) INTFA_CAT(intfa_wgmma_layout_test_d, INTFA_HEAD_DIM)(const __grid_constant__ HopperAttentionParams params) {
    extern __shared__ unsigned char dynamicShared[];
    __shared__ __align__(8) intfa_u64 barrier;
    const AttentionParams& p = params.attention;
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
    store_query_tile(dynamicShared + (qTile - intfa_smem_address(dynamicShared)), (const unsigned char*)p.q, kHeadDim, 64, threadIdx.x);
    intfa_fence_proxy_async();
    intfa_mbarrier_wait(full, 0);
    if (threadIdx.x >= 128 - kConverterThreads) {
        convert_values_tile(dynamicShared + (tiles - intfa_smem_address(dynamicShared)) + kKTileBytes, threadIdx.x - (128 - kConverterThreads));
        intfa_fence_proxy_async();
    }
    __syncthreads();

    const TileDescriptors descriptors = tile_descriptors(tiles);
    intfa_u64 qDescriptors[kQChunks];
    query_descriptors(qTile, qDescriptors);
    intfa_s32 s[32];
    intfa_wgmma_fence();
    issue_scores(s, qDescriptors, descriptors);
    intfa_wgmma_commit();
    intfa_wgmma_wait<0>();
    intfa_fence_registers(s);
    intfa_s32* sOut = (intfa_s32*)p.out;
    const unsigned char* pCodes = (const unsigned char*)p.kScale;
    intfa_u32 code[32];
#pragma unroll
    for (int i = 0; i < 32; ++i) {
        const int row = row0 + 8 * ((i >> 1) & 1), column = 8 * (i >> 2) + 2 * quad + (i & 1);
        sOut[row * 64 + column] = s[i];
        code[i] = pCodes[row * 64 + column];
    }
    intfa_u32 a[2][4];
    intfa_pack_code_fragment(code, a);
    intfa_s32 acc[kOutRegisters];
    intfa_wgmma_fence();
    issue_values(acc, a, descriptors);
    intfa_wgmma_commit();
    intfa_wgmma_wait<0>();
    intfa_fence_registers(acc);
    // acc = P·(V + 128): remove 128 · (the row's code sum).
    int codeSum[2] = {0, 0};
#pragma unroll
    for (int i = 0; i < 32; ++i) codeSum[(i >> 1) & 1] += (int)code[i];
#pragma unroll
    for (int r = 0; r < 2; ++r) {
        codeSum[r] += __shfl_xor_sync(0xFFFFFFFFu, codeSum[r], 1);
        codeSum[r] += __shfl_xor_sync(0xFFFFFFFFu, codeSum[r], 2);
    }
    intfa_s32* oOut = (intfa_s32*)p.lse;
#pragma unroll
    for (int i = 0; i < kOutRegisters; ++i) {
        const int row = row0 + 8 * ((i >> 1) & 1), column = 8 * (i >> 2) + 2 * quad + (i & 1);
        oOut[row * kHeadDim + column] = acc[i] - 128 * codeSum[(i >> 1) & 1];
    }
}

#endif  // INTFA_LAYOUT_TEST
