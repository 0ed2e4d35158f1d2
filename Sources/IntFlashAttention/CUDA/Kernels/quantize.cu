// Quantization kernels: fp16/bf16 Q, K, V (any element strides) → the 8-bit codes and fp32
// scales that the attention kernels read, following docs/SCHEMES.md bit for bit:
// inv = levels / amax (IEEE fp32 division), code = clamp(rne(x · inv)), scale = amax / levels,
// amax = 0 → inv 0, scale 0, codes 0.
//
// Compile-time options (NVRTC -D):
//   INTFA_INPUT_BF16   0: fp16 input, 1: bf16 input
//   INTFA_CODE_E4M3    0: int8 codes (levels 127), 1: FP8 E4M3 codes (levels 448; sm_89+)
//   INTFA_PER_TENSOR   0: per token (rows) / per channel (V), 1: one scale per (batch, head)
//   INTFA_SMOOTH       1: subtract the channel mean before quantizing rows (K of `int8`)
// Kernel names spell the options; see QuantizationKernelDescriptor.swift.
#include "params.cuh"

#ifndef INTFA_INPUT_BF16
#define INTFA_INPUT_BF16 0
#endif
#ifndef INTFA_CODE_E4M3
#define INTFA_CODE_E4M3 0
#endif
#ifndef INTFA_PER_TENSOR
#define INTFA_PER_TENSOR 0
#endif
#ifndef INTFA_SMOOTH
#define INTFA_SMOOTH 0
#endif

#if INTFA_INPUT_BF16
#define INTFA_IN_SUFFIX bf16
#else
#define INTFA_IN_SUFFIX f16
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
#if INTFA_SMOOTH
#define INTFA_SMOOTH_NAME _smooth
#else
#define INTFA_SMOOTH_NAME
#endif

#define INTFA_CAT2(a, b) a##b
#define INTFA_CAT(a, b) INTFA_CAT2(a, b)
#define INTFA_NAME5(a, b, c, d, e) INTFA_CAT(INTFA_CAT(INTFA_CAT(INTFA_CAT(a, b), c), d), e)

// Kernel names, e.g. intfa_quantize_rows_s8_pertoken_smooth_f16.
#define INTFA_STATS_KERNEL INTFA_CAT(intfa_channel_stats_, INTFA_IN_SUFFIX)
#define INTFA_PARTIALS_KERNEL INTFA_CAT(intfa_channel_partials_, INTFA_IN_SUFFIX)
#define INTFA_ROWS_KERNEL \
    INTFA_NAME5(intfa_quantize_rows_, INTFA_CODE_NAME, INTFA_CAT(_, INTFA_GRAIN_NAME), INTFA_SMOOTH_NAME, INTFA_CAT(_, INTFA_IN_SUFFIX))
#if INTFA_PER_TENSOR
#define INTFA_VT_GRAIN_NAME pertensor
#else
#define INTFA_VT_GRAIN_NAME perchannel
#endif
#define INTFA_VT_KERNEL \
    INTFA_NAME5(intfa_quantize_vt_, INTFA_CODE_NAME, _, INTFA_VT_GRAIN_NAME, INTFA_CAT(_, INTFA_IN_SUFFIX))
#define INTFA_CONVERT_KERNEL INTFA_CAT(intfa_convert_f16_, INTFA_IN_SUFFIX)

static INTFA_DEVICE float load_input(const intfa_u16* input, intfa_i64 index) {
#if INTFA_INPUT_BF16
    return intfa_bf16_to_float(input[index]);
#else
    return intfa_half_to_float(input[index]);
#endif
}

// inv = levels / amax, 0 when amax is 0 (so codes are 0, never NaN).
static INTFA_DEVICE float inverse_scale(float amax) {
    return amax > 0.0f ? __fdiv_rn(INTFA_LEVELS, amax) : 0.0f;
}

