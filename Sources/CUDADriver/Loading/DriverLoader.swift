/// The CUDA driver library, loaded and initialised (`cuInit`) once per process.
enum DriverLoader {
    /// The driver's names through the loader path: the driver is installed system-wide
    /// with the kernel module, never shipped beside an application.
    static let candidates: [LibraryCandidate] = [.loaderName("libcuda.so.1"), .loaderName("libcuda.so")]

    /// The outcome of loading: the API with `cuInit` done, or the error to rethrow.
    struct Loaded: Sendable {
        let api: DriverAPI?
        let report: LibrarySearchReport
        let failure: CUDAError?
    }

    /// Loaded on first use; `static let` initialisation is thread-safe and runs once.
    static let shared: Loaded = load(candidates: candidates)

    /// Searches `candidates` for the driver and runs `cuInit(0)`. Exposed for tests.
    static func load(candidates: [LibraryCandidate]) -> Loaded {
        let (api, report) = LibrarySearch.load(
            candidates: candidates, fileNames: ["libcuda.so.1", "libcuda.so"],
            resolve: { library throws(MissingSymbol) in try DriverAPI(resolving: library) })
        guard let api else {
            let failure = CUDAError(
                library: .loader, kind: .driverNotFound, call: "dlopen(libcuda)",
                message: "CUDA driver not found (no NVIDIA driver installed?); looked in:\n" + report.summary)
            return Loaded(api: nil, report: report, failure: failure)
        }
        let initResult = api.initialize(0)
        if initResult != 0 {
            return Loaded(api: api, report: report, failure: api.error(initResult, "cuInit"))
        }
        return Loaded(api: api, report: report, failure: nil)
    }

    /// The initialised driver, or the typed error saying why it cannot be used.
    static func require(_ loaded: Loaded = shared) throws(CUDAError) -> DriverAPI {
        if let failure = loaded.failure { throw failure }
        guard let api = loaded.api else {
            throw CUDAError(library: .loader, kind: .driverNotFound, call: "dlopen(libcuda)", message: "CUDA driver not found")
        }
        return api
    }
}
