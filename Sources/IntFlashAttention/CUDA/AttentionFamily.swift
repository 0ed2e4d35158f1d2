import CUDADriver
import Foundation

/// A kernel family: attention kernels that share a structure (Hopper's warpgroup MMAs,
/// Ampere's `mma.sync`, …). A family says what it can run, lists its compiled variants, and
/// launches one call. It lives in one folder (`Families/<Name>/`: its Swift and its `.cu`);
/// ``AttentionFamilies`` lists it, and the engine, `intfa compile`, `intfa check` and
/// `INTFA_KERNEL` find it there.
public protocol AttentionFamily: Sendable {
    /// The family's name.
    var name: AttentionKernelFamily { get }
    /// Throws what keeps the family from running `method` at `headDim` on `arch` (the
    /// device's feature architecture, `sm_90a` on compute capability 9.0), if anything does.
    func validate(method: AttentionMethod, headDim: Int, arch: String) throws(AttentionError)
    /// The head dims the family runs `method` at, on the architectures where it runs at all.
    func headDims(for method: AttentionMethod) -> [Int]
    /// Every variant the family can launch on `arch`: the compile report's and the
    /// compile tests' list.
    func allVariants(arch: String) -> [any KernelVariant]
    /// Launches one call on its stream (``CUDAAttention/launch(_:grid:block:params:on:)``).
    /// The inputs are already in the method's quantized form; the engine writes the NaN rows
    /// of the non-finite contract after it.
    func launch(_ call: AttentionLaunch, on engine: CUDAAttention) throws(AttentionError)
    /// Whether the family's kernel quantizes Q itself from `query` (fp16/bf16 values) for
    /// `method` on `problem`, so that the quantization pipeline leaves Q alone. False by
    /// default.
    func quantizesQueries(_ method: AttentionMethod, problem: AttentionProblem, from query: DeviceTensor, engine: CUDAAttention) -> Bool
}

extension AttentionFamily {
    public func quantizesQueries(
        _ method: AttentionMethod, problem: AttentionProblem, from query: DeviceTensor, engine: CUDAAttention
    ) -> Bool { false }

    /// Whether the family runs `method` at `headDim` on `arch`.
    public func runs(_ method: AttentionMethod, headDim: Int, arch: String) -> Bool {
        (try? validate(method: method, headDim: headDim, arch: arch)) != nil
    }
}

/// One attention launch as a family receives it.
public struct AttentionLaunch: @unchecked Sendable {
    /// The scheme the inputs are quantized with.
    public var method: AttentionMethod
    public var problem: AttentionProblem
    /// The parameter block: inputs, output, extents and strides filled in.
    public var params: AttentionParams
    /// Element type of the output.
    public var output: KernelFloatType
    /// Whether `params.lse` receives the log-sum-exp.
    public var writesLogSumExp: Bool { params.lse != 0 }
    /// The caller's hints (``AttentionOptions``).
    public var options: AttentionOptions
    /// The stream the call's kernels are queued on.
    public var stream: CUDAStream
    /// Q's element type when `params.q` holds Q's fp16/bf16 values for the kernel to quantize
    /// (``AttentionFamily/quantizesQueries(_:problem:from:engine:)``), nil when it holds codes.
    public var queryInput: ElementType?
}

