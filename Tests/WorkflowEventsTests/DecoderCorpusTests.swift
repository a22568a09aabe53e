import Foundation
import TestSupport
import Testing
import WorkflowEvents

/// The contract's rules applied to what Foundation's `JSONSerialization` parsed: slow and
/// plain, the reference the fast decoder must agree with.
enum Reference {
    struct Event {
        var eventID: UUID
        var eventType: String
        var source: String
        var workflowID: String
        var workflowRunID: String?
        var timestamp: Date
        var data: [String: Any]
        var metadata: [String: String]
        var schemaVersion: Int
    }

    /// RFC 8259 forbids a comma before `}` or `]`; Foundation's JSONSerialization accepts it.
    static func hasTrailingComma(_ bytes: [UInt8]) -> Bool {
        var inString = false
        var escaped = false
        var lastSignificant: UInt8 = 0
        for byte in bytes {
            if inString {
                if escaped {
                    escaped = false
                } else if byte == UInt8(ascii: "\\") {
                    escaped = true
                } else if byte == UInt8(ascii: "\"") {
                    inString = false
                }
                continue
            }
            switch byte {
            case UInt8(ascii: "\""):
                inString = true
                lastSignificant = byte
            case UInt8(ascii: " "), UInt8(ascii: "\n"), UInt8(ascii: "\r"), UInt8(ascii: "\t"): continue
            case UInt8(ascii: "}"), UInt8(ascii: "]"):
                if lastSignificant == UInt8(ascii: ",") { return true }
                lastSignificant = byte
            default: lastSignificant = byte
            }
        }
        return false
    }

