import ArgumentParser
import Dispatch
import EFSCCore
import EFSCCredentials
import EFSCIdentity

/// `efsc bench …`: throughput against the raw limit, measured in the same run.
struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench", abstract: "Benchmarks (each prints the raw limit it is compared with, and the ratio).",
        subcommands: [Issue.self, Verify.self, BenchBus.self, BenchOnchain.self, BenchChannels.self, BenchReplay.self])

    struct Common: ParsableArguments {
        @Option(name: .long, help: "Comma-separated claim sizes in bytes (canonical JSON of credentialSubject).")
        var claimBytes = "1024,2048,4096"
        @Option(name: .long, help: "Seconds of measurement per claim size (split evenly between the VC and raw runs).")
        var seconds: Double = 4
        @Option(name: .long, help: "Worker threads (default: the number of cores).") var threads: Int?
        @Option(name: .long, help: "Alternating measurement rounds; medians are reported.") var rounds = 5
        @Flag(name: .long, help: "Print a JSON array, one object per claim size.") var json = false

        func sizes() throws -> [Int] {
            let s = claimBytes.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
            guard !s.isEmpty, s.allSatisfy({ ($0 ?? 0) >= 256 && ($0 ?? 0) <= 1 << 20 }) else {
                throw CLIError("--claim-bytes must be a comma-separated list of sizes between 256 and 1048576")
            }
            return s.map { $0! }
        }

        func validate() throws {
            guard seconds > 0, seconds <= 3600 else { throw ValidationError("--seconds must be in (0, 3600]") }
            guard rounds >= 1, rounds <= 101 else { throw ValidationError("--rounds must be 1...101") }
            if let t = threads, t < 1 || t > 256 { throw ValidationError("--threads must be 1...256") }
        }

        var threadCount: Int { threads ?? BenchSupport.cores }
    }

    struct Issue: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Signed VCs issued per second vs the raw Ed25519 sign rate (paper Table II).",
            discussion: """
                One issued VC = build a VC 2.0 TransactionSettlementCredential with a fresh urn:uuid id around a claim
                of the given size, add an eddsa-jcs-2022 proof (JCS of proof options and document, two SHA-256,
                one Ed25519 signature), and serialise the signed VC to bytes. The raw rate is swift-crypto's Ed25519
                sign over a message of the same size, on the same threads, alternating rounds; medians are reported.
                Paper (24-core Xeon, WeIdentity): 11,566 / 11,340 / 11,109 VCs/s for 1/2/4 KB. Target: ratio ≥ 0.5.
                """)
        @OptionGroup var common: Common

        func run() async throws {
            let sizes = try common.sizes()
            let key = Ed25519SecretKey()
            let vm = DIDKey.verificationMethod(for: key.publicKey)
            let issuer = DIDKey.did(for: key.publicKey)
            var rows: [BenchSupport.Row] = []
            for size in sizes {
                let claimBytes = try JCS.canonicalize(BenchSupport.claim(bytes: size))
                let message = Digest.randomBytes(size)
                let seed = key.seed
                // Each thread gets its own claim, key and strings, as each TCC
                // request would: shared objects would measure refcount contention.
                let (vc, raw) = BenchSupport.measure(
                    threads: common.threadCount, seconds: common.seconds, rounds: common.rounds,
                    work: {
                        let claim = try! JSONParser.parse(claimBytes)
                        let key = try! Ed25519SecretKey(seed: seed)
                        let issuer = String(decoding: Array(issuer.utf8), as: UTF8.self)
                        let vm = String(decoding: Array(vm.utf8), as: UTF8.self)
                        return {
                            let cred = VerifiableCredential(
                                types: [TSC.type], issuer: issuer, validFrom: "2026-01-01T00:00:00Z", subject: claim)
                            let signed = try! EddsaJcs2022.addProof(
                                to: cred.json, options: .init(verificationMethod: vm), key: key)
                            var w = JSONWriter(mode: .compact)
                            w.out.reserveCapacity(claimBytes.count + 1024)
                            try! w.write(.object(signed))
                            return w.out.count
                        }
                    },
                    raw: {
                        let key = try! Ed25519SecretKey(seed: seed)
                        let message = Array(message)
                        return { try! key.sign(message).count }
                    })
                rows.append(.init(claimBytes: size, rate: vc, raw: raw))
            }
            BenchSupport.print(
                rows, json: common.json, rateKey: "vcsPerSecond", rawKey: "rawSignsPerSecond", threads: common.threadCount,
                title: "VC issuance (eddsa-jcs-2022) vs raw Ed25519 sign, swift-crypto",
                paper: [1024: 11566, 2048: 11340, 4096: 11109])
        }
    }

    struct Verify: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "VC verifications per second vs the raw Ed25519 verify rate.",
            discussion: """
                One verification = parse the signed VC's bytes, find the proof, resolve its did:key verification
                method (cached, as a verifier would) and check the eddsa-jcs-2022 proof. The raw rate is swift-crypto's
                Ed25519 verify over a message of the claim size, on the same threads; medians are reported.
                JSON keys: claimBytes, verificationsPerSecond (also as vcsPerSecond), rawVerifiesPerSecond, ratio.
                """)
        @OptionGroup var common: Common

        func run() async throws {
            let sizes = try common.sizes()
            let key = Ed25519SecretKey()
            let vm = DIDKey.verificationMethod(for: key.publicKey)
            let issuer = DIDKey.did(for: key.publicKey)
            var rows: [BenchSupport.Row] = []
            for size in sizes {
                let cred = VerifiableCredential(types: [TSC.type], issuer: issuer, validFrom: "2026-01-01T00:00:00Z", subject: BenchSupport.claim(bytes: size))
                let signed = try EddsaJcs2022.addProof(to: cred.json, options: .init(verificationMethod: vm), key: key)
                var w = JSONWriter(mode: .compact)
                try w.write(.object(signed))
                let bytes = w.out
                let message = Digest.randomBytes(size)
                let sig = try key.sign(message)
                let pubRaw = key.publicKey.raw
                let (rate, raw) = BenchSupport.measure(
                    threads: common.threadCount, seconds: common.seconds, rounds: common.rounds,
                    work: {
                        let bytes = Array(bytes)
                        return {
                        let doc = try! JSONParser.parse(bytes).objectValue!
                        let proof = EddsaJcs2022.proofs(of: doc)[0]
                        let method = proof["verificationMethod"]!.stringValue!
                        let k = try! DIDKey.resolve(DIDSyntax.did(ofURL: method)).signingKey(method, for: .assertionMethod)
                        do {
                            try EddsaJcs2022.verifyProof(document: doc, proof: proof, key: k)
                            return 1
                        } catch {
                            fatalError("benchmark credential failed to verify: \(error)")
                        }
                        }
                    },
                    raw: {
                        let pub = try! Ed25519PublicKey(raw: pubRaw)
                        let message = Array(message)
                        let sig = Array(sig)
                        return { pub.isValidSignature(sig, for: message) ? 1 : 0 }
                    })
                rows.append(.init(claimBytes: size, rate: rate, raw: raw))
            }
            BenchSupport.print(
                rows, json: common.json, rateKey: "verificationsPerSecond", rawKey: "rawVerifiesPerSecond", threads: common.threadCount,
                title: "VC verification (eddsa-jcs-2022) vs raw Ed25519 verify, swift-crypto", paper: [:], alias: "vcsPerSecond")
        }
    }
}

