import Foundation
import Testing

/// The README's Swift blocks are compiled: each is in `ReadmeSnippets.swift`, line for line.
@Suite("README snippets")
struct ReadmeSnippetTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// A line as compared: without its indentation, runs of spaces as one.
    static func normalized(_ line: Substring) -> String {
        line.split(separator: " ", omittingEmptySubsequences: true).joined(separator: " ")
    }

    /// The Swift blocks of a Markdown text, with the line each starts at.
    static func swiftBlocks(_ text: String) -> [(line: Int, lines: [Substring])] {
        var blocks: [(line: Int, lines: [Substring])] = []
        var current: (line: Int, lines: [Substring])?
        for (index, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            if current == nil, line == "```swift" {
                current = (index + 1, [])
            } else if current != nil, line.hasPrefix("```") {
                blocks.append(current!)
                current = nil
            } else if current != nil {
                current!.lines.append(line)
            }
        }
        return blocks
    }

    @Test("every Swift block of the README is compiled, line for line, in ReadmeSnippets.swift (manifest fragments aside)")
    func everyBlockIsCompiled() throws {
        let readme = try String(contentsOf: Self.root.appendingPathComponent("README.md"), encoding: .utf8)
        let snippets = try String(
            contentsOf: Self.root.appendingPathComponent("Tests/WorkflowEventsTests/ReadmeSnippets.swift"), encoding: .utf8)
        let compiled = snippets.split(separator: "\n").map(Self.normalized).filter { !$0.isEmpty }
        let blocks = Self.swiftBlocks(readme)
        #expect(blocks.count >= 20, "found \(blocks.count) Swift blocks")
        for block in blocks {
            let lines = block.lines.map(Self.normalized).filter { !$0.isEmpty && !$0.hasPrefix("import ") }
            // Package.swift fragments: not Swift a target can compile.
            if let first = lines.first, first.hasPrefix("dependencies:") || first.hasPrefix(".product(") { continue }
            var position = compiled.startIndex
            for line in lines {
                guard let found = compiled[position...].firstIndex(of: line) else {
                    Issue.record(
                        "README line \(block.line): the block's line \"\(line)\" is not in ReadmeSnippets.swift after the block's earlier lines")
                    break
                }
                position = compiled.index(after: found)
            }
        }
    }
}
