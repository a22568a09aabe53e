import Foundation

// MARK: - Known values

/// The contract's known values of an extensible string type, matched on raw bytes.
struct KnownValues: Sendable {
    let entries: [[UInt8]]

    init(_ values: [String]) {
        entries = values.map { Array($0.utf8) }
    }

    /// The position of `text` among the values.
    func index(of text: UnsafeBufferPointer<UInt8>) -> Int? {
        for (index, entry) in entries.enumerated() where entry.count == text.count {
            let equal = entry.withUnsafeBufferPointer { memcmp($0.baseAddress!, text.baseAddress!, text.count) == 0 }
            if equal { return index }
        }
        return nil
    }
}

let knownEventTypes = KnownValues(EventType.allKnown.map(\.rawValue))
let knownEventSources = KnownValues(EventSource.allKnown.map(\.rawValue))

// MARK: - UUID

/// The value of a hex digit, without branches (digits and letters come mixed, so branches
/// would be mispredicted); `bad` gets a bit when `byte` is not a hex digit.
@inline(__always)
func hexNibble(_ byte: UInt8, _ bad: inout UInt8) -> UInt8 {
    let digit = byte &- 0x30
    let letter = (byte | 0x20) &- 0x61
    let isDigit: UInt8 = digit < 10 ? 1 : 0
    let isLetter: UInt8 = letter < 6 ? 1 : 0
    bad |= 1 &- (isDigit | isLetter)
    return isDigit == 1 ? digit : letter &+ 10
}

/// The value of a hex digit, or nil.
@inline(__always)
func hexValue(_ byte: UInt8) -> UInt8? {
    var bad: UInt8 = 0
    let value = hexNibble(byte, &bad)
    return bad == 0 ? value : nil
}

func parseUUIDString(_ text: String) -> UUID? {
    var text = text
    return text.withUTF8 { parseUUID($0) }
}

/// Parses the canonical 8-4-4-4-12 form, in either case.
func parseUUID(_ text: UnsafeBufferPointer<UInt8>) -> UUID? {
    guard text.count == 36, let p = text.baseAddress, p[8] == UInt8(ascii: "-"), p[13] == UInt8(ascii: "-"),
        p[18] == UInt8(ascii: "-"), p[23] == UInt8(ascii: "-")
    else { return nil }
    var bad: UInt8 = 0
    @inline(__always) func byte(_ at: Int) -> UInt8 {
        hexNibble(p[at], &bad) << 4 | hexNibble(p[at + 1], &bad)
    }
    let uuid: uuid_t = (
        byte(0), byte(2), byte(4), byte(6), byte(9), byte(11), byte(14), byte(16),
        byte(19), byte(21), byte(24), byte(26), byte(28), byte(30), byte(32), byte(34)
    )
    return bad == 0 ? UUID(uuid: uuid) : nil
}

func parseUUID(_ text: [UInt8]) -> UUID? {
    text.withUnsafeBufferPointer { parseUUID($0) }
}
