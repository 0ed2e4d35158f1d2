#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The calling thread's last error message, as a C string the thread owns until its next
/// call (`intfa_last_error_message`).
enum LastError {
    private static let key: pthread_key_t = {
        var key = pthread_key_t()
        pthread_key_create(&key) { free($0) }
        return key
    }()
    // Never freed or written: what a thread without an error reads.
    nonisolated(unsafe) private static let empty = UnsafePointer(strdup("")!)

    static func set(_ message: String) {
        free(pthread_getspecific(key))
        pthread_setspecific(key, strdup(message))
    }

    static func clear() {
        free(pthread_getspecific(key))
        pthread_setspecific(key, nil)
    }

    static var message: UnsafePointer<CChar> {
        guard let stored = pthread_getspecific(key) else { return empty }
        return UnsafePointer(stored.assumingMemoryBound(to: CChar.self))
    }
}
