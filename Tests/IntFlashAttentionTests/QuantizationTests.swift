import Foundation
import Testing
@testable import IntFlashAttention

@Suite struct QuantizationTests {
    @Test(arguments: [SymmetricQuantization.int8Levels, SymmetricQuantization.int4Levels])
    func rowsRoundTripWithinHalfAStep(levels: Int) {
        var g = SplitMix64(seed: UInt64(levels) &* 977 &+ 1)
        let values = g.normals(37 * 24, scale: 3)
        let (codes, scales) = SymmetricQuantization.quantizeRows(values, rowLength: 24, levels: levels)
        for (i, x) in values.enumerated() {
            let scale = scales[i / 24]
            #expect(abs(Int(codes[i])) <= levels)
            #expect(abs(x - Float(codes[i]) * scale) <= scale / 2 * 1.0001)
        }
    }

    @Test func allZeroGroupsGiveZeroScaleAndCodes() {
        let rows = [Float](repeating: 0, count: 16) + [1, -2] + [Float](repeating: 0, count: 14)
        let (codes, scales) = SymmetricQuantization.quantizeRows(rows, rowLength: 16, levels: 127)
        #expect(scales[0] == 0 && codes[0..<16].allSatisfy { $0 == 0 })
        #expect(scales[1] == 2 / 127 && codes[16] == 64 && codes[17] == -127)

        // Channel 1 of a [3 tokens, 2 channels] matrix is all zero.
        let (channelCodes, channelScales) = SymmetricQuantization.quantizeChannelsTransposed(
            [1, 0, -4, 0, 2, 0], tokens: 3, channels: 2, paddedTokens: 64, levels: 127)
        #expect(channelScales == [4 / 127, 0])
        #expect(channelCodes[64..<128].allSatisfy { $0 == 0 })
        #expect(Array(channelCodes[0..<4]) == [32, -127, 64, 0])
        #expect(SymmetricQuantization.quantizeTensor([0, 0], levels: 7) == ([0, 0], 0))
    }

    @Test func int4PackingIsLowNibbleFirst() {
        var g = SplitMix64(seed: 44)
        let codes = (0..<101).map { _ in Int8.random(in: -8...7, using: &g) }
        let packed = Int4Packing.pack(codes)
        #expect(packed.count == 51)
        #expect(Int4Packing.unpack(packed, count: codes.count) == codes)
        #expect(Int4Packing.pack([-7, 3]) == [Int8(bitPattern: 0x39)])
    }

    @Test func keySmoothingSubtractsTheChannelMean() {
        let keys: [Float] = [1, 10, 3, 20, 5, 60]  // 3 tokens x 2 channels
        #expect(KeySmoothing.channelMeans(keys, tokens: 3, channels: 2) == [3, 30])
        #expect(KeySmoothing.smoothed(keys, tokens: 3, channels: 2) == [-2, -20, 0, -10, 2, 30])
    }

    /// The GPU-layout quantization against the Swift rule, bit for bit, on every ISA.
    @Test(arguments: [AttentionMethod.int8, .int8Paper, .int4])
    func problemQuantizationFollowsTheRule(method: AttentionMethod) throws {
        let p = try AttentionProblem(batch: 2, heads: 4, kvHeads: 2, queryLength: 19, keyLength: 70, headDim: 40)
        var (q, k, v) = randomInputs(p, seed: 0xA5 &+ UInt64(method.rawValue.count))
        for c in 0..<p.headDim { q[3 * p.headDim + c] = 0 }  // an all-zero query row
        for t in 0..<p.keyLength { v[t * p.headDim + 5] = 0 }  // an all-zero V channel (slice 0)
        let levels = method == .int4 ? 7 : 127
        let smL = p.softmaxScale * Float(1.4426950408889634)
        let (qCodes, qScales) = SymmetricQuantization.quantizeRows(q, rowLength: p.headDim, levels: levels)
        var kCodes: [Int8] = [], kScales: [Float] = [], vt: [Int8] = [], vScales: [Float] = []
        let slice = p.keyLength * p.headDim
        let padded = 128
        for s in 0..<(p.batch * p.kvHeads) {
            var keys = Array(k[s * slice..<(s + 1) * slice])
            if method != .int8Paper { keys = KeySmoothing.smoothed(keys, tokens: p.keyLength, channels: p.headDim) }
            let (codes, scales) = method == .int8
                ? SymmetricQuantization.quantizeKeyGroups(keys, tokens: p.keyLength, channels: p.headDim, paddedTokens: padded, levels: levels)
                : SymmetricQuantization.quantizeRows(keys, rowLength: p.headDim, levels: levels)
            kCodes += codes
            kScales += scales
            let values = Array(v[s * slice..<(s + 1) * slice])
            if method == .int8Paper {
                let (codes, scale) = SymmetricQuantization.quantizeTensor(values, levels: 127)
                var transposed = [Int8](repeating: 0, count: p.headDim * padded)
                for t in 0..<p.keyLength {
                    for c in 0..<p.headDim { transposed[c * padded + t] = codes[t * p.headDim + c] }
                }
                vt += transposed
                vScales.append(scale)
            } else {
                let (codes, scales) = SymmetricQuantization.quantizeChannelsTransposed(
                    values, tokens: p.keyLength, channels: p.headDim, paddedTokens: padded, levels: 127)
                vt += codes
                vScales += scales
            }
        }
        let pack = { (codes: [Int8]) in method == .int4 ? Int4Packing.pack(codes) : codes }
        for isa in CPUKernelISA.allCases where isa.isSupported {
            let quantized = try QuantizedAttentionInputs.quantize(method: method, problem: p, q: q, k: k, v: v, isa: isa)
            #expect(quantized.paddedKeyLength == padded)
            #expect(quantized.queryCodes == pack(qCodes), "\(isa)")
            #expect(quantized.queryScales == qScales.map { $0 * smL }, "\(isa)")
            #expect(quantized.keyCodes == pack(kCodes), "\(isa)")
            #expect(quantized.keyScales == kScales, "\(isa)")
            #expect(quantized.valueCodesTransposed == vt, "\(isa)")
            #expect(quantized.valueScales == vScales, "\(isa)")
            #expect(!quantized.queryScales.contains { $0.isNaN } && !quantized.valueScales.contains { $0.isNaN })
        }
    }

    @Test func floatingPointMethodsAreNotQuantizedHere() throws {
        let p = try AttentionProblem(heads: 1, queryLength: 1, keyLength: 1, headDim: 8)
        let x = [Float](repeating: 1, count: 8)
        #expect(throws: AttentionError.self) {
            try QuantizedAttentionInputs.quantize(method: .fp16, problem: p, q: x, k: x, v: x)
        }
    }

    @Test func fp8TensorQuantizationScalesToTheFormatMaximum() {
        let (codes, scale) = FP8TensorQuantization.quantize([0.5, -2, 1], format: .e4m3)
        #expect(scale == Float(2) / 448)
        #expect(codes.map { FP8Format.e4m3.decode($0) } == [112, -448, 224])
        #expect(FP8TensorQuantization.quantize([0, 0], format: .e5m2) == ([0, 0], 0))
    }
}
