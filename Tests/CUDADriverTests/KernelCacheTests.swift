import Foundation
import Testing
@testable import CUDADriver

/// A stand-in compiler that counts calls and is slow enough for races to show.
final class CountingCompiler: KernelCompiling, @unchecked Sendable {
    // `@unchecked`: `count` is only touched under `lock`.
    private let lock = NSLock()
    private var count = 0
    let cacheIdentity = "counting-1"

    var compilations: Int {
        lock.lock()
        defer { lock.unlock() }
        return count
    }

    func compile(_ request: CompilationRequest) throws(CUDAError) -> CompiledKernel {
        lock.lock()
        count += 1
        lock.unlock()
        Thread.sleep(forTimeInterval: 0.05)
        var usage = KernelResourceUsage(name: "k", isEntry: true)
        usage.registers = 42
        let cubin = [0x7F, 0x45, 0x4C, 0x46] + Array(request.source.utf8) + Array(request.options.joined().utf8)
        return CompiledKernel(
            cubin: cubin, log: "log for \(request.name)", report: PtxasReport(functions: ["k": usage]),
            architecture: request.architecture)
    }
}

@Suite struct KernelCacheTests {
    let request = CompilationRequest(
        source: "extern \"C\" __global__ void k() {}", name: "k.cu", headers: ["a.cuh": "// a"],
        options: ["-DX=1", "-lineinfo"], architecture: "sm_90")

    @Test func secondRequestIsAMemoryHit() throws {
        let compiler = CountingCompiler()
        let cache = KernelCache(compiler: compiler, directory: nil)
        let first = try cache.kernel(for: request)
        let second = try cache.kernel(for: request)
        #expect(first == second)
        #expect(compiler.compilations == 1)
        #expect(cache.statistics.memoryHits == 1)
    }

    @Test func concurrentRequestsCompileOnce() throws {
        let compiler = CountingCompiler()
        let directory = try makeTemporaryDirectory("concurrent")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let cache = KernelCache(compiler: compiler, directory: directory)
        let request = self.request
        let failures = Locked(0)
        DispatchQueue.concurrentPerform(iterations: 8) { _ in
            do throws(CUDAError) {
                _ = try cache.kernel(for: request)
            } catch {
                failures.withLock { $0 += 1 }
            }
        }
        #expect(failures.withLock { $0 } == 0)
        #expect(compiler.compilations == 1)
        #expect(cache.statistics.memoryHits == 7)
    }

    @Test func diskEntryServesANewCache() throws {
        let directory = try makeTemporaryDirectory("disk")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let original = try KernelCache(compiler: CountingCompiler(), directory: directory).kernel(for: request)

        let compiler = CountingCompiler()
        let reopened = KernelCache(compiler: compiler, directory: directory)
        #expect(try reopened.kernel(for: request) == original)
        #expect(compiler.compilations == 0)
        #expect(reopened.statistics.diskHits == 1)
        // No temporary files are left behind by the atomic write.
        let names = try FileManager.default.contentsOfDirectory(atPath: directory)
        #expect(names == [reopened.key(for: request).fileName])
    }

    enum Damage: String, CaseIterable { case truncate, flipPayloadByte, flipHeaderByte, empty }

    @Test(arguments: Damage.allCases)
    func corruptEntryIsRebuilt(damage: Damage) throws {
        let directory = try makeTemporaryDirectory("corrupt")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let writer = KernelCache(compiler: CountingCompiler(), directory: directory)
        let original = try writer.kernel(for: request)
        let path = try #require(writer.entryPath(for: writer.key(for: request)))

        var bytes = [UInt8](try #require(FileManager.default.contents(atPath: path)))
        switch damage {
        case .truncate: bytes.removeLast(bytes.count / 3)
        case .flipPayloadByte: bytes[bytes.count - 2] ^= 0xFF
        case .flipHeaderByte: bytes[3] ^= 0x01
        case .empty: bytes = []
        }
        try Data(bytes).write(to: URL(fileURLWithPath: path))

        let compiler = CountingCompiler()
        let rebuilder = KernelCache(compiler: compiler, directory: directory)
        #expect(try rebuilder.kernel(for: request) == original)
        #expect(compiler.compilations == 1)
        #expect(rebuilder.statistics.corruptEntriesReplaced == 1)

        // The entry was overwritten with a good one.
        let checker = CountingCompiler()
        #expect(try KernelCache(compiler: checker, directory: directory).kernel(for: request) == original)
        #expect(checker.compilations == 0)
    }

    @Test func keyDependsOnEverythingThatShapesTheCubin() {
        let identity = "nvrtc-13.0"
        let base = KernelCacheKey(request: request, compilerIdentity: identity)
        var otherOptions = request
        otherOptions.options.append("--use_fast_math")
        var reordered = request
        reordered.options.reverse()
        var otherHeader = request
        otherHeader.headers["a.cuh"] = "// b"
        var otherArch = request
        otherArch.architecture = "sm_80"

        #expect(KernelCacheKey(request: otherOptions, compilerIdentity: identity) != base)
        #expect(KernelCacheKey(request: reordered, compilerIdentity: identity) == base)
        #expect(KernelCacheKey(request: otherHeader, compilerIdentity: identity) != base)
        #expect(KernelCacheKey(request: otherArch, compilerIdentity: identity) != base)
        #expect(KernelCacheKey(request: request, compilerIdentity: "nvrtc-13.1") != base)
        #expect(base.fileName.hasPrefix("sm_90-"))
    }

    @Test func differentOptionsCompileSeparately() throws {
        let compiler = CountingCompiler()
        let cache = KernelCache(compiler: compiler, directory: nil)
        var other = request
        other.options = ["-DX=2"]
        _ = try cache.kernel(for: request)
        _ = try cache.kernel(for: other)
        #expect(compiler.compilations == 2)
    }

    @Test func defaultDirectoryFollowsTheEnvironment() {
        #expect(KernelCache.defaultDirectory(environment: ["INTFA_CACHE_DIR": "/c"], homeDirectory: "/h") == "/c")
        #expect(KernelCache.defaultDirectory(environment: ["INTFA_CACHE_DIR": "off"], homeDirectory: "/h") == nil)
        #expect(KernelCache.defaultDirectory(environment: ["XDG_CACHE_HOME": "/x"], homeDirectory: "/h") == "/x/intfa")
        #expect(KernelCache.defaultDirectory(environment: [:], homeDirectory: "/h") == "/h/.cache/intfa")
    }
}
