import Foundation
import Testing
@testable import CUDADriver
@testable import IntFlashAttention

/// The Swift mirrors must have exactly the C layout of `params.cuh`: the kernels read the
/// by-value argument with the C offsets.
struct KernelParamsLayoutTests {
    /// Field name → byte offset, read from the `// offset` comments of one struct in params.cuh.
    static func cOffsets(of structName: String) throws -> [(name: String, offset: Int)] {
        let source = try #require(EmbeddedKernelSources.files["params.cuh"])
        let body = try #require(source.components(separatedBy: "struct \(structName) {").dropFirst().first)
        var fields: [(String, Int)] = []
        for line in body.split(separator: "\n") {
            if line.hasPrefix("};") { break }
            let parts = line.split(separator: "//", maxSplits: 1)
            guard parts.count == 2, let offset = Int(parts[1].trimmingCharacters(in: .whitespaces)) else { continue }
            let declaration = parts[0].trimmingCharacters(in: .whitespaces)
            guard declaration.hasSuffix(";"), let name = declaration.dropLast().split(separator: " ").last else { continue }
            fields.append((String(name), offset))
        }
        return fields
    }

    static func cSize(of structName: String) throws -> Int {
        let source = try #require(EmbeddedKernelSources.files["params.cuh"])
        let body = try #require(source.components(separatedBy: "struct \(structName) {").dropFirst().first)
        let closing = try #require(body.components(separatedBy: "};").dropFirst().first)
        let comment = try #require(closing.split(separator: "\n").first)
        return try #require(Int(comment.replacingOccurrences(of: "// size", with: "").trimmingCharacters(in: .whitespaces)))
    }

    static var attentionFields: [String: PartialKeyPath<AttentionParams>] { [
        "q": \.q, "k": \.k, "v": \.v, "qScale": \.qScale, "kScale": \.kScale, "vScale": \.vScale,
        "out": \.out, "lse": \.lse, "batch": \.batch, "heads": \.heads, "kvHeads": \.kvHeads,
        "queryLength": \.queryLength, "keyLength": \.keyLength, "keyLengthPadded": \.keyLengthPadded,
        "qStrideBatch": \.qStrideBatch, "qStrideHead": \.qStrideHead, "qStrideToken": \.qStrideToken,
        "kStrideBatch": \.kStrideBatch, "kStrideHead": \.kStrideHead, "kStrideToken": \.kStrideToken,
        "vStrideBatch": \.vStrideBatch, "vStrideHead": \.vStrideHead, "vStrideRow": \.vStrideRow,
        "oStrideBatch": \.oStrideBatch, "oStrideHead": \.oStrideHead, "oStrideToken": \.oStrideToken,
        "softmaxScaleLog2": \.softmaxScaleLog2, "reserved0": \.reserved0,
        "rowMarks": \.rowMarks, "keyMarks": \.keyMarks, "headDim": \.headDim,
    ] }

    static var quantizationFields: [String: PartialKeyPath<QuantizationParams>] { [
        "input": \.input, "codes": \.codes, "scales": \.scales, "channelMean": \.channelMean,
        "channelAmax": \.channelAmax, "batch": \.batch, "heads": \.heads, "tokens": \.tokens,
        "headDim": \.headDim, "tokensPadded": \.tokensPadded, "strideBatch": \.strideBatch,
        "strideHead": \.strideHead, "strideToken": \.strideToken, "scaleMultiplier": \.scaleMultiplier,
        "reserved0": \.reserved0, "channelPartials": \.channelPartials, "statsChunks": \.statsChunks,
        "rowMarks": \.rowMarks, "keyMarks": \.keyMarks,
    ] }

    static var mergeFields: [String: PartialKeyPath<MergeParams>] { [
        "out": \.out, "lse": \.lse, "part": \.part, "partLse": \.partLse, "batch": \.batch, "heads": \.heads,
        "tokens": \.tokens, "headDim": \.headDim, "oStrideBatch": \.oStrideBatch, "oStrideHead": \.oStrideHead,
        "oStrideToken": \.oStrideToken, "pStrideBatch": \.pStrideBatch, "pStrideHead": \.pStrideHead,
        "pStrideToken": \.pStrideToken, "lseStrideBatch": \.lseStrideBatch, "lseStrideHead": \.lseStrideHead,
        "partLseStrideBatch": \.partLseStrideBatch, "partLseStrideHead": \.partLseStrideHead,
        "threadsPerRow": \.threadsPerRow, "rowsPerBlock": \.rowsPerBlock,
    ] }

