import CUDADriver

/// Swift mirror of `HopperAttentionParams` (`hopper_params.cuh` beside it): the K and Vt tensor
/// maps at offsets 0 and 128 (64-byte aligned, as TMA requires), then the shared
/// ``AttentionParams`` at 256, padded to the struct's 64-byte alignment (512 bytes).
public struct HopperAttentionParams: BitwiseCopyable, Sendable {
    /// TMA map of the K codes [B, Hkv, Nk, D], at offset 0.
    public var keys: CUDATensorMap
    /// TMA map of the permuted Vt codes [B, Hkv, D, NkPad], at offset 128.
    public var values: CUDATensorMap
    /// The shared attention parameters, at offset 256.
    public var attention: AttentionParams
    var padding: (UInt64, UInt64) = (0, 0)

    /// Encodes the tensor maps of the 8-bit K codes [B, Hkv, Nk, D] (boxes of 128 keys) and the
    /// permuted Vt [B, Hkv, D, NkPad] (boxes of 128 keys × D channels, rows of 128 bytes) that
    /// `attention` points at (strides in bytes = elements).
    public init(_ attention: AttentionParams, headDim: Int, context: CUDAContext) throws(AttentionError) {
        let d = UInt64(headDim), tile = UInt32(KeyGroups.tileKeys)
        let a = attention
        for (name, address) in [("K codes", a.k), ("Vt codes", a.v), ("K scales", a.kScale)] where address % 16 != 0 {
            throw .gpu("the wgmma kernel reads \(name) with TMA: its address \(address) must be 16-byte aligned")
        }
        self.attention = attention
        (keys, values) = try cuda { () throws(CUDAError) in
            let keys = try CUDATensorMap.bytes(
                in: context, address: a.k,
                dimensions: [d, UInt64(a.keyLength), UInt64(a.kvHeads), UInt64(a.batch)],
                strides: [UInt64(a.kStrideToken), UInt64(a.kStrideHead), UInt64(a.kStrideBatch)],
                box: [UInt32(headDim), tile, 1, 1], swizzle: HopperKernelDescriptor.keySwizzle(headDim: headDim))
            let values = try CUDATensorMap.bytes(
                in: context, address: a.v,
                dimensions: [UInt64(a.keyLengthPadded), d, UInt64(a.kvHeads), UInt64(a.batch)],
                strides: [UInt64(a.vStrideRow), UInt64(a.vStrideHead), UInt64(a.vStrideBatch)],
                box: [tile, UInt32(headDim), 1, 1], swizzle: HopperKernelDescriptor.valueSwizzle)
            return (keys, values)
        }
    }
}

/// Swift mirror of `HopperLayoutTestParams` (`hopper_params.cuh`): the fragment-layout test's
/// K and Vt tensor maps, then its input and output buffers, padded to the struct's 64-byte
/// alignment (320 bytes).
struct HopperLayoutTestParams: BitwiseCopyable {
    /// TMA maps of the K codes [128, D] and the permuted Vt [D, 128].
    var keys: CUDATensorMap
    var values: CUDATensorMap
    /// In: Q codes s8 [64, D], P codes u8 [64, 128] in natural key order.
    var queryCodes: UInt64
    var probabilityCodes: UInt64
    /// Out: S = Q·Kᵀ int32 [64, 128], O = P·V int32 [64, D].
    var scores: UInt64
    var products: UInt64
    var padding: (UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0)
}
