/// Floating-point element type of attention inputs and outputs.
public enum ElementType: String, CaseIterable, Sendable, Hashable, Codable {
    /// IEEE binary16.
    case float16
    /// bfloat16 (see ``BFloat16``).
    case bfloat16
    /// IEEE binary32.
    case float32

    /// Bytes per element.
    public var size: Int {
        switch self {
        case .float16, .bfloat16: return 2
        case .float32: return 4
        }
    }
}
