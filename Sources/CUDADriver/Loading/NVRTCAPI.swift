import Foundation

/// NVRTC's C entry points, resolved once with `dlsym`.
///
/// `@unchecked Sendable`: C function pointers into a library that is never unloaded are
/// immutable addresses, and NVRTC's functions are thread-safe on distinct programs.
struct NVRTCAPI: @unchecked Sendable {
    typealias Program = OpaquePointer
    typealias CStringArray = UnsafePointer<UnsafePointer<CChar>?>

    let version: @convention(c) (UnsafeMutablePointer<Int32>?, UnsafeMutablePointer<Int32>?) -> Int32
    let getNumSupportedArchs: @convention(c) (UnsafeMutablePointer<Int32>?) -> Int32
    let getSupportedArchs: @convention(c) (UnsafeMutablePointer<Int32>?) -> Int32
    let createProgram: @convention(c) (
        UnsafeMutablePointer<Program?>?, UnsafePointer<CChar>?, UnsafePointer<CChar>?,
        Int32, CStringArray?, CStringArray?
    ) -> Int32
    let destroyProgram: @convention(c) (UnsafeMutablePointer<Program?>?) -> Int32
    let compileProgram: @convention(c) (Program?, Int32, CStringArray?) -> Int32
    let getProgramLogSize: @convention(c) (Program?, UnsafeMutablePointer<Int>?) -> Int32
    let getProgramLog: @convention(c) (Program?, UnsafeMutablePointer<CChar>?) -> Int32
    let getCUBINSize: @convention(c) (Program?, UnsafeMutablePointer<Int>?) -> Int32
    let getCUBIN: @convention(c) (Program?, UnsafeMutablePointer<CChar>?) -> Int32
    let getPTXSize: @convention(c) (Program?, UnsafeMutablePointer<Int>?) -> Int32
    let getPTX: @convention(c) (Program?, UnsafeMutablePointer<CChar>?) -> Int32
    let addNameExpression: @convention(c) (Program?, UnsafePointer<CChar>?) -> Int32
    let getLoweredName: @convention(c) (
        Program?, UnsafePointer<CChar>?, UnsafeMutablePointer<UnsafePointer<CChar>?>?
    ) -> Int32
    let getErrorString: @convention(c) (Int32) -> UnsafePointer<CChar>?

    init(resolving library: DynamicLibrary) throws(MissingSymbol) {
        version = try library.require("nvrtcVersion")
        getNumSupportedArchs = try library.require("nvrtcGetNumSupportedArchs")
        getSupportedArchs = try library.require("nvrtcGetSupportedArchs")
        createProgram = try library.require("nvrtcCreateProgram")
        destroyProgram = try library.require("nvrtcDestroyProgram")
        compileProgram = try library.require("nvrtcCompileProgram")
        getProgramLogSize = try library.require("nvrtcGetProgramLogSize")
        getProgramLog = try library.require("nvrtcGetProgramLog")
        getCUBINSize = try library.require("nvrtcGetCUBINSize")
        getCUBIN = try library.require("nvrtcGetCUBIN")
        getPTXSize = try library.require("nvrtcGetPTXSize")
        getPTX = try library.require("nvrtcGetPTX")
        addNameExpression = try library.require("nvrtcAddNameExpression")
        getLoweredName = try library.require("nvrtcGetLoweredName")
        getErrorString = try library.require("nvrtcGetErrorString")
    }

    /// `nvrtcGetErrorString` for `code`.
    func errorName(_ code: Int32) -> String {
        guard let text = getErrorString(code) else { return "NVRTC error \(code)" }
        return String(cString: text)
    }

    /// Throws a ``CUDAError`` naming `call` unless `result` is `NVRTC_SUCCESS`.
    func check(_ result: Int32, _ call: String, log: String? = nil) throws(CUDAError) {
        guard result != 0 else { return }
        let name = errorName(result)
        throw CUDAError(
            library: .nvrtc, kind: result == 6 ? .compilationFailed : .callFailed,
            call: call, code: result, name: name, message: name, log: log)
    }
}

/// NVRTC loaded from the search list, once per process (or per injected context).
enum NVRTCLoader {
    /// The process-wide NVRTC: searched for on first use, thread-safe (`static let`
    /// initialisation runs exactly once).
    static let shared: (api: NVRTCAPI?, report: LibrarySearchReport) = load(in: .current())

    /// Searches `context`'s places for NVRTC. Exposed for tests and diagnostics, which
    /// inject their own environment instead of mutating the process's.
    static func load(in context: LibrarySearchContext) -> (api: NVRTCAPI?, report: LibrarySearchReport) {
        LibrarySearch.load(
            candidates: NVRTCCandidates.candidates(in: context),
            fileNames: NVRTCCandidates.fileNames,
            preload: preloadBuiltins(in:),
            resolve: { library throws(MissingSymbol) in try NVRTCAPI(resolving: library) })
    }

    /// The loaded NVRTC or the typed "not found" error carrying the search report.
    static func require(_ loaded: (api: NVRTCAPI?, report: LibrarySearchReport) = shared) throws(CUDAError) -> NVRTCAPI {
        if let api = loaded.api { return api }
        throw CUDAError(
            library: .loader, kind: .nvrtcNotFound, call: "dlopen(libnvrtc)",
            message: "NVRTC not found (set \(NVRTCCandidates.overrideVariable) to its file or folder); looked in:\n"
                + loaded.report.summary)
    }

    /// libnvrtc `dlopen`s `libnvrtc-builtins.so.<version>` by bare name, which fails when
    /// its folder is not on the loader path (the pip package). Loading the builtins
    /// library from the same folder first, globally, lets that later lookup find it.
    private static func preloadBuiltins(in folder: String) {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: folder) else { return }
        for name in names where name.hasPrefix("libnvrtc-builtins.so.") && !name.contains(".alt.") {
            // A failure here is not fatal: the loader path may still find the library.
            _ = DynamicLibrary.open(folder + "/" + name, global: true)
        }
    }
}
