/// The symmetric integer quantizer of docs/SCHEMES.md ("Rounding rule").
///
/// For a group of values (a token row, a channel, a tensor): `amax = max |x|`,
/// `inv = levels / amax` (one fp32 division), `code = clamp(rne(x · inv), −levels, levels)`,
/// `scale = amax / levels`. A group whose `amax` is 0 gets `inv = 0`, scale 0 and all codes 0,
/// never a NaN. The CUDA quantization kernels follow the same steps bit for bit.
public enum SymmetricQuantization {
    /// Levels of INT8 codes (−127…127; −128 is never produced).
    public static let int8Levels = 127
    /// Levels of INT4 codes (−7…7).
    public static let int4Levels = 7

    /// `inv` and the stored scale for a group whose largest magnitude is `amax`.
    @inlinable
    public static func parameters(amax: Float, levels: Int) -> (inverse: Float, scale: Float) {
        guard amax > 0 else { return (0, 0) }
        return (Float(levels) / amax, amax / Float(levels))
    }

    /// `clamp(rne(x · inverse), −levels, levels)`.
    @inlinable
    public static func code(_ x: Float, inverse: Float, levels: Int) -> Int8 {
        let bound = Float(levels)
        let rounded = roundedToNearestEven(x * inverse)
        return Int8(min(max(rounded, -bound), bound))
    }

    /// Rounds to the nearest integer, ties to even. Adding and subtracting 1.5·2^23 leaves
    /// the integer part in the significand under the default rounding mode; it is exact for
    /// |y| < 2^22 and cheaper than a `rint` call on baseline x86-64. Larger values (never
    /// reached after multiplying by `levels / amax`) are clamped first, which keeps codes right.
    @inlinable
    static func roundedToNearestEven(_ y: Float) -> Float {
        let limit: Float = 4_194_304  // 2^22
        let bounded = min(max(y, -limit), limit)
        let magic: Float = 12_582_912  // 1.5 · 2^23
        return (bounded + magic) - magic
    }

    /// Largest magnitude of `count` values `stride` apart.
    @inlinable
    static func absoluteMaximum(_ values: UnsafePointer<Float>, count: Int, stride: Int = 1) -> Float {
        var amax: Float = 0
        for i in 0..<count {
            let magnitude = abs(values[i * stride])
            amax = magnitude > amax ? magnitude : amax
        }
        return amax
    }

    /// Quantizes one group of `count` contiguous values; returns the scale.
    @inlinable
    static func quantizeGroup(
        _ values: UnsafePointer<Float>, count: Int, levels: Int, into codes: UnsafeMutablePointer<Int8>
    ) -> Float {
        let (inverse, scale) = parameters(amax: absoluteMaximum(values, count: count), levels: levels)
        for i in 0..<count { codes[i] = code(values[i], inverse: inverse, levels: levels) }
        return scale
    }

    /// Per-token quantization: one scale per row of `rowLength` values.
    public static func quantizeRows(_ values: [Float], rowLength: Int, levels: Int) -> (codes: [Int8], scales: [Float]) {
        guard rowLength > 0 else { return ([], []) }
        let rows = values.count / rowLength
        var codes = [Int8](repeating: 0, count: rows * rowLength)
        var scales = [Float](repeating: 0, count: rows)
        values.withUnsafeBufferPointer { source in
            codes.withUnsafeMutableBufferPointer { target in
                for row in 0..<rows {
                    scales[row] = quantizeGroup(
                        source.baseAddress! + row * rowLength, count: rowLength, levels: levels,
                        into: target.baseAddress! + row * rowLength)
                }
            }
        }
        return (codes, scales)
    }

    /// `int8` keys: one scale per group of 8 keys (``KeyGroups``) over the group's rows, codes
    /// row-major; scales `[paddedTokens / 8]` in ``KeyGroups/scaleIndex(ofKey:)`` order, 0 for
    /// groups past `tokens`.
    public static func quantizeKeyGroups(
        _ values: [Float], tokens: Int, channels: Int, paddedTokens: Int, levels: Int
    ) -> (codes: [Int8], scales: [Float]) {
        var codes = [Int8](repeating: 0, count: tokens * channels)
        var scales = [Float](repeating: 0, count: paddedTokens / KeyGroups.groupKeys)
        for index in scales.indices {
            let keys = KeyGroups.keys(ofScaleIndex: index, keyLength: tokens)
            guard !keys.isEmpty else { continue }
            let amax = keys.map { key in
                values.withUnsafeBufferPointer { absoluteMaximum($0.baseAddress! + key * channels, count: channels) }
            }.max()!
            let (inverse, scale) = parameters(amax: amax, levels: levels)
            scales[index] = scale
            for key in keys {
                for c in 0..<channels { codes[key * channels + c] = code(values[key * channels + c], inverse: inverse, levels: levels) }
            }
        }
        return (codes, scales)
    }

    /// Per-channel quantization of a [tokens, channels] matrix: one scale per channel over all
    /// tokens, codes written transposed (`[channel][token]`, tokens contiguous) with each
    /// channel's row padded with zero codes to `paddedTokens`.
    public static func quantizeChannelsTransposed(
        _ values: [Float], tokens: Int, channels: Int, paddedTokens: Int, levels: Int
    ) -> (codes: [Int8], scales: [Float]) {
        var codes = [Int8](repeating: 0, count: channels * paddedTokens)
        var scales = [Float](repeating: 0, count: channels)
        values.withUnsafeBufferPointer { source in
            codes.withUnsafeMutableBufferPointer { target in
                scales.withUnsafeMutableBufferPointer { scaleBuffer in
                    quantizeChannelsTransposed(
                        source.baseAddress!, tokens: tokens, channels: channels, levels: levels,
                        codes: target.baseAddress!, paddedTokens: paddedTokens, scales: scaleBuffer.baseAddress!)
                }
            }
        }
        return (codes, scales)
    }

    @usableFromInline
    static func quantizeChannelsTransposed(
        _ values: UnsafePointer<Float>, tokens: Int, channels: Int, levels: Int,
        codes: UnsafeMutablePointer<Int8>, paddedTokens: Int, scales: UnsafeMutablePointer<Float>
    ) {
        var amax = [Float](repeating: 0, count: channels)
        for t in 0..<tokens {
            let row = values + t * channels
            for c in 0..<channels {
                let magnitude = abs(row[c])
                if magnitude > amax[c] { amax[c] = magnitude }
            }
        }
        var inverses = [Float](repeating: 0, count: channels)
        for c in 0..<channels {
            (inverses[c], scales[c]) = parameters(amax: amax[c], levels: levels)
        }
        for t in 0..<tokens {
            let row = values + t * channels
            for c in 0..<channels {
                codes[c * paddedTokens + t] = code(row[c], inverse: inverses[c], levels: levels)
            }
        }
    }

    /// Per-tensor quantization: one scale for all of `values`.
    public static func quantizeTensor(_ values: [Float], levels: Int) -> (codes: [Int8], scale: Float) {
        var codes = [Int8](repeating: 0, count: values.count)
        let scale = values.withUnsafeBufferPointer { source in
            codes.withUnsafeMutableBufferPointer { target in
                values.isEmpty ? 0 : quantizeGroup(source.baseAddress!, count: values.count, levels: levels, into: target.baseAddress!)
            }
        }
        return (codes, scale)
    }
}
