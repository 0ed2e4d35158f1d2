// Merging a partial attention result into an accumulator by their log-sum-exps: with
// l = log(e^l1 + e^l2), out = out · e^(l1 − l) + part · e^(l2 − l) and lse = l, in one pass
// over the rows (four channels per thread). A row that saw no key in one of the two sets has
// log-sum-exp −∞ there and takes the other's result; a row with −∞ in both becomes 0, −∞; a
// NaN in either (the non-finite contract) makes the row NaN.
// This is how context-parallel (ring) and split-key attention combine their pieces exactly.
//
// Compile-time options (NVRTC -D):
//   INTFA_INPUT_BF16   0: fp16 part, 1: bf16 part
// Kernel names spell the options; see MergeKernelDescriptor.swift.
#include "params.cuh"
#include "input_type.cuh"

#define INTFA_MERGE_KERNEL INTFA_INPUT_KERNEL_NAME(intfa_merge_partial)

// One CTA holds rowsPerBlock whole rows, so a row's log-sum-exp is read by all of its threads
// before the CTA barrier and written after it.
extern "C" __global__ void __launch_bounds__(256) INTFA_MERGE_KERNEL(const MergeParams p) {
    const intfa_i64 rows = p.batch * p.heads * p.tokens;
    const int threadsPerRow = (int)p.threadsPerRow;
    const intfa_i64 row = (intfa_i64)blockIdx.x * p.rowsPerBlock + threadIdx.x / threadsPerRow;
    const int quad = threadIdx.x % threadsPerRow;  // channels 4·quad … 4·quad + 3
    const bool active = row < rows && threadIdx.x < threadsPerRow * p.rowsPerBlock;

    float* lse = nullptr;
    float newLse = 0.0f, oldWeight = 0.0f, partWeight = 0.0f;
    if (active) {
        const intfa_i64 token = row % p.tokens;
        const intfa_i64 bh = row / p.tokens;
        const intfa_i64 head = bh % p.heads, batch = bh / p.heads;
        lse = (float*)p.lse + batch * p.lseStrideBatch + head * p.lseStrideHead + token;
        const float l1 = *lse;
        const float l2 = *((const float*)p.partLse + batch * p.partLseStrideBatch + head * p.partLseStrideHead + token);
        // NaN-propagating: a part that an offending input reached keeps the row NaN.
        const float m = intfa_max_nan(l1, l2);
        if (m == kNegativeInfinity) {
            newLse = kNegativeInfinity;  // neither set has a key for this row: weights 0, output 0
        } else {
            const float e1 = expf(l1 - m), e2 = expf(l2 - m);
            const float sum = e1 + e2;
            newLse = m + logf(sum);
            oldWeight = e1 / sum;
            partWeight = e2 / sum;
        }
        float4* out = (float4*)((float*)p.out + batch * p.oStrideBatch + head * p.oStrideHead + token * p.oStrideToken) + quad;
        const uint2 packed = *((const uint2*)((const intfa_u16*)p.part + batch * p.pStrideBatch + head * p.pStrideHead + token * p.pStrideToken) + quad);
        float4 o = *out;
        o.x = o.x * oldWeight + input_to_float((intfa_u16)(packed.x & 0xFFFFu)) * partWeight;
        o.y = o.y * oldWeight + input_to_float((intfa_u16)(packed.x >> 16)) * partWeight;
        o.z = o.z * oldWeight + input_to_float((intfa_u16)(packed.y & 0xFFFFu)) * partWeight;
        o.w = o.w * oldWeight + input_to_float((intfa_u16)(packed.y >> 16)) * partWeight;
        *out = o;
    }
    __syncthreads();
    if (active && quad == 0) *lse = newLse;
}
