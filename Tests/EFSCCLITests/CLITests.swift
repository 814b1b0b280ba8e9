import EFSCCore
import EFSCIdentity
import Foundation
import Testing

/// Drives the real `efsc` binary as a user's script would: exact flags,
/// exit codes, stdout and one-line stderr errors.
@Suite struct CLITests {
    static let binary: String = {
        if let b = ProcessInfo.processInfo.environment["EFSC_BIN"] { return b }
        // The efsc of the same build as this test bundle (debug or release):
        // it lies beside the bundle in the build directory.
        let bundle = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        var dir = bundle.deletingLastPathComponent()
        for _ in 0..<3 {
            let candidate = dir.appendingPathComponent("efsc").path
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
            dir = dir.deletingLastPathComponent()
        }
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        return root.appendingPathComponent(".build/debug/efsc").path
    }()

    struct Result {
        let code: Int32
        let out: String
        let err: String
        var json: JSON? { try? JSONParser.parse(out) }
    }

    @discardableResult
    func efsc(_ args: [String], stdin: String? = nil) throws -> Result {
        #expect(FileManager.default.isExecutableFile(atPath: Self.binary), "build efsc first (swift build)")
        let p = Process()
        p.executableURL = URL(fileURLWithPath: Self.binary)
        p.arguments = args
        let o = Pipe()
        let e = Pipe()
        let i = Pipe()
        p.standardOutput = o
        p.standardError = e
        p.standardInput = i
        try p.run()
        if let s = stdin { i.fileHandleForWriting.write(Data(s.utf8)) }
        try i.fileHandleForWriting.close()
        let od = o.fileHandleForReading.readDataToEndOfFile()
        let ed = e.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return Result(code: p.terminationStatus, out: String(decoding: od, as: UTF8.self), err: String(decoding: ed, as: UTF8.self))
    }

    func tempFile(_ name: String, _ content: String) throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("efsc-cli-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let p = dir.appendingPathComponent(name).path
        try content.write(toFile: p, atomically: true, encoding: .utf8)
        return p
    }

    /// `devnet init --broker-url` (Compose) writes that URL into every node's and the TCC's configuration,
    /// with each one's own account and certificate; a plain URL off loopback is refused.
    @Test func devnetInitWithABrokerURLForCompose() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("efsc-compose-\(UUID().uuidString.prefix(8))").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let r = try efsc(["devnet", "init", "--dir", dir, "--broker-url", "mqtts://broker:8883", "--broker-hosts", "broker"])
        #expect(r.code == 0, "\(r.err)")
        var users: Set<String> = []
        for f in ["node1/config.json", "node4/config.json", "tcc1/config.json"] {
            let j = try JSONParser.parse(try String(contentsOfFile: "\(dir)/\(f)", encoding: .utf8))
            #expect(j["broker"]?.stringValue == "mqtts://broker:8883", "\(f)")
            let auth = j["brokerAuth"]
            for k in ["ca", "cert", "key"] { #expect(FileManager.default.fileExists(atPath: auth?[k]?.stringValue ?? "-"), "\(f) \(k)") }
            users.insert(auth?["username"]?.stringValue ?? "")
            let mode = (try FileManager.default.attributesOfItem(atPath: "\(dir)/\(f)")[.posixPermissions] as? Int) ?? 0
            #expect(mode == 0o600, "\(f) is mode \(String(mode, radix: 8))")
        }
        #expect(users == ["node1", "node4", "tcc1"])
        let bad = try efsc(["devnet", "init", "--dir", dir + "-bad", "--broker-url", "http://x"])
        #expect(bad.code == 1 && bad.err.hasPrefix("error:"))
        let plain = try efsc(["devnet", "init", "--dir", dir + "-plain", "--broker-url", "mqtt://broker:1883"])
        #expect(plain.code == 1 && plain.err.contains("mqtts://"), "\(plain.err)")
        for d in ["-bad", "-plain"] { try? FileManager.default.removeItem(atPath: dir + d) }
    }

    @Test func keyGenerate() throws {
        let r = try efsc(["key", "generate"])
        #expect(r.code == 0)
        let j = try #require(r.json)
        let pk = try #require(j["publicKeyMultibase"]?.stringValue)
        let sk = try #require(j["secretKeyMultibase"]?.stringValue)
        #expect(j["did"]?.stringValue == "did:key:" + pk)
        #expect(try Ed25519SecretKey(multibase: sk).publicKey.multibase == pk)
    }

