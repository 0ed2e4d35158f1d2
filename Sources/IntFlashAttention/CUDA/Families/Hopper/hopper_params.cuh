// The wgmma kernels' parameter blocks (Swift mirrors in HopperParams.swift; the compiled
// offsets are checked against them by KernelParamsLayoutTests). Each is one by-value
// `__grid_constant__` argument: its tensor maps first, 64-byte aligned as TMA reads them from
// the parameter space.
#pragma once
#include "params.cuh"

// A CUtensorMap: 128 opaque bytes, 64-byte aligned, encoded on the host by
// cuTensorMapEncodeTiled.
struct __align__(64) IntfaTensorMap {
    intfa_u64 opaque[16];
};

// The attention kernel's block: the K and Vt maps, then the block every attention kernel
// shares.
struct HopperAttentionParams {
    // Kq [B, Hkv, Nk, D] as the 4-D tensor {D, Nk, Hkv, B}; box {D, 128, 1, 1}; swizzle of
    // D bytes (128 B for D = 128, 64 B for D = 64).
    IntfaTensorMap keys;         //   0
    // Vt [B, Hkv, D, NkPad] as {NkPad, D, Hkv, B}; box {128, D, 1, 1}; 128-byte swizzle.
    IntfaTensorMap values;       // 128
    AttentionParams attention;   // 256
};                               // size 512

// The fragment-layout test's block (one warpgroup, 64 query rows, one 128-key tile).
struct HopperLayoutTestParams {
    // K codes [128, D] and the permuted Vt [D, 128] in excess-128 form, as for attention.
    IntfaTensorMap keys;         //   0
    IntfaTensorMap values;       // 128
    // In: Q codes s8 [64, D] and P codes u8 [64, 128] (row, key) in natural key order.
    intfa_u64 queryCodes;        // 256
    intfa_u64 probabilityCodes;  // 264
    // Out: S = Q·Kᵀ int32 [64, 128] and O = P·V int32 [64, D].
    intfa_u64 scores;            // 272
    intfa_u64 products;          // 280
};                               // size 320
