import Foundation

/// What this machine offers for the CUDA path, for `intfa info`: the driver and its
/// devices, NVRTC and its version, and for each library where it was looked for.
public struct CUDAEnvironment: Sendable {
    /// The driver: version, devices, or why it cannot be used.
    public struct Driver: Sendable {
        /// The CUDA version the driver supports, e.g. 13000; nil when unavailable.
        public var version: Int?
        /// Each device's properties.
        public var devices: [CUDADeviceProperties]
        /// Why the driver (or a device query) failed, if it did.
        public var error: CUDAError?
        /// Where libcuda was looked for.
        public var search: LibrarySearchReport
    }

    /// NVRTC: version, targets, or why it cannot be used.
    public struct Compiler: Sendable {
        /// The loaded library's path.
        public var path: String?
        /// NVRTC's version, e.g. (13, 0); nil when unavailable.
        public var version: (major: Int, minor: Int)?
        /// The `sm_XX` targets NVRTC can compile for, oldest first; empty when unavailable.
        public var supportedArchitectures: [String]
        /// Why NVRTC (or a query of it) failed, if it did.
        public var error: CUDAError?
        /// Where libnvrtc was looked for.
        public var search: LibrarySearchReport
    }

    /// The driver and its devices.
    public var driver: Driver
    /// The NVRTC run-time compiler.
    public var nvrtc: Compiler

    /// Loads (once) and queries both libraries; never throws, reporting failures instead.
    public static func probe() -> CUDAEnvironment {
        CUDAEnvironment(driver: probeDriver(), nvrtc: probeNVRTC())
    }

    private static func probeDriver() -> Driver {
        let loaded = DriverLoader.shared
        var driver = Driver(version: nil, devices: [], error: nil, search: loaded.report)
        do throws(CUDAError) {
            driver.version = try CUDADevice.driverVersion()
            for ordinal in 0..<(try CUDADevice.count()) {
                driver.devices.append(try CUDADeviceProperties.query(ordinal: ordinal))
            }
        } catch {
            driver.error = error
        }
        return driver
    }

    private static func probeNVRTC() -> Compiler {
        let loaded = NVRTCLoader.shared
        var compiler = Compiler(path: nil, version: nil, supportedArchitectures: [], error: nil, search: loaded.report)
        do throws(CUDAError) {
            let nvrtc = try NVRTCCompiler()
            compiler.path = nvrtc.libraryPath
            compiler.version = nvrtc.version
            compiler.supportedArchitectures = nvrtc.supportedArchitectures
        } catch {
            compiler.error = error
        }
        return compiler
    }

    /// A plain-text report, one fact per line, ending with where each library was looked for.
    public var summary: String {
        var lines: [String] = []
        if let version = driver.version {
            lines.append("CUDA driver: \(version / 1000).\(version % 1000 / 10) (\(driver.search.loadedFrom ?? "?"))")
        } else {
            lines.append("CUDA driver: not available")
        }
        for device in driver.devices {
            let gib = Double(device.totalMemory) / Double(1 << 30)
            lines.append("  device \(device.ordinal): \(device.name), compute \(device.computeCapability), "
                + "\(device.multiprocessorCount) SMs, \(String(format: "%.1f", gib)) GiB, "
                + "\(device.maxSharedMemoryPerBlockOptIn / 1024) KiB shared/block (opt-in)")
        }
        if let error = driver.error { lines.append("  \(error.message.split(separator: "\n").first ?? "")") }
        if let version = nvrtc.version {
            lines.append("NVRTC: \(version.major).\(version.minor) at \(nvrtc.path ?? "?")")
            lines.append("  targets: \(nvrtc.supportedArchitectures.joined(separator: " "))")
        } else {
            lines.append("NVRTC: not available")
        }
        lines.append("Where libcuda was looked for:")
        lines.append(driver.search.summary)
        lines.append("Where NVRTC was looked for:")
        lines.append(nvrtc.search.summary)
        return lines.joined(separator: "\n")
    }
}
