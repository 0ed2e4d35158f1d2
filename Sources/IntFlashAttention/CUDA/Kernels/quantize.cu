// Quantization kernels: fp16/bf16 Q, K, V (any element strides) → the 8-bit codes and fp32
// scales that the attention kernels read, following docs/SCHEMES.md bit for bit:
// inv = levels / amax (IEEE fp32 division), code = clamp(rne(x · inv)), scale = amax / levels,
// amax = 0 → inv 0, scale 0, codes 0.
//
// Offending inputs (NaN, ±Inf; docs/VALIDATION.md) are taken as 0 everywhere, in the channel
// statistics as in the codes, and marked where the params ask: each token's byte in
// rowMarks, and the first offending token of each (batch, head) in keyMarks.
//
// Compile-time options (NVRTC -D):
//   INTFA_INPUT_BF16   0: fp16 input, 1: bf16 input
//   INTFA_CODE_E4M3    0: int8 codes (levels 127), 1: FP8 E4M3 codes (levels 448; sm_89+)
//   INTFA_PER_TENSOR   0: per token (rows) / per channel (V), 1: one scale per (batch, head)
// and the constants the host shares with these kernels, passed from their one Swift source
// (QuantizationKernelDescriptor, KeyGroups):
//   INTFA_STATS_CHUNK_TOKENS  tokens per chunk of the channel statistics
//   INTFA_ROWS_PER_CTA        tokens per CTA of the rows kernels (8 warps)
//   INTFA_KEY_TILE, INTFA_KEY_GROUP  keys per tile and per group of int8's K scales
//   INTFA_VT_KEY_ORDER        the key at each position of a 32-key group of Vt (VtKeyOrder)
// Kernel names spell the options; see QuantizationKernelDescriptor.swift.
#include "params.cuh"
#include "input_type.cuh"

#ifndef INTFA_CODE_E4M3
#define INTFA_CODE_E4M3 0
#endif
#ifndef INTFA_PER_TENSOR
#define INTFA_PER_TENSOR 0
#endif

#if INTFA_CODE_E4M3
#define INTFA_CODE_NAME e4m3
#define INTFA_LEVELS 448.0f
#else
#define INTFA_CODE_NAME s8
#define INTFA_LEVELS 127.0f
#endif
#if INTFA_PER_TENSOR
#define INTFA_GRAIN_NAME pertensor
#else
#define INTFA_GRAIN_NAME pertoken
#endif

#if !defined(INTFA_STATS_CHUNK_TOKENS) || !defined(INTFA_ROWS_PER_CTA) || !defined(INTFA_KEY_TILE) || !defined(INTFA_KEY_GROUP) || !defined(INTFA_VT_KEY_ORDER)
#error "the host passes the shared constants (QuantizationKernelDescriptor.compileOptions)"
#endif
static_assert(INTFA_KEY_TILE == 128 && INTFA_KEY_GROUP == 8,
              "the key-group kernel and the attention kernels' K scale layout are written for 128-key tiles of 8-key groups");

#define INTFA_CAT2(a, b) a##b
#define INTFA_CAT(a, b) INTFA_CAT2(a, b)
#define INTFA_NAME5(a, b, c, d, e) INTFA_CAT(INTFA_CAT(INTFA_CAT(INTFA_CAT(a, b), c), d), e)

// Kernel names, e.g. intfa_quantize_rows_s8_pertoken_f16.
#define INTFA_STATS_KERNEL INTFA_CAT(intfa_channel_stats_, INTFA_IN_SUFFIX)
#define INTFA_PARTIALS_KERNEL INTFA_CAT(intfa_channel_partials_, INTFA_IN_SUFFIX)
#define INTFA_ROWS_KERNEL \
    INTFA_NAME5(intfa_quantize_rows_, INTFA_CODE_NAME, _, INTFA_GRAIN_NAME, INTFA_CAT(_, INTFA_IN_SUFFIX))
#if INTFA_PER_TENSOR
#define INTFA_VT_GRAIN_NAME pertensor
#else
#define INTFA_VT_GRAIN_NAME perchannel
#endif
#define INTFA_VT_KERNEL \
    INTFA_NAME5(intfa_quantize_vt_, INTFA_CODE_NAME, _, INTFA_VT_GRAIN_NAME, INTFA_CAT(_, INTFA_IN_SUFFIX))
#define INTFA_SCREEN_KERNEL INTFA_CAT(intfa_screen_rows_, INTFA_IN_SUFFIX)
#define INTFA_KEY_GROUPS_KERNEL INTFA_NAME5(intfa_quantize_key_groups_, INTFA_CODE_NAME, _smooth, _, INTFA_IN_SUFFIX)

static INTFA_DEVICE float load_input(const intfa_u16* input, intfa_i64 index) { return input_to_float(input[index]); }

static INTFA_DEVICE float usable(float x, bool& offends, float limit = kPositiveInfinity) { return intfa_usable(x, offends, limit); }

