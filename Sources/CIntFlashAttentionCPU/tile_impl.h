// The attention tile, written once over a 16-lane vector abstraction and compiled once per
// instruction set. The including file defines, before including this:
//   TILE_SUFFIX      name suffix of the exported entry points (scalar, avx2, ...)
//   CHUNK_ROWS       query rows per register tile (1...6)
//   vf / vi          16 x fp32 / 16 x int32 vector types, and the operations used below
//                    (vf_load, vf_store, vf_set1, vf_add, vf_sub, vf_mul, vf_max, vf_min,
//                    vf_fmadd, vf_from_vi, vi_from_vf_rne, vf_from_bits, vi_bits,
//                    vi_load, vi_store, vi_set1, vi_add, vi_sub, vi_slli23, vi_zero,
//                    vi_max, vi_broadcast32, vi_dpbusd, vf_mask_tail, vf_reduce_max,
//                    vf_reduce_add, vi_reduce_add, vi_store_u8, vf_floor_exponent)
// Every floating-point step is written out in order (no contraction: see the pragma in
// each including file), so all instruction sets produce the same bits.

#include <math.h>
// Contraction would fuse a*b+c only where the target has FMA and break bit equality
// between the paths; every fused multiply-add here is an explicit vf_fmadd or fmaf.
#pragma STDC FP_CONTRACT OFF
#include <stdlib.h>
#include <string.h>

#define TILE_CAT2(a, b) a##_##b
#define TILE_CAT(a, b) TILE_CAT2(a, b)
#define TILE_NAME(name) TILE_CAT(name, TILE_SUFFIX)
#define INLINE static inline __attribute__((always_inline))

#define LOG2E_F 1.44269504088896340736f

// ---------------------------------------------------------------------------------------
// exp2: Cephes' degree-6 polynomial for 2^f on [-0.5, 0.5], times 2^n built in the
// exponent bits. Inputs are clamped to [-127, 127]; n = -127 gives exponent bits 0, so
// everything below about -126.5 (and -inf) becomes exactly 0.

#define EXP2_C1 1.535336188319500e-4f
#define EXP2_C2 1.339887440266574e-3f
#define EXP2_C3 9.618437357674640e-3f
#define EXP2_C4 5.550332471162809e-2f
#define EXP2_C5 2.402264791363012e-1f
#define EXP2_C6 6.931472028550421e-1f

INLINE vf vf_exp2(vf x) {
    x = vf_min(vf_max(x, vf_set1(-127.0f)), vf_set1(127.0f));
    vi n = vi_from_vf_rne(x);
    vf f = vf_sub(x, vf_from_vi(n));
    vf p = vf_set1(EXP2_C1);
    p = vf_fmadd(p, f, vf_set1(EXP2_C2));
    p = vf_fmadd(p, f, vf_set1(EXP2_C3));
    p = vf_fmadd(p, f, vf_set1(EXP2_C4));
    p = vf_fmadd(p, f, vf_set1(EXP2_C5));
    p = vf_fmadd(p, f, vf_set1(EXP2_C6));
    p = vf_fmadd(p, f, vf_set1(1.0f));
    vf scale = vf_from_bits(vi_slli23(vi_add(n, vi_set1(127))));
    return vf_mul(p, scale);
}

