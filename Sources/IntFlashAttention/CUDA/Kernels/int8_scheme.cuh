// The `int8` scheme's softmax on one key tile, shared by the Hopper (wgmma) and mma.sync
// kernels (docs/SCHEMES.md): a warp's 16 rows × 128 keys of S are, per thread, the same 64
// accumulator positions in both (n-tile j, element e at 4j + e: row g + 8·(e >> 1), key
// 8j + 2t + (e & 1)), so one function turns them into the P·V A fragments and the rows'
// state updates for either.
//
// Needs INTFA_CAUSAL and INTFA_OUT_BF16 (variant_name.cuh) and common.cuh.
#pragma once
#include "common.cuh"

// A compile-time value passed to generic lambdas.
template <auto V>
struct Constant {
    static constexpr auto value = V;
};

namespace int8_scheme {

constexpr int kTileKeys = 128;               // keys per tile
constexpr int kChunks = kTileKeys / 32;      // 32-key chunks: P·V k-steps, K group spans
constexpr int kScoreRegisters = kTileKeys / 2;  // a thread's S values of a tile
constexpr int kFirstBlockKeys = 32;          // the first P block: keys 0…31, where sinks live
static_assert(kFirstBlockKeys == 32, "the first P block is one P·V k-step");
// The online softmax's reference maximum trails the true one by up to this much (log2
// units): the P codes take their block's own reference, so the state's only scales the fp32
// state, and w = exp2(t − m)/255 ≤ 2^8/255 keeps it far from overflow.
constexpr float kRescaleSlack = 8.0f;
// P·V runs as u8·u8 on Vt in excess-128 form: A = Pq · (Vq + 128), 0 ≤ A < 128·255·255 < 2^23.
// The fold reads A's bits as a subnormal fp32, A · 2^-149, which an FFMA multiplies exactly:
// w · 2^117 · that = w · A · 2^-32, so O' holds the output in units of 2^32 (w ≤ 2^8/255 keeps
// w · 2^117 finite), and the offset 128 · Σ Pq of each block is removed with the rows' code
// sums R: O = (O' − 2^-25 · R) · 2^32.
constexpr float kFoldWeightScale = 1.6615349947311448e35f;  // 2^117
constexpr float kOutputScale = 4294967296.0f;               // 2^32
constexpr float kExcessOffset = 2.98023223876953125e-8f;    // 128 · 2^-32 = 2^-25
static_assert(kTileKeys * 255 * 255 < (1 << 23), "a tile's P·(V + 128) must stay below 2^23");
// Folds between removals of the offset from O' (rebase_output).
constexpr int kRebaseTiles = 8;


// The P A fragment of a tile from the probabilities at the 64 positions of the S fragment.
INTFA_DEVICE void pack_codes(const float (&p)[kScoreRegisters], intfa_u32 (&a)[kChunks][4]) {
#pragma unroll
    for (int c = 0; c < kChunks; ++c) {
        float chunk[16];
#pragma unroll
        for (int i = 0; i < 16; ++i) chunk[i] = p[16 * c + i];
        intfa_pack_code_chunk(chunk, a[c]);
    }
}

// Online-softmax state of the thread's two rows (g and g + 8 of its warp's 16).
struct RowState {
    float max[2];          // reference maximum m (log2 domain, at most kRescaleSlack below
                           // the true running maximum), −∞ before any visible key
    float sum[2];          // this thread's share of l (its keys of each block)
    float offsetWeight[2]; // this thread's share of R: l's growth through the folded blocks
                           // since the last rebase, the weight of the excess-128 offset left
                           // in O' by the u8·u8 P·V
};

// How one P block changes a row's state, applied to the output once its P·V is done.
struct BlockFactors {
    float alpha[2];   // rescale of the state
    float weight[2];  // w: weight of the block's codes
    float added[2];   // w · Σ codes: this thread's share of the block's growth of l
};

// The softmax of one key tile: scores → u8 codes (as P·V's A fragment), the rows' states
// updated through the tile's P blocks (two when Split: chunk 0, then chunks 1–3), and the
// factors begin_fold applies once each block's P·V is done. `qs` holds the thread's two rows'
// Q scales, `keyScales` the K scales of its group of 8 keys in each 32-key chunk; their
// products are c = qs · ks. Masked tiles (the causal diagonal, the Nk tail) mask invisible
// keys; the arithmetic is the same.
template <bool Masked, bool Split>
INTFA_DEVICE void block_softmax(
    const intfa_s32 (&s)[kScoreRegisters], const float (&qs)[2], float4 keyScales, RowState& state,
    intfa_u32 (&p)[kChunks][4], BlockFactors (&factors)[2], int key0, int row0, int keyLength, int causalShift, int quad) {
    constexpr int kBlocks = Split ? 2 : 1;
    float scale[2][kChunks];
#pragma unroll
    for (int r = 0; r < 2; ++r) {
        scale[r][0] = qs[r] * keyScales.x, scale[r][1] = qs[r] * keyScales.y;
        scale[r][2] = qs[r] * keyScales.z, scale[r][3] = qs[r] * keyScales.w;
    }
    auto blockOf = [](int chunk) { return Split && chunk > 0 ? 1 : 0; };
    // Visibility of the score at position i (n-tile i / 4): key < Nk and, when causal,
    // key ≤ row + shift.
    auto visible = [&](int i) {
        const int key = key0 + 8 * (i >> 2) + 2 * quad + (i & 1);
        const int row = row0 + 8 * ((i >> 1) & 1);
        return key < keyLength && (!INTFA_CAUSAL || key <= row + causalShift);
    };
    constexpr intfa_s32 kMinScore = (intfa_s32)0x80000000;
    // Each chunk's integer maximum per row (the 8 scores of the thread's group), scaled.
    float blockMax[kBlocks][2];
#pragma unroll
    for (int b = 0; b < kBlocks; ++b) blockMax[b][0] = blockMax[b][1] = kNegativeInfinity;
#pragma unroll
    for (int c = 0; c < kChunks; ++c) {
#pragma unroll
        for (int r = 0; r < 2; ++r) {
            intfa_s32 v[8];
#pragma unroll
            for (int k = 0; k < 8; ++k) {
                const int i = 16 * c + 4 * (k >> 1) + 2 * r + (k & 1);
                v[k] = Masked && !visible(i) ? kMinScore : s[i];
            }
            const intfa_s32 m = intfa_max3(intfa_max3(v[0], v[1], v[2]), intfa_max3(v[3], v[4], v[5]), max(v[6], v[7]));
            const float scaled = __int2float_rn(m) * scale[r][c];
            const float chunkMax = Masked && m == kMinScore ? kNegativeInfinity : scaled;
            blockMax[blockOf(c)][r] = intfa_max_nan(blockMax[blockOf(c)][r], chunkMax);
        }
    }
    float bias[kBlocks][2];
#pragma unroll
    for (int b = 0; b < kBlocks; ++b) {
#pragma unroll
        for (int r = 0; r < 2; ++r) {
            float mb = blockMax[b][r];
            mb = intfa_max_nan(mb, __shfl_xor_sync(0xFFFFFFFFu, mb, 1));
            mb = intfa_max_nan(mb, __shfl_xor_sync(0xFFFFFFFFu, mb, 2));
            // A row with no visible key in this block leaves its state unchanged.
            const bool empty = Masked && mb == kNegativeInfinity;
            const float t = empty ? 0.0f : intfa_code_reference(mb);
            // The reference moves only when the block's reference passes it by more than the
            // slack, so most blocks leave alpha = 1 and begin_fold skips the rescale of O'.
            const float newMax = (empty || t <= state.max[r] + kRescaleSlack) ? state.max[r] : t;
            factors[b].alpha[r] = empty ? 1.0f : intfa_exp2(state.max[r] - newMax);
            factors[b].weight[r] = empty ? 0.0f : intfa_exp2(t - newMax) * (1.0f / 255.0f);
            bias[b][r] = -t;
            state.max[r] = newMax;
        }
    }
    // Codes, chunk by chunk (which bounds the live probabilities): the exponent is one FFMA
    // from the int32 score; masked keys get 2^-∞ = 0.
#pragma unroll
    for (int c = 0; c < kChunks; ++c) {
        float prob[16];
#pragma unroll
        for (int k = 0; k < 16; ++k) {
            const int i = 16 * c + k, r = (k >> 1) & 1;
            const float x = __fmaf_rn(__int2float_rn(s[i]), scale[r][c], bias[blockOf(c)][r]);
            prob[k] = intfa_exp2(Masked && !visible(i) ? kNegativeInfinity : x);
        }
        intfa_pack_code_chunk(prob, p[c]);
    }
    // Row sums of the codes (exact integers) into l, block by block.
#pragma unroll
    for (int b = 0; b < kBlocks; ++b) {
        intfa_u32 codeSum[2] = {0u, 0u};
#pragma unroll
        for (int c = 0; c < kChunks; ++c) {
            if (blockOf(c) != b) continue;
            codeSum[0] = __dp4a(p[c][0], 0x01010101u, codeSum[0]);
            codeSum[0] = __dp4a(p[c][2], 0x01010101u, codeSum[0]);
            codeSum[1] = __dp4a(p[c][1], 0x01010101u, codeSum[1]);
            codeSum[1] = __dp4a(p[c][3], 0x01010101u, codeSum[1]);
        }
#pragma unroll
        for (int r = 0; r < 2; ++r) {
            factors[b].added[r] = factors[b].weight[r] * (float)codeSum[r];
            state.sum[r] = fmaf(state.sum[r], factors[b].alpha[r], factors[b].added[r]);
        }
    }
}

// Starts folding a P block into O' (float[N], element i of row (i >> 1) & 1, as the wgmma
// accumulator and a warp's mma.sync n-tiles number them): O' · alpha when some row of the warp
// has a new maximum (a warp vote skips it otherwise), the block's codes into R, and the rows'
// multipliers w · 2^117 of the FFMAs that follow.
template <int N>
INTFA_DEVICE void begin_fold(float (&o)[N], const BlockFactors& f, RowState& state, float (&foldWeight)[2]) {
#pragma unroll
    for (int r = 0; r < 2; ++r) {
        state.offsetWeight[r] = fmaf(state.offsetWeight[r], f.alpha[r], f.added[r]);
        foldWeight[r] = f.weight[r] * kFoldWeightScale;
    }
    if (!__all_sync(0xFFFFFFFFu, f.alpha[0] == 1.0f && f.alpha[1] == 1.0f)) {
#pragma unroll
        for (int i = 0; i < N; ++i) o[i] *= f.alpha[(i >> 1) & 1];
    }
}

// A row's total of a per-thread share: the sum over the row's four threads.
INTFA_DEVICE float row_total(float share) {
    share += __shfl_xor_sync(0xFFFFFFFFu, share, 1);
    return share + __shfl_xor_sync(0xFFFFFFFFu, share, 2);
}

// Removes the excess-128 offset that the folds collected in O' (O' −= 2^-25 · R, R = 0).
// Left in, it grows with l and its fp32 rounding with it: a relative error linear in the
// number of blocks. Done after every kRebaseTiles folds, for one FFMA per element per
// kRebaseTiles tiles.
template <int N>
INTFA_DEVICE void rebase_output(float (&o)[N], RowState& state) {
    float offset[2];
#pragma unroll
    for (int r = 0; r < 2; ++r) offset[r] = -kExcessOffset * row_total(state.offsetWeight[r]);
#pragma unroll
    for (int i = 0; i < N; ++i) o[i] += offset[(i >> 1) & 1];
    state.offsetWeight[0] = state.offsetWeight[1] = 0.0f;
}

// Writes output row r (0 or 1) of the thread's fragment of O' (kHeadDim / 8 n-tiles; channels
// 8n + 2·quad and + 1 of each) as fp16 or bf16: (O' − offset) · sV · outputScale. The V scales
// are read one fp32 at a time (they need only 4-byte alignment).
template <int kHeadDim, int N>
INTFA_DEVICE void store_output_row(intfa_u32* outRow, const float (&o)[N], int r, int quad, const float* vScale, float offset,
                                   float outputScale) {
    static_assert(N == kHeadDim / 2, "the fragment holds the thread's 4 values of each n-tile");
#pragma unroll
    for (int n = 0; n < kHeadDim / 8; ++n) {
        const int channel = 8 * n + 2 * quad;
        const float value0 = (o[4 * n + 2 * r] - offset) * vScale[channel] * outputScale;
        const float value1 = (o[4 * n + 2 * r + 1] - offset) * vScale[channel + 1] * outputScale;
#if INTFA_OUT_BF16
        outRow[channel / 2] = intfa_pack_bf162(value0, value1);
#else
        outRow[channel / 2] = intfa_pack_half2(value0, value1);
#endif
    }
}

}  // namespace int8_scheme
