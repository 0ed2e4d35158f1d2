/*
 * intfa.h: the C interface of IntFlashAttention (libintfa.so).
 *
 * FlashAttention forward with 8-bit integer arithmetic: on NVIDIA GPUs (kernels compiled at
 * run time by NVRTC, launched through the CUDA driver API; both loaded on first use) and on
 * the CPU. Every function returns an intfa_status; on failure intfa_last_error_message()
 * says what went wrong (per thread, valid until the thread's next call).
 *
 * Tensors are logical [batch, heads, tokens, head_dim] with the head dim contiguous and the
 * other three dimensions given by element strides, so BHND, BNHD and sliced views all work
 * without copies. Causal masking is bottom-right aligned: query row i sees key j iff
 * j <= i + key_length - query_length (the convention of FlashAttention 2 and of
 * torch.nn.functional.scaled_dot_product_attention for equal lengths).
 *
 * What the caller owes. An intfa_tensor carries no extents: the library takes them from the
 * problem (q and out: [batch, heads, query_length, head_dim]; k and v: [batch, kv_heads,
 * key_length, head_dim]) and cannot see how much memory stands behind `data`. The caller
 * owes that every element those extents reach at the tensor's strides lies in memory it owns
 * (readable for inputs, writable for out), host memory for the _host call and device memory
 * of the context's device otherwise; that out overlaps no input; that lse, when given, holds
 * batch * heads * query_length floats; and that nothing changes the inputs while a call
 * reads them. The library checks everything else before it reads anything: dimensions
 * (batch >= 0, heads, kv_heads, key_length >= 1, query_length >= 0, head_dim a multiple of 8
 * up to 256, at most 2^56 elements per tensor), non-negative strides, element alignment,
 * that the span of each tensor and the address past it fit in 64 bits, reserved fields 0,
 * enum values. A problem with batch == 0 or query_length == 0 is valid and does nothing.
 *
 * Non-finite inputs. intfa_attention_host with validate_inputs fails with
 * INTFA_ERROR_NON_FINITE_INPUT at the first NaN or +-Inf (and, for INTFA_METHOD_FP16, at the
 * first value of magnitude 65520 or more, which rounds to Inf in fp16); without it, those
 * values give NaN in exactly the output rows (and log-sum-exps) they reach: a query row
 * holding one, and every row that sees a key whose k or v row holds one; every other row is
 * computed as if they were 0. The device calls (intfa_attention, intfa_attention_quantized)
 * give the same result without a scan of their own: the quantizers (for fp16, a screen
 * kernel) take those values as 0 and mark the rows that hold them, and a last kernel writes
 * NaN into the rows they reach. intfa_quantize stores the marks after the scales of its
 * q_scale and k_scale buffers, where intfa_attention_quantized reads them.
 *
 * Log-sum-exp. lse[b, h, i] is the natural log of the sum over the keys row i sees of
 * exp(softmax_scale * q_i . k_j) (-inf when it sees none), for every method, from
 * intfa_attention and intfa_attention_host alike. INTFA_METHOD_INT8 smooths K (subtracts its
 * per-channel mean m over the keys, which leaves the softmax unchanged) and adds the shift
 * softmax_scale * q_i . m back to its kernels' log-sum-exp, with NaN/Inf in q and k taken
 * as 0. intfa_attention_quantized cannot: its inputs no longer hold q, so for
 * INTFA_METHOD_INT8 its lse is that of the smoothed scores (the exact value minus that
 * shift). Pieces of one sequence quantized with one m (the statistics of intfa_quantize)
 * still merge exactly (intfa_merge_partial), since the shift is the same in every piece.
 *
 * Versions. INTFA_ABI_VERSION names the layout of these structs and the functions'
 * parameters; intfa_abi_version() returns the library's, which a caller compares with the
 * header it was built against. Version 2 moved the Hopper grid hint from intfa_problem into
 * intfa_options, which carries its own size so that later options extend it without a new
 * version. Version 3 added the paged INT8 KV cache (intfa_kv_cache, intfa_kv_append,
 * intfa_decode) and packed variable-length attention (intfa_attention_varlen).
 *
 * Memory. intfa_attention_host asks for its whole host working set before it allocates and
 * fails with INTFA_ERROR_OUT_OF_MEMORY, naming the bytes, when the machine cannot give it; a
 * device allocation that fails does the same. No failure ends the process.
 */
