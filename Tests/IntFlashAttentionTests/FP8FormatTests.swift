import Testing
@testable import IntFlashAttention

@Suite struct FP8FormatTests {
    @Test(arguments: FP8Format.allCases)
    func everyFiniteCodeRoundTrips(format: FP8Format) {
        for code in 0...255 {
            let value = format.decode(UInt8(code))
            guard value.isFinite else { continue }
            #expect(format.encode(value) == UInt8(code), "code \(code) decodes to \(value)")
        }
    }

    @Test(arguments: FP8Format.allCases)
    func tiesRoundToEvenCodes(format: FP8Format) {
        // Consecutive positive codes are consecutive values; their midpoint is exact in fp32.
        for code in 0..<0x7F {
            let low = format.decode(UInt8(code)), high = format.decode(UInt8(code + 1))
            guard low.isFinite, high.isFinite else { continue }
            let even = code % 2 == 0 ? code : code + 1
            #expect(format.encode((low + high) / 2) == UInt8(even))
            #expect(format.encode(-(low + high) / 2) == UInt8(even) | 0x80)
            // Just off the midpoint rounds to the nearer neighbour.
            #expect(format.encode((low + high) / 2 * (1 - 1e-6)) == UInt8(code))
        }
    }

    @Test func largestFiniteValues() {
        #expect(FP8Format.e4m3.decode(0x7E) == 448)
        #expect(FP8Format.e5m2.decode(0x7B) == 57344)
        #expect(FP8Format.e4m3.maxFinite == 448)
        #expect(FP8Format.e5m2.maxFinite == 57344)
    }

    @Test(arguments: FP8Format.allCases)
    func saturatesInsteadOfOverflowing(format: FP8Format) {
        let maxCode = format.encode(format.maxFinite)
        #expect(format.decode(maxCode) == format.maxFinite)
        for big in [format.maxFinite * 1.5, 1e30, Float.greatestFiniteMagnitude, .infinity] {
            #expect(format.encode(big) == maxCode)
            #expect(format.encode(-big) == maxCode | 0x80)
        }
    }

    @Test(arguments: FP8Format.allCases)
    func nanAndSubnormals(format: FP8Format) {
        #expect(format.encode(.nan) == format.nanCode)
        #expect(format.decode(format.nanCode).isNaN)
        #expect(format.decode(format.nanCode | 0x80).isNaN)
        let smallest = format.decode(1)
        #expect(smallest == Float(sign: .plus, exponent: format.minNormalExponent - format.mantissaBits, significand: 1))
        #expect(format.encode(smallest / 2) == 0)  // tie with 0 goes to the even code 0
        #expect(format.encode(smallest * 0.51) == 1)
        #expect(format.encode(-0.0) == 0x80)
    }

    @Test func e5m2HasInfinitiesE4M3DoesNot() {
        #expect(FP8Format.e5m2.decode(0x7C) == .infinity)
        #expect(FP8Format.e5m2.decode(0xFC) == -.infinity)
        #expect(FP8Format.e4m3.decode(0x7C) == 384)  // 1.5 · 2^8: an ordinary value
        #expect(FP8Format.e5m2.decode(0x7D).isNaN)
    }
}
