import Foundation

/// The inputs of a library search: environment, working directory, executable location
/// and home. Injected in tests so the search can be checked without touching the process.
public struct LibrarySearchContext: Sendable {
    /// Environment variables (`INTFA_NVRTC`, `CUDA_HOME`, `CUDA_PATH`, `VIRTUAL_ENV`, ...).
    public var environment: [String: String]
    /// The directory `.tools/nvrtc` is looked for in first.
    public var currentDirectory: String
    /// The running executable; its ancestors are searched for `.tools/nvrtc` too.
    public var executablePath: String?
    /// The home folder, for `~/.local` Python packages.
    public var homeDirectory: String?

    /// Creates a context from its fields.
    public init(
        environment: [String: String], currentDirectory: String,
        executablePath: String? = nil, homeDirectory: String? = nil
    ) {
        self.environment = environment
        self.currentDirectory = currentDirectory
        self.executablePath = executablePath
        self.homeDirectory = homeDirectory
    }

    /// The running process's own context.
    public static func current() -> LibrarySearchContext {
        let info = ProcessInfo.processInfo
        let executable = Bundle.main.executablePath ?? info.arguments.first
        return LibrarySearchContext(
            environment: info.environment,
            currentDirectory: FileManager.default.currentDirectoryPath,
            executablePath: executable,
            homeDirectory: info.environment["HOME"] ?? NSHomeDirectory()
        )
    }
}