#ifndef INTFA_H
#define INTFA_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define INTFA_ABI_VERSION 3

typedef enum intfa_status {
    INTFA_SUCCESS = 0,
    /* A dimension, stride, alignment, pointer, size or enum value is invalid, or an
       environment variable of the library (INTFA_CPU_ISA) holds an unknown value. */
    INTFA_ERROR_INVALID_ARGUMENT = 1,
    /* Valid, but this method, head dim, element type or device has no kernel. */
    INTFA_ERROR_UNSUPPORTED = 2,
    /* An input holds NaN or +-Inf, or for INTFA_METHOD_FP16 a value that overflows fp16
       (checked where the call asks for validation). */
    INTFA_ERROR_NON_FINITE_INPUT = 3,
    /* No CUDA driver or NVRTC, or a CUDA call failed. */
    INTFA_ERROR_GPU = 4,
    /* Host or device memory could not be had; the message names the bytes. */
    INTFA_ERROR_OUT_OF_MEMORY = 5,
    /* The workspace passed is smaller than intfa_workspace_size() asks for. */
    INTFA_ERROR_WORKSPACE_TOO_SMALL = 6,
} intfa_status;

typedef enum intfa_dtype {
    INTFA_DTYPE_FLOAT16 = 0,
    INTFA_DTYPE_BFLOAT16 = 1,
    INTFA_DTYPE_FLOAT32 = 2, /* host calls only */
} intfa_dtype;

typedef enum intfa_method {
    /* The default INT8 scheme: per-token Q, smoothed K with a scale per group of 8 keys,
       per-channel V, u8 P with a row scale per block of keys (0–31, 32–127, then 128 at a
       time; docs/SCHEMES.md). */
    INTFA_METHOD_INT8 = 0,
    /* The INT-FlashAttention paper's scheme: per-token Q and K, per-tensor V. */
    INTFA_METHOD_INT8_PAPER = 1,
    /* FP8 E4M3 with per-tensor scales (GPUs of compute capability 8.9 and later, and the CPU). */
    INTFA_METHOD_FP8_E4M3 = 2,
    /* fp16 inputs and P, fp32 accumulation. */
    INTFA_METHOD_FP16 = 3,
    /* fp32 throughout (host calls only). */
    INTFA_METHOD_FP32 = 4,
} intfa_method;

/* The launch grid of the Hopper (wgmma) kernels (intfa_options.grid); other kernels ignore it. */
typedef enum intfa_grid {
    /* INTFA_WGMMA_GRID if set, else persistent for full attention and one CTA per tile when
       causal. */
    INTFA_GRID_DEFAULT = 0,
    /* One CTA per SM, each looping over tiles. */
    INTFA_GRID_PERSISTENT = 1,
    /* One CTA per tile: for calls that share the GPU with other kernels (e.g. NCCL's during a
       ring), where a persistent CTA that starts late holds back the tiles assigned to it. */
    INTFA_GRID_PER_TILE = 2,
} intfa_grid;

typedef struct intfa_problem {
    int64_t batch;
    int64_t heads;        /* query heads */
    int64_t kv_heads;     /* key/value heads; heads must be a multiple (GQA, MQA) */
    int64_t query_length;
    int64_t key_length;
    int64_t head_dim;
    float softmax_scale;  /* <= 0 selects 1/sqrt(head_dim) */
    int32_t causal;       /* nonzero: bottom-right aligned causal mask */
    int32_t method;       /* intfa_method */
    int32_t reserved;     /* must be 0 */
} intfa_problem;

/* Hints for one device call that change how it runs, never what it computes. Pass NULL for
   every default, or start from INTFA_OPTIONS_INIT. `size` is sizeof(intfa_options) as the
   caller's header declares it: a later version appends fields, and a library reads the
   fields that `size` covers and takes the defaults for the rest. */
typedef struct intfa_options {
    uint32_t size;        /* bytes of this struct the caller wrote: at least 8 */
    int32_t grid;         /* intfa_grid */
    int64_t reserved[3];  /* must be 0 */
} intfa_options;

#define INTFA_OPTIONS_INIT { sizeof(intfa_options), INTFA_GRID_DEFAULT, { 0, 0, 0 } }

