// Kernel parameter blocks, passed by value as the kernels' single argument.
//
// Every field is 8 bytes (pointers as u64, sizes and strides as i64, fp32 values in pairs),
// so the C layout has no padding and the Swift mirrors (`AttentionParams`,
// `QuantizationParams` in KernelParams.swift) match it field for field; a Swift test
// checks the offsets listed here. Strides are in elements of the tensor they describe.
#pragma once
#include "common.cuh"

struct AttentionParams {
    // Q: s8 / e4m3 codes or fp16 values, logical [B, H, Nq, D], head dim contiguous.
    intfa_u64 q;                 //   0
    // K: codes or fp16 values, logical [B, Hkv, Nk, D].
    intfa_u64 k;                 //   8
    // V: 8-bit methods: Vt codes [B, Hkv, D, NkPad] (keys permuted, see docs/SCHEMES.md);
    //    fp16: values, logical [B, Hkv, Nk, D].
    intfa_u64 v;                 //  16
    // fp32 scales: sQ [B, H, Nq] (per token, already times sm·L) or [B, H] (per tensor);
    // sK [B, Hkv, NkPad] (per token, zero past Nk) or [B, Hkv]; sV [B, Hkv, D] or [B, Hkv].
    // Unused (0) for fp16.
    intfa_u64 qScale;            //  24
    intfa_u64 kScale;            //  32
    intfa_u64 vScale;            //  40
    // O: fp16 or bf16, logical [B, H, Nq, D].
    intfa_u64 out;               //  48
    // Log-sum-exp, fp32 [B, H, Nq], natural log (written when compiled with INTFA_WRITE_LSE).
    intfa_u64 lse;               //  56
    intfa_i64 batch;             //  64
    intfa_i64 heads;             //  72
    intfa_i64 kvHeads;           //  80
    intfa_i64 queryLength;       //  88
    intfa_i64 keyLength;         //  96
    // NkPad: keyLength rounded up to a multiple of 64 (Vt rows and sK per head).
    intfa_i64 keyLengthPadded;   // 104
    intfa_i64 qStrideBatch;      // 112
    intfa_i64 qStrideHead;       // 120
    intfa_i64 qStrideToken;      // 128
    intfa_i64 kStrideBatch;      // 136
    intfa_i64 kStrideHead;       // 144
    intfa_i64 kStrideToken;      // 152
    // For Vt, vStrideRow is the stride between channels (NkPad); for fp16 V, between tokens.
    intfa_i64 vStrideBatch;      // 160
    intfa_i64 vStrideHead;       // 168
    intfa_i64 vStrideRow;        // 176
    intfa_i64 oStrideBatch;      // 184
    intfa_i64 oStrideHead;       // 192
    intfa_i64 oStrideToken;      // 200
    // sm·L (fp32 product of the softmax scale and log2 e): used by fp16, whose Q has no scale.
    float softmaxScaleLog2;      // 208
    float reserved0;             // 212
    // Marks of offending inputs (NaN, ±Inf; docs/VALIDATION.md), written by the quantizers or
    // the fp16 method's screen: u8 [B, H, Nq], 1 where the query row holds one; and s32
    // [B, Hkv], the first key whose K or V row holds one (0x7FFFFFFF when none).
    intfa_u64 rowMarks;          // 216
    intfa_u64 keyMarks;          // 224
    intfa_i64 headDim;           // 232
};                               // size 240

// One block for every quantization kernel; each kernel reads the fields it needs.
struct QuantizationParams {
    // Input: fp16 or bf16, logical [B, Hx, N, D] with the strides below.
    intfa_u64 input;             //   0
    // Codes: s8 / e4m3 [B, Hx, N, D] (rows), or Vt [B, Hx, D, NPad] (V), or fp16 [B, Hx, N, D].
    intfa_u64 codes;             //   8
    // Scales: fp32 [B, Hx, N] (rows; [B, Hx, NPad] for K so the attention kernel can copy
    // them in 16-byte pieces), [B, Hx, D] (V per channel) or [B, Hx] (per tensor).
    intfa_u64 scales;            //  16
    // Per-channel statistics, fp32 [B, Hx, D]: written by intfa_channel_stats, read by the
    // quantizers (mean for K smoothing, amax for V and the per-tensor schemes).
    intfa_u64 channelMean;       //  24
    intfa_u64 channelAmax;       //  32
    intfa_i64 batch;             //  40
    intfa_i64 heads;             //  48
    intfa_i64 tokens;            //  56
    intfa_i64 headDim;           //  64
    // tokens rounded up to a multiple of 64.
    intfa_i64 tokensPadded;      //  72
    intfa_i64 strideBatch;       //  80
    intfa_i64 strideHead;        //  88
    intfa_i64 strideToken;       //  96
    // Multiplies each stored scale (sm·L for Q, 1 otherwise): fp32 product.
    float scaleMultiplier;       // 104
    float reserved0;             // 108
    // Channel statistics per chunk of kStatsChunkTokens tokens, written by
    // intfa_channel_partials and reduced in chunk order by intfa_channel_stats:
    // fp64 sums [B, Hx, chunks, D], then fp32 max |x| [B, Hx, chunks, D].
    intfa_u64 channelPartials;   // 112
    intfa_i64 statsChunks;       // 120
    // Marks of offending elements (see AttentionParams), 0 when not wanted: u8 per token
    // [B, Hx, N] (written for every token), and the s32 first offending token per (batch,
    // head) [B, Hx] (lowered with atomicMin; the host sets it to 0x7FFFFFFF first).
    intfa_u64 rowMarks;          // 128
    intfa_u64 keyMarks;          // 136
};                               // size 144

