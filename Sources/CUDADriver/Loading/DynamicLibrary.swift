#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An opened shared library and typed symbol lookup into it.
///
/// Libraries are never closed once their symbols have been handed out: the function
/// pointers live in process-wide tables, so unloading would leave them dangling.
/// `@unchecked Sendable`: the handle is an immutable token and `dlsym` is thread-safe.
final class DynamicLibrary: @unchecked Sendable {
    /// The path or name given to `dlopen`.
    let path: String
    private let handle: UnsafeMutableRawPointer

    private init(path: String, handle: UnsafeMutableRawPointer) {
        self.path = path
        self.handle = handle
    }

    /// Opens `path` (a file path, or a bare name for the loader's search path), or
    /// returns the `dlerror` text.
    static func open(_ path: String, global: Bool = false) -> Result<DynamicLibrary, LoadFailureText> {
        let flags = RTLD_NOW | (global ? RTLD_GLOBAL : RTLD_LOCAL)
        guard let handle = dlopen(path, flags) else {
            return .failure(LoadFailureText(text: lastDLError() ?? "dlopen failed"))
        }
        return .success(DynamicLibrary(path: path, handle: handle))
    }

    /// Closes a library whose symbols were never handed out (a rejected candidate).
    func closeUnused() {
        dlclose(handle)
    }

    /// The address of `name`, or nil when the library does not export it.
    func address(of name: String) -> UnsafeMutableRawPointer? {
        dlsym(handle, name)
    }

    /// The symbol `name` as a typed C function pointer `T`.
    func function<T>(_ name: String, as type: T.Type) -> T? {
        guard let raw = address(of: name) else { return nil }
        // A C function pointer has the same representation as a raw pointer.
        return unsafeBitCast(raw, to: type)
    }

    private static func lastDLError() -> String? {
        guard let text = dlerror() else { return nil }
        return String(cString: text)
    }
}

/// The text of a `dlopen` failure.
struct LoadFailureText: Error {
    let text: String
}

/// A required symbol the library does not export (the library is too old or not the one
/// we were looking for).
struct MissingSymbol: Error {
    let name: String
}

extension DynamicLibrary {
    /// The symbol `name` as `T`, or `MissingSymbol`.
    func require<T>(_ name: String, as type: T.Type = T.self) throws(MissingSymbol) -> T {
        guard let symbol = function(name, as: type) else { throw MissingSymbol(name: name) }
        return symbol
    }

    /// The first of `names` (newest first) that the library exports.
    func requireAny<T>(_ names: [String], as type: T.Type = T.self) throws(MissingSymbol) -> T {
        for name in names {
            if let symbol = function(name, as: type) { return symbol }
        }
        throw MissingSymbol(name: names.joined(separator: " / "))
    }
}
