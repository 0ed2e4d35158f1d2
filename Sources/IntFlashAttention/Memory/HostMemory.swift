import Foundation

/// Whether the host can give a call the memory it is about to use, asked before the call
/// allocates: Swift arrays stop the process when an allocation fails, so a request that
/// cannot succeed must be refused with ``AttentionError/outOfMemory(bytes:memory:detail:)``
/// before any array is made.
public enum HostMemory {
    /// Requests below this are not probed: they cost the check more than they risk.
    static let probeThreshold = 64 << 20

    /// Throws `outOfMemory` naming `bytes` and `purpose` when `bytes` exceed the memory this
    /// process may use (RAM plus swap, lowered by a cgroup limit) or when an allocation of
    /// that size fails right now. The probe allocation is freed at once; its pages are never
    /// touched, so it costs no memory. Memory that other processes take between this check
    /// and the call's own allocations is not foreseen.
    public static func reserve(_ bytes: Int, for purpose: @autoclosure () -> String) throws(AttentionError) {
        guard bytes >= probeThreshold else { return }
        if let limit = usableBytes, bytes > limit {
            throw .outOfMemory(
                bytes: bytes, memory: "host",
                detail: "for \(purpose()); this process may use at most \(ByteCount(limit)) of memory and swap")
        }
        guard let probe = malloc(bytes) else {
            throw .outOfMemory(bytes: bytes, memory: "host", detail: "for \(purpose()); the allocation failed")
        }
        free(probe)
    }

    /// RAM plus swap, or a smaller cgroup v2 limit (`memory.max`); nil where unknown.
    static var usableBytes: Int? {
        let pages = sysconf(Int32(_SC_PHYS_PAGES)), pageSize = sysconf(Int32(_SC_PAGESIZE))
        guard pages > 0, pageSize > 0, let ram = CheckedSize.product(pages, pageSize) else { return nil }
        var limit = CheckedSize.sum(ram, swapBytes) ?? ram
        if let text = readSmallFile("/sys/fs/cgroup/memory.max"),
           let cgroup = Int(text.trimmingCharacters(in: .whitespacesAndNewlines)) {
            limit = min(limit, cgroup)
        }
        return limit
    }

    /// `SwapTotal` of /proc/meminfo, 0 where there is none.
    private static var swapBytes: Int {
        guard let data = FileManager.default.contents(atPath: "/proc/meminfo") else { return 0 }
        for line in String(decoding: data, as: UTF8.self).split(separator: "\n") where line.hasPrefix("SwapTotal:") {
            let fields = line.split(separator: " ")
            if fields.count >= 2, let kib = Int(fields[1]) { return CheckedSize.product(kib, 1024) ?? 0 }
        }
        return 0
    }

    private static func readSmallFile(_ path: String) -> String? {
        guard let data = FileManager.default.contents(atPath: path), data.count < 64 else { return nil }
        return String(decoding: data, as: UTF8.self)
    }
}