// Records that token t of (batch, head) bh holds an offending element: lowers the head's
// first offending token (rare: only calls with such inputs reach the atomic).
static INTFA_DEVICE void mark_key(const QuantizationParams& p, intfa_i64 bh, intfa_i64 t) {
    if (p.keyMarks != 0) atomicMin((int*)p.keyMarks + bh, (int)t);
}

static INTFA_DEVICE float inverse_scale(float amax) { return intfa_inverse_scale(amax, INTFA_LEVELS); }

// One code byte for x · inv.
static INTFA_DEVICE intfa_u32 encode(float x, float inv) {
#if INTFA_CODE_E4M3
#if __CUDA_ARCH__ >= 890
    return intfa_pack_e4m3x2(__fmul_rn(x, inv), 0.0f) & 0xFFu;
#else
    return 0u;  // never compiled for use: e4m3 needs sm_89 (the descriptor refuses it)
#endif
#else
    return intfa_encode_s8(x, inv);
#endif
}

// Channel statistics in two passes, so that long sequences spread over many CTAs:
// intfa_channel_partials sums each chunk of kStatsChunkTokens tokens (double) and takes its
// max |x|; intfa_channel_stats adds the chunks in order. The double sum of fp16 values is
// exact for N ≤ 8192 (as on the CPU), so the mean does not depend on the order.
constexpr int kStatsChunkTokens = INTFA_STATS_CHUNK_TOKENS;

// One chunk's partial sums and maxima for 32 channels of one (batch, head).
static INTFA_DEVICE void channel_partials(const QuantizationParams& p, intfa_i64 bh, intfa_i64 chunk) {
    __shared__ double partialSum[8][32];
    __shared__ float partialMax[8][32];
    const intfa_i64 b = bh / p.heads, h = bh % p.heads;
    const int c = blockIdx.x * 32 + threadIdx.x;
    const intfa_i64 t0 = chunk * kStatsChunkTokens;
    const intfa_i64 t1 = t0 + kStatsChunkTokens < p.tokens ? t0 + kStatsChunkTokens : p.tokens;
    const intfa_u16* base = (const intfa_u16*)p.input + b * p.strideBatch + h * p.strideHead;
    double sum = 0.0;
    float amax = 0.0f;
    if (c < p.headDim) {
        // The thread's tokens t0 + y, t0 + y + 8, …, summed in that order. Whole chunks load
        // them 8 at a time before adding (the loads in flight set the rate).
        const intfa_u16* element = base + (t0 + threadIdx.y) * p.strideToken + c;
        const intfa_i64 step = 8 * p.strideToken;
        if (t1 - t0 == kStatsChunkTokens) {
            constexpr int kBatch = 8;
#pragma unroll 1
            for (int first = 0; first < kStatsChunkTokens / 8; first += kBatch) {
                float x[kBatch];
#pragma unroll
                for (int i = 0; i < kBatch; ++i) x[i] = intfa_usable(load_input(element + i * step, 0));
                element += kBatch * step;
#pragma unroll
                for (int i = 0; i < kBatch; ++i) {
                    sum += (double)x[i];
                    amax = fmaxf(amax, fabsf(x[i]));
                }
            }
        } else {
            for (intfa_i64 t = t0 + threadIdx.y; t < t1; t += 8, element += step) {
                const float x = intfa_usable(load_input(element, 0));
                sum += (double)x;
                amax = fmaxf(amax, fabsf(x));
            }
        }
    }
    partialSum[threadIdx.y][threadIdx.x] = sum;
    partialMax[threadIdx.y][threadIdx.x] = amax;
    __syncthreads();
    if (threadIdx.y == 0 && c < p.headDim) {
        for (int s = 1; s < 8; ++s) {
            sum += partialSum[s][threadIdx.x];
            amax = fmaxf(amax, partialMax[s][threadIdx.x]);
        }
        const intfa_i64 index = (bh * p.statsChunks + chunk) * p.headDim + c;
        ((double*)p.channelPartials)[index] = sum;
        ((float*)((double*)p.channelPartials + p.batch * p.heads * p.statsChunks * p.headDim))[index] = amax;
    }
    __syncthreads();  // the next chunk reuses the shared arrays
}

// Grid (ceil(D/32), min(chunks, 65535), min(B·Hx, 65535)); block (32, 8): x = channel,
// y = token slice. CTAs loop over the chunks and heads beyond the grid's y and z limits.
extern "C" __global__ void __launch_bounds__(256) INTFA_PARTIALS_KERNEL(const QuantizationParams p) {
    for (intfa_i64 bh = blockIdx.z; bh < p.batch * p.heads; bh += gridDim.z) {
        for (intfa_i64 chunk = blockIdx.y; chunk < p.statsChunks; chunk += gridDim.y) channel_partials(p, bh, chunk);
    }
}

