import ArgumentParser
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