// The merge of a partial attention result into an accumulator (merge.cu).
struct MergeParams {
    // Accumulator: fp32 [B, H, N, D] and its log-sum-exp fp32 [B, H, N] (token stride 1).
    intfa_u64 out;               //   0
    intfa_u64 lse;               //   8
    // The part: fp16 or bf16 [B, H, N, D] and its log-sum-exp fp32 [B, H, N] (token stride 1).
    intfa_u64 part;              //  16
    intfa_u64 partLse;           //  24
    intfa_i64 batch;             //  32
    intfa_i64 heads;             //  40
    intfa_i64 tokens;            //  48
    intfa_i64 headDim;           //  56
    intfa_i64 oStrideBatch;      //  64
    intfa_i64 oStrideHead;       //  72
    intfa_i64 oStrideToken;      //  80
    intfa_i64 pStrideBatch;      //  88
    intfa_i64 pStrideHead;       //  96
    intfa_i64 pStrideToken;      // 104
    intfa_i64 lseStrideBatch;    // 112
    intfa_i64 lseStrideHead;     // 120
    intfa_i64 partLseStrideBatch; // 128
    intfa_i64 partLseStrideHead; // 136
    // Threads per row (D / 4) and rows per CTA (blockDim.x / threadsPerRow).
    intfa_i64 threadsPerRow;     // 144
    intfa_i64 rowsPerBlock;      // 152
};                               // size 160

// The shift that turns the `int8` method's log-sum-exp into the exact one (restore_lse.cu).
struct RestoreLogSumExpParams {
    // Q: fp16 or bf16, logical [B, H, Nq, D] with the strides below.
    intfa_u64 query;             //   0
    // K's channel mean, fp32 [B, Hkv, D], as the quantizers measured it.
    intfa_u64 keyMean;           //   8
    // Log-sum-exp, fp32 [B, H, Nq], updated in place.
    intfa_u64 lse;               //  16
    intfa_i64 batch;             //  24
    intfa_i64 heads;             //  32
    intfa_i64 kvHeads;           //  40
    intfa_i64 queryLength;       //  48
    intfa_i64 headDim;           //  56
    intfa_i64 qStrideBatch;      //  64
    intfa_i64 qStrideHead;       //  72
    intfa_i64 qStrideToken;      //  80
    // The softmax scale (natural-log units, not times log2 e).
    float softmaxScale;          //  88
    float reserved0;             //  92
};                               // size 96

// Decode attention on the paged INT8 KV cache (Families/Decode/decode.cu).
struct DecodeParams {
    // Q: fp16 or bf16, logical [B, Nq, H, D] with the strides below.
    intfa_u64 query;             //   0
    // The cache: s8 codes [pages, Hkv, pageSize, D] and fp32 scales [pages, Hkv, pageSize].
    intfa_u64 keyCodes;          //   8
    intfa_u64 valueCodes;        //  16
    intfa_u64 keyScales;         //  24
    intfa_u64 valueScales;       //  32
    // s32 [B, maxPages]: the pages of each sequence in token order; s32 [B]: its tokens.
    intfa_u64 blockTable;        //  40
    intfa_u64 lengths;           //  48
    // fp32 partials of the splits: outputs [splits, B, H, Nq, D], log-sum-exps [splits, B, H, Nq].
    intfa_u64 partialOut;        //  56
    intfa_u64 partialLse;        //  64
    // O: fp16 or bf16, logical [B, Nq, H, D]; log-sum-exp fp32 [B, H, Nq] (0: none).
    intfa_u64 out;               //  72
    intfa_u64 lse;               //  80
    intfa_i64 batch;             //  88
    intfa_i64 heads;             //  96
    intfa_i64 kvHeads;           // 104
    intfa_i64 queryLength;       // 112
    intfa_i64 headDim;           // 120
    intfa_i64 pageSize;          // 128
    intfa_i64 maxPages;          // 136
    intfa_i64 splits;            // 144
    // Keys per split: a multiple of the decode P block (64 keys).
    intfa_i64 splitKeys;         // 152
    intfa_i64 qStrideBatch;      // 160
    intfa_i64 qStrideToken;      // 168
    intfa_i64 qStrideHead;       // 176
    intfa_i64 oStrideBatch;      // 184
    intfa_i64 oStrideToken;      // 192
    intfa_i64 oStrideHead;       // 200
    // 1: token i of Nq sees keys j <= n − Nq + i; 0: every cached key.
    intfa_i64 causal;            // 208
    // sm·L (fp32 product of the softmax scale and log2 e).
    float softmaxScaleLog2;      // 216
    float reserved0;             // 220
    // Pages in the pool: a block-table entry outside 0..<pageCount is not read.
    intfa_i64 pageCount;         // 224
    // New tokens per CTA (a query tile; the grid's x is splits × ceil(Nq / tokensPerTile)).
    intfa_i64 tokensPerTile;     // 232
};                               // size 240