// Per (batch·head, channel): the mean over the tokens and max |x|, from the chunks in order.
// Grid (ceil(D/32), min(B·Hx, 65535)); block 32.
extern "C" __global__ void __launch_bounds__(32) INTFA_STATS_KERNEL(const QuantizationParams p) {
    const int c = blockIdx.x * 32 + threadIdx.x;
    if (c >= p.headDim) return;
    for (intfa_i64 bh = blockIdx.y; bh < p.batch * p.heads; bh += gridDim.y) {
        const double* sums = (const double*)p.channelPartials;
        const float* maxima = (const float*)(sums + p.batch * p.heads * p.statsChunks * p.headDim);
        double sum = 0.0;
        float amax = 0.0f;
        for (intfa_i64 chunk = 0; chunk < p.statsChunks; ++chunk) {
            const intfa_i64 index = (bh * p.statsChunks + chunk) * p.headDim + c;
            sum += sums[index];
            amax = fmaxf(amax, maxima[index]);
        }
        ((float*)p.channelMean)[bh * p.headDim + c] = (float)(sum / (double)p.tokens);
        ((float*)p.channelAmax)[bh * p.headDim + c] = amax;
    }
}

// Max over the channel maxima of one (batch, head): the per-tensor amax.
static INTFA_DEVICE float tensor_amax(const QuantizationParams& p, intfa_i64 bh) {
    const float* channelAmax = (const float*)p.channelAmax + bh * p.headDim;
    float amax = 0.0f;
    for (intfa_i64 c = 0; c < p.headDim; ++c) amax = fmaxf(amax, channelAmax[c]);
    return amax;
}

// Rows of 16-bit inputs that one warp holds, lane l owning channels kPer·l … kPer·l + kPer − 1
// (kContiguous: one vector load and one vector store per lane and row) or l, l + 32, … (any
// D ≤ 256, any alignment).
template <int kPer>
struct alignas(2 * kPer) RowSlice { intfa_u16 bits[kPer]; };

template <int kPer, bool kContiguous>
static INTFA_DEVICE int slice_channel(int lane, int i) { return kContiguous ? kPer * lane + i : lane + 32 * i; }

// Loads rows t0 … t0 + kRows − 1 of one (batch, head) (rows past N read row 0).
template <int kPer, bool kContiguous, int kRows>
static INTFA_DEVICE void load_row_slices(const QuantizationParams& p, const intfa_u16* base, intfa_i64 t0, int lane,
                                         RowSlice<kPer> (&raw)[kRows]) {
#pragma unroll
    for (int r = 0; r < kRows; ++r) {
        const intfa_i64 t = t0 + r;
        const intfa_u16* row = base + (t < p.tokens ? t : 0) * p.strideToken;
        if (kContiguous) {
            raw[r] = *(const RowSlice<kPer>*)(row + kPer * lane);
        } else {
#pragma unroll
            for (int i = 0; i < kPer; ++i) {
                const int c = slice_channel<kPer, false>(lane, i);
                raw[r].bits[i] = c < p.headDim ? row[c] : (intfa_u16)0;
            }
        }
    }
}

// Element i of a slice as fp32.
template <int kPer>
static INTFA_DEVICE float slice_value(const RowSlice<kPer>& slice, int i) { return input_to_float(slice.bits[i]); }

// Whether 16-bit input bits are NaN or ±Inf (exponent all ones).
static INTFA_DEVICE bool nonfinite_bits(intfa_u16 bits) {
#if INTFA_INPUT_BF16
    return (bits & 0x7F80u) == 0x7F80u;
#else
    return (bits & 0x7C00u) == 0x7C00u;
#endif
}

// Zeroes the offending elements of rows t0 … t0 + kRows − 1 as loaded, and writes the marks
// of those below N: every row's byte in rowMarks, the first offending one in keyMarks.
// Warp-wide.
template <int kPer, int kRows>
static INTFA_DEVICE void screen_slices(const QuantizationParams& p, intfa_i64 bh, intfa_i64 t0, int lane, RowSlice<kPer> (&raw)[kRows]) {
#pragma unroll
    for (int r = 0; r < kRows; ++r) {
        bool offends = false;
#pragma unroll
        for (int i = 0; i < kPer; ++i) {
            const bool bad = nonfinite_bits(raw[r].bits[i]);
            offends |= bad;
            raw[r].bits[i] = bad ? (intfa_u16)0 : raw[r].bits[i];
        }
        if (p.rowMarks == 0 && p.keyMarks == 0) continue;
        offends = __any_sync(0xFFFFFFFFu, offends);
        if (lane == r && t0 + r < p.tokens) {
            if (p.rowMarks != 0) ((intfa_u8*)p.rowMarks)[bh * p.tokens + t0 + r] = offends ? 1 : 0;
            if (offends) mark_key(p, bh, t0 + r);
        }
    }
}