/// A family's name: what `INTFA_KERNEL`, ``CUDAAttention/kernelFamily`` and `intfa check`
/// call it (lower case).
public struct AttentionKernelFamily: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue.lowercased() }
    public var description: String { rawValue }

    /// Hopper warpgroup MMAs with TMA and warp specialization (`Families/Hopper`): the
    /// default `int8` scheme on compute capability 9.0.
    public static let wgmma = AttentionKernelFamily(rawValue: "wgmma")
    /// Warp-level `mma.sync` (`Families/MMA`): every method, sm_80 and newer.
    public static let mma = AttentionKernelFamily(rawValue: "mma")

    /// The environment variable that forces a family when the caller does not choose one.
    public static let environmentVariable = "INTFA_KERNEL"

    /// The family forced by `INTFA_KERNEL`, nil when unset; throws for a name no family has.
    public static func fromEnvironment(_ environment: [String: String]) throws(AttentionError) -> AttentionKernelFamily? {
        guard let value = environment[environmentVariable], !value.isEmpty else { return nil }
        let family = AttentionKernelFamily(rawValue: value)
        guard AttentionFamilies.named(family) != nil else {
            let names = AttentionFamilies.all.map(\.name.rawValue).joined(separator: ", ")
            throw .gpu("\(environmentVariable)=\(value) is not a kernel family (\(names))")
        }
        return family
    }

    /// The name of the family that runs `method` at `headDim` on `arch`
    /// (``AttentionFamilies/select(method:headDim:arch:requested:)``).
    public static func select(
        method: AttentionMethod, headDim: Int, arch: String, requested: AttentionKernelFamily?
    ) throws(AttentionError) -> AttentionKernelFamily {
        try AttentionFamilies.select(method: method, headDim: headDim, arch: arch, requested: requested).name
    }
}

/// The kernel families, in one list.
public enum AttentionFamilies {
    /// The library's families in order of preference: a call that names none runs on the first
    /// that can run it. A new family is one folder under `Families/` and one line here.
    static let builtIn: [any AttentionFamily] = [
        HopperFamily(),
        MMAFamily(),
    ]

    /// Families added at run time (a test's, a plug-in's): run only when named.
    private static let added = AddedFamilies()

    /// The built-in families, then those added with ``register(_:)``.
    public static var all: [any AttentionFamily] { builtIn + added.families }

    /// Adds a family, which calls, `intfa compile` and `intfa check` then reach by its name.
    /// Throws when a family of that name exists.
    public static func register(_ family: any AttentionFamily) throws(AttentionError) {
        guard added.insert(family, unlessNamedAs: builtIn) else {
            throw .gpu("a kernel family named \(family.name) is already registered")
        }
    }

    /// The family called `name`.
    public static func named(_ name: AttentionKernelFamily) -> (any AttentionFamily)? {
        all.first { $0.name == name }
    }

    /// Which family runs `method` at `headDim` on `arch` (the device's feature architecture):
    /// `requested` when given (its error when it cannot run the problem), else the first
    /// built-in family that can (the last one's error when none can: the most general
    /// family's reason is the one a caller can act on).
    public static func select(
        method: AttentionMethod, headDim: Int, arch: String, requested: AttentionKernelFamily?
    ) throws(AttentionError) -> any AttentionFamily {
        let candidates: [any AttentionFamily]
        if let requested {
            guard let family = named(requested) else { throw .gpu("no kernel family is named \(requested)") }
            candidates = [family]
        } else {
            candidates = builtIn
        }
        var lastError = AttentionError.gpu("no kernel family is registered")
        for family in candidates {
            do throws(AttentionError) {
                try family.validate(method: method, headDim: headDim, arch: arch)
                return family
            } catch {
                lastError = error
            }
        }
        throw lastError
    }

    /// The families that run `method` on `arch`, each with the head dims it runs it at there.
    public static func coverage(of method: AttentionMethod, arch: String) -> [(family: any AttentionFamily, headDims: [Int])] {
        all.compactMap { family in
            let dims = family.headDims(for: method).filter { family.runs(method, headDim: $0, arch: arch) }
            return dims.isEmpty ? nil : (family, dims)
        }
    }
}

/// The run-time additions to the registry, behind a lock.
private final class AddedFamilies: @unchecked Sendable {
    private let lock = NSLock()
    private var list: [any AttentionFamily] = []

    var families: [any AttentionFamily] { lock.withLock { list } }

    func insert(_ family: any AttentionFamily, unlessNamedAs builtIn: [any AttentionFamily]) -> Bool {
        lock.withLock {
            guard !(builtIn + list).contains(where: { $0.name == family.name }) else { return false }
            list.append(family)
            return true
        }
    }
}