// The same function on one value, step for step (fmaf and rintf are exact operations).
INLINE float exp2_scalar(float x) {
    x = fminf(fmaxf(x, -127.0f), 127.0f);
    float nf = rintf(x);
    int n = (int)nf;
    float f = x - nf;
    float p = EXP2_C1;
    p = fmaf(p, f, EXP2_C2);
    p = fmaf(p, f, EXP2_C3);
    p = fmaf(p, f, EXP2_C4);
    p = fmaf(p, f, EXP2_C5);
    p = fmaf(p, f, EXP2_C6);
    p = fmaf(p, f, 1.0f);
    uint32_t bits = (uint32_t)(n + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

float TILE_NAME(intfa_exp2)(float x) { return exp2_scalar(x); }

// Rounds non-negative values (P, at most 1) to a format with `mantissa_bits` fraction bits
// and smallest normal exponent `min_exponent`, to nearest even: the quantum is
// 2^(max(e, min_exponent) - mantissa_bits), a power of two, so x / quantum and the product
// back are exact and only the rne rounds.
INLINE vf vf_round_to_format(vf x, int mantissa_bits, int min_exponent) {
    vi e = vf_floor_exponent(x);  // biased exponent field
    vi lowest = vi_set1(min_exponent + 127);
    e = vi_max(e, lowest);
    vf quantum = vf_from_bits(vi_slli23(vi_sub(e, vi_set1(mantissa_bits))));
    vf inverse = vf_from_bits(vi_slli23(vi_sub(vi_set1(254 + mantissa_bits), e)));
    return vf_mul(vf_from_vi(vi_from_vf_rne(vf_mul(x, inverse))), quantum);
}

// ---------------------------------------------------------------------------------------
// Tile bookkeeping shared by both tile kinds.

typedef struct tile_state {
    float *acc;   // rows x padded_dim
    float *m;     // running max, log2 domain
    float *l;     // running sum
} tile_state;

INLINE int visible_keys(const intfa_tile_rows *t, int r) {
    if (!t->causal) return t->key_length;
    int v = t->first_visible + r;
    return v < 0 ? 0 : (v > t->key_length ? t->key_length : v);
}

static int tile_state_alloc(tile_state *s, const intfa_tile_rows *t) {
    size_t acc_bytes = ((size_t)t->rows * (size_t)t->padded_dim * sizeof(float) + 63) & ~(size_t)63;
    size_t row_bytes = ((size_t)t->rows * sizeof(float) + 63) & ~(size_t)63;
    char *memory = aligned_alloc(64, acc_bytes + 2 * row_bytes);
    if (!memory) return 0;
    s->acc = (float *)memory;
    s->m = (float *)(memory + acc_bytes);
    s->l = (float *)(memory + acc_bytes + row_bytes);
    memset(s->acc, 0, acc_bytes);
    for (int r = 0; r < t->rows; r++) {
        s->m[r] = -INFINITY;
        s->l[r] = 0.0f;
    }
    return 1;
}

// O = acc * scale / l (0 when l = 0); log-sum-exp = (m + log2 l) / log2 e.
static void tile_finish(const tile_state *s, const intfa_tile_rows *t, const float *column_scale,
                        float uniform_scale) {
    for (int r = 0; r < t->rows; r++) {
        float *out = t->output + (ptrdiff_t)r * t->output_row_stride;
        const float *acc = s->acc + (size_t)r * (size_t)t->padded_dim;
        float l = s->l[r];
        for (int c = 0; c < t->head_dim; c++) {
            float scale = column_scale ? column_scale[c] : uniform_scale;
            out[c] = l > 0.0f ? (acc[c] * scale) / l : 0.0f;
        }
        if (t->log_sum_exp) t->log_sum_exp[r] = l > 0.0f ? (s->m[r] + log2f(l)) / LOG2E_F : -INFINITY;
    }
}

// Scores of one row and key block after masking; returns the block's row maximum.
INLINE float mask_and_max(vf s[4], int limit) {
    if (limit < INTFA_KEY_BLOCK) {
        for (int t = 0; t < 4; t++) s[t] = vf_mask_tail(s[t], limit - 16 * t);
    }
    return vf_reduce_max(vf_max(vf_max(s[0], s[1]), vf_max(s[2], s[3])));
}

// The canonical fp32 sum of a 64-key row: (s0 + s1) + (s2 + s3) lane-wise, then the fixed
// lane tree of vf_reduce_add.
INLINE float row_sum(const vf p[4]) {
    return vf_reduce_add(vf_add(vf_add(p[0], p[1]), vf_add(p[2], p[3])));
}

// acc = acc * alpha + w * x for one vector of 16 channels.
INLINE void update_accumulator(float *acc, float alpha, float w, vf x) {
    vf_store(acc, vf_add(vf_mul(vf_load(acc), vf_set1(alpha)), vf_mul(vf_set1(w), x)));
}

// ---------------------------------------------------------------------------------------
// Integer tile.

// S[r][j] = sum_d (K[j][d] + 128) * Q[r][d] for R rows and the 64 keys of one block, rows
// `stride` apart (the +128 is removed per row by the caller: it adds 128 * sum_d Q[r][d]).
INLINE void int_scores(const int R, const int8_t *q, int dp, const uint8_t *kp, int32_t *S, int stride) {
    vi acc[CHUNK_ROWS][4];
    for (int r = 0; r < R; r++)
        for (int t = 0; t < 4; t++) acc[r][t] = vi_zero();
    for (int d4 = 0; d4 < dp / 4; d4++) {
        const uint8_t *k = kp + (size_t)d4 * 256;
        vi k0 = vi_load(k), k1 = vi_load(k + 64), k2 = vi_load(k + 128), k3 = vi_load(k + 192);
        for (int r = 0; r < R; r++) {
            vi qb = vi_broadcast32(q + (size_t)r * dp + (size_t)d4 * 4);
            acc[r][0] = vi_dpbusd(acc[r][0], k0, qb);
            acc[r][1] = vi_dpbusd(acc[r][1], k1, qb);
            acc[r][2] = vi_dpbusd(acc[r][2], k2, qb);
            acc[r][3] = vi_dpbusd(acc[r][3], k3, qb);
        }
    }
    for (int r = 0; r < R; r++)
        for (int t = 0; t < 4; t++) vi_store(S + r * stride + 16 * t, acc[r][t]);
}

// acc[r][c0 + ...] = acc * alpha[r] + w[r] * float(sum_j P[r][j] * V[j][c]) for NC vectors
// of 16 channels starting at c0, over the keys 4·j4 of [4·first, 4·last) counted from the start
// of `vp` (consecutive 64-key blocks); P rows are `stride` bytes apart.
INLINE void int_values(const int R, const int NC, const uint8_t *P, int stride, const int8_t *vp, int dp, int c0,
                       int first, int last, float *acc, const float *alpha, const float *w) {
    vi o[CHUNK_ROWS][4];
    for (int r = 0; r < R; r++)
        for (int t = 0; t < NC; t++) o[r][t] = vi_zero();
    for (int j4 = first; j4 < last; j4++) {
        const int8_t *v = vp + (size_t)(j4 / 16) * dp * 64 + ((size_t)(j4 % 16) * dp + c0) * 4;
        vi vv[4];
        for (int t = 0; t < NC; t++) vv[t] = vi_load(v + 64 * t);
        for (int r = 0; r < R; r++) {
            vi pb = vi_broadcast32(P + r * stride + j4 * 4);
            for (int t = 0; t < NC; t++) o[r][t] = vi_dpbusd(o[r][t], pb, vv[t]);
        }
    }
    for (int r = 0; r < R; r++)
        for (int t = 0; t < NC; t++)
            update_accumulator(acc + (size_t)r * dp + c0 + 16 * t, alpha[r], w[r], vf_from_vi(o[r][t]));
}

INLINE void int_values_rows(const int R, const uint8_t *P, int stride, const int8_t *vp, int dp, int first, int last,
                            float *acc, const float *alpha, const float *w) {
    for (int c0 = 0; c0 < dp; c0 += 64) {
        switch ((dp - c0) >= 64 ? 4 : (dp - c0) / 16) {
        case 4: int_values(R, 4, P, stride, vp, dp, c0, first, last, acc, alpha, w); break;
        case 3: int_values(R, 3, P, stride, vp, dp, c0, first, last, acc, alpha, w); break;
        case 2: int_values(R, 2, P, stride, vp, dp, c0, first, last, acc, alpha, w); break;
        default: int_values(R, 1, P, stride, vp, dp, c0, first, last, acc, alpha, w); break;
        }
    }
}

// One row of one key block of the paper scheme: scores, P codes rne(127 * exp2(S - m_new)),
// and the state update of m and l (l sums the fp32 P). Writes alpha for the accumulator
// update; a fully masked row leaves the state alone.
INLINE void paper_softmax_row(const int32_t *S, int32_t correction, float qs, const float *ks, int limit, float *m,
                              float *l, uint8_t *P, float *alpha) {
    vf s[4];
    vi corr = vi_set1(correction);
    vf qsv = vf_set1(qs);
    for (int t = 0; t < 4; t++)
        s[t] = vf_mul(vf_mul(vf_from_vi(vi_sub(vi_load(S + 16 * t), corr)), qsv), vf_load(ks + 16 * t));
    float block_max = mask_and_max(s, limit);
    if (block_max == -INFINITY) {
        memset(P, 0, 64);
        *alpha = 1.0f;
        return;
    }
    float m_new = fmaxf(*m, block_max);
    float a = exp2_scalar(*m - m_new);
    vf shift = vf_set1(m_new);
    vf p[4];
    for (int t = 0; t < 4; t++) {
        p[t] = vf_exp2(vf_sub(s[t], shift));
        vi_store_u8(P + 16 * t, vi_from_vf_rne(vf_mul(p[t], vf_set1(127.0f))));
    }
    *l = *l * a + row_sum(p);
    *m = m_new;
    *alpha = a;
}

INLINE void paper_chunk(const int R, const intfa_int_tile *tile, tile_state *st, int r0, int kb,
                      const int32_t *correction) {
    const intfa_tile_rows *t = &tile->rows;
    const int dp = t->padded_dim;
    _Alignas(64) int32_t S[CHUNK_ROWS * 64];
    _Alignas(64) uint8_t P[CHUNK_ROWS * 64];
    float alpha[CHUNK_ROWS], w[CHUNK_ROWS];
    int_scores(R, tile->q + (size_t)r0 * dp, dp, tile->k_packed + (size_t)kb * dp * 64, S, 64);
    for (int r = 0; r < R; r++) {
        int limit = visible_keys(t, r0 + r) - kb * 64;
        paper_softmax_row(S + r * 64, correction[r0 + r], tile->q_scale[r0 + r], tile->k_scale + (size_t)kb * 64, limit,
                          st->m + r0 + r, st->l + r0 + r, P + r * 64, alpha + r);
        w[r] = 1.0f;
    }
    int_values_rows(R, P, 64, tile->v_packed + (size_t)kb * dp * 64, dp, 0, 16, st->acc + (size_t)r0 * dp, alpha, w);
}

// ---------------------------------------------------------------------------------------
// The int8 scheme (int8, int4): key tiles of 128 keys; P blocks of keys [0, 32), [32, 128),
// then each whole tile (docs/SCHEMES.md).

#define INT8_TILE_KEYS 128
#define INT8_FIRST_BLOCK_KEYS 32

// One row of one P block, keys [a, b) of the tile (multiples of 16): the scores
// float(acc) * c with c = qs * ks (per key), their maximum mb, the codes
// rne(255 * fp16(exp2(fma(acc, c, -t)))) with t = mb + |mb| * 2^-22, and the state update of
// m and l. Writes alpha and w for the accumulator update; a row with no visible key in the
// block leaves the state alone (its codes 0).
INLINE void int8_block_row(const int32_t *S, int32_t correction, float qs, const float *ks, int a, int b, int limit,
                           float *m, float *l, uint8_t *P, float *alpha, float *w) {
    vf acc[INT8_TILE_KEYS / 16], c[INT8_TILE_KEYS / 16];
    vi corr = vi_set1(correction);
    vf qsv = vf_set1(qs);
    vf running = vf_set1(-INFINITY);
    for (int k = a; k < b; k += 16) {
        int t = k / 16;
        acc[t] = vf_from_vi(vi_sub(vi_load(S + k), corr));
        c[t] = vf_mul(qsv, vf_load(ks + k));
        running = vf_max(running, vf_mask_tail(vf_mul(acc[t], c[t]), limit - k));
    }
    float mb = vf_reduce_max(running);
    if (mb == -INFINITY) {
        memset(P + a, 0, (size_t)(b - a));
        *alpha = 1.0f;
        *w = 0.0f;
        return;
    }
    float reference = fmaf(fabsf(mb), 2.384185791015625e-7f, mb);
    vf bias = vf_set1(-reference);
    vi total = vi_zero();
    for (int k = a; k < b; k += 16) {
        int t = k / 16;
        vf x = vf_mask_tail(vf_fmadd(acc[t], c[t], bias), limit - k);
        vf p = vf_round_to_format(vf_exp2(x), 10, -14);
        vi code = vi_from_vf_rne(vf_mul(p, vf_set1(255.0f)));
        total = vi_add(total, code);
        vi_store_u8(P + k, code);
    }
    float m_new = fmaxf(*m, reference);
    float decay = exp2_scalar(*m - m_new);
    float weight = exp2_scalar(reference - m_new) * (1.0f / 255.0f);
    *l = *l * decay + weight * (float)vi_reduce_add(total);
    *m = m_new;
    *alpha = decay;
    *w = weight;
}

INLINE void int8_chunk(const int R, const intfa_int_tile *tile, tile_state *st, int r0, int kt, const int32_t *correction) {
    const intfa_tile_rows *t = &tile->rows;
    const int dp = t->padded_dim;
    _Alignas(64) int32_t S[CHUNK_ROWS * INT8_TILE_KEYS];
    _Alignas(64) uint8_t P[CHUNK_ROWS * INT8_TILE_KEYS];
    float alpha[2][CHUNK_ROWS], w[2][CHUNK_ROWS];
    const int8_t *q = tile->q + (size_t)r0 * dp;
    const uint8_t *kp = tile->k_packed + (size_t)kt * dp * INT8_TILE_KEYS;
    int_scores(R, q, dp, kp, S, INT8_TILE_KEYS);
    int_scores(R, q, dp, kp + (size_t)dp * 64, S + 64, INT8_TILE_KEYS);
    // P blocks of this tile: [0, 32) and [32, 128) in the first, the whole tile after.
    const int blocks = kt == 0 ? 2 : 1;
    const int bounds[3] = {0, kt == 0 ? INT8_FIRST_BLOCK_KEYS : INT8_TILE_KEYS, INT8_TILE_KEYS};
    const float *ks = tile->k_scale + (size_t)kt * INT8_TILE_KEYS;
    for (int r = 0; r < R; r++) {
        int limit = visible_keys(t, r0 + r) - kt * INT8_TILE_KEYS;
        for (int b = 0; b < blocks; b++) {
            int8_block_row(S + r * INT8_TILE_KEYS, correction[r0 + r], tile->q_scale[r0 + r], ks, bounds[b], bounds[b + 1],
                           limit, st->m + r0 + r, st->l + r0 + r, P + r * INT8_TILE_KEYS, &alpha[b][r], &w[b][r]);
        }
    }
    const int8_t *vp = tile->v_packed + (size_t)kt * dp * INT8_TILE_KEYS;
    for (int b = 0; b < blocks; b++) {
        int_values_rows(R, P, INT8_TILE_KEYS, vp, dp, bounds[b] / 4, bounds[b + 1] / 4, st->acc + (size_t)r0 * dp,
                        alpha[b], w[b]);
    }
}

// Dispatches a row chunk of R = rows - r0 (at most CHUNK_ROWS) to the instance for its size.
#define CHUNK_SWITCH(call, remaining)                                                           \
    switch ((remaining) >= CHUNK_ROWS ? CHUNK_ROWS : (remaining)) {                             \
    CHUNK_CASE_6(call) CHUNK_CASE_5(call) CHUNK_CASE_4(call) CHUNK_CASE_3(call) CHUNK_CASE_2(call) \
    default: call(1); break;                                                                     \
    }
#if CHUNK_ROWS >= 6
#define CHUNK_CASE_6(call) case 6: call(6); break;
#else
#define CHUNK_CASE_6(call)
#endif
#if CHUNK_ROWS >= 5
#define CHUNK_CASE_5(call) case 5: call(5); break;
#else
#define CHUNK_CASE_5(call)
#endif
#if CHUNK_ROWS >= 4
#define CHUNK_CASE_4(call) case 4: call(4); break;
#else
#define CHUNK_CASE_4(call)
#endif
#if CHUNK_ROWS >= 3
#define CHUNK_CASE_3(call) case 3: call(3); break;
#else
#define CHUNK_CASE_3(call)
#endif
#if CHUNK_ROWS >= 2
#define CHUNK_CASE_2(call) case 2: call(2); break;
#else
#define CHUNK_CASE_2(call)
#endif

void TILE_NAME(intfa_int_tile)(const intfa_int_tile *tile) {
    const intfa_tile_rows *t = &tile->rows;
    const int dp = t->padded_dim;
    tile_state st;
    if (t->rows <= 0 || !tile_state_alloc(&st, t)) return;
    int32_t *correction = malloc(sizeof(int32_t) * (size_t)t->rows);
    if (!correction) {
        free(st.acc);
        return;
    }
    for (int r = 0; r < t->rows; r++) {
        int32_t sum = 0;
        for (int d = 0; d < dp; d++) sum += tile->q[(size_t)r * dp + d];
        correction[r] = 128 * sum;
    }
    const int visible = visible_keys(t, t->rows - 1);
    if (tile->scheme == INTFA_INT_SCHEME_PAPER) {
        for (int kb = 0; kb < (visible + 63) / 64; kb++) {
            for (int r0 = 0; r0 < t->rows; r0 += CHUNK_ROWS) {
#define PAPER_CHUNK(R) paper_chunk(R, tile, &st, r0, kb, correction)
                CHUNK_SWITCH(PAPER_CHUNK, t->rows - r0)
#undef PAPER_CHUNK
            }
        }
    } else {
        for (int kt = 0; kt < (visible + INT8_TILE_KEYS - 1) / INT8_TILE_KEYS; kt++) {
            for (int r0 = 0; r0 < t->rows; r0 += CHUNK_ROWS) {
#define INT8_CHUNK(R) int8_chunk(R, tile, &st, r0, kt, correction)
                CHUNK_SWITCH(INT8_CHUNK, t->rows - r0)
#undef INT8_CHUNK
            }
        }
    }
    tile_finish(&st, t, tile->v_scale, 1.0f);
    free(correction);
    free(st.acc);
}

// ---------------------------------------------------------------------------------------
// Floating-point tile.

INLINE void float_scores(const int R, const float *q, int dp, const float *kt, vf s[][4]) {
    for (int r = 0; r < R; r++)
        for (int t = 0; t < 4; t++) s[r][t] = vf_set1(0.0f);
    for (int d = 0; d < dp; d++) {
        const float *k = kt + (size_t)d * 64;
        vf k0 = vf_load(k), k1 = vf_load(k + 16), k2 = vf_load(k + 32), k3 = vf_load(k + 48);
        for (int r = 0; r < R; r++) {
            vf qb = vf_set1(q[(size_t)r * dp + d]);
            s[r][0] = vf_fmadd(qb, k0, s[r][0]);
            s[r][1] = vf_fmadd(qb, k1, s[r][1]);
            s[r][2] = vf_fmadd(qb, k2, s[r][2]);
            s[r][3] = vf_fmadd(qb, k3, s[r][3]);
        }
    }
}

INLINE void float_values(const int R, const int NC, const float *P, const float *v, int dp, int c0,
                         float *acc, const float *alpha) {
    vf o[CHUNK_ROWS][4];
    for (int r = 0; r < R; r++)
        for (int t = 0; t < NC; t++) o[r][t] = vf_set1(0.0f);
    for (int j = 0; j < 64; j++) {
        const float *row = v + (size_t)j * dp + c0;
        vf vv[4];
        for (int t = 0; t < NC; t++) vv[t] = vf_load(row + 16 * t);
        for (int r = 0; r < R; r++) {
            vf pb = vf_set1(P[r * 64 + j]);
            for (int t = 0; t < NC; t++) o[r][t] = vf_fmadd(pb, vv[t], o[r][t]);
        }
    }
    for (int r = 0; r < R; r++)
        for (int t = 0; t < NC; t++) update_accumulator(acc + (size_t)r * dp + c0 + 16 * t, alpha[r], 1.0f, o[r][t]);
}

INLINE void float_values_rows(const int R, const float *P, const float *v, int dp, float *acc,
                              const float *alpha) {
    for (int c0 = 0; c0 < dp; c0 += 64) {
        switch ((dp - c0) >= 64 ? 4 : (dp - c0) / 16) {
        case 4: float_values(R, 4, P, v, dp, c0, acc, alpha); break;
        case 3: float_values(R, 3, P, v, dp, c0, acc, alpha); break;
        case 2: float_values(R, 2, P, v, dp, c0, acc, alpha); break;
        default: float_values(R, 1, P, v, dp, c0, acc, alpha); break;
        }
    }
}

INLINE vf round_p(intfa_p_rounding rounding, vf p) {
    switch (rounding) {
    case INTFA_P_FP16: return vf_round_to_format(p, 10, -14);
    case INTFA_P_FP8_E4M3: return vf_round_to_format(p, 3, -6);
    case INTFA_P_FP8_E5M2: return vf_round_to_format(p, 2, -14);
    default: return p;
    }
}

INLINE void float_chunk(const int R, const intfa_float_tile *tile, tile_state *st, int r0, int kb) {
    const intfa_tile_rows *t = &tile->rows;
    const int dp = t->padded_dim;
    vf s[CHUNK_ROWS][4];
    _Alignas(64) float P[CHUNK_ROWS * 64];
    float alpha[CHUNK_ROWS];
    float_scores(R, tile->q + (size_t)r0 * dp, dp, tile->k_packed + (size_t)kb * dp * 64, s);
    vf qs = vf_set1(tile->q_scale), ks = vf_set1(tile->k_scale);
    for (int r = 0; r < R; r++) {
        vf *row = s[r];
        for (int q = 0; q < 4; q++) row[q] = vf_mul(vf_mul(row[q], qs), ks);
        float block_max = mask_and_max(row, visible_keys(t, r0 + r) - kb * 64);
        float *m = st->m + r0 + r, *l = st->l + r0 + r;
        if (block_max == -INFINITY) {
            memset(P + r * 64, 0, 64 * sizeof(float));
            alpha[r] = 1.0f;
            continue;
        }
        float m_new = fmaxf(*m, block_max);
        float a = exp2_scalar(*m - m_new);
        vf shift = vf_set1(m_new);
        vf p[4];
        for (int q = 0; q < 4; q++) {
            p[q] = vf_exp2(vf_sub(row[q], shift));
            vf_store(P + r * 64 + 16 * q, round_p(tile->p_rounding, p[q]));
        }
        *l = *l * a + row_sum(p);
        *m = m_new;
        alpha[r] = a;
    }
    float_values_rows(R, P, tile->v + (size_t)kb * 64 * dp, dp, st->acc + (size_t)r0 * dp, alpha);
}

void TILE_NAME(intfa_float_tile)(const intfa_float_tile *tile) {
    const intfa_tile_rows *t = &tile->rows;
    tile_state st;
    if (t->rows <= 0 || !tile_state_alloc(&st, t)) return;
    int key_blocks = (visible_keys(t, t->rows - 1) + 63) / 64;
    for (int kb = 0; kb < key_blocks; kb++) {
        for (int r0 = 0; r0 < t->rows; r0 += CHUNK_ROWS) {
#define FLOAT_CHUNK(R) float_chunk(R, tile, &st, r0, kb)
            CHUNK_SWITCH(FLOAT_CHUNK, t->rows - r0)
#undef FLOAT_CHUNK
        }
    }
    tile_finish(&st, t, NULL, tile->v_scale);
    free(st.acc);
}