// Each row's max |value(r, i)| over the warp, in every lane.
template <int kPer, int kRows, typename Value>
static INTFA_DEVICE void warp_row_amax(const Value& value, float (&amax)[kRows]) {
#pragma unroll
    for (int r = 0; r < kRows; ++r) {
        amax[r] = 0.0f;
#pragma unroll
        for (int i = 0; i < kPer; ++i) amax[r] = fmaxf(amax[r], fabsf(value(r, i)));
    }
#pragma unroll
    for (int offset = 16; offset > 0; offset >>= 1) {
#pragma unroll
        for (int r = 0; r < kRows; ++r) amax[r] = fmaxf(amax[r], __shfl_xor_sync(0xFFFFFFFFu, amax[r], offset));
    }
}

// Tokens one warp quantizes: their loads are all issued before the first reduction, so each
// warp keeps several rows in flight (one row at a time leaves the loads latency-bound). The
// rows stay in registers as 16-bit inputs, converted where used.
constexpr int kRowsPerWarp = INTFA_ROWS_PER_CTA / 8;
static_assert(INTFA_ROWS_PER_CTA % 8 == 0, "8 warps per CTA");

// kRows rows (tokens t0…) of one (batch, head), one warp, sliced as RowSlice says (kContiguous
// needs D = 32·kPer); same arithmetic either way. `inv` is the per-tensor inverse scale.
template <int kPer, bool kContiguous, int kRows>
static INTFA_DEVICE void quantize_rows(const QuantizationParams& p, intfa_i64 bh, intfa_i64 t0, int lane, float inv) {
    const intfa_i64 b = bh / p.heads, h = bh % p.heads;
    const intfa_u16* base = (const intfa_u16*)p.input + b * p.strideBatch + h * p.strideHead;
    auto channel = [&](int i) { return slice_channel<kPer, kContiguous>(lane, i); };
    RowSlice<kPer> raw[kRows];
    load_row_slices<kPer, kContiguous>(p, base, t0, lane, raw);
    screen_slices<kPer>(p, bh, t0, lane, raw);
    auto value = [&](int r, int i) { return slice_value(raw[r], i); };  // element i of row r
    float inverse[kRows];
#if INTFA_PER_TENSOR
#pragma unroll
    for (int r = 0; r < kRows; ++r) inverse[r] = inv;
#else
    float amax[kRows];
    warp_row_amax<kPer>(value, amax);
#pragma unroll
    for (int r = 0; r < kRows; ++r) {
        inverse[r] = inverse_scale(amax[r]);
        // Lane r writes row r's scale.
        if (lane == r && t0 + r < p.tokens) {
            ((float*)p.scales)[bh * p.tokensPadded + t0 + r] = __fmul_rn(__fdiv_rn(amax[r], INTFA_LEVELS), p.scaleMultiplier);
        }
    }
#endif
#pragma unroll
    for (int r = 0; r < kRows; ++r) {
        const intfa_i64 t = t0 + r;
        if (t >= p.tokens) break;
        intfa_u8* out = (intfa_u8*)p.codes + (bh * p.tokens + t) * p.headDim;
        if (kContiguous) {
            struct alignas(kPer) Bytes { intfa_u8 codes[kPer]; };
            Bytes bytes;
#pragma unroll
            for (int i = 0; i < kPer; ++i) bytes.codes[i] = (intfa_u8)encode(value(r, i), inverse[r]);
            *(Bytes*)(out + kPer * lane) = bytes;
        } else {
#pragma unroll
            for (int i = 0; i < kPer; ++i) {
                if (channel(i) < p.headDim) out[channel(i)] = (intfa_u8)encode(value(r, i), inverse[r]);
            }
        }
    }
}

// Whether rows of D = 32·kPer channels can be read kPer at a time (2·kPer-byte aligned).
static INTFA_DEVICE bool rows_contiguous(const QuantizationParams& p, int kPer) {
    const intfa_i64 alignment = 2 * kPer;
    return p.headDim == 32 * kPer && p.input % alignment == 0 &&
           ((p.strideBatch | p.strideHead | p.strideToken) * 2) % alignment == 0;
}

