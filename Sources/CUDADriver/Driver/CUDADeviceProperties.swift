/// A GPU's compute capability, e.g. 9.0 for H100/H200.
public struct ComputeCapability: Sendable, Hashable, Comparable, CustomStringConvertible {
    /// Major version, e.g. 9 for Hopper.
    public var major: Int
    /// Minor version, e.g. 0 for 9.0.
    public var minor: Int

    /// Creates a compute capability from its fields.
    public init(major: Int, minor: Int) {
        self.major = major
        self.minor = minor
    }

    /// The NVRTC architecture name, e.g. `sm_90` (without the `a` suffix of
    /// architecture-specific features; append it where a kernel needs them).
    public var architecture: String { "sm_\(major)\(minor)" }

    /// `9.0`, for logs.
    public var description: String { "\(major).\(minor)" }

    /// Orders by major, then minor version.
    public static func < (lhs: Self, rhs: Self) -> Bool {
        (lhs.major, lhs.minor) < (rhs.major, rhs.minor)
    }
}

/// What the driver says about one device; reading it needs no context.
public struct CUDADeviceProperties: Sendable, Equatable {
    /// The device ordinal (`--device N`).
    public var ordinal: Int
    /// The marketing name, e.g. `NVIDIA H200`.
    public var name: String
    /// The compute capability, e.g. 9.0.
    public var computeCapability: ComputeCapability
    /// Streaming multiprocessors.
    public var multiprocessorCount: Int
    /// Shared memory a block may use once it opts in (`cuFuncSetAttribute`).
    public var maxSharedMemoryPerBlockOptIn: Int
    /// Shared memory a block may use without opting in (usually 48 KiB).
    public var maxSharedMemoryPerBlock: Int
    /// Shared memory per streaming multiprocessor, in bytes.
    public var maxSharedMemoryPerMultiprocessor: Int
    /// Most threads a block may have.
    public var maxThreadsPerBlock: Int
    /// L2 cache size in bytes.
    public var l2CacheBytes: Int
    /// Device memory in bytes.
    public var totalMemory: Int

    // CUdevice_attribute values from cuda.h.
    private enum Attribute: Int32 {
        case maxThreadsPerBlock = 1
        case maxSharedMemoryPerBlock = 8
        case multiprocessorCount = 16
        case l2CacheSize = 38
        case computeCapabilityMajor = 75
        case computeCapabilityMinor = 76
        case maxSharedMemoryPerMultiprocessor = 81
        case maxSharedMemoryPerBlockOptIn = 97
    }

    /// Reads the properties of device `ordinal`.
    public static func query(ordinal: Int) throws(CUDAError) -> CUDADeviceProperties {
        let api = try DriverLoader.require()
        let device = try CUDADevice.handle(ordinal: ordinal, api: api)

        func attribute(_ attribute: Attribute) throws(CUDAError) -> Int {
            var value: Int32 = 0
            try api.check(api.deviceGetAttribute(&value, attribute.rawValue, device), "cuDeviceGetAttribute")
            return Int(value)
        }

        var nameBytes = [CChar](repeating: 0, count: 256)
        try api.check(api.deviceGetName(&nameBytes, Int32(nameBytes.count - 1), device), "cuDeviceGetName")
        var total = 0
        try api.check(api.deviceTotalMem(&total, device), "cuDeviceTotalMem_v2")

        return CUDADeviceProperties(
            ordinal: ordinal,
            name: String(decoding: nameBytes.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self),
            computeCapability: ComputeCapability(
                major: try attribute(.computeCapabilityMajor), minor: try attribute(.computeCapabilityMinor)),
            multiprocessorCount: try attribute(.multiprocessorCount),
            maxSharedMemoryPerBlockOptIn: try attribute(.maxSharedMemoryPerBlockOptIn),
            maxSharedMemoryPerBlock: try attribute(.maxSharedMemoryPerBlock),
            maxSharedMemoryPerMultiprocessor: try attribute(.maxSharedMemoryPerMultiprocessor),
            maxThreadsPerBlock: try attribute(.maxThreadsPerBlock),
            l2CacheBytes: try attribute(.l2CacheSize),
            totalMemory: total)
    }
}

/// Device enumeration and the driver's version; none of it needs a context.
public enum CUDADevice {
    /// The number of CUDA devices; throws the typed "driver not found" error without a driver.
    public static func count() throws(CUDAError) -> Int {
        let api = try DriverLoader.require()
        var count: Int32 = 0
        try api.check(api.deviceGetCount(&count), "cuDeviceGetCount")
        return Int(count)
    }

    /// The driver's CUDA version as `major * 1000 + minor * 10`, e.g. 13000.
    public static func driverVersion() throws(CUDAError) -> Int {
        let api = try DriverLoader.require()
        var version: Int32 = 0
        try api.check(api.driverGetVersion(&version), "cuDriverGetVersion")
        return Int(version)
    }

    /// The `CUdevice` for `ordinal`, or a `.noDevice` error naming the valid range.
    static func handle(ordinal: Int, api: DriverAPI) throws(CUDAError) -> Int32 {
        var count: Int32 = 0
        try api.check(api.deviceGetCount(&count), "cuDeviceGetCount")
        guard ordinal >= 0, ordinal < Int(count) else {
            throw CUDAError(
                library: .driver, kind: .noDevice, call: "cuDeviceGet",
                message: count == 0
                    ? "no CUDA device is available"
                    : "device \(ordinal) does not exist (this machine has \(count): 0...\(count - 1))")
        }
        var device: Int32 = 0
        try api.check(api.deviceGet(&device, Int32(ordinal)), "cuDeviceGet")
        return device
    }
}
