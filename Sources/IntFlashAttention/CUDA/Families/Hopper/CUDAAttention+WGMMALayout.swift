import CUDADriver

extension CUDAAttention {
    /// The fragment-layout test of the wgmma kernels: on random integer data, one warpgroup
    /// computes S = Q·Kᵀ for 64 rows and a 128-key tile (s8, K by TMA) and P·V (u8 codes packed
    /// from the S fragment by the kernel's own code packing, permuted Vt by TMA) through the
    /// attention kernel's helpers, and every element must equal the host's integer product.
    /// Returns nil when both are exact, else the first mismatch.
    public func wgmmaLayoutMismatch(headDim d: Int, seed: UInt64) throws(AttentionError) -> String? {
        let kernel = try HopperKernelDescriptor(headDim: d, causal: false, arch: featureArchitecture, isLayoutTest: true)
        let rows = 64, n = KeyGroups.tileKeys  // query rows, keys
        var generator = SplitMix64(seed: seed)
        func codes(_ count: Int) -> [Int8] { (0..<count).map { _ in Int8(Int(generator.next() % 255) - 127) } }
        let q = codes(rows * d), k = codes(n * d), v = codes(n * d)
        let p = (0..<(rows * n)).map { _ in UInt8(truncatingIfNeeded: generator.next()) }
        // Vt [d, 128] as the quantizer writes it: keys of each group of 32 permuted, codes in
        // excess-128 form (code + 128 as u8).
        var vt = [UInt8](repeating: 0, count: d * n)
        for c in 0..<d {
            for position in 0..<n { vt[c * n + position] = UInt8(bitPattern: v[VtKeyOrder.key(atPosition: position) * d + c]) ^ 0x80 }
        }
        let buffers = try cuda { () throws(CUDAError) in
            (q: try DeviceBuffer(context: context, copying: q), k: try DeviceBuffer(context: context, copying: k),
             vt: try DeviceBuffer(context: context, copying: vt), p: try DeviceBuffer(context: context, copying: p),
             s: try DeviceBuffer(context: context, byteCount: rows * n * 4),
             o: try DeviceBuffer(context: context, byteCount: rows * d * 4))
        }
        // The tensor maps are the attention kernel's, over the K codes and Vt of one tile.
        var tile = AttentionParams()
        (tile.k, tile.v) = try cuda { () throws(CUDAError) in (try buffers.k.pointer().address, try buffers.vt.pointer().address) }
        (tile.batch, tile.heads, tile.kvHeads) = (1, 1, 1)
        (tile.queryLength, tile.keyLength, tile.keyLengthPadded) = (Int64(rows), Int64(n), Int64(n))
        (tile.kStrideBatch, tile.kStrideHead, tile.kStrideToken) = (Int64(n * d), Int64(n * d), Int64(d))
        (tile.vStrideBatch, tile.vStrideHead, tile.vStrideRow) = (Int64(n * d), Int64(n * d), Int64(n))
        let maps = try HopperAttentionParams(tile, headDim: d, context: context)
        let params = try cuda { () throws(CUDAError) in
            try buffers.s.fill(byte: 0xFF)  // poisoned: every element must be written
            try buffers.o.fill(byte: 0xFF)
            return HopperLayoutTestParams(
                keys: maps.keys, values: maps.values, queryCodes: try buffers.q.pointer().address,
                probabilityCodes: try buffers.p.pointer().address, scores: try buffers.s.pointer().address,
                products: try buffers.o.pointer().address)
        }
        try launch(kernel, grid: LaunchDimensions(1), block: LaunchDimensions(kernel.threadsPerBlock), params: params, on: stream)
        let (sDevice, oDevice) = try cuda { () throws(CUDAError) in
            try stream.synchronize()
            return (try buffers.s.toArray(of: Int32.self, count: rows * n), try buffers.o.toArray(of: Int32.self, count: rows * d))
        }
        for row in 0..<rows {
            for key in 0..<n {
                let expected = (0..<d).reduce(Int32(0)) { $0 + Int32(q[row * d + $1]) * Int32(k[key * d + $1]) }
                if sDevice[row * n + key] != expected {
                    return "S[\(row)][\(key)] = \(sDevice[row * n + key]), expected \(expected)"
                }
            }
            for c in 0..<d {
                let expected = (0..<n).reduce(Int32(0)) { $0 + Int32(p[row * n + $1]) * Int32(v[$1 * d + c]) }
                if oDevice[row * d + c] != expected {
                    return "O[\(row)][\(c)] = \(oDevice[row * d + c]), expected \(expected)"
                }
            }
        }
        return nil
    }
}
