import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Counters of what the cache did, for tests and `intfa` diagnostics.
public struct KernelCacheStatistics: Sendable, Equatable {
    /// Requests answered from memory.
    public var memoryHits = 0
    /// Requests answered from a valid disk entry.
    public var diskHits = 0
    /// Requests that ran the compiler.
    public var compilations = 0
    /// Disk entries found corrupt or truncated, then rebuilt and overwritten.
    public var corruptEntriesReplaced = 0
    /// Disk writes that failed (the kernel was still returned).
    public var diskWriteFailures = 0

    /// Statistics with every counter at zero.
    public init() {}
}

/// Compiled kernels, in memory and on disk, compiled at most once per key.
///
/// Concurrent requests for the same key wait for the one compilation in flight rather
/// than compiling again; different keys compile in parallel. Failed compilations are not
/// remembered, so a fixed source or environment is retried.
public final class KernelCache: Sendable {
    /// The compiler used on a miss.
    public let compiler: any KernelCompiling
    /// The disk cache folder, nil when the disk cache is off.
    public let directory: String?

    /// One key's compilation: its own lock serialises the callers asking for that key.
    private final class Slot: @unchecked Sendable {
        // `@unchecked`: `kernel` is only read or written while `lock` is held.
        let lock = NSLock()
        var kernel: CompiledKernel?
    }

    private let slots = Locked<[KernelCacheKey: Slot]>([:])
    private let counters = Locked(KernelCacheStatistics())

    /// - Parameters:
    ///   - compiler: the compiler to use on a miss.
    ///   - directory: the disk cache folder; nil keeps the cache in memory only.
    public init(compiler: any KernelCompiling, directory: String?) {
        self.compiler = compiler
        self.directory = directory
    }

    /// A cache using NVRTC and the default disk folder (see ``defaultDirectory(environment:homeDirectory:)``).
    public convenience init() throws(CUDAError) {
        let info = ProcessInfo.processInfo
        try self.init(
            compiler: NVRTCCompiler(),
            directory: Self.defaultDirectory(environment: info.environment, homeDirectory: NSHomeDirectory()))
    }

    /// The disk cache folder: `$INTFA_CACHE_DIR` if set (`off`, `0` or empty disables the
    /// disk cache), else `$XDG_CACHE_HOME/intfa`, else `~/.cache/intfa`.
    public static func defaultDirectory(environment: [String: String], homeDirectory: String?) -> String? {
        if let override = environment["INTFA_CACHE_DIR"] {
            return ["", "off", "0", "none"].contains(override.lowercased()) ? nil : override
        }
        if let xdg = environment["XDG_CACHE_HOME"], !xdg.isEmpty {
            return xdg + "/intfa"
        }
        guard let home = homeDirectory, !home.isEmpty else { return nil }
        return home + "/.cache/intfa"
    }

    /// What the cache has done so far.
    public var statistics: KernelCacheStatistics {
        counters.withLock { $0 }
    }

    /// The key `request` is cached under.
    public func key(for request: CompilationRequest) -> KernelCacheKey {
        KernelCacheKey(request: request, compilerIdentity: compiler.cacheIdentity)
    }

    /// The compiled kernel for `request`: from memory, else from disk, else compiled
    /// (and then stored in both).
    public func kernel(for request: CompilationRequest) throws(CUDAError) -> CompiledKernel {
        let key = key(for: request)
        let slot = slots.withLock { table in
            if let existing = table[key] { return existing }
            let created = Slot()
            table[key] = created
            return created
        }

        slot.lock.lock()
        defer { slot.lock.unlock() }
        if let kernel = slot.kernel {
            counters.withLock { $0.memoryHits += 1 }
            return kernel
        }

        var foundCorrupt = false
        if let path = entryPath(for: key) {
            switch readEntry(at: path, key: key) {
            case let .some(.success(kernel)):
                counters.withLock { $0.diskHits += 1 }
                slot.kernel = kernel
                return kernel
            case .some(.failure):
                foundCorrupt = true
            case .none:
                break
            }
        }

        counters.withLock { $0.compilations += 1 }
        let kernel = try compiler.compile(request)
        slot.kernel = kernel
        if let path = entryPath(for: key) {
            let written = writeEntry(kernel, key: key, to: path)
            counters.withLock { stats in
                if foundCorrupt && written { stats.corruptEntriesReplaced += 1 }
                if !written { stats.diskWriteFailures += 1 }
            }
        }
        return kernel
    }

    /// The disk entry's path for `key`, nil when the disk cache is off.
    public func entryPath(for key: KernelCacheKey) -> String? {
        directory.map { $0 + "/" + key.fileName }
    }

    /// nil when there is no entry; a failure when there is one that cannot be used.
    private func readEntry(at path: String, key: KernelCacheKey) -> Result<CompiledKernel, DiskCacheEntry.Corrupt>? {
        guard let data = FileManager.default.contents(atPath: path) else { return nil }
        do throws(DiskCacheEntry.Corrupt) {
            return .success(try DiskCacheEntry.decode(Array(data), key: key))
        } catch {
            return .failure(error)
        }
    }

    /// Writes to a temporary file in the same folder and renames it over the entry, so a
    /// reader never sees a half-written entry and a crash leaves at most a stray temp file.
    private func writeEntry(_ kernel: CompiledKernel, key: KernelCacheKey, to path: String) -> Bool {
        guard let directory else { return false }
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            let bytes = try DiskCacheEntry.encode(kernel, key: key)
            let temporary = directory + "/.\(key.fileName).\(getpid()).\(UInt32.random(in: 0...UInt32.max)).tmp"
            try Data(bytes).write(to: URL(fileURLWithPath: temporary))
            guard rename(temporary, path) == 0 else {
                try? FileManager.default.removeItem(atPath: temporary)
                return false
            }
            return true
        } catch {
            return false
        }
    }
}
