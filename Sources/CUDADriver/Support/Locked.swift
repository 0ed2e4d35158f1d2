import Foundation

/// A value guarded by a lock, for the few pieces of shared mutable state in this module
/// (the kernel cache's table, the lazily loaded libraries).
///
/// `@unchecked Sendable` is sound because every access to `value` goes through `withLock`.
final class Locked<Value>: @unchecked Sendable {
    private let lock = NSLock()
    private var value: Value

    init(_ value: Value) {
        self.value = value
    }

    func withLock<R, E: Error>(_ body: (inout Value) throws(E) -> R) throws(E) -> R {
        lock.lock()
        defer { lock.unlock() }
        return try body(&value)
    }
}
