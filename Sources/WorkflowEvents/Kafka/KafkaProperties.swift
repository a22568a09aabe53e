import Foundation

/// librdkafka properties gathered from a properties file and `key=value` settings, each
/// remembering where it was set, so that an error can name the file line or option.
///
/// A file holds `key=value` lines; blank lines and lines starting with `#` are skipped.
/// A value `@PATH` is the content of the file PATH (without its trailing newline), `env:NAME`
/// the value of the environment variable NAME, and `raw:TEXT` is TEXT as written (for a
/// value that itself starts with `@`, `env:` or `raw:`): secrets need not be written on a
/// command line or in the file.
public struct KafkaProperties: Sendable {
    /// One setting and where it came from.
    public struct Property: Sendable {
        public let key: String
        public let value: String
        /// Where it was set: an option's name, or a file and line.
        public let origin: String
    }

    /// The environment variable naming a default properties file.
    public static let configEnvironmentVariable = "WORKFLOW_EVENTS_CONFIG"

    /// The settings in the order they apply (a later one replaces an earlier one).
    public private(set) var applied: [Property] = []

    let environment: [String: String]

    /// The value each property ends with: pass it as a configuration's `properties`.
    public var values: [String: String] {
        var result: [String: String] = [:]
        for property in applied { result[property.key] = property.value }
        return result
    }

    /// Where the value a property ends with was set.
    public func origin(of key: String) -> String? {
        applied.last { $0.key == key }?.origin
    }

    /// No settings yet; `@` and `env:` values are read from the file system and
    /// `environment` (the process's when nil).
    public init(environment: [String: String]? = nil) {
        self.environment = environment ?? ProcessInfo.processInfo.environment
    }

    /// The settings of a command line: the file `configFile` (else the one
    /// `$WORKFLOW_EVENTS_CONFIG` names, if any), then each `key=value` of `settings`
    /// (named `option` in errors), each replacing what came before; then checks that the
    /// files that properties name exist.
    ///
    /// - Throws: ``WorkflowEventsError`` `invalidConfiguration`, naming the file line or
    ///   option, never a secret's value.
    public init(
        configFile: String?, settings: [String], option: String = "--property", environment: [String: String]? = nil
    ) throws {
        self.init(environment: environment)
        if let configFile {
            try read(file: configFile, origin: "--config \(configFile)")
        } else if let fromEnvironment = self.environment[Self.configEnvironmentVariable], !fromEnvironment.isEmpty {
            try read(file: fromEnvironment, origin: "$\(Self.configEnvironmentVariable) file \(fromEnvironment)")
        }
        for text in settings {
            try add(text, origin: option)
        }
        try checkFiles()
    }

    /// Adds the settings of a properties file; `origin` names the file in errors.
    public mutating func read(file path: String, origin name: String) throws {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw Self.failure("\(name): cannot read the file (\(Self.reason(path, error)))")
        }
        for (index, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            if trimmed.isEmpty || trimmed.hasPrefix("#") { continue }
            try add(trimmed, origin: "\(name) line \(index + 1)")
        }
    }

    /// Adds one `key=value` setting; `origin` names it in errors.
    public mutating func add(_ line: String, origin: String) throws {
        guard let equals = line.firstIndex(of: "=") else {
            throw Self.failure("\(origin): expected key=value, found no '='")
        }
        let key = line[..<equals].trimmingCharacters(in: .whitespaces)
        guard !key.isEmpty else { throw Self.failure("\(origin): the property's name is empty") }
        let written = String(line[line.index(after: equals)...]).trimmingCharacters(in: .whitespaces)
        let value = try Self.resolve(written, key: key, origin: origin, environment: environment)
        applied.append(Property(key: key, value: value, origin: origin))
    }

    static func failure(_ message: String) -> WorkflowEventsError {
        WorkflowEventsError(.invalidConfiguration, message)
    }

    /// The value a written value stands for: a file's content, an environment variable's
    /// value, or itself.
    private static func resolve(_ written: String, key: String, origin: String, environment: [String: String]) throws -> String {
        if written.hasPrefix("raw:") { return String(written.dropFirst(4)) }
        if written.hasPrefix("env:") {
            let name = String(written.dropFirst(4))
            guard let value = environment[name] else {
                throw Self.failure("\(origin): the environment variable \(name) is not set")
            }
            return value
        }
        if written.hasPrefix("@") {
            let path = String(written.dropFirst())
            do {
                var content = try String(contentsOfFile: path, encoding: .utf8)
                if content.hasSuffix("\r\n") {
                    content.removeLast(2)
                } else if content.hasSuffix("\n") {
                    content.removeLast()
                }
                return content
            } catch {
                throw Self.failure("\(origin): cannot read the value of \(key) from \(path) (\(reason(path, error)))")
            }
        }
        return written
    }

    /// Properties that name a file librdkafka reads when the client is made: a missing one
    /// is named here, with the option or line that set it.
    public static let fileProperties: Set<String> = [
        "ssl.ca.location", "ssl.certificate.location", "ssl.key.location", "ssl.keystore.location",
        "ssl.crl.location", "sasl.kerberos.keytab",
    ]

    /// Throws when a property that names a file librdkafka reads (a CA, a certificate, a
    /// key, a keytab) names one that does not exist.
    public func checkFiles() throws {
        for (key, value) in values where Self.fileProperties.contains(key) {
            // librdkafka's own words for the system's certificate store.
            if key == "ssl.ca.location" && value == "probe" { continue }
            if !FileManager.default.fileExists(atPath: value) {
                throw Self.failure("\(key) names \(value), which does not exist (set by \(origin(of: key) ?? "?"))")
            }
        }
    }

    /// Adds, to an error about a property, where that property was set; cuts every secret
    /// value out of its text.
    public func explain(_ error: any Error) -> String {
        var text = redact("\(error)")
        for key in Set(applied.map(\.key)).sorted() where text.contains("'\(key)'") || text.contains("\"\(key)\"") {
            if let origin = origin(of: key) { text += " (\(key) set by \(origin))" }
        }
        return text
    }

    /// `text` with the values of secret properties replaced by `[redacted]`.
    public func redact(_ text: String) -> String {
        var result = text
        for property in applied where Self.isSecret(property.key) && property.value.count >= 3 {
            result = result.replacingOccurrences(of: property.value, with: "[redacted]")
        }
        return result
    }

    /// Whether a property holds a secret: a password, a private key, a client secret, a
    /// token, or configuration that may embed one.
    public static func isSecret(_ key: String) -> Bool {
        RDKafkaConfig.isSecret(key)
    }

    /// Why a file could not be read, in a few words.
    private static func reason(_ path: String, _ error: any Error) -> String {
        var isDirectory: ObjCBool = false
        if !FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) { return "no such file" }
        if isDirectory.boolValue { return "it is a directory" }
        if !FileManager.default.isReadableFile(atPath: path) { return "permission denied" }
        return "not UTF-8 text, or \((error as NSError).localizedDescription)"
    }
}