// Rows (Q, K): each warp takes kRowsPerWarp consecutive tokens. Grid
// (ceil(NPad / (8·kRowsPerWarp)), min(B·Hx, 65535)); block 256 (8 warps); CTAs loop over the
// heads beyond the grid's y limit. Writes codes [B, Hx, N, D] contiguous and scales
// [B, Hx, NPad] (per token, zero past N) or [B, Hx] (per tensor).
extern "C" __global__ void __launch_bounds__(256, 3) INTFA_ROWS_KERNEL(const QuantizationParams p) {
    const int lane = threadIdx.x & 31;
    const intfa_i64 t0 = ((intfa_i64)blockIdx.x * 8 + (threadIdx.x >> 5)) * kRowsPerWarp;
    if (t0 >= p.tokensPadded) return;
    for (intfa_i64 bh = blockIdx.y; bh < p.batch * p.heads; bh += gridDim.y) {
        float inv = 0.0f;  // per token: computed from each row
#if INTFA_PER_TENSOR
        const float amax = tensor_amax(p, bh);
        inv = inverse_scale(amax);
        if (t0 == 0 && lane == 0) {
            ((float*)p.scales)[bh] = __fmul_rn(__fdiv_rn(amax, INTFA_LEVELS), p.scaleMultiplier);
        }
#else
        // Padding tokens [N, NPad) get scale 0.
        if (lane < kRowsPerWarp && t0 + lane >= p.tokens && t0 + lane < p.tokensPadded) {
            ((float*)p.scales)[bh * p.tokensPadded + t0 + lane] = 0.0f;
        }
#endif
        if (t0 >= p.tokens) continue;
        if (rows_contiguous(p, 4)) {
            quantize_rows<4, true, kRowsPerWarp>(p, bh, t0, lane, inv);
        } else if (rows_contiguous(p, 2)) {
            quantize_rows<2, true, kRowsPerWarp>(p, bh, t0, lane, inv);
        } else if (rows_contiguous(p, 8)) {
            // D = 256: two halves, for registers.
            quantize_rows<8, true, kRowsPerWarp / 2>(p, bh, t0, lane, inv);
            quantize_rows<8, true, kRowsPerWarp / 2>(p, bh, t0 + kRowsPerWarp / 2, lane, inv);
        } else {
            // Any head dim ≤ 256 and alignment, one row at a time (registers).
#pragma unroll 1
            for (int r = 0; r < kRowsPerWarp; ++r) {
                if (t0 + r < p.tokens) quantize_rows<8, false, 1>(p, bh, t0 + r, lane, inv);
            }
        }
    }
}

// K of the `int8` scheme: smoothed (the channel mean subtracted), one scale per group of 8
// keys. Group (G, t) of the 32-key span G holds keys 32G + 8a + 2t + e (a in 0…3, e in 0…1),
// the keys one thread of an attention warp holds in each row of its S fragment. Each CTA takes
// one 128-key tile of one (batch, head): every warp loads 16 rows (mean subtracted) and takes
// their max |x|; the 16 groups' maxima then give each row its inverse scale. The 16 scales of
// a tile are stored quad-major ([B, Hx, NPad / 8], group (G, t) at 16·(tile) + 4t + G), groups
// past N get 0.
constexpr int kGroupTileKeys = INTFA_KEY_TILE;
constexpr int kGroupRowsPerWarp = kGroupTileKeys / 8;

template <int kPer, bool kContiguous>
static INTFA_DEVICE void quantize_key_group_tile(const QuantizationParams& p, intfa_i64 bh, intfa_i64 tile0, int warp, int lane,
                                                 float (&rowAmax)[kGroupTileKeys], float (&groupInverse)[16]) {
    const intfa_i64 b = bh / p.heads, h = bh % p.heads;
    const intfa_u16* base = (const intfa_u16*)p.input + b * p.strideBatch + h * p.strideHead;
    auto channel = [&](int i) { return slice_channel<kPer, kContiguous>(lane, i); };
    RowSlice<kPer> raw[kGroupRowsPerWarp];
    const intfa_i64 row0 = tile0 + warp * kGroupRowsPerWarp;
    load_row_slices<kPer, kContiguous>(p, base, row0, lane, raw);
    float mean[kPer];
#pragma unroll
    for (int i = 0; i < kPer; ++i) {
        mean[i] = channel(i) < p.headDim ? ((const float*)p.channelMean)[bh * p.headDim + channel(i)] : 0.0f;
    }
    screen_slices<kPer>(p, bh, row0, lane, raw);
    auto value = [&](int r, int i) { return __fsub_rn(slice_value(raw[r], i), mean[i]); };
    float amax[kGroupRowsPerWarp];
    warp_row_amax<kPer>(value, amax);
    // Rows past N have amax 0 (their loads read row 0, so they are masked here).
#pragma unroll
    for (int r = 0; r < kGroupRowsPerWarp; ++r) {
        if (lane == r) rowAmax[warp * kGroupRowsPerWarp + r] = row0 + r < p.tokens ? amax[r] : 0.0f;
    }
    __syncthreads();
    if (warp == 0 && lane < 16) {
        const int span = lane / 4, quad = lane % 4;
        float groupAmax = 0.0f;
#pragma unroll
        for (int k = 0; k < 8; ++k) groupAmax = fmaxf(groupAmax, rowAmax[32 * span + 8 * (k >> 1) + 2 * quad + (k & 1)]);
        groupInverse[lane] = inverse_scale(groupAmax);
        ((float*)p.scales)[bh * (p.tokensPadded / 8) + tile0 / 8 + 4 * quad + span] =
            __fmul_rn(__fdiv_rn(groupAmax, INTFA_LEVELS), p.scaleMultiplier);
    }
    __syncthreads();
#pragma unroll
    for (int r = 0; r < kGroupRowsPerWarp; ++r) {
        const intfa_i64 t = row0 + r;
        if (t >= p.tokens) break;
        const int key = warp * kGroupRowsPerWarp + r;
        const float inverse = groupInverse[4 * (key / 32) + (key % 8) / 2];
        intfa_u8* out = (intfa_u8*)p.codes + (bh * p.tokens + t) * p.headDim;
        if (kContiguous) {
            struct alignas(kPer) Bytes { intfa_u8 codes[kPer]; };
            Bytes bytes;
#pragma unroll
            for (int i = 0; i < kPer; ++i) bytes.codes[i] = (intfa_u8)encode(value(r, i), inverse);
            *(Bytes*)(out + kPer * lane) = bytes;
        } else {
#pragma unroll
            for (int i = 0; i < kPer; ++i) {
                if (channel(i) < p.headDim) out[channel(i)] = (intfa_u8)encode(value(r, i), inverse);
            }
        }
    }
}

