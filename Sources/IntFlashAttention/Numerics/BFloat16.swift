/// Brain floating point: the top 16 bits of an IEEE binary32.
///
/// Conversion from `Float` rounds to nearest, ties to even; NaN stays NaN (quiet).
public struct BFloat16: Hashable, Sendable, CustomStringConvertible {
    public var bitPattern: UInt16

    @inlinable
    public init(bitPattern: UInt16) { self.bitPattern = bitPattern }

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

    @inlinable
    public var float: Float { Float(bitPattern: UInt32(bitPattern) << 16) }

    public var description: String { float.description }
}

extension Float {
    @inlinable
    public init(_ value: BFloat16) { self = value.float }
}
