/// Identifies one compiled kernel: a SHA-256 over the source, every header, the target
/// architecture, the compiler's version and the (sorted) options.
public struct KernelCacheKey: Sendable, Hashable, CustomStringConvertible {
    /// Hex SHA-256 digest.
    public let digest: String
    /// The target architecture, kept readable in file names.
    public let architecture: String

    /// The key of `request` compiled by a compiler identified as `compilerIdentity`
    /// (e.g. `nvrtc-13.0`), so a compiler upgrade never reuses old cubins.
    public init(request: CompilationRequest, compilerIdentity: String) {
        var hasher = SHA256()
        hasher.updateField("intfa-kernel-key-v1")
        hasher.updateField(request.source)
        hasher.updateField(request.name)
        hasher.updateField(String(request.headers.count))
        for name in request.headers.keys.sorted() {
            hasher.updateField(name)
            hasher.updateField(request.headers[name] ?? "")
        }
        hasher.updateField(request.architecture)
        hasher.updateField(compilerIdentity)
        let options = request.options.sorted()
        hasher.updateField(String(options.count))
        options.forEach { hasher.updateField($0) }
        let expressions = request.nameExpressions.sorted()
        hasher.updateField(String(expressions.count))
        expressions.forEach { hasher.updateField($0) }
        digest = SHA256.hex(hasher.finalize())
        architecture = request.architecture
    }

    /// The entry's file name in the disk cache.
    public var fileName: String { "\(architecture)-\(digest).intfa-cubin" }

    /// `<architecture>/<first 16 hex digits of the digest>`, for logs.
    public var description: String { "\(architecture)/\(digest.prefix(16))" }
}
