import Foundation
import Testing
@testable import CUDADriver

@Suite struct LibrarySearchTests {
    @Test func bogusOverrideFileIsNamedInTheError() throws {
        let bogus = "/nonexistent/intfa-test/libnvrtc.so.13"
        let context = LibrarySearchContext(environment: ["INTFA_NVRTC": bogus], currentDirectory: "/")
        let error = #expect(throws: CUDAError.self) { try NVRTCCompiler(searching: context) }
        #expect(error?.kind == .nvrtcNotFound)
        #expect(error?.library == .loader)
        #expect(error?.message.contains(bogus) == true)
        #expect(error?.message.contains("no such file") == true)
        #expect(error?.message.contains("INTFA_NVRTC") == true)
    }

    @Test func overrideIsTheOnlyPlaceTried() {
        let context = LibrarySearchContext(
            environment: ["INTFA_NVRTC": "/nonexistent/lib", "CUDA_HOME": "/also/not/here"], currentDirectory: "/")
        let (api, report) = NVRTCLoader.load(in: context)
        #expect(api == nil)
        #expect(report.attempts.count == 1)
        #expect(report.loadedFrom == nil)
    }

    @Test func overrideFolderWithoutTheLibrarySaysSo() throws {
        let folder = try makeTemporaryDirectory("empty-nvrtc")
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let context = LibrarySearchContext(environment: ["INTFA_NVRTC": folder], currentDirectory: "/")
        let (api, report) = NVRTCLoader.load(in: context)
        #expect(api == nil)
        let attempt = try #require(report.attempts.first)
        #expect(attempt.place.contains(folder))
        guard case let .notFound(why) = attempt.outcome else {
            Issue.record("expected not found, got \(attempt.outcome)")
            return
        }
        #expect(why.contains("libnvrtc.so.13"))
    }

    @Test func unloadableFileReportsTheDlopenError() throws {
        let folder = try makeTemporaryDirectory("fake-nvrtc")
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let fake = folder + "/libnvrtc.so.13"
        try Data("not an ELF file".utf8).write(to: URL(fileURLWithPath: fake))
        let context = LibrarySearchContext(environment: ["INTFA_NVRTC": fake], currentDirectory: "/")
        let (_, report) = NVRTCLoader.load(in: context)
        guard case .loadFailed = report.attempts.first?.outcome else {
            Issue.record("expected a dlopen failure, got \(report.attempts)")
            return
        }
    }

    @Test func defaultSearchRecordsEveryPlaceInOrder() throws {
        let home = try makeTemporaryDirectory("home")
        defer { try? FileManager.default.removeItem(atPath: home) }
        let context = LibrarySearchContext(
            environment: ["CUDA_HOME": "/intfa-test/cuda-home", "CUDA_PATH": "/intfa-test/cuda-path"],
            currentDirectory: home, executablePath: home + "/bin/intfa", homeDirectory: home)
        let candidates = NVRTCCandidates.candidates(in: context)
        #expect(candidates.first == .folder(path: "/intfa-test/cuda-home/lib64", origin: "$CUDA_HOME"))
        #expect(candidates.dropFirst().first == .folder(path: "/intfa-test/cuda-path/lib64", origin: "$CUDA_PATH"))
        #expect(candidates.contains(.folder(path: "/usr/local/cuda/lib64", origin: "CUDA toolkit")))
        #expect(candidates.contains(.folder(path: "/usr/lib/x86_64-linux-gnu", origin: "system")))
        #expect(candidates.suffix(3) == NVRTCCandidates.fileNames.map { .loaderName($0) })

        let (_, report) = NVRTCLoader.load(in: context)
        let first = try #require(report.attempts.first)
        #expect(first.place == "$CUDA_HOME: /intfa-test/cuda-home/lib64")
        #expect(first.outcome == .notFound("no such folder"))
        #expect(report.summary.contains("/usr/local/cuda/lib64"))
    }

    @Test func toolsFolderUnderTheWorkingDirectoryIsFound() throws {
        let root = try makeTemporaryDirectory("tools")
        defer { try? FileManager.default.removeItem(atPath: root) }
        let lib = root + "/.tools/nvrtc/nvidia/cu13/lib"
        try FileManager.default.createDirectory(atPath: lib, withIntermediateDirectories: true)
        let context = LibrarySearchContext(environment: [:], currentDirectory: root, homeDirectory: root)
        #expect(NVRTCCandidates.candidates(in: context).contains(.folder(path: lib, origin: ".tools/nvrtc")))
    }

    @Test func globExpansionMatchesPrefixes() throws {
        let root = try makeTemporaryDirectory("glob")
        defer { try? FileManager.default.removeItem(atPath: root) }
        for version in ["python3.11", "python3.12", "ruby"] {
            try FileManager.default.createDirectory(
                atPath: root + "/lib/\(version)/site-packages", withIntermediateDirectories: true)
        }
        let matches = LibrarySearch.expand(root + "/lib/python3*/site-packages")
        #expect(matches == [root + "/lib/python3.12/site-packages", root + "/lib/python3.11/site-packages"])
    }
}

@Suite struct DriverLoadingTests {
    @Test func missingDriverGivesTypedError() {
        let loaded = DriverLoader.load(candidates: [.loaderName("libcuda-intfa-test-missing.so.1")])
        #expect(loaded.api == nil)
        let error = #expect(throws: CUDAError.self) { try DriverLoader.require(loaded) }
        #expect(error?.kind == .driverNotFound)
        #expect(error?.message.contains("libcuda-intfa-test-missing.so.1") == true)
    }

    /// Passes on a GPU-less machine (typed error) and on a GPU machine (a device count).
    @Test func deviceCountWorksOrSaysWhy() {
        do throws(CUDAError) {
            let count = try CUDADevice.count()
            #expect(count >= 0)
        } catch {
            #expect([.driverNotFound, .noDevice].contains(error.kind), "\(error)")
        }
    }

    @Test func contextCreationWithoutDriverIsTyped() {
        do throws(CUDAError) {
            let context = try CUDAContext(device: 0)
            #expect(context.properties.multiprocessorCount > 0)
        } catch {
            #expect([.driverNotFound, .noDevice].contains(error.kind), "\(error)")
        }
    }

    @Test func probeNeverThrowsAndExplains() {
        let environment = CUDAEnvironment.probe()
        #expect(environment.summary.contains("Where libcuda was looked for"))
        #expect(!environment.driver.search.attempts.isEmpty)
        if environment.driver.version == nil {
            #expect(environment.driver.error != nil)
        }
    }

    @Test func outOfMemoryIsQueryable() {
        let error = CUDAError(
            library: .driver, kind: .callFailed, call: "cuMemAlloc_v2", code: 2,
            name: "CUDA_ERROR_OUT_OF_MEMORY", message: "out of memory")
        #expect(error.isOutOfMemory)
        #expect(error.description.contains("cuMemAlloc_v2"))
        #expect(!CUDAError.invalidArgument("x", "y").isOutOfMemory)
    }
}
