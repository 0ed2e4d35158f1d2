// The symmetric quantizer of docs/SCHEMES.md over the 16-lane vector abstraction, compiled
// once per instruction set next to the tile (same including-file contract as tile_impl.h).
// amax is a maximum (exact in any order); inv = levels / amax and scale = amax / levels are
// single fp32 divisions; code = clamp(rne(x * inv), -levels, levels). So every path, and
// the Swift reference of the rule, produce the same codes and scales.

INLINE vf vf_abs(vf x) { return vf_max(x, vf_sub(vf_set1(0.0f), x)); }

INLINE float group_amax(const float *x, long count) {
    vf m = vf_set1(0.0f);
    long i = 0;
    for (; i + 16 <= count; i += 16) m = vf_max(m, vf_abs(vf_load(x + i)));
    float amax = vf_reduce_max(m);
    for (; i < count; i++) {
        float a = fabsf(x[i]);
        amax = a > amax ? a : amax;
    }
    return amax;
}

INLINE void quantize_group(const float *x, long count, float inverse, int levels, int8_t *codes) {
    vf inv = vf_set1(inverse);
    vi hi = vi_set1(levels), lo = vi_set1(-levels);
    long i = 0;
    for (; i + 16 <= count; i += 16) {
        vi c = vi_from_vf_rne(vf_mul(vf_load(x + i), inv));
        c = vi_min(vi_max(c, lo), hi);
        vi_store_s8(codes + i, c);
    }
    for (; i < count; i++) {
        int c = (int)rintf(x[i] * inverse);
        codes[i] = (int8_t)(c < -levels ? -levels : (c > levels ? levels : c));
    }
}

void TILE_NAME(intfa_quantize_rows)(const float *x, long rows, long length, int levels, float scale_multiplier,
                                    int8_t *codes, float *scales) {
    for (long r = 0; r < rows; r++) {
        const float *row = x + r * length;
        float amax = group_amax(row, length);
        float inverse = 0.0f, scale = 0.0f;
        if (amax > 0.0f) {
            inverse = (float)levels / amax;
            scale = amax / (float)levels;
        }
        quantize_group(row, length, inverse, levels, codes + r * length);
        scales[r] = scale * scale_multiplier;
    }
}

// Per channel over `tokens` rows of `channels` values: scales[c], codes row-major [t][c].
void TILE_NAME(intfa_quantize_channels)(const float *x, long tokens, int channels, int levels, int8_t *codes,
                                        float *scales, float *scratch /* 2 * channels */) {
    float *amax = scratch, *inverse = scratch + channels;
    for (int c = 0; c < channels; c++) amax[c] = 0.0f;
    for (long t = 0; t < tokens; t++) {
        const float *row = x + t * channels;
        int c = 0;
        for (; c + 16 <= channels; c += 16) vf_store(amax + c, vf_max(vf_load(amax + c), vf_abs(vf_load(row + c))));
        for (; c < channels; c++) {
            float a = fabsf(row[c]);
            amax[c] = a > amax[c] ? a : amax[c];
        }
    }
    for (int c = 0; c < channels; c++) {
        inverse[c] = amax[c] > 0.0f ? (float)levels / amax[c] : 0.0f;
        scales[c] = amax[c] > 0.0f ? amax[c] / (float)levels : 0.0f;
    }
    vi hi = vi_set1(levels), lo = vi_set1(-levels);
    for (long t = 0; t < tokens; t++) {
        const float *row = x + t * channels;
        int8_t *out = codes + t * channels;
        int c = 0;
        for (; c + 16 <= channels; c += 16) {
            vi q = vi_from_vf_rne(vf_mul(vf_load(row + c), vf_load(inverse + c)));
            vi_store_s8(out + c, vi_min(vi_max(q, lo), hi));
        }
        for (; c < channels; c++) {
            int q = (int)rintf(row[c] * inverse[c]);
            out[c] = (int8_t)(q < -levels ? -levels : (q > levels ? levels : q));
        }
    }
}

// K smoothing: mean[c] = (float)(sum_t (double)K[t][c] / tokens) (each channel summed in
// token order), out = K - mean in fp32.
void TILE_NAME(intfa_smooth_keys)(const float *k, long tokens, int channels, float *out, double *sums) {
    for (int c = 0; c < channels; c++) sums[c] = 0.0;
    for (long t = 0; t < tokens; t++)
        for (int c = 0; c < channels; c++) sums[c] += (double)k[t * channels + c];
    float *means = (float *)(sums + channels);  // caller gives 2 * channels doubles
    for (int c = 0; c < channels; c++) means[c] = (float)(sums[c] / (double)tokens);
    for (long t = 0; t < tokens; t++)
        for (int c = 0; c < channels; c++) out[t * channels + c] = k[t * channels + c] - means[c];
}

// K of the `int8` scheme: one scale per group of 8 keys (docs/SCHEMES.md). Group (G, t) of
// the 32-key span G holds keys 32G + 8a + 2t + e (a in 0..3, e in 0..1): the keys one thread
// of a GPU warp holds in each row of its S fragment. amax is the largest |x| of the group's
// rows; each row is quantized with the group's inverse. Scales are stored per 128-key tile,
// quad-major: group (G, t) at 16 * (G / 4) + 4 * t + G % 4; groups past `tokens` get 0.
void TILE_NAME(intfa_quantize_key_groups)(const float *x, long tokens, long padded_tokens, int channels, int levels,
                                          int8_t *codes, float *scales) {
    for (long i = 0; i < padded_tokens / 8; i++) scales[i] = 0.0f;
    for (long span = 0; span * 32 < tokens; span++) {
        for (int t = 0; t < 4; t++) {
            float amax = 0.0f;
            for (int k = 0; k < 8; k++) {
                long key = span * 32 + 8 * (k / 2) + 2 * t + k % 2;
                if (key >= tokens) continue;
                float a = group_amax(x + key * channels, channels);
                amax = a > amax ? a : amax;
            }
            float inverse = 0.0f, scale = 0.0f;
            if (amax > 0.0f) {
                inverse = (float)levels / amax;
                scale = amax / (float)levels;
            }
            for (int k = 0; k < 8; k++) {
                long key = span * 32 + 8 * (k / 2) + 2 * t + k % 2;
                if (key < tokens) quantize_group(x + key * channels, channels, inverse, levels, codes + key * channels);
            }
            scales[16 * (span / 4) + 4 * t + span % 4] = scale;
        }
    }
}
