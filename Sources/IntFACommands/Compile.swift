import ArgumentParser
import CUDADriver
import Dispatch
import Foundation
import IntFlashAttention

/// `intfa compile`: build every kernel variant with NVRTC and report its resources.
struct Compile: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Compile every kernel variant with NVRTC and report registers, spills and shared memory.",
        discussion: """
            Needs NVRTC but no GPU. The wgmma (Hopper) kernels are listed for sm_90a. Exits \
            with status 1 when a variant fails to compile, spills registers to local memory, or \
            has its wgmma instructions serialized by ptxas (warnings C7510-C7515).
            """
    )

    @Option(help: "Target architectures, e.g. sm_80,sm_86,sm_89,sm_90.")
    var arch = CommaSeparated(["sm_80", "sm_90", "sm_90a"])

    @Flag(name: .customLong("no-cache"), help: "Compile everything afresh, ignoring the on-disk kernel cache.")
    var noCache = false

    @Flag(help: "Print JSON records instead of a table.")
    var json = false

    func validate() throws {
        for name in arch.values where !Self.isArchitecture(name) {
            throw ValidationError("--arch: '\(name)' is not a GPU architecture like sm_80 or sm_90")
        }
    }

    /// `sm_` followed by digits and an optional `a` or `f` feature suffix.
    static func isArchitecture(_ name: String) -> Bool {
        guard name.hasPrefix("sm_") else { return false }
        var digits = name.dropFirst(3)
        if let last = digits.last, "af".contains(last) { digits = digits.dropLast() }
        return !digits.isEmpty && digits.allSatisfy { $0.isASCII && $0.isNumber }
    }

    func run() throws {
        let records = try reportingErrors { try compileAll() }
        if json {
            try printJSON(records)
        } else {
            var table = TextTable(["kernel", "arch", "registers", "spill bytes", "shared bytes", "wgmma serialized"])
            for r in records {
                table.append([r.kernel, r.arch, "\(r.registers)", "\(r.spillBytes)", "\(r.sharedBytes)", "\(r.wgmmaSerializationWarnings)"])
            }
            print(table.rendered)
        }
        let faulty = records.filter { $0.spillBytes > 0 || $0.wgmmaSerializationWarnings > 0 }
        if !faulty.isEmpty {
            throw ValidationFailure(message: "\(faulty.count) variant(s) spill or serialize wgmma: "
                + faulty.map(\.kernel).joined(separator: ", "))
        }
    }

    private func compileAll() throws(AttentionError) -> [CompileRecord] {
        let cache = try cuda { () throws(CUDAError) in
            noCache ? KernelCache(compiler: try NVRTCCompiler(), directory: nil) : try KernelCache()
        }
        let variants = arch.values.flatMap(KernelRegistry.allVariants(arch:))
        let results = CompileResults(count: variants.count)
        let progress = ProgressLine(enabled: !json)
        DispatchQueue.concurrentPerform(iterations: variants.count) { index in
            let variant = variants[index]
            do throws(AttentionError) {
                results.store(index, .success(try Self.compile(variant, cache: cache)))
            } catch {
                results.store(index, .failure(error))
            }
            progress.update("compile: \(results.completed)/\(variants.count) \(variant.kernelName)")
        }
        progress.finish()
        return try results.values()
    }

    private static func compile(_ variant: any KernelVariant, cache: KernelCache) throws(AttentionError) -> CompileRecord {
        let request = try variant.compilationRequest()
        let kernel = try cuda { () throws(CUDAError) in try cache.kernel(for: request) }
        guard let usage = kernel.report[variant.kernelName] else {
            throw .gpu("ptxas reported nothing for \(variant.kernelName) (\(variant.arch))")
        }
        return CompileRecord(variant: variant, usage: usage, log: kernel.log)
    }
}

/// Results written from concurrent compile jobs, one slot each.
private final class CompileResults: @unchecked Sendable {
    // Guarded by `lock`; each slot is written once.
    private var slots: [Result<CompileRecord, AttentionError>?]
    private let lock = NSLock()

    init(count: Int) { slots = Array(repeating: nil, count: count) }

    func store(_ index: Int, _ result: Result<CompileRecord, AttentionError>) {
        lock.withLock { slots[index] = result }
    }

    var completed: Int { lock.withLock { slots.count { $0 != nil } } }

    func values() throws(AttentionError) -> [CompileRecord] {
        try lock.withLock { slots }.map { (slot) throws(AttentionError) in
            guard let slot else { throw AttentionError.gpu("a compile job did not finish") }
            return try slot.get()
        }
    }
}

/// One row of `intfa compile --json`.
struct CompileRecord: Codable, Sendable {
    var kernel: String
    var arch: String
    var headDim: Int?
    var causal: Bool?
    var registers: Int
    var spillBytes: Int
    var sharedBytes: Int
    /// ptxas warnings that it serialized wgmma instructions (C7510-C7515): each costs the
    /// overlap of tensor-core work with everything else.
    var wgmmaSerializationWarnings: Int

    enum CodingKeys: String, CodingKey {
        case kernel, arch, causal, registers
        case headDim = "head_dim", spillBytes = "spill_bytes", sharedBytes = "shared_bytes"
        case wgmmaSerializationWarnings = "wgmma_serialization_warnings"
    }

    init(variant: any KernelVariant, usage: KernelResourceUsage, log: String) {
        kernel = variant.kernelName
        arch = variant.arch
        let attention = variant as? MMAKernelDescriptor
        let hopper = variant as? HopperKernelDescriptor
        headDim = attention?.headDim ?? hopper?.headDim
        causal = attention?.causal ?? hopper?.causal
        wgmmaSerializationWarnings = PtxasReport.wgmmaSerializationWarnings(in: log)
        registers = usage.registers
        spillBytes = usage.spillStoreBytes + usage.spillLoadBytes
        sharedBytes = usage.sharedMemoryBytes + variant.sharedMemoryBytes
    }
}