typedef struct intfa_tensor {
    void* data;           /* element (0, 0, 0, 0); read-only for inputs; may be NULL when the
                             tensor is empty */
    int32_t dtype;        /* intfa_dtype */
    int32_t reserved;     /* must be 0 */
    int64_t stride_batch; /* in elements */
    int64_t stride_head;
    int64_t stride_token;
} intfa_tensor;

/* Pre-quantized inputs in the GPU layout of docs/SCHEMES.md: contiguous codes and fp32
   scales, Vt transposed with keys permuted in groups of 32. 16-byte aligned (codes, K scales). */
typedef struct intfa_quantized {
    void* q;        /* s8 [B, H, Nq, D] */
    float* q_scale; /* [B, H, Nq] (fp8: [B, H]), times softmax_scale * log2(e); then u8 [B, H, Nq],
                       1 where the query row holds NaN/Inf (written by intfa_quantize) */
    void* k;        /* s8 [B, Hkv, Nk, D] */
    float* k_scale; /* int8: [B, Hkv, NkPad / 8], one per group of 8 keys (docs/SCHEMES.md); int8-paper:
                       [B, Hkv, NkPad]; fp8: [B, Hkv]; NkPad = Nk rounded up to 128, zero past Nk;
                       then s32 [B, Hkv], the first key whose k or v row holds NaN/Inf (INT32_MAX: none) */
    void* vt;       /* [B, Hkv, D, NkPad]: int8 codes + 128 as u8 (excess-128), int8-paper s8 codes */
    float* v_scale; /* [B, Hkv, D] (int8) or [B, Hkv] (int8-paper) */
} intfa_quantized;

typedef struct intfa_quantized_sizes {
    size_t q, q_scale, k, k_scale, vt, v_scale; /* bytes */
} intfa_quantized_sizes;

/* A paged INT8 KV cache in device memory that the caller owns (docs/SCHEMES.md, "The INT8 KV
   cache"): pages of page_size tokens hold, per KV head, the K and V codes and one fp32 scale
   per token each; sequence b owns the pages block_table[b][0…] in token order. The caller
   allocates the buffers (sizes from intfa_kv_cache_byte_counts, codes and scales zeroed or
   not, block_table filled with -1 and lengths with 0 to start) and puts the pages of new
   tokens into block_table before it appends them; intfa_kv_append writes the tokens and
   advances lengths on the device. Entries outside 0…page_count-1 are never written through;
   decode reads a token whose entry is outside the pool as NaN (the rows that see it become
   NaN). */
typedef struct intfa_kv_cache {
    int64_t page_size;     /* tokens per page: 1…256 */
    int64_t page_count;    /* pages in the pool; page_count * kv_heads * page_size < 2^31 */
    int64_t kv_heads;
    int64_t head_dim;      /* a multiple of 8 up to 256 (decode: 64 or 128) */
    int64_t sequences;     /* rows of block_table and lengths: 1…65535 */
    int64_t max_pages;     /* entries per block_table row */
    int64_t max_length;    /* a bound on every sequence's length, <= max_pages * page_size: decode
                              plans its key splits by it */
    void* key_codes;       /* s8 [page_count, kv_heads, page_size, head_dim], 16-byte aligned */
    void* value_codes;     /* the same for V */
    float* key_scales;     /* [page_count, kv_heads, page_size] */
    float* value_scales;   /* the same for V */
    float* key_means;      /* [sequences, kv_heads, head_dim]: K's channel means, fixed by each
                              sequence's first append */
    int32_t* block_table;  /* [sequences, max_pages] */
    int32_t* lengths;      /* [sequences]: tokens stored */
} intfa_kv_cache;

typedef struct intfa_kv_cache_sizes {
    size_t codes, scales, means, block_table, lengths; /* bytes of each buffer (codes and scales: each of K and V) */
} intfa_kv_cache_sizes;

typedef struct intfa_context intfa_context;

/* The library's version, e.g. "0.3.0". */
const char* intfa_version(void);

/* The INTFA_ABI_VERSION the library was built with. */
int32_t intfa_abi_version(void);

/* Keys per tile of INTFA_METHOD_INT8 (128): its K scales come per group of 8 keys of a tile
   and its P blocks per tile, so pieces of one sequence (a ring's slices, split keys) whose
   boundaries fall on multiples of it quantize and attend exactly as the whole sequence. */
