import Foundation

// RFC 3339 date-times as the contract uses them: `2026-11-28T16:17:59.123456Z` or with a
// numeric offset, 0 to 9 fractional digits. Parsed by hand: Foundation's ISO 8601 formatter
// neither takes nine digits nor runs at the consumer's speed.

private let secondsPerDay: Int64 = 86_400

/// Days since 1970-01-01 of a proleptic Gregorian date.
private func daysFromCivil(year: Int64, month: Int64, day: Int64) -> Int64 {
    let y = month <= 2 ? year - 1 : year
    let era = (y >= 0 ? y : y - 399) / 400
    let yearOfEra = y - era * 400
    let monthIndex = month > 2 ? month - 3 : month + 9
    let dayOfYear = (153 * monthIndex + 2) / 5 + day - 1
    let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
    return era * 146_097 + dayOfEra - 719_468
}

private func civilFromDays(_ days: Int64) -> (year: Int64, month: Int64, day: Int64) {
    let z = days + 719_468
    let era = (z >= 0 ? z : z - 146_096) / 146_097
    let dayOfEra = z - era * 146_097
    let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36524 - dayOfEra / 146_096) / 365
    let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
    let mp = (5 * dayOfYear + 2) / 153
    let day = dayOfYear - (153 * mp + 2) / 5 + 1
    let month = mp < 10 ? mp + 3 : mp - 9
    return (yearOfEra + era * 400 + (month <= 2 ? 1 : 0), month, day)
}

private func daysInMonth(year: Int64, month: Int64) -> Int64 {
    switch month {
    case 2:
        let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
        return leap ? 29 : 28
    case 4, 6, 9, 11: return 30
    default: return 31
    }
}

/// Parses an RFC 3339 date-time with a zone (`Z`, `z` or `±HH:MM`); the separator may be
/// `T`, `t` or a space. Returns nil for anything else, including impossible dates.
func parseRFC3339(_ text: UnsafeBufferPointer<UInt8>) -> Date? {
    var i = 0
    func digits(_ count: Int) -> Int64? {
        guard i + count <= text.count else { return nil }
        var value: Int64 = 0
        for _ in 0..<count {
            let byte = text[i]
            guard byte >= 0x30 && byte <= 0x39 else { return nil }
            value = value * 10 + Int64(byte - 0x30)
            i += 1
        }
        return value
    }
    func expect(_ byte: UInt8) -> Bool {
        guard i < text.count, text[i] == byte else { return false }
        i += 1
        return true
    }
    guard let year = digits(4), year >= 1, expect(UInt8(ascii: "-")),
        let month = digits(2), (1...12).contains(month), expect(UInt8(ascii: "-")),
        let day = digits(2), day >= 1, day <= daysInMonth(year: year, month: month)
    else { return nil }
    guard i < text.count, text[i] == UInt8(ascii: "T") || text[i] == UInt8(ascii: "t") || text[i] == 0x20 else {
        return nil
    }
    i += 1
    guard let hour = digits(2), hour < 24, expect(UInt8(ascii: ":")),
        let minute = digits(2), minute < 60, expect(UInt8(ascii: ":")),
        let second = digits(2), second < 60
    else { return nil }
    var nanoseconds: Int64 = 0
    if expect(UInt8(ascii: ".")) {
        var count = 0
        while i < text.count, text[i] >= 0x30 && text[i] <= 0x39 {
            count += 1
            guard count <= 9 else { return nil }
            nanoseconds = nanoseconds * 10 + Int64(text[i] - 0x30)
            i += 1
        }
        guard count > 0 else { return nil }
        for _ in count..<9 { nanoseconds *= 10 }
    }
    guard i < text.count else { return nil }
    var offsetSeconds: Int64 = 0
    switch text[i] {
    case UInt8(ascii: "Z"), UInt8(ascii: "z"):
        i += 1
    case UInt8(ascii: "+"), UInt8(ascii: "-"):
        let sign: Int64 = text[i] == UInt8(ascii: "+") ? 1 : -1
        i += 1
        guard let offsetHours = digits(2), offsetHours < 24, expect(UInt8(ascii: ":")),
            let offsetMinutes = digits(2), offsetMinutes < 60
        else { return nil }
        offsetSeconds = sign * (offsetHours * 3600 + offsetMinutes * 60)
    default:
        return nil
    }
    guard i == text.count else { return nil }
    let days = daysFromCivil(year: year, month: month, day: day)
    let seconds = days * secondsPerDay + hour * 3600 + minute * 60 + second - offsetSeconds
    return Date(timeIntervalSince1970: Double(seconds) + Double(nanoseconds) / 1e9)
}

func parseRFC3339(_ text: [UInt8]) -> Date? {
    text.withUnsafeBufferPointer { parseRFC3339($0) }
}

/// Writes a date as Pydantic does: UTC, microseconds, `Z` (`2026-11-28T16:17:59.123456Z`).
func formatRFC3339(_ date: Date) -> String {
    var out: [UInt8] = []
    out.reserveCapacity(27)
    appendRFC3339(date, to: &out)
    return String(decoding: out, as: UTF8.self)
}

func appendRFC3339(_ date: Date, to out: inout [UInt8]) {
    let micros = Int64((date.timeIntervalSince1970 * 1_000_000).rounded())
    var seconds = micros / 1_000_000
    var fraction = micros % 1_000_000
    if fraction < 0 {
        fraction += 1_000_000
        seconds -= 1
    }
    var days = seconds / secondsPerDay
    var secondOfDay = seconds % secondsPerDay
    if secondOfDay < 0 {
        secondOfDay += secondsPerDay
        days -= 1
    }
    let (year, month, day) = civilFromDays(days)
    func put(_ value: Int64, width: Int) {
        let start = out.count
        for _ in 0..<width { out.append(0x30) }
        var rest = value
        var k = start + width - 1
        while k >= start {
            out[k] = UInt8(0x30 + rest % 10)
            rest /= 10
            k -= 1
        }
    }
    put(year, width: 4)
    out.append(UInt8(ascii: "-"))
    put(month, width: 2)
    out.append(UInt8(ascii: "-"))
    put(day, width: 2)
    out.append(UInt8(ascii: "T"))
    put(secondOfDay / 3600, width: 2)
    out.append(UInt8(ascii: ":"))
    put(secondOfDay / 60 % 60, width: 2)
    out.append(UInt8(ascii: ":"))
    put(secondOfDay % 60, width: 2)
    out.append(UInt8(ascii: "."))
    put(fraction, width: 6)
    out.append(UInt8(ascii: "Z"))
}