// Grid (NPad / 128, min(B·Hx, 65535)); block 256. Writes codes [B, Hx, N, D] contiguous and
// the group scales; CTAs loop over the heads beyond the grid's y limit.
extern "C" __global__ void __launch_bounds__(256) INTFA_KEY_GROUPS_KERNEL(const QuantizationParams p) {
    __shared__ float rowAmax[kGroupTileKeys];
    __shared__ float groupInverse[16];
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const intfa_i64 tile0 = (intfa_i64)blockIdx.x * kGroupTileKeys;
    for (intfa_i64 bh = blockIdx.y; bh < p.batch * p.heads; bh += gridDim.y) {
        __syncthreads();  // the previous head's maxima are no longer read
        if (rows_contiguous(p, 4)) {
            quantize_key_group_tile<4, true>(p, bh, tile0, warp, lane, rowAmax, groupInverse);
        } else if (rows_contiguous(p, 2)) {
            quantize_key_group_tile<2, true>(p, bh, tile0, warp, lane, rowAmax, groupInverse);
        } else {
            // Any head dim ≤ 256 and alignment, lane l owning channels l, l + 32, … .
            quantize_key_group_tile<8, false>(p, bh, tile0, warp, lane, rowAmax, groupInverse);
        }
    }
}

// Position, inside its 32-key group, at which Vt stores key r (0…31). The attention kernel
// turns the Q·Kᵀ accumulator fragment straight into the P·V A fragment; the two fragments
// number keys differently, and this order makes them agree (docs/SCHEMES.md, GPU layout).
// The order itself comes from the host (VtKeyOrder, the key at each position); this
// arithmetic form of it is checked against that below.
__host__ __device__ constexpr int vt_position(int r) {
    return 16 * (r >> 4) + 4 * ((r & 7) >> 1) + 2 * ((r & 15) >> 3) + (r & 1);
}
constexpr int kVtKeyOrder[32] = {INTFA_VT_KEY_ORDER};
__host__ __device__ constexpr bool vt_position_follows_the_host_order() {
    for (int position = 0; position < 32; ++position) {
        if (vt_position(kVtKeyOrder[position]) != position) return false;
    }
    return true;
}
static_assert(vt_position_follows_the_host_order(), "vt_position must store each key where the host's VtKeyOrder says");

// The XOR that turns an s8 code into Vt's stored byte: excess-128 for per-channel int8 V.
#if !INTFA_CODE_E4M3 && !INTFA_PER_TENSOR
constexpr intfa_u32 kVtExcess = 0x80u;
#else
constexpr intfa_u32 kVtExcess = 0u;
#endif

