/// A TMA tensor map (`CUtensorMap`): 128 opaque bytes describing a tiled view of a global
/// tensor, encoded by the driver and passed to a kernel inside its parameter block.
public struct CUDATensorMap: BitwiseCopyable, Sendable {
    /// The encoded bytes (`CUtensorMap` is 64-byte aligned on the device side: place it at a
    /// multiple of 64 bytes in the parameter block).
    public var words: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64,
                       UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64)

    /// The swizzle of the shared-memory tile (`CUtensorMapSwizzle`): the tile's inner
    /// dimension must span at most that many bytes.
    public enum Swizzle: Int32, Sendable {
        /// No swizzle.
        case none = 0
        /// 32-byte swizzle.
        case bytes32 = 1
        /// 64-byte swizzle.
        case bytes64 = 2
        /// 128-byte swizzle.
        case bytes128 = 3

        /// The span of the swizzle pattern in bytes (0 for none).
        public var bytes: Int { self == .none ? 0 : 16 << Int(rawValue) }
    }

    /// Encodes a tiled map of a `UInt8` tensor with `dimensions` (innermost first), byte
    /// `strides` of every dimension but the innermost (multiples of 16), and a `box` tile
    /// (each side ≤ 256). Boxes reaching past the tensor are zero-filled on load.
    public static func bytes(
        in context: CUDAContext, address: UInt64, dimensions: [UInt64], strides: [UInt64], box: [UInt32],
        swizzle: Swizzle
    ) throws(CUDAError) -> CUDATensorMap {
        let call = "cuTensorMapEncodeTiled"
        guard let encode = context.api.tensorMapEncodeTiled else {
            throw CUDAError.invalidArgument(call, "this CUDA driver has no tensor maps (CUDA 12.0 or newer is needed)")
        }
        let rank = dimensions.count
        guard (1...5).contains(rank), strides.count == rank - 1, box.count == rank else {
            throw CUDAError.invalidArgument(call, "rank \(rank) with \(strides.count) strides and a box of \(box.count)")
        }
        guard address % 16 == 0, strides.allSatisfy({ $0 % 16 == 0 }) else {
            throw CUDAError.invalidArgument(call, "address and strides must be multiples of 16 bytes (\(address), \(strides))")
        }
        guard box.allSatisfy({ (1...256).contains($0) }), dimensions.allSatisfy({ $0 > 0 }) else {
            throw CUDAError.invalidArgument(call, "empty dimension or box side outside 1…256 (\(dimensions), \(box))")
        }
        var map = CUDATensorMap(words: (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0))
        let elementStrides = [UInt32](repeating: 1, count: rank)
        let uint8Type: Int32 = 0, noInterleave: Int32 = 0, l2Promotion256B: Int32 = 3, zeroFill: Int32 = 0
        let result = withUnsafeMutableBytes(of: &map.words) { raw in
            encode(raw.baseAddress, uint8Type, UInt32(rank), address, dimensions, strides, box, elementStrides,
                   noInterleave, swizzle.rawValue, l2Promotion256B, zeroFill)
        }
        try context.api.check(result, "cuTensorMapEncodeTiled")
        return map
    }
}
