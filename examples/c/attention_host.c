/* A C caller of libintfa: attention on host memory with the CPU kernels, checked against a
 * plain float64 softmax attention. Build and run (after ./scripts/build-library.sh):
 *   cc -I include examples/c/attention_host.c -L .build/release -lintfa_c \
 *      -Wl,-rpath,$PWD/.build/release -lm -o attention_host && ./attention_host
 * Exits 0 when the int8 result is within 3% (relative L1) of float64, and when a bad call
 * reports its error. */
#include "intfa.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

enum { H = 2, N = 100, D = 64 };

int main(void) {
    static float q[H * N * D], k[H * N * D], v[H * N * D], out[H * N * D], lse[H * N];
    unsigned state = 12345;
    for (int i = 0; i < H * N * D; i++) {
        state = state * 1664525u + 1013904223u; q[i] = (float)(state >> 8) / 16777216.0f - 0.5f;
        state = state * 1664525u + 1013904223u; k[i] = (float)(state >> 8) / 16777216.0f - 0.5f;
        state = state * 1664525u + 1013904223u; v[i] = (float)(state >> 8) / 16777216.0f - 0.5f;
    }
    intfa_problem problem = {1, H, H, N, N, D, 0.0f, 0, INTFA_METHOD_INT8, 0};
    intfa_tensor tq = {q, INTFA_DTYPE_FLOAT32, 0, H * N * D, N * D, D};
    intfa_tensor tk = {k, INTFA_DTYPE_FLOAT32, 0, H * N * D, N * D, D};
    intfa_tensor tv = {v, INTFA_DTYPE_FLOAT32, 0, H * N * D, N * D, D};
    intfa_tensor to = {out, INTFA_DTYPE_FLOAT32, 0, H * N * D, N * D, D};
    intfa_status status = intfa_attention_host(&problem, &tq, &tk, &tv, &to, lse, 1, 0);
    if (status != INTFA_SUCCESS) {
        fprintf(stderr, "intfa_attention_host: %s\n", intfa_last_error_message());
        return 1;
    }
    if (intfa_abi_version() != INTFA_ABI_VERSION) {
        fprintf(stderr, "libintfa has C ABI %d, this program was built for %d\n", intfa_abi_version(), INTFA_ABI_VERSION);
        return 1;
    }
    double error = 0, norm = 0, lseError = 0;
    for (int h = 0; h < H; h++) {
        for (int i = 0; i < N; i++) {
            double s[N], max = -INFINITY, sum = 0;
            for (int j = 0; j < N; j++) {
                double dot = 0;
                for (int c = 0; c < D; c++) dot += (double)q[(h * N + i) * D + c] * k[(h * N + j) * D + c];
                s[j] = dot / sqrt((double)D);
                if (s[j] > max) max = s[j];
            }
            for (int j = 0; j < N; j++) sum += (s[j] = exp(s[j] - max));
            lseError = fmax(lseError, fabs(lse[h * N + i] - (max + log(sum))));
            for (int c = 0; c < D; c++) {
                double o = 0;
                for (int j = 0; j < N; j++) o += s[j] / sum * v[(h * N + j) * D + c];
                error += fabs(out[(h * N + i) * D + c] - o);
                norm += fabs(o);
            }
        }
    }
    printf("intfa %s: int8 against float64, relative L1 %.4f, log-sum-exp within %.4f\n", intfa_version(), error / norm, lseError);
    intfa_problem bad = problem;
    bad.head_dim = 12;
    if (intfa_attention_host(&bad, &tq, &tk, &tv, &to, NULL, 1, 0) != INTFA_ERROR_INVALID_ARGUMENT) return 1;
    printf("a head dim of 12 is refused: %s\n", intfa_last_error_message());
    return error / norm < 0.03 && lseError < 0.02 ? 0 : 1;
}