// One code byte for x · inv.
static INTFA_DEVICE intfa_u32 encode(float x, float inv) {
    const float scaled = __fmul_rn(x, inv);
#if INTFA_CODE_E4M3
#if __CUDA_ARCH__ >= 890
    return intfa_pack_e4m3x2(scaled, 0.0f) & 0xFFu;
#else
    return 0u;  // never compiled for use: e4m3 needs sm_89 (the descriptor refuses it)
#endif
#else
    int code = __float2int_rn(scaled);
    code = code > 127 ? 127 : (code < -127 ? -127 : code);
    return (intfa_u32)code & 0xFFu;
#endif
}

// Channel statistics in two passes, so that long sequences spread over many CTAs:
// intfa_channel_partials sums each chunk of kStatsChunkTokens tokens (double) and takes its
// max |x|; intfa_channel_stats adds the chunks in order. The double sum of fp16 values is
// exact for N ≤ 8192 (as on the CPU), so the mean does not depend on the order.
#define kStatsChunkTokens 256

// Grid (ceil(D/32), chunks, B·Hx); block (32, 8): x = channel, y = token slice.
extern "C" __global__ void __launch_bounds__(256) INTFA_PARTIALS_KERNEL(const QuantizationParams p) {
    __shared__ double partialSum[8][32];
    __shared__ float partialMax[8][32];
    const intfa_i64 bh = blockIdx.z;
    const intfa_i64 b = bh / p.heads, h = bh % p.heads;
    const int c = blockIdx.x * 32 + threadIdx.x;
    const intfa_i64 t0 = (intfa_i64)blockIdx.y * kStatsChunkTokens;
    const intfa_i64 t1 = t0 + kStatsChunkTokens < p.tokens ? t0 + kStatsChunkTokens : p.tokens;
    const intfa_u16* base = (const intfa_u16*)p.input + b * p.strideBatch + h * p.strideHead;
    double sum = 0.0;
    float amax = 0.0f;
    if (c < p.headDim) {
        for (intfa_i64 t = t0 + threadIdx.y; t < t1; t += 8) {
            const float x = load_input(base, t * p.strideToken + c);
            sum += (double)x;
            amax = fmaxf(amax, fabsf(x));
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
        const intfa_i64 index = (bh * p.statsChunks + blockIdx.y) * p.headDim + c;
        ((double*)p.channelPartials)[index] = sum;
        ((float*)((double*)p.channelPartials + p.batch * p.heads * p.statsChunks * p.headDim))[index] = amax;
    }
}

// Per (batch·head, channel): the mean over the tokens and max |x|, from the chunks in order.
// Grid (ceil(D/32), B·Hx); block 32.
extern "C" __global__ void __launch_bounds__(32) INTFA_STATS_KERNEL(const QuantizationParams p) {
    const intfa_i64 bh = blockIdx.y;
    const int c = blockIdx.x * 32 + threadIdx.x;
    if (c >= p.headDim) return;
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

// Max over the channel maxima of one (batch, head): the per-tensor amax.
static INTFA_DEVICE float tensor_amax(const QuantizationParams& p, intfa_i64 bh) {
    const float* channelAmax = (const float*)p.channelAmax + bh * p.headDim;
    float amax = 0.0f;
    for (intfa_i64 c = 0; c < p.headDim; ++c) amax = fmaxf(amax, channelAmax[c]);
    return amax;
}

// One row (token) per warp. With kContiguous, D = 32·kPer and lane l owns channels
// kPer·l … kPer·l + kPer − 1: one vector load and one vector store per lane. Otherwise lane l
// owns channels l, l + 32, … (any D ≤ 256, any alignment). Same arithmetic either way.
template <int kPer, bool kContiguous>
static INTFA_DEVICE void quantize_row(const QuantizationParams& p, intfa_i64 bh, intfa_i64 t, int lane, float inv) {
    const intfa_i64 b = bh / p.heads, h = bh % p.heads;
    const intfa_u16* row = (const intfa_u16*)p.input + b * p.strideBatch + h * p.strideHead + t * p.strideToken;
    auto channel = [&](int i) { return kContiguous ? kPer * lane + i : lane + 32 * i; };
    float values[kPer];
    if (kContiguous) {
        struct alignas(2 * kPer) Halves { intfa_u16 bits[kPer]; };
        const Halves halves = *(const Halves*)(row + kPer * lane);
#pragma unroll
        for (int i = 0; i < kPer; ++i) {
#if INTFA_INPUT_BF16
            values[i] = intfa_bf16_to_float(halves.bits[i]);
#else
            values[i] = intfa_half_to_float(halves.bits[i]);
#endif
        }
    } else {
#pragma unroll
        for (int i = 0; i < kPer; ++i) values[i] = channel(i) < p.headDim ? load_input(row, channel(i)) : 0.0f;
    }
#if INTFA_SMOOTH
#pragma unroll
    for (int i = 0; i < kPer; ++i) {
        if (channel(i) < p.headDim) values[i] = __fsub_rn(values[i], ((const float*)p.channelMean)[bh * p.headDim + channel(i)]);
    }
#endif
#if !INTFA_PER_TENSOR
    float amax = 0.0f;
#pragma unroll
    for (int i = 0; i < kPer; ++i) amax = fmaxf(amax, fabsf(values[i]));
#pragma unroll
    for (int offset = 16; offset > 0; offset >>= 1) amax = fmaxf(amax, __shfl_xor_sync(0xFFFFFFFFu, amax, offset));
    inv = inverse_scale(amax);
    if (lane == 0) {
        ((float*)p.scales)[bh * p.tokensPadded + t] = __fmul_rn(__fdiv_rn(amax, INTFA_LEVELS), p.scaleMultiplier);
    }
#endif
    intfa_u8* out = (intfa_u8*)p.codes + (bh * p.tokens + t) * p.headDim;
    if (kContiguous) {
        struct alignas(kPer) Bytes { intfa_u8 codes[kPer]; };
        Bytes bytes;
#pragma unroll
        for (int i = 0; i < kPer; ++i) bytes.codes[i] = (intfa_u8)encode(values[i], inv);
        *(Bytes*)(out + kPer * lane) = bytes;
    } else {
#pragma unroll
        for (int i = 0; i < kPer; ++i) {
            if (channel(i) < p.headDim) out[channel(i)] = (intfa_u8)encode(values[i], inv);
        }
    }
}

// Whether rows of D = 32·kPer channels can be read kPer at a time (2·kPer-byte aligned).
static INTFA_DEVICE bool rows_contiguous(const QuantizationParams& p, int kPer) {
    const intfa_i64 alignment = 2 * kPer;
    return p.headDim == 32 * kPer && p.input % alignment == 0 &&
           ((p.strideBatch | p.strideHead | p.strideToken) * 2) % alignment == 0;
}

// Rows (Q, K): one warp per token. Grid (ceil(NPad / 8), B·Hx); block 256 (8 warps).
// Writes codes [B, Hx, N, D] contiguous and scales [B, Hx, NPad] (per token, zero past N)
// or [B, Hx] (per tensor).
extern "C" __global__ void __launch_bounds__(256) INTFA_ROWS_KERNEL(const QuantizationParams p) {
    const int lane = threadIdx.x & 31;
    const intfa_i64 t = (intfa_i64)blockIdx.x * 8 + (threadIdx.x >> 5);
    const intfa_i64 bh = blockIdx.y;
    if (t >= p.tokensPadded) return;
    float inv = 0.0f;  // per token: computed from the row
#if INTFA_PER_TENSOR
    const float amax = tensor_amax(p, bh);
    inv = inverse_scale(amax);
    if (t == 0 && lane == 0) {
        ((float*)p.scales)[bh] = __fmul_rn(__fdiv_rn(amax, INTFA_LEVELS), p.scaleMultiplier);
    }
    if (t >= p.tokens) return;
#else
    if (t >= p.tokens) {
        if (lane == 0) ((float*)p.scales)[bh * p.tokensPadded + t] = 0.0f;
        return;
    }
#endif
    if (rows_contiguous(p, 4)) {
        quantize_row<4, true>(p, bh, t, lane, inv);
    } else if (rows_contiguous(p, 2)) {
        quantize_row<2, true>(p, bh, t, lane, inv);
    } else if (rows_contiguous(p, 8)) {
        quantize_row<8, true>(p, bh, t, lane, inv);
    } else {
        quantize_row<8, false>(p, bh, t, lane, inv);  // head dim ≤ 256
    }
}

// Position, inside its 32-key group, at which Vt stores key r (0…31). The attention kernel
// turns the Q·Kᵀ accumulator fragment straight into the P·V A fragment; the two fragments
// number keys differently, and this order makes them agree (docs/SCHEMES.md, GPU layout).
static INTFA_DEVICE int vt_position(int r) {
    return 16 * (r >> 4) + 4 * ((r & 7) >> 1) + 2 * ((r & 15) >> 3) + (r & 1);
}

// V → Vt [B, Hx, D, NPad], keys permuted in groups of 32, zero past N; scales per channel
// [B, Hx, D] or per tensor [B, Hx]. Grid (NPad/64, ceil(D/64), B·Hx); block 256.
extern "C" __global__ void __launch_bounds__(256) INTFA_VT_KERNEL(const QuantizationParams p) {
    __shared__ float inverse[64];
    __shared__ intfa_u8 tile[64][64 + 4];  // [channel][position]
    const intfa_i64 bh = blockIdx.z;
    const intfa_i64 b = bh / p.heads, h = bh % p.heads;
    const intfa_i64 t0 = (intfa_i64)blockIdx.x * 64;
    const int c0 = blockIdx.y * 64;
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
    // Read: consecutive threads take consecutive channels of one token (coalesced).
    for (int i = threadIdx.x; i < 64 * 64; i += 256) {
        const int cl = i & 63, tl = i >> 6;
        const intfa_i64 t = t0 + tl;
        const int c = c0 + cl;
        intfa_u32 code = 0;
        if (t < p.tokens && c < p.headDim) code = encode(load_input(base, t * p.strideToken + c), inverse[cl]);
        tile[cl][(tl & 32) + vt_position(tl & 31)] = (intfa_u8)code;
    }
    __syncthreads();
    // Write: each thread stores 4 consecutive positions of one channel row.
    intfa_u8* out = (intfa_u8*)p.codes + bh * p.headDim * p.tokensPadded;
    for (int i = threadIdx.x; i < 64 * 16; i += 256) {
        const int cl = i >> 4, word = i & 15;
        const int c = c0 + cl;
        if (c >= p.headDim) continue;
        const intfa_u32 packed = (intfa_u32)tile[cl][4 * word] | ((intfa_u32)tile[cl][4 * word + 1] << 8) |
                                 ((intfa_u32)tile[cl][4 * word + 2] << 16) | ((intfa_u32)tile[cl][4 * word + 3] << 24);
        *(intfa_u32*)(out + (intfa_i64)c * p.tokensPadded + t0 + 4 * word) = packed;
    }
}

// fp16 method with bf16 inputs: round to fp16 into a contiguous [B, Hx, N, D] tensor.
// Grid-stride over all elements; block 256.
extern "C" __global__ void __launch_bounds__(256) INTFA_CONVERT_KERNEL(const QuantizationParams p) {
    const intfa_i64 total = p.batch * p.heads * p.tokens * p.headDim;
    for (intfa_i64 i = (intfa_i64)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += (intfa_i64)gridDim.x * blockDim.x) {
        const intfa_i64 c = i % p.headDim;
        const intfa_i64 rest = i / p.headDim;
        const intfa_i64 t = rest % p.tokens;
        const intfa_i64 bh = rest / p.tokens;
        const intfa_i64 b = bh / p.heads, h = bh % p.heads;
        const float x = load_input((const intfa_u16*)p.input, b * p.strideBatch + h * p.strideHead + t * p.strideToken + c);
        ((intfa_u16*)p.codes)[i] = intfa_float_to_half(x);
    }
}