// V → Vt [B, Hx, D, NPad], keys permuted in groups of 32, zero past N; scales per channel
// [B, Hx, D] or per tensor [B, Hx]. Per channel (the `int8` scheme) the codes are stored in
// excess-128 form (code + 128 as u8, the XOR of the sign bit; padding 128): the attention
// kernels' P·V is u8·u8. One CTA per 64 tokens × 64 channels of one (batch, head):
// read (4 channels per 8-byte load where V's alignment allows, all loads in flight at once),
// encode into a shared tile in Vt order, write 16 bytes of one channel row per thread.
// Grid (NPad/64, ceil(D/64), min(B·Hx, 65535)); block 256; CTAs loop over the heads beyond
// the grid's z limit.
extern "C" __global__ void __launch_bounds__(256) INTFA_VT_KERNEL(const QuantizationParams p) {
    __shared__ float inverse[64];
    // [channel][position]; rows of 68 bytes spread the byte writes of 16 channels 4 apart
    // over 8 banks.
    __shared__ __align__(16) intfa_u8 tile[64][64 + 4];
    const intfa_i64 t0 = (intfa_i64)blockIdx.x * 64;
    const int c0 = blockIdx.y * 64;
    // 4 channels per load: D (a multiple of 8) covers whole groups, V must be 8-byte aligned.
    const bool vectorLoads = p.input % 8 == 0 && ((p.strideBatch | p.strideHead | p.strideToken) % 4) == 0;
    for (intfa_i64 bh = blockIdx.z; bh < p.batch * p.heads; bh += gridDim.z) {
        const intfa_i64 b = bh / p.heads, h = bh % p.heads;
        __syncthreads();  // the previous head's tile and scales are no longer read
#if INTFA_PER_TENSOR
        __shared__ float sharedAmax;
        if (threadIdx.x == 0) {
            const float amax = tensor_amax(p, bh);
            sharedAmax = amax;
            if (blockIdx.x == 0 && blockIdx.y == 0) {
                ((float*)p.scales)[bh] = __fmul_rn(__fdiv_rn(amax, INTFA_LEVELS), p.scaleMultiplier);
            }
        }
        __syncthreads();
        if (threadIdx.x < 64) inverse[threadIdx.x] = inverse_scale(sharedAmax);
#else
        if (threadIdx.x < 64) {
            const int c = c0 + threadIdx.x;
            if (c < p.headDim) {
                const float amax = ((const float*)p.channelAmax)[bh * p.headDim + c];
                inverse[threadIdx.x] = inverse_scale(amax);
                if (blockIdx.x == 0) {
                    ((float*)p.scales)[bh * p.headDim + c] = __fmul_rn(__fdiv_rn(amax, INTFA_LEVELS), p.scaleMultiplier);
                }
            } else {
                inverse[threadIdx.x] = 0.0f;
            }
        }
#endif
        __syncthreads();
        const intfa_u16* base = (const intfa_u16*)p.input + b * p.strideBatch + h * p.strideHead;
        intfa_i64 firstOffending = p.tokensPadded;  // this thread's first token holding an offending element
        if (vectorLoads) {
            // Thread i reads channels 4·(i % 16) … + 3 of tokens i / 16 + 16·j.
            const int cl = 4 * (threadIdx.x & 15);
            const int tl0 = threadIdx.x >> 4;
            intfa_u32 bits[4][2];
#pragma unroll
            for (int j = 0; j < 4; ++j) {
                const intfa_i64 t = t0 + tl0 + 16 * j;
                const bool valid = t < p.tokens && c0 + cl < p.headDim;
                const uint2 word = valid ? *(const uint2*)(base + t * p.strideToken + c0 + cl) : make_uint2(0u, 0u);
                bits[j][0] = word.x;
                bits[j][1] = word.y;
            }
#pragma unroll
            for (int j = 0; j < 4; ++j) {
                const int tl = tl0 + 16 * j;
                const int position = (tl & 32) + vt_position(tl & 31);
#pragma unroll
                for (int e = 0; e < 4; ++e) {
                    const intfa_u16 half = (intfa_u16)(bits[j][e >> 1] >> (16 * (e & 1)));
                    bool offends = false;
                    const float x = usable(input_to_float(half), offends);
                    if (offends && firstOffending == p.tokensPadded) firstOffending = t0 + tl;
                    // Padding tokens and channels past D hold 0 and encode to code 0.
                    tile[cl + e][position] = (intfa_u8)(encode(x, inverse[cl + e]) ^ kVtExcess);
                }
            }
        } else {
            // Consecutive threads take consecutive channels of one token.
            for (int i = threadIdx.x; i < 64 * 64; i += 256) {
                const int cl = i & 63, tl = i >> 6;
                const intfa_i64 t = t0 + tl;
                const int c = c0 + cl;
                intfa_u32 code = 0;
                if (t < p.tokens && c < p.headDim) {
                    bool offends = false;
                    code = encode(usable(load_input(base, t * p.strideToken + c), offends), inverse[cl]);
                    if (offends && t < firstOffending) firstOffending = t;
                }
                tile[cl][(tl & 32) + vt_position(tl & 31)] = (intfa_u8)(code ^ kVtExcess);
            }
        }
        if (firstOffending < p.tokens) mark_key(p, bh, firstOffending);
        __syncthreads();
        // Write: each thread stores 4 consecutive positions of one channel row, 4 times.
        intfa_u8* out = (intfa_u8*)p.codes + bh * p.headDim * p.tokensPadded;
#pragma unroll
        for (int i = threadIdx.x; i < 64 * 16; i += 256) {
            const int cl = i >> 4, word = i & 15;
            if (c0 + cl < p.headDim) {
                *(intfa_u32*)(out + (intfa_i64)(c0 + cl) * p.tokensPadded + t0 + 4 * word) = *(const intfa_u32*)&tile[cl][4 * word];
            }
        }
    }
}

// The fp16 method's screen: marks the rows that hold an offending element (rowMarks for Q,
// keyMarks for K and V) and, from bf16 (when codes is set), writes the fp16 copy
// [B, Hx, N, D] with those elements zeroed; rounding to fp16 makes |x| ≥ 65520 offend too.
// A thread takes 8 elements (one 16-byte load) where the rows allow, else one; consecutive
// threads cover a row, and each thread takes kScreenPasses rows at once (their loads all in
// flight before the first is used: one row at a time leaves the pass latency-bound). CTAs
// loop over the rows beyond the grid.
constexpr int kScreenPasses = 4;

