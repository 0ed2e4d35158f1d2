/// Compiles CUDA C++ to cubins with NVRTC; needs no GPU and no CUDA headers on disk.
///
/// ```swift
/// let compiler = try NVRTCCompiler()
/// let kernel = try compiler.compile(CompilationRequest(
///     source: source, name: "attention.cu", headers: ["common.cuh": common],
///     options: ["-DHEAD_DIM=128"], architecture: "sm_90a"))
/// let registers = kernel.report["attention_kernel"]?.registers
/// ```
public struct NVRTCCompiler: Sendable {
    let api: NVRTCAPI
    /// Where the library was loaded from.
    public let libraryPath: String

    /// Uses the process-wide NVRTC (found once through the search list).
    public init() throws(CUDAError) {
        let loaded = NVRTCLoader.shared
        api = try NVRTCLoader.require(loaded)
        libraryPath = loaded.report.loadedFrom ?? "?"
    }

    /// Loads NVRTC from the places `context` names (tests and diagnostics).
    public init(searching context: LibrarySearchContext) throws(CUDAError) {
        let loaded = NVRTCLoader.load(in: context)
        api = try NVRTCLoader.require(loaded)
        libraryPath = loaded.report.loadedFrom ?? "?"
    }

    /// NVRTC's version, e.g. (13, 0).
    public var version: (major: Int, minor: Int) {
        var major: Int32 = 0
        var minor: Int32 = 0
        _ = api.version(&major, &minor)
        return (Int(major), Int(minor))
    }

    /// The `sm_XX` targets this NVRTC can compile for, oldest first.
    public var supportedArchitectures: [String] {
        var count: Int32 = 0
        guard api.getNumSupportedArchs(&count) == 0, count > 0 else { return [] }
        var numbers = [Int32](repeating: 0, count: Int(count))
        guard api.getSupportedArchs(&numbers) == 0 else { return [] }
        return numbers.map { "sm_\($0)" }
    }

    /// The options NVRTC actually receives: the target, the ptxas report request, then
    /// the caller's options.
    static func effectiveOptions(for request: CompilationRequest) -> [String] {
        var options = ["-arch=\(request.architecture)"]
        let wantsReport = request.options.contains { $0 == "--ptxas-options=-v" || $0 == "-Xptxas=-v" }
        if !wantsReport { options.append("--ptxas-options=-v") }
        return options + request.options
    }

    /// Compiles `request` to a cubin, with its log and ptxas report.
    ///
    /// Throws a `.compilationFailed` ``CUDAError`` whose `log` holds the compiler's
    /// messages (`name(line): error: ...`) when the source does not compile.
    public func compile(_ request: CompilationRequest) throws(CUDAError) -> CompiledKernel {
        guard request.hasValidArchitecture else {
            throw CUDAError.invalidArgument(
                "nvrtcCompileProgram", "architecture \"\(request.architecture)\" is not of the form sm_XX (e.g. sm_80, sm_90a)")
        }
        let headerNames = request.headers.keys.sorted()
        let headerContents = headerNames.map { request.headers[$0] ?? "" }

        var program: NVRTCAPI.Program?
        let created = withCStringArray(headerContents) { contents in
            withCStringArray(headerNames) { names in
                api.createProgram(&program, request.source, request.name, Int32(headerNames.count), contents, names)
            }
        }
        try api.check(created, "nvrtcCreateProgram")
        defer { _ = api.destroyProgram(&program) }

        for expression in request.nameExpressions {
            try api.check(api.addNameExpression(program, expression), "nvrtcAddNameExpression")
        }

        let options = Self.effectiveOptions(for: request)
        let compiled = withCStringArray(options) { api.compileProgram(program, Int32(options.count), $0) }
        let log = programLog(program)
        if compiled != 0 {
            var error = CUDAError(
                library: .nvrtc, kind: compiled == 6 ? .compilationFailed : .callFailed,
                call: "nvrtcCompileProgram", code: compiled, name: api.errorName(compiled),
                message: "compiling \(request.name) for \(request.architecture) failed", log: log)
            if let firstError = log.split(whereSeparator: \.isNewline).first(where: { $0.contains("error") }) {
                error.message += ": " + firstError
            }
            throw error
        }

        var size = 0
        try api.check(api.getCUBINSize(program, &size), "nvrtcGetCUBINSize")
        var cubin = [UInt8](repeating: 0, count: size)
        let fetched = cubin.withUnsafeMutableBytes { bytes in
            api.getCUBIN(program, bytes.baseAddress?.assumingMemoryBound(to: CChar.self))
        }
        try api.check(fetched, "nvrtcGetCUBIN")

        var lowered: [String: String] = [:]
        for expression in request.nameExpressions {
            var name: UnsafePointer<CChar>?
            try api.check(api.getLoweredName(program, expression, &name), "nvrtcGetLoweredName")
            if let name { lowered[expression] = String(cString: name) }
        }

        return CompiledKernel(
            cubin: cubin, log: log, report: PtxasReport.parse(log: log),
            architecture: request.architecture, loweredNames: lowered)
    }

    /// Convenience form of ``compile(_:)``.
    public func compile(
        source: String, name: String = "kernel.cu", headers: [String: String] = [:],
        options: [String] = [], arch: String
    ) throws(CUDAError) -> CompiledKernel {
        try compile(CompilationRequest(source: source, name: name, headers: headers, options: options, architecture: arch))
    }

    private func programLog(_ program: NVRTCAPI.Program?) -> String {
        var size = 0
        guard api.getProgramLogSize(program, &size) == 0, size > 1 else { return "" }
        var bytes = [CChar](repeating: 0, count: size)
        guard api.getProgramLog(program, &bytes) == 0 else { return "" }
        return String(decoding: bytes.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
