/// Synthetic attention inputs for the accuracy experiments.
public enum InputDistribution: String, CaseIterable, Sendable, Codable {
    /// Q, K, V ~ N(0, 1); softmax scale 1/√D.
    case normal
    /// Q, K, V ~ U[0, 1); softmax scale 1 (as the paper's code).
    case uniform
    /// N(0, 1) with a few K channels carrying a large per-channel offset, as real models'
    /// keys do; softmax scale 1/√D.
    case outlier

    /// The softmax scale this distribution is evaluated with.
    public func softmaxScale(headDim: Int) -> Float {
        self == .uniform ? 1 : 1 / Float(headDim).squareRoot()
    }

    /// Channels of K that carry an offset under `.outlier`, and the offset they carry.
    static let outlierChannelStride = 16
    static let outlierOffset: Float = 8

    /// Fresh Q, K, V (fp32, BHND) for `problem`, drawn from `generator`.
    public func makeInputs(
        for problem: AttentionProblem, using generator: inout SplitMix64
    ) -> (q: [Float], k: [Float], v: [Float]) {
        func draw(_ count: Int) -> [Float] {
            switch self {
            case .normal, .outlier: return (0..<count).map { _ in generator.nextNormal() }
            case .uniform: return (0..<count).map { _ in generator.nextUnitFloat() }
            }
        }
        let q = draw(problem.queryElementCount)
        var k = draw(problem.keyElementCount)
        let v = draw(problem.keyElementCount)
        if self == .outlier {
            // Every 16th channel gets an offset whose sign varies by head, so that per-token
            // scales are dominated by a few channels, as in real models' keys.
            let d = problem.headDim
            for index in k.indices where (index % d) % Self.outlierChannelStride == 3 {
                let head = index / (problem.keyLength * d)
                k[index] += head % 2 == 0 ? Self.outlierOffset : -Self.outlierOffset
            }
        }
        return (q, k, v)
    }
}