template <int kWidth>
static INTFA_DEVICE void screen_rows(const QuantizationParams& p, float limit, int (&rowOffends)[kScreenPasses * 256]) {
    const int headDim = (int)p.headDim;
    const int chunks = headDim / kWidth;                      // per row
    const int threadsPerRow = chunks < 256 ? chunks : 256;
    const int rowsPerPass = 256 / threadsPerRow;
    const int rowsPerCTA = kScreenPasses * rowsPerPass;
    const int rowInPass = threadIdx.x / threadsPerRow, lane = threadIdx.x % threadsPerRow;
    const bool active = rowInPass < rowsPerPass;
    for (intfa_i64 bh = blockIdx.y; bh < p.batch * p.heads; bh += gridDim.y) {
        const intfa_i64 b = bh / p.heads, h = bh % p.heads;
        const intfa_u16* base = (const intfa_u16*)p.input + b * p.strideBatch + h * p.strideHead;
        for (intfa_i64 t0 = (intfa_i64)blockIdx.x * rowsPerCTA; t0 < p.tokens; t0 += (intfa_i64)gridDim.x * rowsPerCTA) {
#pragma unroll
            for (int pass = 0; pass < kScreenPasses; ++pass) rowOffends[pass * 256 + threadIdx.x] = 0;
            __syncthreads();
            for (int chunk = lane; active && chunk < chunks; chunk += threadsPerRow) {
                if constexpr (kWidth == 8) {
                    uint4 bits[kScreenPasses];
#pragma unroll
                    for (int pass = 0; pass < kScreenPasses; ++pass) {
                        const intfa_i64 t = t0 + pass * rowsPerPass + rowInPass;
                        bits[pass] = t < p.tokens ? *(const uint4*)(base + t * p.strideToken + 8 * chunk) : make_uint4(0u, 0u, 0u, 0u);
                    }
#pragma unroll
                    for (int pass = 0; pass < kScreenPasses; ++pass) {
                        const intfa_i64 t = t0 + pass * rowsPerPass + rowInPass;
                        const intfa_u32 words[4] = {bits[pass].x, bits[pass].y, bits[pass].z, bits[pass].w};
                        intfa_u32 halves[4];
                        bool offends = false;
#pragma unroll
                        for (int w = 0; w < 4; ++w) {
                            const float x0 = usable(input_to_float((intfa_u16)(words[w] & 0xFFFFu)), offends, limit);
                            const float x1 = usable(input_to_float((intfa_u16)(words[w] >> 16)), offends, limit);
                            halves[w] = intfa_pack_half2(x0, x1);
                        }
                        if (offends) rowOffends[pass * 256 + rowInPass] = 1;
                        if (p.codes != 0 && t < p.tokens) {
                            *(uint4*)((intfa_u16*)p.codes + (bh * p.tokens + t) * headDim + 8 * chunk) =
                                make_uint4(halves[0], halves[1], halves[2], halves[3]);
                        }
                    }
                } else {
#pragma unroll 1
                    for (int pass = 0; pass < kScreenPasses; ++pass) {
                        const intfa_i64 t = t0 + pass * rowsPerPass + rowInPass;
                        if (t >= p.tokens) break;
                        bool offends = false;
                        const float x = usable(load_input(base + t * p.strideToken, chunk), offends, limit);
                        if (offends) rowOffends[pass * 256 + rowInPass] = 1;
                        if (p.codes != 0) ((intfa_u16*)p.codes)[(bh * p.tokens + t) * headDim + chunk] = intfa_float_to_half(x);
                    }
                }
            }
            __syncthreads();
#pragma unroll
            for (int pass = 0; pass < kScreenPasses; ++pass) {
                const intfa_i64 t = t0 + pass * rowsPerPass + rowInPass;
                if (active && lane == 0 && t < p.tokens) {
                    const bool offends = rowOffends[pass * 256 + rowInPass] != 0;
                    if (p.rowMarks != 0) ((intfa_u8*)p.rowMarks)[bh * p.tokens + t] = offends ? 1 : 0;
                    if (offends) mark_key(p, bh, t);
                }
            }
            __syncthreads();  // rowOffends is cleared for the next rows
        }
    }
}

extern "C" __global__ void __launch_bounds__(256) INTFA_SCREEN_KERNEL(const QuantizationParams p) {
#if INTFA_INPUT_BF16
    const float limit = 65520.0f;
#else
    const float limit = kPositiveInfinity;
#endif
    __shared__ int rowOffends[kScreenPasses * 256];
    if (p.headDim % 8 == 0 && p.input % 16 == 0 && ((p.strideBatch | p.strideHead | p.strideToken) % 8) == 0) {
        screen_rows<8>(p, limit, rowOffends);
    } else {
        screen_rows<1>(p, limit, rowOffends);
    }
}
