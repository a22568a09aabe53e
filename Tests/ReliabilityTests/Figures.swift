import Foundation

/// Prints one figure line of the reliability suite; `scripts/reliability.sh` gathers them
/// into a table.
///
///     FIGURE <test> | name=value | name=value ...
func figure(_ test: String, _ values: KeyValuePairs<String, String>) {
    let line = "FIGURE \(test) | " + values.map { "\($0.key)=\($0.value)" }.joined(separator: " | ")
    print(line)
}

/// A duration in seconds with two decimals.
func seconds(_ duration: Duration) -> String {
    let (whole, attoseconds) = duration.components
    return String(format: "%.2f s", Double(whole) + Double(attoseconds) / 1e18)
}
