// TEMPORARY: replaced when the CPU path lands.
public struct CPUAttentionOutput: Sendable { public var output: [Float]; public var logSumExp: [Float] }
public enum CPUAttention {
    public static func reference(_ problem: AttentionProblem, q: [Float], k: [Float], v: [Float]) throws(AttentionError) -> [Double] { [] }
    public static func run(_ method: AttentionMethod, problem: AttentionProblem, q: [Float], k: [Float], v: [Float], threads: Int? = nil) throws(AttentionError) -> CPUAttentionOutput { .init(output: [], logSumExp: []) }
}
