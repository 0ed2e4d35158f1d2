import ArgumentParser
import IntFlashAttention

/// The `intfa` command: INT8 FlashAttention accuracy, speed and diagnostics.
public struct IntFA: ParsableCommand {
    /// The command's name, help text, version and subcommands.
    public static let configuration = CommandConfiguration(
        commandName: "intfa",
        abstract: "INT8 FlashAttention: accuracy experiments, benchmarks and GPU checks.",
        discussion: """
            Methods: fp32 (CPU only), fp16, fp8-e4m3, fp8-e5m2 (CPU only), int8-paper, int8 \
            (default scheme), int4 (CPU only). See docs/SCHEMES.md for their exact arithmetic.
            """,
        version: intFlashAttentionVersion,
        subcommands: [Accuracy.self, Bench.self, Check.self, Compile.self, Info.self]
    )

    /// Creates the command (ArgumentParser fills it from the command line).
    public init() {}
}