    static func decode(_ bytes: [UInt8]) -> Event? {
        guard !hasTrailingComma(bytes) else { return nil }
        guard let object = try? JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any] else { return nil }
        guard let id = object["event_id"] as? String, isCanonicalUUID(id), let eventID = UUID(uuidString: id),
            let eventType = object["event_type"] as? String,
            let source = object["source"] as? String,
            let workflowID = object["workflow_id"] as? String, !workflowID.isEmpty,
            let timestampText = object["timestamp"] as? String, let timestamp = parseTimestamp(timestampText),
            let payload = object["payload"] as? [String: Any]
        else { return nil }
        var data: [String: Any] = [:]
        if let value = payload["data"] {
            guard let dictionary = value as? [String: Any] else { return nil }
            data = dictionary
        }
        var runID: String?
        if let value = object["workflow_run_id"], !(value is NSNull) {
            guard let text = value as? String else { return nil }
            runID = text
        }
        var metadata: [String: String] = [:]
        if let value = object["metadata"] {
            guard let dictionary = value as? [String: Any] else { return nil }
            for (key, entry) in dictionary {
                guard let text = entry as? String else { return nil }
                metadata[key] = text
            }
        }
        var schemaVersion = 1
        if let value = object["schema_version"] {
            guard let number = value as? NSNumber, !isBoolean(number), let exact = Int(exactly: number.doubleValue),
                number.doubleValue.rounded() == number.doubleValue, !"\(number)".contains(".")
            else { return nil }
            schemaVersion = exact
        }
        return Event(
            eventID: eventID, eventType: eventType, source: source, workflowID: workflowID, workflowRunID: runID,
            timestamp: timestamp, data: data, metadata: metadata, schemaVersion: schemaVersion)
    }

    static func isBoolean(_ value: Any) -> Bool { String(describing: type(of: value)) == "__NSCFBoolean" }

    static func isCanonicalUUID(_ text: String) -> Bool {
        let bytes = Array(text.utf8)
        guard bytes.count == 36 else { return false }
        for (index, byte) in bytes.enumerated() {
            if [8, 13, 18, 23].contains(index) {
                if byte != UInt8(ascii: "-") { return false }
            } else if !(48...57).contains(byte) && !(97...102).contains(byte) && !(65...70).contains(byte) {
                return false
            }
        }
        return true
    }

    /// RFC 3339: date, `T`/`t`/space, time, 0 to 9 fractional digits, `Z`/`z` or ±hh:mm.
    static func parseTimestamp(_ text: String) -> Date? {
        let pattern = #"^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(\.(\d{1,9}))?([Zz]|([+-])(\d{2}):(\d{2}))$"#
        guard let regex = try? NSRegularExpression(pattern: pattern),
            let match = regex.firstMatch(in: text, range: NSRange(text.startIndex..., in: text))
        else { return nil }
        func group(_ index: Int) -> String? {
            let range = match.range(at: index)
            guard range.location != NSNotFound, let swiftRange = Range(range, in: text) else { return nil }
            return String(text[swiftRange])
        }
        let (year, month, day) = (Int(group(1)!)!, Int(group(2)!)!, Int(group(3)!)!)
        let (hour, minute, second) = (Int(group(4)!)!, Int(group(5)!)!, Int(group(6)!)!)
        // Year 0000 fits RFC 3339's grammar, but Python's datetime (and so Pydantic) starts at
        // year 1: so does the contract.
        guard year >= 1, (1...12).contains(month), day >= 1, hour <= 23, minute <= 59, second <= 60 else { return nil }
        // RFC 3339 dates are proleptic Gregorian (Foundation's calendar turns Julian before 1582).
        let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
        let lengths = [31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]
        guard day <= lengths[month - 1] else { return nil }
        var offset = 0
        if let sign = group(10) {
            let (hours, minutes) = (Int(group(11)!)!, Int(group(12)!)!)
            guard hours <= 23, minutes <= 59 else { return nil }
            offset = (hours * 3600 + minutes * 60) * (sign == "-" ? -1 : 1)
        }
        // Days since 1970-01-01 in the proleptic Gregorian calendar.
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yearOfEra = y - era * 400
        let dayOfYear = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        let days = era * 146_097 + dayOfEra - 719_468
        let seconds = Double(days * 86_400 + hour * 3600 + minute * 60 + second)
        let fraction = group(8).map { Double("0." + $0)! } ?? 0
        return Date(timeIntervalSince1970: seconds + fraction - Double(offset))
    }

    /// Whether a decoded value is the one JSONSerialization produced.
    static func equal(_ value: JSONValue, _ reference: Any) -> Bool {
        switch value {
        case .null: return reference is NSNull
        case .bool(let flag): return isBoolean(reference) && (reference as! NSNumber).boolValue == flag
        case .int(let number):
            guard let other = reference as? NSNumber, !isBoolean(reference) else { return false }
            return other.doubleValue == Double(number)
        case .double(let number):
            guard let other = reference as? NSNumber, !isBoolean(reference) else { return false }
            // Foundation's JSONSerialization rounds mantissas of more than 17 digits off by a
            // few ulps; the decoder rounds correctly, as Swift's Double(String) does.
            return other.doubleValue == number || abs(other.doubleValue - number) <= abs(number) * 1e-14
        case .string(let text): return (reference as? String) == text
        case .array(let elements):
            guard let others = reference as? [Any], others.count == elements.count else { return false }
            return zip(elements, others).allSatisfy { equal($0, $1) }
        case .object(let members):
            guard let others = reference as? [String: Any], others.count == members.count else { return false }
            return members.allSatisfy { key, member in others[key].map { equal(member, $0) } ?? false }
        }
    }
}

/// Random documents: valid events, and events with one field made wrong, with random
/// payloads (escapes, surrogate pairs, numbers at the edges, nesting) and every timestamp form.
struct CorpusGenerator {
    var state: UInt64

    mutating func next() -> UInt64 {
        state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
        var x = state
        x ^= x >> 33
        x = x &* 0xff51_afd7_ed55_8ccd
        return x ^ (x >> 29)
    }

    mutating func below(_ bound: Int) -> Int { Int(next() % UInt64(bound)) }

    mutating func pick<T>(_ choices: [T]) -> T { choices[below(choices.count)] }

    mutating func string() -> String {
        let pieces = [
            "a", "Z", "7", " ", "\\\"", "\\\\", "\\/", "\\n", "\\t", "\\r", "\\b", "\\f", "\\u0041", "\\u00e9", "\\u2028",
            "\\ud83d\\ude80", "é", "漢", "🚀", "\\u0000", "-", "_", ".",
        ]
        return "\"" + (0..<below(12)).map { _ in pick(pieces) }.joined() + "\""
    }

