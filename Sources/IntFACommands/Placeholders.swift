import ArgumentParser
struct Check: ParsableCommand {}
struct Compile: ParsableCommand {}
