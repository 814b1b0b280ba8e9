import EFSCBus
import EFSCChannel
import EFSCCore
import Foundation

extension Devnet {
    /// A party's broker account, as `add-party` made it.
    public struct PartyAccount: Sendable {
        /// The account name: the last part of the party's DID, the `{party}`
        /// segment of its channel topics (topics.md).
        public let name: String
        public let did: String
        /// Its connection profile (mode 600): TLS URL, account, CA, certificate, key.
        public let profilePath: String
    }

    /// Longest account name accepted (DID method-specific ids are shorter).
    public static let maxAccountName = 128

    static func checkName(_ name: String) throws {
        guard (1...maxAccountName).contains(name.utf8.count),
            name.utf8.allSatisfy({ c in (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A) || c == 0x2D || c == 0x2E || c == 0x5F })
        else {
            throw DevnetError(.account, "account name '\(name.prefix(40))' must be 1...\(maxAccountName) characters of A-Z a-z 0-9 . _ -")
        }
    }

    func isReserved(_ name: String) -> Bool {
        func numbered(_ prefix: String) -> Bool {
            name.hasPrefix(prefix) && name.count > prefix.count && name.dropFirst(prefix.count).allSatisfy(\.isNumber)
        }
        return Self.reservedAccounts.contains(name) || numbered("node") || numbered("tcc")
    }

    /// Creates the broker account of the party `did` (role: every account's
    /// rights plus its own channel halves, reply and presence topics), with
    /// a client certificate and a profile in `parties/`. Takes effect at
    /// once, on the running broker (or, if the devnet is down, in its
    /// account file for the next start).
    public func addParty(did: String) async throws -> PartyAccount {
        guard did.hasPrefix("did:"), did.utf8.count <= 512 else { throw DevnetError(.invalid, "'\(did.prefix(60))' is not a DID") }
        let name = PartyName.of(did)
        try Self.checkName(name)
        guard !isReserved(name) else { throw DevnetError(.account, "account name '\(name)' is reserved") }
        let path = partyProfilePath(name)
        if FileManager.default.fileExists(atPath: path) { throw DevnetError(.account, "party \(name) already has an account (\(path)); remove-party first") }
        let oldMask = umask(0o077)
        defer { umask(oldMask) }
        try FileManager.default.createDirectory(atPath: partiesDir, withIntermediateDirectories: true)
        guard isSecure else {
            // An insecure devnet has no accounts: the profile is just the URL.
            var p = BrokerProfile(url: brokerURL)
            p.insecure = true
            try Self.write(path, p.json, private: true)
            return PartyAccount(name: name, did: did, profilePath: path)
        }
        guard let tls = brokerTLSURL else { throw DevnetError(.directory, "network.json has no brokerTLSPort") }
        let base = URL(fileURLWithPath: partiesDir).standardizedFileURL.path + "/" + name
        try NetworkCA(dir: brokerDir).issueClient(name, certificate: base + ".crt", key: base + ".key")
        let profile = BrokerProfile(
            url: tls, username: name, password: Hex.encode(Digest.randomBytes(18)), caFile: URL(fileURLWithPath: brokerDir).standardizedFileURL.path + "/ca.crt",
            certFile: base + ".crt", keyFile: base + ".key")
        try await administer { ds in try await ds.addAccount(name, password: profile.password ?? "", kind: .party) }
        var j = profile.json.objectValue ?? [:]
        j["did"] = .string(did)
        try Self.write(path, .object(j), private: true)
        return PartyAccount(name: name, did: did, profilePath: path)
    }

    /// Deletes a party's account: the broker drops its connection at once
    /// and refuses it from then on; its profile and certificate are deleted.
    public func removeParty(_ nameOrDID: String) async throws -> String {
        let name = nameOrDID.hasPrefix("did:") ? PartyName.of(nameOrDID) : nameOrDID
        try Self.checkName(name)
        guard !isReserved(name) else { throw DevnetError(.account, "'\(name)' is not a party (nodes and TCCs are rotated, not removed)") }
        if isSecure {
            do {
                try await administer { ds in try await ds.removeAccount(name) }
            } catch let e as DynamicSecurityError where e.code == .refused {
                throw DevnetError(.account, "no party account '\(name)' (\(e.message))")
            }
        }
        for ext in ["json", "crt", "key"] { try? FileManager.default.removeItem(atPath: "\(partiesDir)/\(name).\(ext)") }
        return name
    }

    /// New credentials for a node, TCC, party or the client/operator
    /// account: a new password (the broker drops the old connection at
    /// once) and a new client certificate, written where the account's
    /// configuration or profile names them. A running node or TCC is
    /// restarted with them. Returns the files rewritten.
    public func rotate(_ name: String) async throws -> [String] {
        try Self.checkName(name)
        let oldMask = umask(0o077)
        defer { umask(oldMask) }
        let configPath: String
        let isComponent = nodes.contains(name) || tccs.contains(name)
        if isComponent {
            configPath = "\(dir)/\(name)/config.json"
        } else if name == "client" {
            configPath = clientProfilePath
        } else if name == "operator" {
            configPath = operatorProfilePath
        } else if FileManager.default.fileExists(atPath: partyProfilePath(name)) {
            configPath = partyProfilePath(name)
        } else {
            throw DevnetError(.account, "no account '\(name)' in \(dir) (nodes, TCCs, client, operator, parties/)")
        }
        guard let data = FileManager.default.contents(atPath: configPath), var j = (try? JSONParser.parse([UInt8](data)))?.objectValue else {
            throw DevnetError(.directory, "cannot read \(configPath)")
        }
        var auth = isComponent ? (j["brokerAuth"]?.objectValue ?? [:]) : j
        guard let cert = auth["cert"]?.stringValue, let key = auth["key"]?.stringValue else {
            throw DevnetError(.invalid, "\(configPath) holds no broker account to rotate")
        }
        let password = Hex.encode(Digest.randomBytes(18))
        try NetworkCA(dir: brokerDir).issueClient(name, certificate: cert, key: key)
        auth["password"] = .string(password)
        if isComponent { j["brokerAuth"] = .object(auth) } else { j = auth }
        let wasRunning = isComponent ? pid(name) : nil
        try await administer { ds in try await ds.rotatePassword(name, password: password) }
        try Self.write(configPath, .object(j), private: true)
        if let p = wasRunning {
            if !Self.stop(p, signal: SIGTERM) { _ = Self.stop(p, signal: SIGKILL) }
            _ = try startNode(name)
        }
        return [configPath, cert, key]
    }
}

extension Devnet {
    /// A connected client of the party `did`: its account is added first if
    /// it has none (`addParty`). On an insecure devnet, an anonymous client.
    public func connect(party did: String, configure: (inout MQTTConfiguration) -> Void = { _ in }) async throws -> MQTTClient {
        let name = PartyName.of(did)
        if !FileManager.default.fileExists(atPath: partyProfilePath(name)) { _ = try await addParty(did: did) }
        return try await connect(profile: partyProfilePath(name), configure: configure)
    }

    /// A connected client of the profile at `path` (fail-fast publishing
    /// unless `configure` says otherwise).
    public func connect(profile path: String, configure: (inout MQTTConfiguration) -> Void = { _ in }) async throws -> MQTTClient {
        var c = try profile(path).configuration(fallbackClientID: "efsc-\(Hex.encode(Digest.randomBytes(5)))")
        c.offlinePolicy = .failFast
        configure(&c)
        let client = try MQTTClient(c)
        try await client.connect()
        return client
    }
}
