import ArgumentParser
import EFSCCore
import Foundation

/// A user-facing failure: printed as one line, exit code chosen by the command.
struct CLIError: Error, CustomStringConvertible {
    let message: String
    init(_ m: String) { message = m }
    var description: String { message }
}

/// Reading inputs and writing outputs the same way in every command.
enum Output {
    /// Largest input file accepted (64 MiB), as documented in the README.
    static let maxInputBytes = JSONParser.defaultMaxBytes

    static func line(_ s: String) {
        FileHandle.standardOutput.write(Data((s + "\n").utf8))
    }

    static func raw(_ bytes: [UInt8]) {
        FileHandle.standardOutput.write(Data(bytes))
    }

    static func error(_ s: String) {
        FileHandle.standardError.write(Data(("error: " + s + "\n").utf8))
    }

    /// A line on standard error that is not a failure: progress, warnings, log lines.
    static func note(_ s: String) {
        FileHandle.standardError.write(Data((s + "\n").utf8))
    }

    /// Bytes of FILE, or of standard input for `-` or no argument.
    static func read(_ path: String?) throws -> [UInt8] {
        if path == nil || path == "-" {
            let d = FileHandle.standardInput.readDataToEndOfFile()
            guard d.count <= maxInputBytes else { throw CLIError("standard input exceeds \(maxInputBytes) bytes") }
            return Array(d)
        }
        let p = path!
        guard FileManager.default.fileExists(atPath: p) else { throw CLIError("\(p): no such file") }
        // FileHandle also reads pipes and process substitutions (/dev/fd/N).
        guard let h = FileHandle(forReadingAtPath: p) else { throw CLIError("\(p): cannot read file (permission denied?)") }
        defer { try? h.close() }
        let d: Data
        do {
            d = try h.read(upToCount: maxInputBytes + 1) ?? Data()
        } catch {
            throw CLIError("\(p): cannot read file: \(error.localizedDescription)")
        }
        guard d.count <= maxInputBytes else { throw CLIError("\(p): file exceeds \(maxInputBytes) bytes") }
        return Array(d)
    }

    /// Parsed JSON of FILE/stdin, with the source named in errors.
    static func readJSON(_ path: String?) throws -> JSON {
        let b = try read(path)
        do {
            return try JSONParser.parse(b)
        } catch {
            throw CLIError("\(path == nil || path == "-" ? "<stdin>" : path!): \(error.description)")
        }
    }

    static func readObject(_ path: String?, what: String) throws -> JSONObject {
        let j = try readJSON(path)
        guard let o = j.objectValue else { throw CLIError("\(what) must be a JSON object, got \(j.kindName)") }
        return o
    }

    static func write(_ path: String, _ text: String) throws {
        do {
            try text.write(toFile: path, atomically: true, encoding: .utf8)
        } catch {
            throw CLIError("\(path): cannot write: \(error.localizedDescription)")
        }
    }
}

/// Runs `body`; a failure prints one line on stderr and exits with `code`.
func exitOnError<T>(code: Int32, _ body: () async throws -> T) async throws -> T {
    do {
        return try await body()
    } catch let e as ExitCode {
        throw e
    } catch {
        Output.error("\(error)")
        throw ExitCode(code)
    }
}
