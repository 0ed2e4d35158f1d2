import ArgumentParser
import Foundation
import IntFlashAttention
import Testing
@testable import IntFACommands

/// Bad command lines are refused with a message, before any work starts.
@Suite struct ArgumentErrorTests {
    @Test(arguments: [
        ["accuracy", "--input", "q.npy", "k.npy"],
        ["accuracy", "--method", "int9"],
        ["accuracy", "--seqlen", "1024,0"],
        ["accuracy", "--seqlen", "10,,20"],
        ["accuracy", "--distribution", "cauchy"],
        ["accuracy", "--threads", "0"],
        ["bench", "--repeats", "0"],
        ["bench", "--backend", "tpu"],
        ["bench", "--seqlen", "many"],
        ["frobnicate"],
    ])
    func refused(_ arguments: [String]) {
        #expect(throws: (any Error).self) { _ = try IntFA.parseAsRoot(arguments) }
    }

    @Test func listsParse() throws {
        let command = try IntFA.parseAsRoot(["accuracy", "--seqlen", "63,65", "--method", "int8,int8-paper"])
        let accuracy = try #require(command as? Accuracy)
        #expect(accuracy.seqlen?.values == [63, 65])
        #expect(accuracy.method.values == [.int8, .int8Paper])
    }

    @Test func unreadableInputNamesTheFile() throws {
        let command = try #require(
            try IntFA.parseAsRoot(["accuracy", "--input", "/nonexistent/q.npy", "k.npy", "v.npy"]) as? Accuracy)
        #expect {
            try command.run()
        } throws: { error in
            "\(error)".contains("/nonexistent/q.npy")
        }
    }

    @Test func invalidShapeIsReportedNotCrashed() throws {
        let command = try #require(try IntFA.parseAsRoot(["accuracy", "--head-dim", "12", "--seqlen", "8"]) as? Accuracy)
        #expect {
            try command.run()
        } throws: { error in
            "\(error)".contains("headDim")
        }
    }
}

/// Numeric options refuse bad values by name (a negative number is a value, not a missing
/// one), and commands that cannot run say why in one line.
@Suite struct NumericOptionTests {
    @Test(arguments: [
        (["bench", "--batch", "-1"], "--batch must be at least 1, not -1"),
        (["bench", "--heads", "0"], "--heads must be at least 1, not 0"),
        (["bench", "--kv-heads", "-2"], "--kv-heads must be at least 1, not -2"),
        (["bench", "--seqlen", "-5"], "--seqlen must be at least 1, not -5"),
        (["bench", "--head-dim", "0"], "--head-dim must be at least 1, not 0"),
        (["bench", "--threads", "-1"], "--threads must be at least 1, not -1"),
        (["bench", "--warmup", "-1"], "--warmup must not be negative, not -1"),
        (["bench", "--device", "-1"], "--device must not be negative, not -1"),
        (["check", "--fuzz", "0"], "--fuzz must be at least 1, not 0"),
        (["check", "--fuzz", "-3"], "--fuzz must be at least 1, not -3"),
        (["check", "--quick", "--fuzz", "5"], "--fuzz and --quick do not combine"),
        (["check", "--device", "-1"], "--device must not be negative"),
        (["accuracy", "--batch", "-1"], "--batch must be at least 1, not -1"),
        (["accuracy", "--heads", "0"], "--heads must be at least 1, not 0"),
        (["accuracy", "--head-dim", "64,-8"], "--head-dim values must be at least 1, not -8"),
        (["accuracy", "--softmax-scale", "-1"], "--softmax-scale must be a finite positive number, not -1.0"),
    ])
    func refusedByName(_ arguments: [String], _ message: String) {
        do {
            _ = try IntFA.parseAsRoot(arguments)
            Issue.record("\(arguments) was accepted")
        } catch {
            #expect(IntFA.message(for: error).contains(message), "\(arguments): \(IntFA.message(for: error))")
        }
    }

    @Test func benchBeyondMemoryFailsInOneLine() throws {
        let command = try #require(try IntFA.parseAsRoot(["bench", "--seqlen", "4000000", "--heads", "32"]) as? Bench)
        #expect {
            try command.run()
        } throws: { error in
            let text = "\(error)"
            return text.contains("out of host memory") && text.contains("bytes") && !text.contains("\n")
        }
    }

    @Test func accuracyOfAnEmptyInputIsRefused() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("intfa-empty-\(getpid())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let empty = try AttentionTensor(storage: .float32([]), batch: 1, heads: 1, tokens: 0, headDim: 8)
        let full = try AttentionTensor(storage: .float32([Float](repeating: 1, count: 16)), batch: 1, heads: 1, tokens: 2, headDim: 8)
        let paths = ["q", "k", "v"].map { directory.appendingPathComponent("\($0).npy").path }
        for (path, tensor) in zip(paths, [empty, full, full]) {
            FileManager.default.createFile(atPath: path, contents: Data(NPYFile.encode(tensor)))
        }
        let command = try #require(try IntFA.parseAsRoot(["accuracy", "--input"] + paths) as? Accuracy)
        #expect {
            try command.run()
        } throws: { error in
            "\(error)".contains("queryLength = 0") && "\(error)".contains("[1, 1, 0, 8]")
        }
    }

    @Test func checkWithoutADriverFailsInOneLine() throws {
        guard (try? CUDAAttention(device: 0)) == nil else { return }  // a GPU machine runs the check itself
        for arguments in [["check", "--fuzz", "10"], ["check", "--quick"]] {
            let command = try #require(try IntFA.parseAsRoot(arguments) as? Check)
            #expect {
                try command.run()
            } throws: { error in
                let text = "\(error)"
                return !text.contains("\n") && text.lowercased().contains("driver")
            }
        }
    }
}
