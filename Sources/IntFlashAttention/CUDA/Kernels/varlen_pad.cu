// A group of a packed variable-length batch as one padded dense batch (docs/KERNELS.md,
// "Packed variable-length batches"): sequence g's tokens first, then padding to L tokens.
// Causal attention with Nq = Nk per sequence is exact on it: a real query sees keys up to
// its own, all real. What keeps the `int8` scheme's codes those of the sequence alone is
// the channel statistics, measured over its own tokens here and handed to the quantizers,
// and K's padding set to that mean (its smoothed rows near 0, so that they move no key
// group's scale); Q's and V's padding is 0.
//
//   intfa_varlen_statistics_…  grid (Hkv, G), block (32, 8): K's channel mean (a double sum,
//                              as the quantizers' own statistics) and V's channel max |v|.
//   intfa_varlen_pad_…         grid (L, G), block 128: the padded batch's row t of sequence g.
//   intfa_varlen_unpad_…       grid (L, G), block 128: the output's real rows back into the pack.
//
// Each takes the group's sequence offsets by value after its parameter block, so that a call
// needs no device memory filled from the host (and can be captured in a CUDA graph).
//
// Compile-time options (NVRTC -D): INTFA_INPUT_BF16 (0: fp16, 1: bf16 inputs; the output is
// copied as 16-bit words, either type), INTFA_VARLEN_MAX_SEQUENCES (sequences per group).
#include "params.cuh"
#include "input_type.cuh"

#ifndef INTFA_VARLEN_MAX_SEQUENCES
#error "the host passes the most sequences of a group (VariableLengthKernelDescriptor.compileOptions)"
#endif

// Sequence g of the group is the pack's tokens value[g] ..< value[g + 1].
struct VariableLengthStarts {
    int value[INTFA_VARLEN_MAX_SEQUENCES + 1];
};

#define INTFA_VARLEN_STATISTICS INTFA_INPUT_KERNEL_NAME(intfa_varlen_statistics)
#define INTFA_VARLEN_PAD INTFA_INPUT_KERNEL_NAME(intfa_varlen_pad)
#define INTFA_VARLEN_UNPAD INTFA_INPUT_KERNEL_NAME(intfa_varlen_unpad)

static INTFA_DEVICE intfa_u16 float_to_input(float x) {
#if INTFA_INPUT_BF16
    return (intfa_u16)(intfa_pack_bf162(x, 0.0f) & 0xFFFFu);
#else
    return intfa_float_to_half(x);
#endif
}

extern "C" __global__ void __launch_bounds__(256) INTFA_VARLEN_STATISTICS(const VariableLengthParams p, const VariableLengthStarts starts) {
    __shared__ double partialSum[8][32];
    __shared__ float partialMax[8][32];
    const intfa_i64 h = blockIdx.x, g = blockIdx.y;
    const int first = starts.value[g], count = starts.value[g + 1] - first;
    const intfa_u16* key = (const intfa_u16*)p.key + (intfa_i64)first * p.kStrideToken + h * p.kStrideHead;
    const intfa_u16* value = (const intfa_u16*)p.value + (intfa_i64)first * p.vStrideToken + h * p.vStrideHead;
    for (intfa_i64 c0 = 0; c0 < p.headDim; c0 += 32) {
        const intfa_i64 c = c0 + threadIdx.x;
        double sum = 0.0;
        float amax = 0.0f;
        if (c < p.headDim) {
            for (int t = threadIdx.y; t < count; t += 8) {
                sum += (double)intfa_usable(input_to_float(key[t * p.kStrideToken + c]));
                amax = fmaxf(amax, fabsf(intfa_usable(input_to_float(value[t * p.vStrideToken + c]))));
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
            const intfa_i64 index = (g * p.kvHeads + h) * p.headDim + c;
            ((float*)p.keyMean)[index] = count > 0 ? (float)(sum / (double)count) : 0.0f;
            ((float*)p.valueAmax)[index] = amax;
        }
        __syncthreads();  // the next slice reuses the shared arrays
    }
}

// Eight 16-bit elements: the unit the padding kernels copy (the host sends only packs whose
// head dim, strides and addresses are multiples of it).
struct alignas(16) Eight { intfa_u16 bits[8]; };

// Copies `heads` rows of D 16-bit elements from `source` (head stride `strideHead`) into the
// contiguous `target`, or writes `pad(head, channel)` where there is no source.
template <typename Pad>
static INTFA_DEVICE void copy_heads(intfa_u16* target, const intfa_u16* source, intfa_i64 strideHead, intfa_i64 heads,
                                    intfa_i64 headDim, Pad pad) {
    for (intfa_i64 i = 8 * threadIdx.x; i < heads * headDim; i += 8 * blockDim.x) {
        const intfa_i64 head = i / headDim, c = i % headDim;
        Eight eight;
        if (source) {
            eight = *(const Eight*)(source + head * strideHead + c);
        } else {
#pragma unroll
            for (int e = 0; e < 8; ++e) eight.bits[e] = pad(head, c + e);
        }
        *(Eight*)(target + i) = eight;
    }
}

extern "C" __global__ void __launch_bounds__(128) INTFA_VARLEN_PAD(const VariableLengthParams p, const VariableLengthStarts starts) {
    const intfa_i64 t = blockIdx.x, g = blockIdx.y;
    const int first = starts.value[g], count = starts.value[g + 1] - first;
    const bool real = t < count;
    const intfa_i64 row = g * p.paddedLength + t, token = first + t;
    auto zero = [](intfa_i64, intfa_i64) { return (intfa_u16)0; };
    copy_heads((intfa_u16*)p.paddedQuery + row * p.heads * p.headDim,
               real ? (const intfa_u16*)p.query + token * p.qStrideToken : nullptr, p.qStrideHead, p.heads, p.headDim, zero);
    copy_heads((intfa_u16*)p.paddedKey + row * p.kvHeads * p.headDim,
               real ? (const intfa_u16*)p.key + token * p.kStrideToken : nullptr, p.kStrideHead, p.kvHeads, p.headDim,
               [&](intfa_i64 head, intfa_i64 c) {
                   return p.keyMean ? float_to_input(((const float*)p.keyMean)[(g * p.kvHeads + head) * p.headDim + c]) : (intfa_u16)0;
               });
    copy_heads((intfa_u16*)p.paddedValue + row * p.kvHeads * p.headDim,
               real ? (const intfa_u16*)p.value + token * p.vStrideToken : nullptr, p.vStrideHead, p.kvHeads, p.headDim, zero);
}

extern "C" __global__ void __launch_bounds__(128) INTFA_VARLEN_UNPAD(const VariableLengthParams p, const VariableLengthStarts starts) {
    const intfa_i64 t = blockIdx.x, g = blockIdx.y;
    const int first = starts.value[g], count = starts.value[g + 1] - first;
    if (t >= count) return;
    const intfa_u16* source = (const intfa_u16*)p.paddedOut + (g * p.paddedLength + t) * p.heads * p.headDim;
    intfa_u16* target = (intfa_u16*)p.out + (first + t) * p.oStrideToken;
    for (intfa_i64 i = 8 * threadIdx.x; i < p.heads * p.headDim; i += 8 * blockDim.x) {
        *(Eight*)(target + (i / p.headDim) * p.oStrideHead + i % p.headDim) = *(const Eight*)(source + i);
    }
}
