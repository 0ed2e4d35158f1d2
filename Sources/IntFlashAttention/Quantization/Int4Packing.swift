/// INT4 codes stored two per byte: element 2i in bits 0–3, element 2i+1 in bits 4–7, each a
/// two's-complement nibble (docs/SCHEMES.md).
public enum Int4Packing {
    /// Packs codes in −8…7 (an odd count gets a zero high nibble in the last byte).
    public static func pack(_ codes: [Int8]) -> [Int8] {
        var packed = [Int8](repeating: 0, count: (codes.count + 1) / 2)
        for i in stride(from: 0, to: codes.count, by: 2) {
            let low = UInt8(bitPattern: codes[i]) & 0x0F
            let high = i + 1 < codes.count ? UInt8(bitPattern: codes[i + 1]) & 0x0F : 0
            packed[i / 2] = Int8(bitPattern: low | high << 4)
        }
        return packed
    }

    /// The `count` codes packed in `packed`, sign-extended to `Int8`.
    public static func unpack(_ packed: [Int8], count: Int) -> [Int8] {
        (0..<count).map { element(packed, at: $0) }
    }

    /// Code `index` of a packed buffer.
    @inlinable
    public static func element(_ packed: [Int8], at index: Int) -> Int8 {
        let byte = packed[index / 2]
        // Shift the wanted nibble to the top, then arithmetic-shift back: sign extension.
        return index % 2 == 0 ? (byte << 4) >> 4 : byte >> 4
    }
}
