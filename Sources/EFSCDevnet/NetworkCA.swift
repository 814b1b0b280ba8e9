import EFSCBus
import Foundation

/// A network's certificate authority, made with the `openssl` tool: a CA
/// certificate, a server certificate for the broker, and one client
/// certificate per account (EC P-256 keys, files of mode 600). A client
/// reaches the broker's TLS listener only with a certificate this CA signed.
public struct NetworkCA: Sendable {
    /// The directory holding `ca.crt` and `ca.key`.
    public let dir: String
    public var certificate: String { dir + "/ca.crt" }
    var key: String { dir + "/ca.key" }

    /// Validity of the CA and of the certificates it issues, in days.
    public static let caDays = 3650
    public static let certificateDays = 825

    public init(dir: String) { self.dir = dir }

    /// Creates the CA and the broker's server certificate (names: DNS names
    /// or IP addresses the broker is reached by, besides localhost/127.0.0.1).
    public static func create(in dir: String, serverNames: [String] = []) throws -> NetworkCA {
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let ca = NetworkCA(dir: dir)
        try openssl([
            "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", ca.key, "-out", ca.certificate,
            "-days", String(caDays), "-subj", "/CN=EFSC network CA", "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        ])
        chmod(ca.key, 0o600)
        var sans = ["DNS:localhost", "IP:127.0.0.1"]
        for n in serverNames where !n.isEmpty {
            let san = n.allSatisfy({ $0.isNumber || $0 == "." }) ? "IP:\(n)" : "DNS:\(n)"
            if !sans.contains(san) { sans.append(san) }
        }
        try ca.issue(commonName: "EFSC broker", certificate: dir + "/server.crt", key: dir + "/server.key",
                     extensions: ["subjectAltName=\(sans.joined(separator: ","))", "extendedKeyUsage=serverAuth"])
        return ca
    }

    /// A client certificate for `account` (its common name).
    public func issueClient(_ account: String, certificate: String, key: String) throws {
        try issue(commonName: account, certificate: certificate, key: key, extensions: ["extendedKeyUsage=clientAuth"])
    }

    func issue(commonName: String, certificate: String, key k: String, extensions: [String]) throws {
        var args = [
            "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", k, "-out", certificate,
            "-days", String(Self.certificateDays), "-subj", "/CN=\(commonName)", "-CA", self.certificate, "-CAkey", key,
            "-addext", "basicConstraints=CA:FALSE",
        ]
        for e in extensions { args += ["-addext", e] }
        try Self.openssl(args)
        chmod(k, 0o600)
    }

    static func openssl(_ args: [String]) throws {
        guard let tool = BrokerProcess.which("openssl") else { throw DevnetError(.setup, "openssl not found (apt-get install openssl)") }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: tool)
        p.arguments = args
        p.standardOutput = FileHandle.nullDevice
        let err = Pipe()
        p.standardError = err
        try p.run()
        let e = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        guard p.terminationStatus == 0 else {
            throw DevnetError(.setup, "openssl \(args.prefix(2).joined(separator: " ")) failed: \(String(decoding: e, as: UTF8.self).suffix(300))")
        }
    }
}
