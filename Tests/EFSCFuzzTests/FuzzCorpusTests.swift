import EFSCCore
import EFSCFuzz
import Foundation
import Testing

/// Every input in `fuzz/corpus/<target>/` (the seeds, and every crash or
/// timeout a fuzzer ever found, kept as `regress-*`) runs through its target
/// in the suite: what once broke a node stays fixed. With
/// `EFSC_WRITE_FUZZ_SEEDS=1` (`make fuzz-seeds`) the generated seeds are
/// (re)written there first.
@Suite struct FuzzCorpusTests {
    static let corpus = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("fuzz/corpus").path

    @Test func generatedSeedsRunAndAreCommitted() throws {
        let seeds = try FuzzSeeds.all()
        #expect(Set(seeds.keys) == Set(FuzzTarget.allCases), "every target has seeds")
        for (target, inputs) in seeds {
            let dir = "\(Self.corpus)/\(target.rawValue)"
            if ProcessInfo.processInfo.environment["EFSC_WRITE_FUZZ_SEEDS"] != nil {
                try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
                for (name, bytes) in inputs { try Data(bytes).write(to: URL(fileURLWithPath: "\(dir)/seed-\(name)")) }
            }
            for (name, bytes) in inputs {
                target.run(bytes)
                #expect(FileManager.default.fileExists(atPath: "\(dir)/seed-\(name)"), "seed \(target.rawValue)/\(name) is committed (make fuzz-seeds)")
            }
        }
    }

    @Test(.timeLimit(.minutes(5)), arguments: FuzzTarget.allCases) func corpusReplays(target: FuzzTarget) throws {
        let dir = "\(Self.corpus)/\(target.rawValue)"
        let files = (try? FileManager.default.contentsOfDirectory(atPath: dir))?.sorted() ?? []
        #expect(!files.isEmpty, "no corpus in \(dir)")
        for f in files {
            let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: "\(dir)/\(f)")))
            target.run(bytes)
        }
    }
}
