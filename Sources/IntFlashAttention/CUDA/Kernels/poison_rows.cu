// The GPU half of the non-finite contract (docs/VALIDATION.md): after the attention kernel,
// every output row that an offending input (NaN, ±Inf) reaches becomes NaN, and so does its
// log-sum-exp. A row is reached when it sees a key, and its query row or a key it sees holds
// an offending element, as the marks written by the quantizers (or the fp16 method's screen)
// record. The attention kernels computed every row with those elements taken as 0, so the
// other rows are already what the contract asks; only reached rows are written here, and
// calls without offending inputs write nothing.
//
// A kernel of its own rather than a step of each attention kernel's epilogue: their register
// budgets leave no room for it, and the marks cost one byte per query row to read.
//
// Compile-time options (NVRTC -D):
//   INTFA_CAUSAL   0: every row sees every key, 1: row i sees key j iff j <= i + Nk − Nq
// Kernel names spell the options; see PoisonKernelDescriptor.swift.
#include "params.cuh"

#ifndef INTFA_CAUSAL
#define INTFA_CAUSAL 0
#endif
#if INTFA_CAUSAL
#define INTFA_POISON_KERNEL intfa_poison_rows_causal
#else
#define INTFA_POISON_KERNEL intfa_poison_rows_full
#endif

// One thread per query row: the marks are read for every row, and only reached rows (rare)
// are written. Grid (ceil(Nq / block), min(B·H, 65535)); block up to 256; CTAs loop over the heads
// beyond the grid's y limit. Reads AttentionParams' out (fp16 or bf16: 0x7FFF is NaN in
// both), lse (0 when not written), the marks, the shape and O's strides.
extern "C" __global__ void __launch_bounds__(256) INTFA_POISON_KERNEL(const AttentionParams p) {
    const int queryLength = (int)p.queryLength, keyLength = (int)p.keyLength;
    const int row = blockIdx.x * blockDim.x + threadIdx.x;
    if (row >= queryLength) return;
    // Keys 0 … visible − 1 are seen by the row.
    const int shifted = row + 1 + keyLength - queryLength;
    const int visible = INTFA_CAUSAL ? (shifted < keyLength ? shifted : keyLength) : keyLength;
    if (visible <= 0) return;
    const int heads = (int)p.heads, groupSize = heads / (int)p.kvHeads;
    for (int bh = blockIdx.y; bh < (int)p.batch * heads; bh += gridDim.y) {
        const int batch = bh / heads, head = bh - batch * heads;
        const bool queryMarked = ((const intfa_u8*)p.rowMarks)[(intfa_i64)bh * queryLength + row] != 0;
        const intfa_s32 firstKey = ((const intfa_s32*)p.keyMarks)[(intfa_i64)batch * p.kvHeads + head / groupSize];
        if (!queryMarked && firstKey >= visible) continue;
        intfa_u16* out = (intfa_u16*)p.out + batch * p.oStrideBatch + head * p.oStrideHead + row * p.oStrideToken;
        for (intfa_i64 c = 0; c < p.headDim; ++c) out[c] = (intfa_u16)0x7FFFu;
        if (p.lse != 0) ((float*)p.lse)[(intfa_i64)bh * queryLength + row] = kQuietNaN;
    }
}
