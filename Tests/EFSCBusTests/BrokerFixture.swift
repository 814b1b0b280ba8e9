import Foundation
@testable import EFSCBus

/// Starts a real mosquitto from a broker/ configuration on free loopback
/// ports for one test, and always stops it.
enum BrokerFixture {
    static let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path

    static func tempDir(_ tag: String) -> String {
        let d = FileManager.default.temporaryDirectory.appendingPathComponent("efsc-\(tag)-\(UUID().uuidString.prefix(8))").path
        try? FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
        return d
    }

    /// A dev.conf broker for the duration of `body`.
    static func withDevBroker<T>(_ body: (BrokerProcess) async throws -> T) async throws -> T {
        let dir = tempDir("broker")
        let b = try BrokerProcess(template: repo + "/broker/dev.conf", dir: dir)
        try b.start()
        defer {
            b.stop()
            try? FileManager.default.removeItem(atPath: dir)
        }
        return try await body(b)
    }

    static func client(_ url: String, _ id: String, configure: (inout MQTTConfiguration) -> Void = { _ in }) async throws -> MQTTClient {
        var c = try MQTTConfiguration(url: url, clientID: id)
        configure(&c)
        let client = try MQTTClient(c)
        try await client.connect()
        return client
    }

    /// Runs a shell script from broker/.
    static func script(_ name: String, _ args: [String]) throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/bash")
        p.arguments = [repo + "/broker/" + name] + args
        p.standardOutput = FileHandle.nullDevice
        let err = Pipe()
        p.standardError = err
        try p.run()
        p.waitUntilExit()
        if p.terminationStatus != 0 {
            let e = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            throw BrokerError(message: "\(name) failed: \(e)")
        }
    }
}

/// Collects messages from a handler running on the network thread.
final class Inbox: @unchecked Sendable {
    private let lock = NSLock()
    private var items: [MQTTMessage] = []

    func add(_ m: MQTTMessage) { lock.withLock { items.append(m) } }
    var messages: [MQTTMessage] { lock.withLock { items } }
    var count: Int { lock.withLock { items.count } }

    /// Waits until `n` messages arrived or `timeout` passed.
    func wait(for n: Int, timeout: Double = 10) async -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while count < n && Date() < deadline { try? await Task.sleep(nanoseconds: 10_000_000) }
        return count >= n
    }
}
