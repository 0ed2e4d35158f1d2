// Repacking of quantized codes into the layouts the integer tile reads (intfa_cpu.h).
#include "intfa_cpu.h"
#include <string.h>

void intfa_transpose_codes(const int8_t *codes, long tokens, int channels, long padded_tokens, int8_t *transposed) {
    // 64-token strips keep both the reads and the writes within a few cache lines.
    for (long t0 = 0; t0 < tokens; t0 += 64) {
        long t1 = t0 + 64 < tokens ? t0 + 64 : tokens;
        for (int c = 0; c < channels; c++) {
            int8_t *out = transposed + (long)c * padded_tokens;
            for (long t = t0; t < t1; t++) out[t] = codes[t * channels + c];
        }
    }
    for (int c = 0; c < channels; c++)
        memset(transposed + (long)c * padded_tokens + tokens, 0, (size_t)(padded_tokens - tokens));
}

void intfa_pack_keys(const int8_t *codes, long tokens, int channels, int padded_dim, uint8_t *packed) {
    long blocks = (tokens + 63) / 64;
    memset(packed, 128, (size_t)(blocks * 64 * padded_dim));
    for (long t = 0; t < tokens; t++) {
        uint8_t *block = packed + (t / 64) * 64 * padded_dim + (t % 64) * 4;
        const int8_t *row = codes + t * channels;
        for (int c = 0; c < channels; c++) block[(c / 4) * 256 + c % 4] = (uint8_t)(row[c] + 128);
    }
}

void intfa_pack_values(const int8_t *transposed, int channels, long padded_tokens, int padded_dim, int8_t *packed) {
    memset(packed, 0, (size_t)(padded_tokens * padded_dim));
    for (int c = 0; c < channels; c++) {
        const int8_t *channel = transposed + (long)c * padded_tokens;
        for (long quad = 0; quad < padded_tokens / 4; quad++) {
            int8_t *out = packed + (quad / 16) * 64 * padded_dim + ((quad % 16) * padded_dim + c) * 4;
            memcpy(out, channel + quad * 4, 4);
        }
    }
}