int32_t intfa_int8_key_tile(void);

/* What the calling thread's last failed call reported ("" after a success). */
const char* intfa_last_error_message(void);

/* Opens CUDA device `device` (its primary context, shared with the CUDA runtime and PyTorch).
   Fails with INTFA_ERROR_GPU when no driver or device is usable. */
intfa_status intfa_context_create(int32_t device, intfa_context** context);
void intfa_context_destroy(intfa_context* context);

/* Device memory intfa_attention needs as `workspace` for this problem and input dtype. */
intfa_status intfa_workspace_size(const intfa_problem* problem, int32_t input_dtype, size_t* bytes);

/* Attention on device memory: fp16/bf16 q, k, v and out (any non-negative strides, head dim
   contiguous), optional fp32 log-sum-exp [B, H, Nq] (natural log, contiguous; NULL for none).
   NaN/Inf inputs give NaN in the rows they reach (see the top of this file).
   Queued on `stream` (a CUstream; NULL is the legacy default stream) with `workspace` lent
   for the call: it allocates nothing and never waits for the device, so it can be captured
   in a CUDA graph. The first call of each kernel variant compiles it (NVRTC, cached on disk).
   `options` may be NULL. */
intfa_status intfa_attention(
    intfa_context* context, const intfa_problem* problem, const intfa_options* options,
    const intfa_tensor* q, const intfa_tensor* k, const intfa_tensor* v, const intfa_tensor* out,
    float* lse, void* workspace, size_t workspace_bytes, void* stream);

/* Attention on host memory with the CPU kernels (every thread unless `threads` > 0): fp32,
   fp16 or bf16 tensors, out of any of them. With `validate_inputs`, NaN/Inf inputs (and fp16
   overflow under INTFA_METHOD_FP16) fail; without, they give NaN in the rows they reach (see
   the top of this file). The instruction set follows INTFA_CPU_ISA (scalar, avx2, avxvnni,
   avx512), an unknown value failing with INTFA_ERROR_INVALID_ARGUMENT. */
intfa_status intfa_attention_host(
    const intfa_problem* problem,
    const intfa_tensor* q, const intfa_tensor* k, const intfa_tensor* v, const intfa_tensor* out,
    float* lse, int32_t validate_inputs, int32_t threads);

/* Buffer sizes of the pre-quantized form of a problem under its method. */
intfa_status intfa_quantized_byte_counts(const intfa_problem* problem, intfa_quantized_sizes* sizes);

/* Quantizes device q, k, v (fp16/bf16) into `destination` on `stream`. `k_mean` and `v_amax`
   (fp32 [B, Hkv, D] device buffers, both or neither; int8 methods only) replace the channel
   statistics measured from k and v: shards of one sequence then quantize exactly as the whole
   sequence (reduce the shards' sums and maxima across ranks first). */
intfa_status intfa_quantize(
    intfa_context* context, const intfa_problem* problem,
    const intfa_tensor* q, const intfa_tensor* k, const intfa_tensor* v,
    const float* k_mean, const float* v_amax,
    const intfa_quantized* destination, void* workspace, size_t workspace_bytes, void* stream);

/* Attention on pre-quantized device inputs (e.g. an INT8 K/V cache) on `stream`; for
   INTFA_METHOD_INT8 the lse is that of the smoothed scores (see the top of this file).
   `options` may be NULL. */
intfa_status intfa_attention_quantized(
    intfa_context* context, const intfa_problem* problem, const intfa_options* options, const intfa_quantized* inputs,
    const intfa_tensor* out, float* lse, void* stream);

/* Merges a partial attention result into an accumulator, in place, on `stream`: `out` fp32
   and `part` fp16/bf16 [B, H, N, D] (any strides that are multiples of 4, head dim contiguous;
   out 16-byte and part 8-byte aligned), `lse` and `part_lse` fp32 [B, H, N] with stride_token 1.
   With l = log(e^lse + e^part_lse): out = out * e^(lse - l) + part * e^(part_lse - l), lse = l;
   a row with -inf in one takes the other's result. This combines the pieces of a sequence
   attended in parts (a ring across GPUs, split keys) exactly, in one pass over the rows. */