    static var restoreFields: [String: PartialKeyPath<RestoreLogSumExpParams>] { [
        "query": \.query, "keyMean": \.keyMean, "lse": \.lse, "batch": \.batch, "heads": \.heads,
        "kvHeads": \.kvHeads, "queryLength": \.queryLength, "headDim": \.headDim, "qStrideBatch": \.qStrideBatch,
        "qStrideHead": \.qStrideHead, "qStrideToken": \.qStrideToken, "softmaxScale": \.softmaxScale,
        "reserved0": \.reserved0,
    ] }

    static var decodeFields: [String: PartialKeyPath<DecodeParams>] { [
        "query": \.query, "keyCodes": \.keyCodes, "valueCodes": \.valueCodes, "keyScales": \.keyScales,
        "valueScales": \.valueScales, "blockTable": \.blockTable, "lengths": \.lengths, "partialOut": \.partialOut,
        "partialLse": \.partialLse, "out": \.out, "lse": \.lse, "batch": \.batch, "heads": \.heads,
        "kvHeads": \.kvHeads, "queryLength": \.queryLength, "headDim": \.headDim, "pageSize": \.pageSize,
        "maxPages": \.maxPages, "splits": \.splits, "splitKeys": \.splitKeys, "qStrideBatch": \.qStrideBatch,
        "qStrideToken": \.qStrideToken, "qStrideHead": \.qStrideHead, "oStrideBatch": \.oStrideBatch,
        "oStrideToken": \.oStrideToken, "oStrideHead": \.oStrideHead, "causal": \.causal,
        "softmaxScaleLog2": \.softmaxScaleLog2, "reserved0": \.reserved0, "pageCount": \.pageCount,
        "tokensPerTile": \.tokensPerTile,
    ] }

    static var appendFields: [String: PartialKeyPath<KVAppendParams>] { [
        "keys": \.keys, "values": \.values, "keyCodes": \.keyCodes, "valueCodes": \.valueCodes, "keyScales": \.keyScales,
        "valueScales": \.valueScales, "keyMeans": \.keyMeans, "blockTable": \.blockTable, "lengths": \.lengths,
        "batch": \.batch, "tokens": \.tokens, "kvHeads": \.kvHeads, "headDim": \.headDim, "pageSize": \.pageSize,
        "pageCount": \.pageCount, "maxPages": \.maxPages, "kStrideBatch": \.kStrideBatch, "kStrideToken": \.kStrideToken,
        "kStrideHead": \.kStrideHead, "vStrideBatch": \.vStrideBatch, "vStrideToken": \.vStrideToken, "vStrideHead": \.vStrideHead,
    ] }

    static var variableLengthFields: [String: PartialKeyPath<VariableLengthParams>] { [
        "query": \.query, "key": \.key, "value": \.value, "out": \.out, "paddedQuery": \.paddedQuery,
        "paddedKey": \.paddedKey, "paddedValue": \.paddedValue, "paddedOut": \.paddedOut, "keyMean": \.keyMean,
        "valueAmax": \.valueAmax, "sequences": \.sequences, "paddedLength": \.paddedLength,
        "heads": \.heads, "kvHeads": \.kvHeads, "headDim": \.headDim, "qStrideToken": \.qStrideToken,
        "qStrideHead": \.qStrideHead, "kStrideToken": \.kStrideToken, "kStrideHead": \.kStrideHead,
        "vStrideToken": \.vStrideToken, "vStrideHead": \.vStrideHead, "oStrideToken": \.oStrideToken,
        "oStrideHead": \.oStrideHead,
    ] }

    /// Every field of the C struct at its C offset in the Swift mirror, and the same size.
    static func expectLayout<T>(_ type: T.Type, named structName: String, fields mirror: [String: PartialKeyPath<T>], cSize: Int) throws {
        let fields = try cOffsets(of: structName)
        #expect(fields.count == mirror.count)
        for (name, offset) in fields {
            let keyPath = try #require(mirror[name], "Swift mirror lacks \(name)")
            #expect(MemoryLayout<T>.offset(of: keyPath) == offset, "\(name)")
        }
        #expect(try Self.cSize(of: structName) == cSize)
        #expect(MemoryLayout<T>.size == cSize)
        #expect(MemoryLayout<T>.stride == cSize)
        #expect(MemoryLayout<T>.alignment == 8)
    }

    @Test func attentionParamsMatchTheHeader() throws {
        try Self.expectLayout(AttentionParams.self, named: "AttentionParams", fields: Self.attentionFields, cSize: AttentionParams.cSize)
        #expect(AttentionParams.cSize == 240)
    }

    @Test func quantizationParamsMatchTheHeader() throws {
        try Self.expectLayout(QuantizationParams.self, named: "QuantizationParams", fields: Self.quantizationFields, cSize: QuantizationParams.cSize)
        #expect(QuantizationParams.cSize == 144)
    }

    @Test func mergeParamsMatchTheHeader() throws {
        try Self.expectLayout(MergeParams.self, named: "MergeParams", fields: Self.mergeFields, cSize: MergeParams.cSize)
    }

