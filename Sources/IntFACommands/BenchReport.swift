import Foundation

/// The GPU benchmark as one row per configuration and one TOPS column per kernel (ours and
/// the peers'), with the ratios the project is judged by.
struct GPUBenchReport {
    var records: [BenchRecord]

    struct ConfigKey: Hashable, Comparable {
        var headDim: Int, causal: Bool, batch: Int, heads: Int, seqlen: Int

        static func < (a: ConfigKey, b: ConfigKey) -> Bool {
            (a.batch * a.seqlen == 16384 ? 1 : 0, a.headDim, a.causal ? 1 : 0, a.seqlen)
                < (b.batch * b.seqlen == 16384 ? 1 : 0, b.headDim, b.causal ? 1 : 0, b.seqlen)
        }

        var label: String { "B=\(batch) H=\(heads) N=\(seqlen) D=\(headDim)\(causal ? " causal" : "")" }
        /// The chart panel this configuration belongs to.
        var group: String {
            batch * seqlen == 16384 && heads * headDim == 2048
                ? "16k tokens, D=\(headDim)\(causal ? ", causal" : "")" : "B=\(batch) H=\(heads) D=\(headDim)\(causal ? ", causal" : "")"
        }
    }

    static func key(_ r: BenchRecord) -> ConfigKey {
        ConfigKey(headDim: r.headDim, causal: r.causal, batch: r.batch, heads: r.heads, seqlen: r.seqlenK)
    }

    var kernels: [String] {
        var seen: [String] = []
        for r in records where !seen.contains(r.kernel) { seen.append(r.kernel) }
        return seen
    }

    var table: String {
        let kernels = self.kernels
        if !kernels.isEmpty && kernels.allSatisfy({ $0.hasPrefix("decode-") }) { return decodeTable }
        let ratios: [(String, String, String)] = [
            ("int8/fp16", "int8", "fp16"), ("int8/FA2", "int8", "sdpa-flash2-fp16"),
            ("int8/cuDNN", "int8", "sdpa-cudnn-fp16"), ("int8/Sage2", "int8", "sage2-sm90"),
            ("int8/cuDNN-fp8", "int8", "cudnn-fp8-e4m3"), ("e2e/int8", "int8+quant", "int8"),
            ("e2e/Sage2-e2e", "int8+quant", "sage2-sm90+quant"),
        ].filter { kernels.contains($0.1) && kernels.contains($0.2) }
        var table = TextTable(["TOPS", ] + kernels + ratios.map(\.0))
        let byConfig = Dictionary(grouping: records, by: Self.key)
        for key in byConfig.keys.sorted() {
            let rows = byConfig[key] ?? []
            func tops(_ kernel: String) -> Double? { rows.first { $0.kernel == kernel }?.tops }
            table.append([key.label] + kernels.map { tops($0).map { String(format: "%.0f", $0) } ?? "-" }
                + ratios.map { ratio in
                    guard let a = tops(ratio.1), let b = tops(ratio.2) else { return "-" }
                    return String(format: "%.2fx", a / b)
                })
        }
        return table.rendered
    }

    /// Decode rows: per shape, each kernel's time and fraction of the copy bandwidth, and the
    /// INT8 cache's speedup over the fastest fp16 decode (ours or a peer's).
    var decodeTable: String {
        let kernels = self.kernels
        let fp16 = kernels.filter { $0.contains("fp16") }
        var table = TextTable(["decode", ] + kernels.flatMap { ["\($0) µs", "BW"] } + (fp16.isEmpty ? [] : ["int8/best-fp16"]))
        let byShape = Dictionary(grouping: records) { [$0.batch, $0.seqlenK, $0.heads, $0.kvHeads, $0.headDim] }
        for shape in byShape.keys.sorted(by: { $0.lexicographicallyPrecedes($1) }) {
            let rows = byShape[shape] ?? []
            func row(_ kernel: String) -> BenchRecord? { rows.first { $0.kernel == kernel } }
            var cells = ["B=\(shape[0]) Nk=\(shape[1]) H=\(shape[2])/\(shape[3]) D=\(shape[4])"]
            for kernel in kernels {
                let r = row(kernel)
                cells += [r.map { String(format: "%.1f", $0.ms * 1e3) } ?? "-",
                          r?.bandwidthFraction.map { String(format: "%.0f%%", $0 * 100) } ?? "-"]
            }
            if !fp16.isEmpty {
                let best = fp16.compactMap { row($0)?.ms }.min()
                let int8 = kernels.first { $0.contains("int8") }.flatMap(row)
                cells.append(best.flatMap { b in int8.map { String(format: "%.2fx", b / $0.ms) } } ?? "-")
            }
            table.append(cells)
        }
        let copy = records.compactMap(\.copyBandwidthGBs).first.map { String(format: "%.0f GB/s", $0) } ?? "not measured"
        return table.rendered + "\nBW: bytes the step must read / time, as a fraction of the device-to-device copy bandwidth (\(copy))"
    }