    mutating func number() -> String {
        pick([
            "0", "-0", "1", "-1", "42", "9007199254740991", "-9007199254740991", "1.5", "-0.25", "1e3", "1E-3", "2.5e+10",
            "123456.789", "0.1", "3.141592653589793", "1e308", "5e-324", String(below(1_000_000)),
            "\(below(1000)).\(below(1000))",
        ])
    }

    mutating func value(depth: Int) -> String {
        switch below(depth > 3 ? 4 : 7) {
        case 0: return string()
        case 1: return number()
        case 2: return pick(["true", "false"])
        case 3: return "null"
        case 4: return "[" + (0..<below(4)).map { _ in value(depth: depth + 1) }.joined(separator: ",") + "]"
        default: return object(depth: depth + 1)
        }
    }

    mutating func object(depth: Int) -> String {
        var keys: Set<String> = []
        var members: [String] = []
        for _ in 0..<below(5) {
            let key = "k\(below(50))"
            guard keys.insert(key).inserted else { continue }
            members.append("\"\(key)\":\(value(depth: depth))")
        }
        return "{" + members.joined(separator: ",") + "}"
    }

    mutating func timestamp() -> String {
        let year = 1970 + below(100)
        let month = 1 + below(12)
        let day = 1 + below(31)  // sometimes past the month's end: invalid
        let digits = below(11)  // 10 digits: invalid
        let fraction = digits == 0 ? "" : "." + String((0..<digits).map { _ in Character(String(below(10))) })
        let zone = pick(["Z", "z", "+02:00", "-05:30", "+00:00", "", "+2:00"])  // the last two are invalid
        let separator = pick(["T", "t", " ", "T", "_"])  // "_" is invalid
        return String(format: "\"%04d-%02d-%02d%@%02d:%02d:%02d%@%@\"", year, month, day, separator, below(24), below(60), below(60), fraction, zone)
    }

    mutating func uuid() -> String {
        let hex = "0123456789abcdefABCDEF"
        func chunk(_ count: Int, _ generator: inout CorpusGenerator) -> String {
            String((0..<count).map { _ in hex[hex.index(hex.startIndex, offsetBy: generator.below(hex.count))] })
        }
        switch below(12) {
        case 0: return "\"" + chunk(32, &self) + "\""  // no hyphens: invalid
        case 1: return "\"not-a-uuid\""
        default:
            return "\"\(chunk(8, &self))-\(chunk(4, &self))-\(chunk(4, &self))-\(chunk(4, &self))-\(chunk(12, &self))\""
        }
    }

    /// An event document; about a third have one field removed or of the wrong type.
    mutating func document() -> [UInt8] {
        var fields: [String: String] = [
            "event_id": uuid(), "event_type": pick(["\"workflow.started\"", "\"step.failed\"", "\"custom.thing\""]),
            "source": pick(["\"jenkins\"", "\"temporal\"", string()]), "workflow_id": pick(["\"w-1\"", string()]),
            "timestamp": timestamp(), "payload": below(6) == 0 ? "{}" : "{\"data\":\(object(depth: 1))}",
        ]
        if below(2) == 0 { fields["workflow_run_id"] = pick(["null", "\"run-9\"", string()]) }
        if below(2) == 0 { fields["metadata"] = "{\"a\":\(string()),\"b\":\"x\"}" }
        if below(3) == 0 { fields["schema_version"] = pick(["1", "2", "1.5", "\"1\""]) }
        if below(4) == 0 { fields["extra"] = value(depth: 1) }
        if below(3) == 0 {
            let key = pick(Array(fields.keys).sorted())
            if below(2) == 0 { fields[key] = nil } else { fields[key] = pick(["7", "[]", "{}", "true", "null", "\"\""]) }
        }
        // Shuffled from a sorted start, so that the same seed gives the same documents in
        // every process (a dictionary's own order changes from one process to the next).
        var keys = fields.keys.sorted()
        for index in stride(from: keys.count - 1, to: 0, by: -1) { keys.swapAt(index, below(index + 1)) }
        let members = keys.map { "\"\($0)\":\(fields[$0]!)" }
        return Array(("{" + members.joined(separator: pick([",", ", ", " ,\n"])) + "}").utf8)
    }

