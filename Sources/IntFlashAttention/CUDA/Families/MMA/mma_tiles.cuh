// Shared-memory tile copies of the mma.sync kernels (cp.async, 16 bytes per thread and pass).
#pragma once
#include "common.cuh"

// Copies rows [0, kRows) of a tile with kThreads threads: each thread keeps one 16-byte chunk
// column, so rows, chunks and shared addresses are fixed per pass at compile time. Rows at or
// past `validRows` are zero-filled (their copies name row 0's address and read nothing).
template <int kThreads, int kRows, int kChunksPerRow>
INTFA_DEVICE void copy_tile_rows(unsigned char* tile, int tileStride, const unsigned char* source0, intfa_i64 sourceStride,
                                 int validRows) {
    constexpr int kRowsPerPass = kThreads / kChunksPerRow;
    static_assert(kThreads % kChunksPerRow == 0 && kRows % kRowsPerPass == 0, "whole passes");
    const int chunk = threadIdx.x % kChunksPerRow;
    const int firstRow = threadIdx.x / kChunksPerRow;
    const unsigned char* first = source0 + chunk * 16;
#pragma unroll
    for (int pass = 0; pass < kRows / kRowsPerPass; ++pass) {
        const int row = firstRow + pass * kRowsPerPass;
        const bool valid = row < validRows;
        const unsigned char* source = first + (intfa_i64)row * sourceStride;
        intfa_cp_async_16(intfa_smem_address(tile + row * tileStride + chunk * 16), valid ? source : first, valid ? 16u : 0u);
    }
}
