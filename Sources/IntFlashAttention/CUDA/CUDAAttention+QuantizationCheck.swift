import CUDADriver

extension CUDAAttention {
    /// Quantizes host tensors with the GPU kernels and returns the codes and scales in the CPU
    /// quantizer's form (Vt in plain key order, K scales without padding), so the two can be
    /// compared bit for bit. INT8 schemes only.
    public func quantizeOnDevice(
        _ method: AttentionMethod, problem: AttentionProblem,
        q: AttentionTensor, k: AttentionTensor, v: AttentionTensor
    ) throws(AttentionError) -> QuantizedAttentionInputs {
        let buffers = try [q, k, v].map { (tensor) throws(AttentionError) in
            try cuda { () throws(CUDAError) in try upload(tensor) }
        }
        let inputs = try withExtendedLifetime(buffers) { () throws(AttentionError) -> QuantizedDeviceInputs in
            let result = try quantize(method, problem: problem, q: buffers[0].1, k: buffers[1].1, v: buffers[2].1)
            try cuda { () throws(CUDAError) in try stream.synchronize() }
            return result
        }
        let b = problem.batch, h = problem.heads, hkv = problem.kvHeads, d = problem.headDim
        let nq = problem.queryLength, nk = problem.keyLength
        let nkPad = QuantizedDeviceInputs.paddedKeyLength(nk)
        let vScaleCount = method == .int8Paper ? b * hkv : b * hkv * d
        return try cuda { () throws(CUDAError) in
            // int8: group scales, stored as the CPU stores them; otherwise per key, padded.
            let keyScaleCount = method == .int8 ? b * hkv * nkPad / KeyGroups.groupKeys : b * hkv * nkPad
            let paddedKeyScales = try context.read(Float.self, from: inputs.kScale, count: keyScaleCount)
            let permuted = try context.read(Int8.self, from: inputs.vt, count: b * hkv * d * nkPad)
            // int8 stores Vt in excess-128 form: the XOR of the sign bit gives the s8 code back.
            let excess: UInt8 = method == .int8 ? 0x80 : 0
            var vt = permuted
            for row in 0..<(b * hkv * d) {
                for position in 0..<nkPad {
                    vt[row * nkPad + VtKeyOrder.key(atPosition: position)] =
                        Int8(bitPattern: UInt8(bitPattern: permuted[row * nkPad + position]) ^ excess)
                }
            }
            return QuantizedAttentionInputs(
                method: method, problem: problem,
                queryCodes: try context.read(Int8.self, from: inputs.q, count: b * h * nq * d),
                queryScales: try context.read(Float.self, from: inputs.qScale, count: b * h * nq),
                keyCodes: try context.read(Int8.self, from: inputs.k, count: b * hkv * nk * d),
                keyScales: method == .int8
                    ? paddedKeyScales : (0..<(b * hkv)).flatMap { head in paddedKeyScales[(head * nkPad)..<(head * nkPad + nk)] },
                valueCodesTransposed: vt,
                valueScales: try context.read(Float.self, from: inputs.vScale, count: vScaleCount))
        }
    }
}
