#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Calls `body` with a C array of NUL-terminated copies of `strings` (`const char* const*`),
/// valid only inside `body`; nil for an empty list.
func withCStringArray<R>(_ strings: [String], _ body: (UnsafePointer<UnsafePointer<CChar>?>?) -> R) -> R {
    let copies: [UnsafeMutablePointer<CChar>?] = strings.map { strdup($0) }
    defer { copies.forEach { free($0) } }
    if copies.isEmpty { return body(nil) }
    let constants = copies.map { UnsafePointer($0) }
    return constants.withUnsafeBufferPointer { body($0.baseAddress) }
}
