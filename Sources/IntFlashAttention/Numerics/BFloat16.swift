/// Brain floating point: the top 16 bits of an IEEE binary32.
///
/// Conversion from `Float` rounds to nearest, ties to even; NaN stays NaN (quiet).
public struct BFloat16: Hashable, Sendable, CustomStringConvertible {
    /// The raw bits: sign, 8 exponent bits, 7 mantissa bits.
    public var bitPattern: UInt16

    /// The value with these bits.
    @inlinable
    public init(bitPattern: UInt16) { self.bitPattern = bitPattern }

    /// Rounds `value` to nearest, ties to even; NaN stays NaN.
    @inlinable
    public init(_ value: Float) {
        let bits = value.bitPattern
        if value.isNaN {
            bitPattern = UInt16(truncatingIfNeeded: bits >> 16) | 0x0040
            return
        }
        let lsb = (bits >> 16) & 1
        let rounded = bits &+ 0x7FFF &+ lsb
        bitPattern = UInt16(truncatingIfNeeded: rounded >> 16)
    }

    /// The value widened to fp32 (exact).
    @inlinable
    public var float: Float { Float(bitPattern: UInt32(bitPattern) << 16) }

    /// The value as `Float` prints it.
    public var description: String { float.description }
}

extension Float {
    /// The bf16 value widened to fp32 (exact).
    @inlinable
    public init(_ value: BFloat16) { self = value.float }
}