intfa_status intfa_merge_partial(
    intfa_context* context, int64_t batch, int64_t heads, int64_t tokens, int64_t head_dim,
    const intfa_tensor* out, const intfa_tensor* lse, const intfa_tensor* part, const intfa_tensor* part_lse,
    void* stream);

/* Device memory intfa_attention_varlen needs as `workspace` for these offsets (see there). */
intfa_status intfa_varlen_workspace_size(
    const intfa_problem* problem, const int32_t* cu_seqlens_q, const int32_t* cu_seqlens_k, int32_t input_dtype,
    size_t* bytes);

/* Packed variable-length attention, as FlashAttention's varlen API takes a batch of prompts:
   q and out [total_q, heads, head_dim], k and v [total_k, kv_heads, head_dim] (fp16/bf16;
   their stride_head and stride_token are used, stride_batch is ignored); cu_seqlens_q and
   cu_seqlens_k host arrays of problem->batch + 1 offsets from 0, never decreasing: sequence
   b's queries q[cu_seqlens_q[b] …] attend to its keys k[cu_seqlens_k[b] …] only, as a dense
   call on it would (bottom-right causal per sequence). problem->query_length and key_length
   must be 0 (the offsets give the lengths). A pack of equal lengths runs as one dense call;
   many short causal prompts (as many queries as keys each) run as padded dense batches of up
   to 512 sequences, each sequence quantized with its own statistics; other mixed lengths run
   one dense call per sequence on `stream`, views into the pack; all share the workspace.
   Allocates nothing and never waits. */
intfa_status intfa_attention_varlen(
    intfa_context* context, const intfa_problem* problem, const intfa_options* options,
    const intfa_tensor* q, const intfa_tensor* k, const intfa_tensor* v, const intfa_tensor* out,
    const int32_t* cu_seqlens_q, const int32_t* cu_seqlens_k, void* workspace, size_t workspace_bytes, void* stream);

/* Buffer sizes of a paged KV cache of the shape `cache` gives (its pointers are not read). */
intfa_status intfa_kv_cache_byte_counts(const intfa_kv_cache* cache, intfa_kv_cache_sizes* sizes);

/* Quantizes `tokens` new tokens of every sequence into the cache on `stream`: keys and values
   fp16/bf16 [sequences, kv_heads, tokens, head_dim] (intfa_tensor strides; head dim
   contiguous), stored at positions lengths[b] … lengths[b] + tokens - 1 through block_table,
   then lengths[b] += tokens. A sequence's first append (lengths[b] == 0) fixes K's channel
   means over its tokens. A token with NaN/Inf in its k or v row gets NaN scales: every decode
   row that sees it is NaN. Allocates nothing and never waits: CUDA-graph safe. */
intfa_status intfa_kv_append(
    intfa_context* context, const intfa_kv_cache* cache, const intfa_tensor* keys, const intfa_tensor* values,
    int64_t tokens, void* stream);

/* Device memory intfa_decode needs as `workspace` (the fp32 partials of split keys; may be 0). */
intfa_status intfa_decode_workspace_size(
    intfa_context* context, const intfa_kv_cache* cache, int64_t heads, int64_t query_length, size_t* bytes);

/* Decode attention on the cache: q and out fp16/bf16 [sequences, heads, query_length,
   head_dim] (intfa_tensor strides), heads a multiple of kv_heads with heads / kv_heads <= 16;
   query_length new tokens, a decode step or a chunk of a prompt (taken in tiles of
   16 / (heads / kv_heads) tokens, each reading the keys its tokens see); lse fp32 [sequences, heads, query_length] (NULL for none), of the
   smoothed scores (the exact value minus softmax_scale * q . key_means). With `causal`, query
   i of a sequence of n cached tokens (its own keys appended already) sees keys j <= n -
   query_length + i; else every cached key. softmax_scale <= 0 selects 1/sqrt(head_dim).
   Queued on `stream` with `workspace` lent (NULL with 0 bytes when intfa_decode_workspace_size
   says 0): allocates nothing and never waits, so it can be captured in a CUDA graph. */
intfa_status intfa_decode(
    intfa_context* context, const intfa_kv_cache* cache, int64_t heads, int64_t query_length, float softmax_scale,
    int32_t causal, const intfa_tensor* q, const intfa_tensor* out, float* lse, void* workspace, size_t workspace_bytes,
    void* stream);

#ifdef __cplusplus
}
#endif

#endif /* INTFA_H */