    /// TOPS against N, one line per kernel, one panel per configuration group.
    var svg: String {
        let groups = Dictionary(grouping: records) { Self.key($0).group }
        let names = groups.keys.sorted()
        let kernels = self.kernels
        let colors = ["#d62728", "#ff7f0e", "#9467bd", "#2ca02c", "#1f77b4", "#7f7f7f", "#17becf", "#bcbd22"]
        let panelWidth = 420.0, panelHeight = 300.0, margin = 50.0
        let columns = 2
        let rows = (names.count + columns - 1) / columns
        let width = Double(columns) * (panelWidth + margin) + margin
        let height = Double(rows) * (panelHeight + margin + 20) + 80
        var out = """
            <svg xmlns="http://www.w3.org/2000/svg" width="\(Int(width))" height="\(Int(height))" font-family="sans-serif" font-size="12">
            <rect width="100%" height="100%" fill="white"/>
            <text x="\(margin)" y="24" font-size="16">Attention forward throughput (TOPS = 4·B·H·N²·D / t, half when causal)</text>

            """
        for (index, kernel) in kernels.enumerated() {
            let x = margin + Double(index) * 120
            out += "<rect x=\"\(x)\" y=\"36\" width=\"14\" height=\"4\" fill=\"\(colors[index % colors.count])\"/>"
            out += "<text x=\"\(x + 18)\" y=\"42\">\(kernel)</text>\n"
        }
        let maxTops = (records.compactMap(\.tops).max() ?? 1) * 1.1
        for (panel, name) in names.enumerated() {
            let x0 = margin + Double(panel % columns) * (panelWidth + margin)
            let y0 = 70 + Double(panel / columns) * (panelHeight + margin + 20)
            let points = groups[name] ?? []
            let lengths = Set(points.map(\.seqlenK)).sorted()
            guard let first = lengths.first, let last = lengths.last else { continue }
            let span = max(log2(Double(last)) - log2(Double(first)), 1)
            func px(_ n: Int) -> Double { x0 + (log2(Double(n)) - log2(Double(first))) / span * panelWidth }
            func py(_ tops: Double) -> Double { y0 + panelHeight - tops / maxTops * panelHeight }
            out += "<text x=\"\(x0)\" y=\"\(y0 - 6)\" font-size=\"13\">\(name)</text>\n"
            out += "<rect x=\"\(x0)\" y=\"\(y0)\" width=\"\(panelWidth)\" height=\"\(panelHeight)\" fill=\"none\" stroke=\"#999\"/>\n"
            for tick in stride(from: 0.0, through: maxTops, by: maxTops > 600 ? 200 : 100) {
                out += "<line x1=\"\(x0)\" x2=\"\(x0 + panelWidth)\" y1=\"\(py(tick))\" y2=\"\(py(tick))\" stroke=\"#eee\"/>"
                out += "<text x=\"\(x0 - 6)\" y=\"\(py(tick) + 4)\" text-anchor=\"end\">\(Int(tick))</text>\n"
            }
            for n in lengths {
                out += "<text x=\"\(px(n))\" y=\"\(y0 + panelHeight + 16)\" text-anchor=\"middle\">\(n >= 1024 ? "\(n / 1024)k" : "\(n)")</text>\n"
            }
            for (index, kernel) in kernels.enumerated() {
                let line = points.filter { $0.kernel == kernel }.sorted { $0.seqlenK < $1.seqlenK }
                guard !line.isEmpty else { continue }
                let path = line.compactMap { r in r.tops.map { "\(px(r.seqlenK)),\(py($0))" } }.joined(separator: " ")
                let color = colors[index % colors.count]
                out += "<polyline points=\"\(path)\" fill=\"none\" stroke=\"\(color)\" stroke-width=\"2\"/>\n"
                for r in line { if let t = r.tops { out += "<circle cx=\"\(px(r.seqlenK))\" cy=\"\(py(t))\" r=\"3\" fill=\"\(color)\"/>" } }
                out += "\n"
            }
            out += "<text x=\"\(x0 + panelWidth / 2)\" y=\"\(y0 + panelHeight + 32)\" text-anchor=\"middle\">sequence length N</text>\n"
        }
        return out + "</svg>\n"
    }
}
