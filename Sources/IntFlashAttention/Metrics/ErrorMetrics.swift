/// How far an output is from the float64 reference, over **all** elements.
///
/// The paper's public code computed its mean relative error on the last 4 output elements
/// only; these metrics use every element.
public struct ErrorMetrics: Sendable, Hashable, Codable {
    /// Mean relative error: mean of |O − R| / (|R| + 1e-5).
    public var meanRelativeError: Double
    /// Relative L1: Σ|O − R| / Σ|R|.
    public var relativeL1: Double
    /// Root mean squared error.
    public var rootMeanSquaredError: Double
    /// Cosine similarity of O and R as vectors.
    public var cosineSimilarity: Double
    /// Largest |O − R|.
    public var maxAbsoluteError: Double

    /// Compares `output` with `reference`. Equal counts are required; a NaN anywhere in the
    /// output, or no elements at all, makes every metric NaN (never passed off as small).
    public init<Output: Collection>(output: Output, reference: [Double]) where Output.Element: BinaryFloatingPoint {
        precondition(output.count == reference.count, "metric inputs differ in length")
        var sumRelative = 0.0, sumAbsDiff = 0.0, sumAbsRef = 0.0, sumSquares = 0.0
        var dot = 0.0, normO = 0.0, normR = 0.0, maxAbs = 0.0
        var sawNaN = false
        for (o, r) in zip(output, reference) {
            let o = Double(o)
            if o.isNaN || !o.isFinite { sawNaN = true }
            let diff = abs(o - r)
            sumRelative += diff / (abs(r) + 1e-5)
            sumAbsDiff += diff
            sumAbsRef += abs(r)
            sumSquares += diff * diff
            dot += o * r
            normO += o * o
            normR += r * r
            maxAbs = max(maxAbs, diff)
        }
        let n = Double(max(reference.count, 1))
        guard !sawNaN, !reference.isEmpty else {
            (meanRelativeError, relativeL1, rootMeanSquaredError, cosineSimilarity, maxAbsoluteError) =
                (.nan, .nan, .nan, .nan, .nan)
            return
        }
        meanRelativeError = sumRelative / n
        relativeL1 = sumAbsRef > 0 ? sumAbsDiff / sumAbsRef : sumAbsDiff
        rootMeanSquaredError = (sumSquares / n).squareRoot()
        let norms = (normO * normR).squareRoot()
        cosineSimilarity = norms > 0 ? dot / norms : (normO == normR ? 1 : 0)
        maxAbsoluteError = maxAbs
    }
}