    @Test func canonicalize() throws {
        let r = try efsc(["json", "canonicalize", "-"], stdin: #"{"b": [1E30, 4.50], "a": "\u20ac"}"#)
        #expect(r.code == 0)
        #expect(r.out == #"{"a":"€","b":[1e+30,4.5]}"#)  // no trailing newline
        let file = try tempFile("x.json", #"{"z":1,"y":[true,null]}"#)
        #expect(try efsc(["json", "canonicalize", file]).out == #"{"y":[true,null],"z":1}"#)
        let bad = try efsc(["json", "canonicalize"], stdin: #"{"a":1,"a":2}"#)
        #expect(bad.code == 2)
        #expect(bad.err.split(separator: "\n").count == 1)
        #expect(bad.err.contains("duplicate key \"a\""))
        let missing = try efsc(["json", "canonicalize", "/nonexistent/file.json"])
        #expect(missing.code == 2)
        #expect(missing.err.contains("no such file"))
    }

    static let w3cSecret = "z3u2en7t5LR2WtQH5PfFqMqwVHBeXouLzo6haApm8XHqvjxq"
    static let w3cPublic = "z6MkrJVnaZkeFzdQyMZu1cgjg7k1pZZ6pvBQ7XJPt4swbTQ2"
    static let credential = """
        {"@context":["https://www.w3.org/ns/credentials/v2","https://www.w3.org/ns/credentials/examples/v2"],
         "id":"urn:uuid:58172aac-d8ba-11ed-83dd-0b3aef56cc33","type":["VerifiableCredential","AlumniCredential"],
         "name":"Alumni Credential","description":"A minimum viable example of an Alumni Credential.",
         "issuer":"https://vc.example/issuers/5678","validFrom":"2023-01-01T00:00:00Z",
         "credentialSubject":{"id":"did:example:abcdefgh","alumniOf":"The School of Examples"}}
        """

    @Test func signReproducesW3CVectorAndVerifies() throws {
        let vm = "https://vc.example/issuers/5678#\(Self.w3cPublic)"
        let r = try efsc(
            ["vc", "sign", "--secret-key", Self.w3cSecret, "--verification-method", vm, "--created", "2023-02-24T23:36:38Z", "-"],
            stdin: Self.credential)
        #expect(r.code == 0, "\(r.err)")
        let signed = try #require(r.json)
        #expect(signed["proof"]?["proofValue"]?.stringValue == "z63t83Y53KfzJ5ZosfKTnqfMcKB2dmTrfjSaQjeNNjAD5srBowQfmWqeRb8rRjmeEuCBEsddF9LsVogtuTsijJKh4")
        // The https method cannot be resolved: invalid without a key, valid with it.
        let noKey = try efsc(["vc", "verify"], stdin: r.out)
        #expect(noKey.code == 1)
        let ok = try efsc(["vc", "verify", "--public-key", Self.w3cPublic], stdin: r.out)
        #expect(ok.code == 0, "\(ok.out)\(ok.err)")
        #expect(ok.out.hasPrefix("valid"))
    }

    @Test func verifyExitCodes() throws {
        let vm = "did:key:\(Self.w3cPublic)#\(Self.w3cPublic)"
        let signed = try efsc(["vc", "sign", "--secret-key", Self.w3cSecret, "--verification-method", vm], stdin: Self.credential).out
        #expect(try efsc(["vc", "verify"], stdin: signed).code == 0)
        let tampered = signed.replacingOccurrences(of: "The School of Examples", with: "The School of Forgery")
        let bad = try efsc(["vc", "verify"], stdin: tampered)
        #expect(bad.code == 1)
        #expect(bad.out == "invalid: proof[0]: signature does not verify (document or proof was altered, or wrong key)\n")
        let j = try efsc(["vc", "verify", "--json"], stdin: tampered)
        #expect(j.json?["valid"] == false)
        #expect(j.json?["proofs"]?.arrayValue?.first?["valid"] == false)
        #expect(try efsc(["vc", "verify"], stdin: "{not json").code == 2)
        #expect(try efsc(["vc", "verify"], stdin: "[1,2]").code == 2)
        #expect(try efsc(["vc", "verify", "--public-key", "nonsense"], stdin: signed).code == 2)
        // Expired credentials are invalid.
        let expired = signed.replacingOccurrences(of: "\"validFrom\"", with: "\"validUntil\": \"2023-06-01T00:00:00Z\", \"validFrom\"")
        let resigned = try efsc(["vc", "sign", "--secret-key", Self.w3cSecret, "--verification-method", vm], stdin: try stripProof(expired)).out
        let e = try efsc(["vc", "verify"], stdin: resigned)
        #expect(e.code == 1)
        #expect(e.out.contains("expired"))
        // A key that is not the method's did:key is refused before signing.
        let mismatch = try efsc(["vc", "sign", "--secret-key", Ed25519SecretKey().multibase, "--verification-method", vm], stdin: Self.credential)
        #expect(mismatch.code == 2)
        #expect(mismatch.err.contains("is not the did:key of --secret-key"))
    }

    func stripProof(_ text: String) throws -> String {
        var o = try JSONParser.parse(text).objectValue!
        o["proof"] = nil
        return JSON.object(o).compactString()
    }

    @Test func proofSetAndChainFromCLI() throws {
        let a = Ed25519SecretKey()
        let b = Ed25519SecretKey()
        let one = try efsc(
            ["vc", "sign", "--secret-key", a.multibase, "--verification-method", DIDKey.verificationMethod(for: a.publicKey), "--proof-id", "urn:p:a"],
            stdin: Self.credential)
        let two = try efsc(
            ["vc", "sign", "--secret-key", b.multibase, "--verification-method", DIDKey.verificationMethod(for: b.publicKey), "--previous-proof", "urn:p:a"],
            stdin: one.out)
        #expect(two.json?["proof"]?.arrayValue?.count == 2)
        let v = try efsc(["vc", "verify"], stdin: two.out)
        #expect(v.code == 0, "\(v.out)")
        #expect(v.out.contains("2 proofs verified"))
    }

    @Test func templateValidate() throws {
        let claim = try tempFile(
            "c.json", #"{"providerDid":"bob","consumerDid":"did:key:z6MkrJVnaZkeFzdQyMZu1cgjg7k1pZZ6pvBQ7XJPt4swbTQ2","channelId":"c","sequence":0,"usage":1,"fee":-2,"start":"2026-01-01T00:00:00Z","end":"x","colour":"red"}"#)
        let r = try efsc(["template", "validate", "--template", "urn:efsc:template:tst", claim])
        #expect(r.code == 1)
        let lines = r.out.split(separator: "\n").map(String.init)
        #expect(lines.contains { $0.hasPrefix("$.providerDid:") })
        #expect(lines.contains { $0.hasPrefix("$.sequence:") })
        #expect(lines.contains { $0.hasPrefix("$.fee:") })
        #expect(lines.contains { $0.hasPrefix("$.end:") })
        #expect(lines.contains { $0.hasPrefix("$.encryptionMethod:") })
        #expect(lines.contains { $0.hasPrefix("$.colour:") })
        let tmpl = try tempFile("t.json", try efsc(["template", "show", "tst"]).out)
        let good = try tempFile(
            "g.json", #"{"providerDid":"did:key:z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp","consumerDid":"did:key:z6MkrJVnaZkeFzdQyMZu1cgjg7k1pZZ6pvBQ7XJPt4swbTQ2","channelId":"c","sequence":1,"usage":1,"fee":2,"start":"2026-01-01T00:00:00Z","end":"2026-01-01T00:01:00Z","encryptionMethod":"none"}"#)
        let ok = try efsc(["template", "validate", "--template", tmpl, good])
        #expect(ok.code == 0, "\(ok.out)")
        let badTemplate = try tempFile("bt.json", #"{"id":"x","version":1,"owner":"nobody","fields":{}}"#)
        #expect(try efsc(["template", "validate", "--template", badTemplate, good]).code == 2)
    }

    /// The paper's settlement flow end to end through the CLI, offline.
    @Test func settlementFlow() throws {
        var dids: [(did: String, sk: String, log: String)] = []
        for name in ["provider", "consumer", "tcc"] {
            let log = try tempFile("\(name).log.json", "")
            let r = try efsc(["did", "create", "--network", "test", "--log", log])
            #expect(r.code == 0, "\(r.err)")
            let j = try #require(r.json)
            dids.append((j["did"]!.stringValue!, j["secretKeyMultibase"]!.stringValue!, log))
        }
        let docs = dids.flatMap { ["--did-document", $0.log] }
        let claim = try tempFile(
            "claim.json",
            JSON.object([
                "providerDid": .string(dids[0].did), "consumerDid": .string(dids[1].did), "channelId": "ch-9", "sequence": 1,
                "usage": 1.5, "fee": 18.75, "start": "2026-01-01T10:00:00Z", "end": "2026-01-01T10:05:00Z", "encryptionMethod": "none",
            ]).compactString())
        let p = try efsc(["tsc", "propose", "--secret-key", dids[0].sk, "--verification-method", "\(dids[0].did)#key-1", "--tcc", dids[2].did, claim])
        #expect(p.code == 0, "\(p.err)")
        let c = try efsc(["tsc", "countersign", "--secret-key", dids[1].sk, "--verification-method", "\(dids[1].did)#key-1"] + docs + ["-"], stdin: p.out)
        #expect(c.code == 0, "\(c.err)")
        let i = try efsc(["tsc", "issue", "--secret-key", dids[2].sk, "--verification-method", "\(dids[2].did)#key-1"] + docs + ["-"], stdin: c.out)
        #expect(i.code == 0, "\(i.err)")
        let file = try tempFile("tsc.json", i.out)
        let v = try efsc(["tsc", "verify"] + docs + ["--trusted-tcc", dids[2].did, file])
        #expect(v.code == 0, "\(v.out)")
        #expect(v.out.hasSuffix("valid\n"))
        let vj = try efsc(["tsc", "verify", "--json"] + docs + [file])
        #expect(vj.json?["valid"] == true)
        // Without the TCC's DID document the first step of Eq. (1) fails.
        let partial = try efsc(["tsc", "verify", "--json", "--did-document", dids[0].log, "--did-document", dids[1].log, file])
        #expect(partial.code == 1)
        #expect(partial.json?["failedStep"] == "tcc-proof")
        #expect(partial.json?["failedEquation"] == 1)
        // The generic verifier agrees (all three proofs).
        #expect(try efsc(["vc", "verify"] + docs + [file]).code == 0)
    }

    @Test func benchJSONShape() throws {
        let r = try efsc(["bench", "issue", "--claim-bytes", "1024,2048", "--seconds", "0.2", "--rounds", "1", "--threads", "1", "--json"])
        #expect(r.code == 0, "\(r.err)")
        let rows = try #require(r.json?.arrayValue)
        #expect(rows.count == 2)
        for (row, size) in zip(rows, [1024, 2048]) {
            #expect(row["claimBytes"]?.intValue == size)
            for k in ["vcsPerSecond", "rawSignsPerSecond", "ratio"] { #expect((row[k]?.doubleValue ?? 0) > 0, "\(k)") }
        }
        let v = try efsc(["bench", "verify", "--claim-bytes", "1024", "--seconds", "0.2", "--rounds", "1", "--threads", "1", "--json"])
        #expect(v.code == 0, "\(v.err)")
        let row = try #require(v.json?.arrayValue?.first)
        for k in ["claimBytes", "verificationsPerSecond", "rawVerifiesPerSecond", "ratio"] { #expect(row[k] != nil, "\(k)") }
        #expect(try efsc(["bench", "issue", "--claim-bytes", "12"]).code != 0)
    }

    @Test func benchOnchainReplicaFloorAndBadOptions() throws {
        let r = try efsc(["bench", "onchain", "--floor-only", "--m", "1,4", "--batch", "16", "--floor-seconds", "0.2", "--json"])
        #expect(r.code == 0, "\(r.err)")
        let rows = try #require(r.json?.arrayValue)
        #expect(rows.map { $0["m"]?.intValue } == [1, 4])
        for row in rows { #expect((row["replicaEvidencesPerSecond"]?.doubleValue ?? 0) > 0) }
        for bad in [["--nodes", "5"], ["--in-flight", "0"], ["--batch", "0"], ["--m", "0"], ["--m", "4,x"], ["--rate", "0"], ["--floor-seconds=-1"]] {
            let b = try efsc(["bench", "onchain", "--floor-only"] + bad)
            #expect(b.code == 1, "\(bad)")
            #expect(b.err.contains("must"), "\(bad): \(b.err)")
        }
    }

    @Test func helpAndErrors() throws {
        for cmd in [["--help"], ["vc", "sign", "--help"], ["vc", "verify", "--help"], ["template", "validate", "--help"], ["bench", "issue", "--help"]] {
            let r = try efsc(cmd)
            #expect(r.code == 0)
            #expect(r.out.contains("USAGE"))
        }
        let r = try efsc(["no-such-command"])
        #expect(r.code != 0)
        #expect(!r.err.contains("Fatal error"))
        let d = try efsc(["did", "resolve", "did:efsc:test:unknown"])
        #expect(d.code == 1)
        #expect(d.err == "error: unknown DID 'did:efsc:test:unknown'\n")
    }
}