    @Test func decodeParamsMatchTheHeader() throws {
        try Self.expectLayout(DecodeParams.self, named: "DecodeParams", fields: Self.decodeFields, cSize: DecodeParams.cSize)
        try Self.expectLayout(KVAppendParams.self, named: "KVAppendParams", fields: Self.appendFields, cSize: KVAppendParams.cSize)
    }

    @Test func variableLengthParamsMatchTheHeader() throws {
        try Self.expectLayout(
            VariableLengthParams.self, named: "VariableLengthParams", fields: Self.variableLengthFields, cSize: VariableLengthParams.cSize)
    }

    @Test func restoreParamsMatchTheHeader() throws {
        try Self.expectLayout(
            RestoreLogSumExpParams.self, named: "RestoreLogSumExpParams", fields: Self.restoreFields, cSize: RestoreLogSumExpParams.cSize)
    }

    /// The offsets the CUDA compiler itself gives the parameter blocks (params.cuh's and
    /// hopper_params.cuh's), against Swift's: static
    /// asserts built from the Swift mirrors, compiled by NVRTC. The header's offset comments
    /// above could drift from the code; this cannot. NVRTC has no `offsetof`, so a constexpr
    /// function finds a field's offset as the first byte that setting it to all ones changes
    /// (`__builtin_bit_cast`). Needs NVRTC, not a GPU; skipped without it unless
    /// INTFA_REQUIRE_NVRTC is set.
    @Test(.enabled(if: NVRTCForTests.shouldRun, "NVRTC not found; set INTFA_NVRTC or INTFA_REQUIRE_NVRTC=1"))
    func mirrorsMatchTheCompiledLayout() throws {
        var source = """
            #include "params.cuh"
            #include "hopper_params.cuh"
            template <int N> struct Bytes { unsigned char v[N]; };
            template <typename T, typename F>
            __device__ constexpr int offset_of(F T::*member) {
                Bytes<sizeof(F)> ones{};
                for (int i = 0; i < (int)sizeof(F); ++i) ones.v[i] = 0xFF;
                T value{};
                value.*member = __builtin_bit_cast(F, ones);
                const Bytes<sizeof(T)> bytes = __builtin_bit_cast(Bytes<sizeof(T)>, value);
                for (int i = 0; i < (int)sizeof(T); ++i) if (bytes.v[i] != 0) return i;
                return -1;
            }

            """
        func assertions<T>(_ type: T.Type, named name: String, fields: [String: PartialKeyPath<T>]) throws {
            for (field, keyPath) in fields.sorted(by: { $0.key < $1.key }) {
                let offset = try #require(MemoryLayout<T>.offset(of: keyPath))
                source += "static_assert(offset_of(&\(name)::\(field)) == \(offset), \"\(name).\(field): Swift says \(offset)\");\n"
            }
            source += "static_assert(sizeof(\(name)) == \(MemoryLayout<T>.size), \"sizeof(\(name)): Swift says \(MemoryLayout<T>.size)\");\n"
        }
        try assertions(AttentionParams.self, named: "AttentionParams", fields: Self.attentionFields)
        try assertions(QuantizationParams.self, named: "QuantizationParams", fields: Self.quantizationFields)
        try assertions(MergeParams.self, named: "MergeParams", fields: Self.mergeFields)
        try assertions(RestoreLogSumExpParams.self, named: "RestoreLogSumExpParams", fields: Self.restoreFields)
        try assertions(DecodeParams.self, named: "DecodeParams", fields: Self.decodeFields)
        try assertions(KVAppendParams.self, named: "KVAppendParams", fields: Self.appendFields)
        try assertions(VariableLengthParams.self, named: "VariableLengthParams", fields: Self.variableLengthFields)
        try assertions(HopperAttentionParams.self, named: "HopperAttentionParams", fields: [
            "keys": \HopperAttentionParams.keys, "values": \.values, "attention": \.attention,
        ])
        try assertions(HopperLayoutTestParams.self, named: "HopperLayoutTestParams", fields: [
            "keys": \HopperLayoutTestParams.keys, "values": \.values, "queryCodes": \.queryCodes,
            "probabilityCodes": \.probabilityCodes, "scores": \.scores, "products": \.products,
        ])
        source += "extern \"C\" __global__ void intfa_layout_probe() {}\n"
        let compiler = try NVRTCForTests.compiler()
        let headers = EmbeddedKernelSources.files.filter { $0.key.hasSuffix(".cuh") }
        do {
            _ = try compiler.compile(source: source, name: "layout_probe.cu", headers: headers, options: ["-std=c++17"], arch: "sm_80")
        } catch {
            Issue.record("the compiled layout differs from Swift's: \(error)")
        }
    }
}
