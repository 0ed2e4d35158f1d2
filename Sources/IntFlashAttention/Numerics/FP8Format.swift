/// The two OCP 8-bit floating-point formats, as codes (bit patterns) in a `UInt8`.
///
/// Encoding rounds to nearest, ties to even, and saturates: anything whose rounded magnitude
/// would exceed `maxFinite` (±Inf included) becomes ±`maxFinite`, as CUDA's
/// `__nv_cvt_float_to_fp8(..., __NV_SATFINITE, ...)` does. NaN encodes as `nanCode`.
public enum FP8Format: String, CaseIterable, Sendable, Hashable, Codable {
    /// 4 exponent bits (bias 7), 3 mantissa bits; no infinities; S.1111.111 is NaN.
    case e4m3
    /// 5 exponent bits (bias 15), 2 mantissa bits; IEEE-like infinities and NaNs.
    case e5m2

    /// Mantissa (fraction) bits.
    public var mantissaBits: Int { self == .e4m3 ? 3 : 2 }
    /// Exponent bias.
    public var exponentBias: Int { self == .e4m3 ? 7 : 15 }
    /// Exponent of the smallest normal value (subnormals are multiples of
    /// 2^(minNormalExponent − mantissaBits)).
    public var minNormalExponent: Int { 1 - exponentBias }
    /// Largest finite magnitude: 448 (E4M3) or 57344 (E5M2).
    public var maxFinite: Float { self == .e4m3 ? 448 : 57344 }
    /// The code NaN encodes to (positive sign), as CUDA's conversion produces.
    public var nanCode: UInt8 { 0x7F }

    /// Rounds `x` to the nearest value of the format, ties to even, saturating to ±maxFinite.
    public func encode(_ x: Float) -> UInt8 {
        if x.isNaN { return nanCode }
        let sign: UInt8 = x.sign == .minus ? 0x80 : 0
        let magnitude = min(abs(x), Float.greatestFiniteMagnitude)
        if magnitude == 0 { return sign }
        // The spacing of format values around `magnitude` is a power of two, so the
        // division and the product back are exact and only the rounding to an integer rounds.
        let exponent = max(Int(magnitude.exponent), minNormalExponent)
        let quantum = Float(sign: .plus, exponent: exponent - mantissaBits, significand: 1)
        let rounded = (magnitude / quantum).rounded(.toNearestOrEven) * quantum
        let value = min(rounded, maxFinite)
        let minNormal = Float(sign: .plus, exponent: minNormalExponent, significand: 1)
        let bits: Int
        if value < minNormal {
            let subnormalStep = Float(sign: .plus, exponent: minNormalExponent - mantissaBits, significand: 1)
            bits = Int(value / subnormalStep)
        } else {
            let field = Int(value.exponent) + exponentBias
            let mantissa = Int(value.significandBitPattern >> UInt32(Float.significandBitCount - mantissaBits))
            bits = field << mantissaBits | mantissa
        }
        return sign | UInt8(bits)
    }

    /// The value of `code`: exact, NaN for the NaN codes, ±Inf for E5M2's infinities.
    public func decode(_ code: UInt8) -> Float {
        let negative = code & 0x80 != 0
        let magnitudeBits = Int(code & 0x7F)
        let field = magnitudeBits >> mantissaBits
        let mantissa = magnitudeBits & ((1 << mantissaBits) - 1)
        let value: Float
        switch self {
        case .e4m3:
            if magnitudeBits == 0x7F { return .nan }
        case .e5m2:
            if field == 31 { value = mantissa == 0 ? .infinity : .nan; return negative ? -value : value }
        }
        if field == 0 {
            value = Float(mantissa) * Float(sign: .plus, exponent: minNormalExponent - mantissaBits, significand: 1)
        } else {
            let significand = 1 + Float(mantissa) / Float(1 << mantissaBits)
            value = Float(sign: .plus, exponent: field - exponentBias, significand: significand)
        }
        return negative ? -value : value
    }

    /// `decode` for all 256 codes, for table-driven dequantization.
    public var decodeTable: [Float] { (0...255).map { decode(UInt8($0)) } }
}