    /// A mutation of `document`: bytes flipped, inserted, deleted, or the end cut off.
    mutating func mutate(_ document: [UInt8]) -> [UInt8] {
        var bytes = document
        for _ in 0...below(3) {
            guard !bytes.isEmpty else { break }
            let at = below(bytes.count)
            switch below(5) {
            case 0: bytes[at] ^= UInt8(1 << below(8))
            case 1: bytes.insert(pick(Array("{}[]\",:\\0123456789.eE+-tfn \u{7f}".utf8) + [0x00, 0xC3, 0xFF, 0xE2]), at: at)
            case 2: bytes.remove(at: at)
            case 3: bytes = Array(bytes[..<at])
            default: bytes.insert(contentsOf: Array(bytes[at...].prefix(below(8))), at: at)
            }
        }
        return bytes
    }
}

@Suite("Decoder against a reference")
struct DecoderCorpusTests {
    /// Compares the fast decoder with the reference on one document; returns a description
    /// of the disagreement, if any.
    static func disagreement(_ document: [UInt8]) -> String? {
        let reference = Reference.decode(document)
        let decoded = Result { try WorkflowEvent(validatingJSON: document) }
        switch (decoded, reference) {
        case (.failure, nil):
            return nil
        case (.success, nil):
            return "decoded, but the reference refuses it"
        case (.failure(let error), .some):
            return "refused (\(error)), but the reference accepts it"
        case (.success(let event), let expected?):
            if event.eventID != expected.eventID { return "event_id" }
            if event.eventType.rawValue != expected.eventType { return "event_type" }
            if event.source.rawValue != expected.source { return "source" }
            if event.workflowID != expected.workflowID { return "workflow_id" }
            if event.workflowRunID != expected.workflowRunID { return "workflow_run_id" }
            if abs(event.timestamp.timeIntervalSince(expected.timestamp)) > 1e-6 {
                return "timestamp \(event.timestamp.timeIntervalSince1970) vs \(expected.timestamp.timeIntervalSince1970)"
            }
            if !Reference.equal(.object(event.payload.data), expected.data) { return "payload.data" }
            if event.metadata != expected.metadata { return "metadata" }
            if event.schemaVersion != expected.schemaVersion { return "schema_version" }
            return nil
        }
    }

    static func describe(_ document: [UInt8]) -> String {
        String(decoding: document.prefix(2000), as: UTF8.self)
    }

    @Test("100,000 generated documents, valid and not: the decoder agrees with JSONSerialization plus the contract's rules")
    func corpus() async {
        // Seconds of work: on a thread of its own, so that the other tests' tasks run meanwhile.
        let (valid, failures) = await onOwnThread {
            var generator = CorpusGenerator(state: 20_261_128)
            var valid = 0
            var failures: [String] = []
            for _ in 0..<100_000 {
                let document = generator.document()
                if let problem = Self.disagreement(document) {
                    if failures.count < 10 { failures.append("\(problem): \(Self.describe(document))") }
                } else if (try? WorkflowEvent(validatingJSON: document)) != nil {
                    valid += 1
                }
            }
            return (valid, failures)
        }
        #expect(failures.isEmpty, "\(failures.joined(separator: "\n"))")
        // Both kinds in numbers that mean something.
        #expect(valid > 20_000 && valid < 80_000, "\(valid) valid documents")
        print("decoder corpus: 100000 documents, \(valid) valid, \(failures.count) disagreements")
    }

    @Test("a seeded mutator: 100,000 mutated documents, no crash, no hang, no disagreement")
    func mutations() async {
        let started = ContinuousClock.now
        let failures = await onOwnThread {
            var generator = CorpusGenerator(state: 7_777)
            var failures: [String] = []
            for _ in 0..<100_000 {
                let document = generator.mutate(generator.document())
                if let problem = Self.disagreement(document), failures.count < 10 {
                    failures.append("\(problem): \(Self.describe(document))")
                }
            }
            return failures
        }
        #expect(failures.isEmpty, "\(failures.joined(separator: "\n"))")
        print("decoder mutations: 100000 documents in \(ContinuousClock.now - started), \(failures.count) disagreements")
    }
}
