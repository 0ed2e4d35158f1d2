/// Per-tensor FP8 scaling (docs/SCHEMES.md, `fp8-e4m3` / `fp8-e5m2`):
/// `s = amax / FMAX`, `code = fp8(x · (FMAX / amax))`; an all-zero tensor gets scale 0 and
/// codes 0.
public enum FP8TensorQuantization {
    /// Codes of `values` in `format` and the tensor's scale.
    public static func quantize(_ values: [Float], format: FP8Format) -> (codes: [UInt8], scale: Float) {
        values.withUnsafeBufferPointer { quantize($0, format: format) }
    }

    static func quantize(_ values: UnsafeBufferPointer<Float>, format: FP8Format) -> (codes: [UInt8], scale: Float) {
        guard let base = values.baseAddress, !values.isEmpty else { return ([], 0) }
        let amax = SymmetricQuantization.absoluteMaximum(base, count: values.count)
        guard amax > 0 else { return ([UInt8](repeating: 0, count: values.count), 0) }
        let inverse = format.maxFinite / amax
        return (values.map { format.encode($0 * inverse) }, amax / format.maxFinite)
    }
}
