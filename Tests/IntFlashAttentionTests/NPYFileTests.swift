import Testing
@testable import IntFlashAttention

@Suite struct NPYFileTests {
    private func tensor(_ type: ElementType, dims: (Int, Int, Int, Int)) throws -> AttentionTensor {
        var generator = SplitMix64(seed: 7)
        let count = dims.0 * dims.1 * dims.2 * dims.3
        let values = (0..<count).map { _ in generator.nextNormal() }
        return try AttentionTensor(
            converting: values, to: type, batch: dims.0, heads: dims.1, tokens: dims.2, headDim: dims.3)
    }

    @Test(arguments: [ElementType.float16, .float32])
    func roundTrip(type: ElementType) throws {
        let original = try tensor(type, dims: (2, 3, 5, 8))
        let parsed = try NPYFile.parse(NPYFile.encode(original), path: "t.npy")
        #expect(parsed.elementType == type)
        #expect([parsed.batch, parsed.heads, parsed.tokens, parsed.headDim] == [2, 3, 5, 8])
        #expect(parsed.floats() == original.floats())
    }

    @Test func rankThreeMeansBatchOne() throws {
        var bytes = NPYFile.encode(try tensor(.float32, dims: (1, 2, 3, 8)))
        // Rewrite the shape (1, 2, 3, 8) as (2, 3, 8) without changing the header length.
        let header = String(decoding: bytes[10..<128], as: UTF8.self)
            .replacingOccurrences(of: "(1, 2, 3, 8,)", with: "(2, 3, 8,)   ")
        bytes.replaceSubrange(10..<128, with: Array(header.utf8))
        let parsed = try NPYFile.parse(bytes, path: "t.npy")
        #expect([parsed.batch, parsed.heads, parsed.tokens, parsed.headDim] == [1, 2, 3, 8])
    }

    @Test func truncatedDataIsRefused() throws {
        let bytes = NPYFile.encode(try tensor(.float16, dims: (1, 2, 4, 8)))
        #expect(throws: AttentionError.self) { try NPYFile.parse(Array(bytes.dropLast(2)), path: "t.npy") }
        #expect(throws: AttentionError.self) { try NPYFile.parse(Array(bytes.prefix(20)), path: "t.npy") }
    }

    @Test(arguments: ["<f8", "<i1", ">f4"])
    func unsupportedDtypeIsRefused(descr: String) throws {
        var bytes = NPYFile.encode(try tensor(.float32, dims: (1, 1, 2, 8)))
        let header = String(decoding: bytes[10..<128], as: UTF8.self).replacingOccurrences(of: "<f4", with: descr)
        bytes.replaceSubrange(10..<128, with: Array(header.utf8))
        #expect {
            try NPYFile.parse(bytes, path: "t.npy")
        } throws: { error in
            "\(error)".contains(descr)
        }
    }

    @Test func wrongRankIsRefused() throws {
        var bytes = NPYFile.encode(try tensor(.float32, dims: (1, 1, 2, 8)))
        let header = String(decoding: bytes[10..<128], as: UTF8.self)
            .replacingOccurrences(of: "(1, 1, 2, 8,)", with: "(16,)        ")
        bytes.replaceSubrange(10..<128, with: Array(header.utf8))
        #expect {
            try NPYFile.parse(bytes, path: "t.npy")
        } throws: { error in
            "\(error)".contains("rank 1")
        }
    }

    @Test func notNPYIsRefused() {
        #expect(throws: AttentionError.self) { try NPYFile.parse(Array("hello world, not numpy".utf8), path: "x") }
    }
}

@Suite struct ErrorMetricsTests {
    @Test func identicalOutputsHaveZeroError() {
        let reference: [Double] = [1, -2, 3, 0.5]
        let metrics = ErrorMetrics(output: reference.map { Float($0) }, reference: reference)
        #expect(metrics.relativeL1 == 0 && metrics.maxAbsoluteError == 0 && metrics.meanRelativeError == 0)
        #expect(abs(metrics.cosineSimilarity - 1) < 1e-12)
    }

    @Test func knownValues() {
        let metrics = ErrorMetrics(output: [Float(1.5), 2], reference: [1, 2])
        #expect(abs(metrics.relativeL1 - 0.5 / 3) < 1e-12)
        #expect(abs(metrics.rootMeanSquaredError - (0.125).squareRoot()) < 1e-12)
        #expect(metrics.maxAbsoluteError == 0.5)
        #expect(abs(metrics.meanRelativeError - (0.5 / (1 + 1e-5)) / 2) < 1e-12)
    }

    @Test func nanIsNeverSmall() {
        let metrics = ErrorMetrics(output: [Float(1), .nan], reference: [1, 2])
        #expect(metrics.relativeL1.isNaN && metrics.maxAbsoluteError.isNaN)
    }
}
