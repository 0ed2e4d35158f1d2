/// ptxas's resource report for one function, from `--ptxas-options=-v`.
public struct KernelResourceUsage: Sendable, Equatable, Codable {
    /// The function's symbol: its `extern "C"` name or its mangled C++ name.
    public var name: String
    /// True for `__global__` kernels ("Compiling entry function"), false for device
    /// functions that ptxas kept out of line.
    public var isEntry: Bool
    /// The architecture ptxas compiled for, e.g. `sm_90a`.
    public var architecture: String?
    /// Registers per thread.
    public var registers: Int
    /// Named barriers used.
    public var barriers: Int
    /// Static shared memory per block.
    public var sharedMemoryBytes: Int
    /// Constant bank 0 (kernel parameters and the like).
    public var constantMemoryBytes: Int
    /// Stack frame per thread, in bytes.
    public var stackFrameBytes: Int
    /// Cumulative stack size ptxas reports, in bytes.
    public var cumulativeStackBytes: Int
    /// Register spills: any non-zero value usually means a tile size is too large.
    public var spillStoreBytes: Int
    /// Bytes loaded back from spilled registers.
    public var spillLoadBytes: Int

    /// Usage of `name` with every count zero and no architecture.
    public init(name: String, isEntry: Bool) {
        self.name = name
        self.isEntry = isEntry
        architecture = nil
        registers = 0
        barriers = 0
        sharedMemoryBytes = 0
        constantMemoryBytes = 0
        stackFrameBytes = 0
        cumulativeStackBytes = 0
        spillStoreBytes = 0
        spillLoadBytes = 0
    }

    /// True when ptxas spilled registers to local memory.
    public var spills: Bool { spillStoreBytes > 0 || spillLoadBytes > 0 }
}

/// The resource report of a whole compilation, keyed by function symbol.
public struct PtxasReport: Sendable, Equatable, Codable {
    /// Every function ptxas reported on.
    public var functions: [String: KernelResourceUsage]

    /// Creates a report from its functions, keyed by symbol.
    public init(functions: [String: KernelResourceUsage] = [:]) {
        self.functions = functions
    }

    /// The usage of `name`, if ptxas reported on it.
    public subscript(name: String) -> KernelResourceUsage? { functions[name] }

    /// The number of ptxas warnings in `log` that wgmma instructions were serialized
    /// (C7510-C7515, "wgmma.mma_async instructions are serialized due to …").
    public static func wgmmaSerializationWarnings(in log: String) -> Int {
        log.split(whereSeparator: \.isNewline).count { $0.contains("wgmma.mma_async instructions are serialized") }
    }

    /// The `__global__` kernels, sorted by name.
    public var entries: [KernelResourceUsage] {
        functions.values.filter(\.isEntry).sorted { $0.name < $1.name }
    }

    /// Parses the ptxas lines of an NVRTC log, e.g.
    ///
    ///     ptxas info    : Compiling entry function 'k' for 'sm_90'
    ///     ptxas info    : Function properties for k
    ///     ptxas         .     0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
    ///     ptxas info    : Used 16 registers, used 1 barriers, 40960 bytes smem, 372 bytes cmem[0]
    ///
    /// "Used" lines belong to the entry being compiled; stack/spill lines to the function
    /// named by the last "Function properties for" line (entries or device functions).
    public static func parse(log: String) -> PtxasReport {
        var functions: [String: KernelResourceUsage] = [:]
        var currentEntry: String?
        var currentProperties: String?

        func update(_ name: String, isEntry: Bool = false, _ change: (inout KernelResourceUsage) -> Void) {
            var usage = functions[name] ?? KernelResourceUsage(name: name, isEntry: isEntry)
            usage.isEntry = usage.isEntry || isEntry
            change(&usage)
            functions[name] = usage
        }

        for rawLine in log.split(whereSeparator: \.isNewline) {
            guard let payload = ptxasPayload(of: Substring(rawLine)) else { continue }
            if let rest = payload.dropPrefix("Compiling entry function ") {
                let quoted = rest.split(separator: "'", omittingEmptySubsequences: true)
                guard let name = quoted.first.map(String.init) else { continue }
                let architecture = quoted.count >= 3 ? String(quoted[2]) : nil
                currentEntry = name
                update(name, isEntry: true) { $0.architecture = architecture }
            } else if let rest = payload.dropPrefix("Function properties for ") {
                let name = rest.trimmingSpaces()
                currentProperties = name
                update(name) { _ in }
            } else {
                let statistics = parseStatistics(payload)
                guard !statistics.isEmpty else { continue }
                let isUsageLine = statistics.keys.contains("registers")
                guard let target = isUsageLine ? currentEntry : (currentProperties ?? currentEntry) else { continue }
                update(target) { usage in
                    for (key, value) in statistics {
                        switch key {
                        case "registers": usage.registers = value
                        case "barriers": usage.barriers = value
                        case "smem": usage.sharedMemoryBytes = value
                        case "cmem[0]": usage.constantMemoryBytes = value
                        case "stack frame": usage.stackFrameBytes = value
                        case "cumulative stack size": usage.cumulativeStackBytes = value
                        case "spill stores": usage.spillStoreBytes = value
                        case "spill loads": usage.spillLoadBytes = value
                        default: break
                        }
                    }
                }
            }
        }
        return PtxasReport(functions: functions)
    }

    /// The text after `ptxas info    :` or `ptxas         .`; nil for other lines.
    private static func ptxasPayload(of line: Substring) -> String? {
        guard var rest = line.trimmingSpaces().dropPrefix("ptxas") else { return nil }
        rest = rest.trimmingSpaces()
        if let afterInfo = rest.dropPrefix("info") {
            rest = afterInfo.trimmingSpaces()
            guard let afterColon = rest.dropPrefix(":") else { return nil }
            return afterColon.trimmingSpaces()
        }
        if let afterDot = rest.dropPrefix(".") { return afterDot.trimmingSpaces() }
        return nil
    }

    /// "Used 16 registers, used 0 barriers, 8 bytes smem" → ["registers": 16, "barriers": 0, "smem": 8].
    private static func parseStatistics(_ text: String) -> [String: Int] {
        var result: [String: Int] = [:]
        for part in text.split(separator: ",") {
            let words = part.split(separator: " ")
            if words.count >= 3, words[0].lowercased() == "used", let value = Int(words[1]) {
                result[String(words[2])] = value
            } else if words.count >= 3, words[1] == "bytes", let value = Int(words[0]) {
                result[words[2...].joined(separator: " ")] = value
            }
        }
        return result
    }
}

extension StringProtocol {
    func trimmingSpaces() -> String {
        String(drop { $0 == " " || $0 == "\t" }.reversed().drop { $0 == " " || $0 == "\t" || $0 == "\r" }.reversed())
    }

    func dropPrefix(_ prefix: String) -> String? {
        hasPrefix(prefix) ? String(dropFirst(prefix.count)) : nil
    }
}
