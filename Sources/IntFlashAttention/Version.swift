/// The library's version (semantic versioning), as the CLI, the C interface and the Python
/// package report it.
public let intFlashAttentionVersion = "0.2.0"