/// Timing loops shared by the benchmarks.
enum BenchSupport {
    static var cores: Int {
        #if canImport(Glibc)
        return max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))
        #else
        return 2
        #endif
    }

    struct Row {
        let claimBytes: Int
        let rate: Double
        let raw: Double
        var ratio: Double { raw > 0 ? rate / raw : 0 }
    }

    static func monotonic() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }

    final class Counts: @unchecked Sendable {
        var ops: [Int]
        var sink: [Int]
        init(_ n: Int) {
            ops = Array(repeating: 0, count: n)
            sink = Array(repeating: 0, count: n)
        }
    }

    /// A per-thread operation: called once on each worker to set up its own state.
    typealias Work = @Sendable () -> () -> Int

    /// Operations per second of the work on `threads` threads for `seconds`.
    static func rate(threads: Int, seconds: Double, _ make: Work) -> Double {
        let counts = Counts(threads)
        let start = monotonic()
        let deadline = start + seconds
        DispatchQueue.concurrentPerform(iterations: threads) { t in
            let body = make()
            var n = 0
            var s = 0
            repeat {
                for _ in 0..<16 { s &+= body() }
                n += 16
            } while monotonic() < deadline
            counts.ops[t] = n
            counts.sink[t] = s
        }
        let elapsed = monotonic() - start
        return Double(counts.ops.reduce(0, +)) / elapsed
    }

    /// Alternates `raw` and `work` rounds; returns (median work rate, median raw rate).
    static func measure(
        threads: Int, seconds: Double, rounds: Int, work: Work, raw: Work
    ) -> (Double, Double) {
        let slice = seconds / Double(2 * rounds)
        _ = rate(threads: threads, seconds: min(0.2, slice), work)  // warm-up
        var w: [Double] = []
        var r: [Double] = []
        for _ in 0..<rounds {
            r.append(rate(threads: threads, seconds: slice, raw))
            w.append(rate(threads: threads, seconds: slice, work))
        }
        return (median(w), median(r))
    }

    /// The median; 0 for no values.
    static func median(_ xs: [Double]) -> Double {
        guard !xs.isEmpty else { return 0 }
        let s = xs.sorted()
        return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
    }

    /// A TST-shaped claim padded with extra fields to exactly `bytes` of canonical JSON.
    static func claim(bytes: Int) -> JSON {
        var o: JSONObject = [
            "providerDid": "did:key:z6MkrJVnaZkeFzdQyMZu1cgjg7k1pZZ6pvBQ7XJPt4swbTQ2",
            "consumerDid": "did:key:z6MkhWqdDBPojHA7cprTGTt5yHv5yUi1B8cnXn8ReLumkw6E",
            "channelId": "ch-000001", "sequence": 1, "usage": 0.25, "fee": 1.75,
            "start": "2026-01-01T00:00:00Z", "end": "2026-01-01T00:01:00Z", "encryptionMethod": "HPKE-X25519-SHA256-ChaCha20Poly1305",
        ]
        func size() -> Int { (try? JCS.canonicalize(.object(o)).count) ?? 0 }
        var i = 0
        while size() < bytes {
            let key = "metric\(String(1000 + i).dropFirst())"
            o[key] = .string(String(repeating: "x", count: 40))
            if size() > bytes {
                let over = size() - bytes
                o[key] = .string(String(repeating: "x", count: max(0, 40 - over)))
            }
            i += 1
        }
        return .object(o)
    }

    static func print(
        _ rows: [Row], json: Bool, rateKey: String, rawKey: String, threads: Int, title: String, paper: [Int: Double], alias: String? = nil
    ) {
        if json {
            let arr: [JSON] = rows.map { r in
                var o: JSONObject = [
                    "claimBytes": .number(Double(r.claimBytes)), .init(rateKey): .number(r.rate.rounded()),
                    .init(rawKey): .number(r.raw.rounded()), "ratio": .number((r.ratio * 1000).rounded() / 1000),
                    "threads": .number(Double(threads)),
                ]
                if let a = alias { o[a] = .number(r.rate.rounded()) }
                if let p = paper[r.claimBytes] { o["paperVcsPerSecond"] = .number(p) }
                return .object(o)
            }
            Output.line(JSON.array(arr).prettyString())
            return
        }
        Output.line("\(title); \(threads) thread(s), medians")
        Output.line(pad("claimBytes", 11) + pad(rateKey, 24) + pad(rawKey, 22) + pad("ratio", 8) + (paper.isEmpty ? "" : "paper(24 cores)"))
        for r in rows {
            Output.line(
                pad(String(r.claimBytes), 11) + pad(String(Int(r.rate)), 24) + pad(String(Int(r.raw)), 22)
                    + pad(String(format: "%.3f", r.ratio), 8) + (paper[r.claimBytes].map { String(Int($0)) } ?? ""))
        }
    }

    static func pad(_ s: String, _ n: Int) -> String { s.count >= n ? s + " " : s + String(repeating: " ", count: n - s.count) }
}

#if canImport(Glibc)
import Glibc
#endif
import Foundation