// Appending new tokens to the paged INT8 KV cache (Families/Decode/kv_append.cu).
struct KVAppendParams {
    // New K and V: fp16 or bf16, logical [B, T, Hkv, D] with the strides below.
    intfa_u64 keys;              //   0
    intfa_u64 values;            //   8
    // The cache, as in DecodeParams, and K's channel means fp32 [B, Hkv, D].
    intfa_u64 keyCodes;          //  16
    intfa_u64 valueCodes;        //  24
    intfa_u64 keyScales;         //  32
    intfa_u64 valueScales;       //  40
    intfa_u64 keyMeans;          //  48
    intfa_u64 blockTable;        //  56
    intfa_u64 lengths;           //  64
    intfa_i64 batch;             //  72
    // New tokens per sequence (T).
    intfa_i64 tokens;            //  80
    intfa_i64 kvHeads;           //  88
    intfa_i64 headDim;           //  96
    intfa_i64 pageSize;          // 104
    intfa_i64 pageCount;         // 112
    intfa_i64 maxPages;          // 120
    intfa_i64 kStrideBatch;      // 128
    intfa_i64 kStrideToken;      // 136
    intfa_i64 kStrideHead;       // 144
    intfa_i64 vStrideBatch;      // 152
    intfa_i64 vStrideToken;      // 160
    intfa_i64 vStrideHead;       // 168
};                               // size 176

// The first key of (batch, KV head) whose K or V row holds an offending input, 0x7FFFFFFF when
// none, for the CTA of an mma-family kernel (blockIdx.y = head, blockIdx.z = batch).
INTFA_DEVICE int intfa_first_offending_key(const AttentionParams& p) {
    unsigned head, batch;
    asm volatile("mov.u32 %0, %%ctaid.y;\n" : "=r"(head));
    asm volatile("mov.u32 %0, %%ctaid.z;\n" : "=r"(batch));
    const int kvHead = (int)head / (int)(p.heads / p.kvHeads);
    return ((const intfa_s32*)p.keyMarks)[(intfa_i64)batch * p.kvHeads + kvHead];
}

// Parameters of Kernels/varlen_pad.cu (VariableLengthParams in KernelParams.swift): a group of
// a packed variable-length batch copied into a padded dense batch and its output back. The
// group's sequence offsets come in a second parameter (VariableLengthStarts, varlen_pad.cu).
struct VariableLengthParams {
    // The pack: fp16 or bf16 [total, H or Hkv, D] at the strides below, and its output.
    intfa_u64 query;             //   0
    intfa_u64 key;               //   8
    intfa_u64 value;             //  16
    intfa_u64 out;               //  24
    // The padded batch, contiguous [G, L, H or Hkv, D]: inputs and output.
    intfa_u64 paddedQuery;       //  32
    intfa_u64 paddedKey;         //  40
    intfa_u64 paddedValue;       //  48
    intfa_u64 paddedOut;         //  56
    // fp32 [G, Hkv, D]: K's mean and V's max |v| over each sequence's own tokens.
    intfa_u64 keyMean;           //  64
    intfa_u64 valueAmax;         //  72
    intfa_i64 sequences;         //  80
    intfa_i64 paddedLength;      //  88
    intfa_i64 heads;             //  96
    intfa_i64 kvHeads;           // 104
    intfa_i64 headDim;           // 112
    intfa_i64 qStrideToken;      // 120
    intfa_i64 qStrideHead;       // 128
    intfa_i64 kStrideToken;      // 136
    intfa_i64 kStrideHead;       // 144
    intfa_i64 vStrideToken;      // 152
    intfa_i64 vStrideHead;       // 160
    intfa_i64 oStrideToken;      // 168
    intfa_i64 oStrideHead;       // 176
};                               // size 184
