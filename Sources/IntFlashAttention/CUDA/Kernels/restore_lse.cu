// The exact log-sum-exp of the `int8` method. Its quantizers subtract K's channel mean m
// before coding K (docs/SCHEMES.md), which shifts every score of query row i by
// −scale · (q_i · m): the softmax, and so the output, is unchanged, but the attention
// kernels' log-sum-exp is that of the shifted scores. This kernel adds the shift back, so
// that every method's log-sum-exp means the same thing. NaN and ±Inf in q count as 0, as in
// the quantizers (the rows they reach become NaN after this, in poison_rows.cu), and a row
// that sees no key keeps −∞.
//
// Compile-time options (NVRTC -D):
//   INTFA_INPUT_BF16   0: fp16 Q, 1: bf16 Q
// Kernel names spell the options; see RestoreLogSumExpKernelDescriptor.swift.
#include "params.cuh"
#include "input_type.cuh"

#define INTFA_RESTORE_KERNEL INTFA_INPUT_KERNEL_NAME(intfa_restore_lse)

// One warp per query row, its lanes striding over the channels. Grid (ceil(Nq / 8),
// min(B·H, 65535)), block 256; CTAs loop over the heads beyond the grid's y limit.
extern "C" __global__ void __launch_bounds__(256) INTFA_RESTORE_KERNEL(const RestoreLogSumExpParams p) {
    const intfa_i64 row = (intfa_i64)blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
    const int lane = threadIdx.x % 32;
    if (row >= p.queryLength) return;
    const intfa_i64 groupSize = p.heads / p.kvHeads;
    for (intfa_i64 bh = blockIdx.y; bh < p.batch * p.heads; bh += gridDim.y) {
        const intfa_i64 batch = bh / p.heads, head = bh - batch * p.heads;
        const intfa_u16* query = (const intfa_u16*)p.query + batch * p.qStrideBatch + head * p.qStrideHead + row * p.qStrideToken;
        const float* mean = (const float*)p.keyMean + (batch * p.kvHeads + head / groupSize) * p.headDim;
        float dot = 0.0f;
        bool offends = false;
        for (intfa_i64 c = lane; c < p.headDim; c += 32) dot += intfa_usable(input_to_float(query[c]), offends) * mean[c];
        for (int offset = 16; offset > 0; offset /= 2) dot += __shfl_xor_sync(0xFFFFFFFFu, dot, offset);
        if (lane == 0) ((float*)p.lse)[bh * p.queryLength + row] += p.softmaxScale * dot;
    }
}
