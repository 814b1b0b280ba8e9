import EFSCFuzz
import Foundation

// The fuzz harness. Built with `-sanitize=fuzzer -DEFSC_LIBFUZZER` (`make
// fuzz`) it is a libFuzzer binary: `EFSC_FUZZ_TARGET=<target> efsc-fuzz
// [libFuzzer flags] CORPUS…`. Built plainly it replays inputs:
// `efsc-fuzz <target> FILE…` runs each file through the target (to
// reproduce a finding under a debugger or with backtraces).

#if EFSC_LIBFUZZER
/// libFuzzer's driver (its own `main` is not linked: SwiftPM points an
/// executable's entry at the module's `@main`).
@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(
    _ argc: UnsafeMutablePointer<CInt>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>>,
    _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt
) -> CInt

nonisolated(unsafe) var fuzzTarget = FuzzTarget.pattern

@main
struct FuzzMain {
    static func main() {
        guard let name = ProcessInfo.processInfo.environment["EFSC_FUZZ_TARGET"], let t = FuzzTarget(rawValue: name) else {
            FileHandle.standardError.write(Data("set EFSC_FUZZ_TARGET to one of: \(FuzzTarget.allCases.map(\.rawValue).joined(separator: ", "))\n".utf8))
            exit(2)
        }
        fuzzTarget = t
        var argc = CommandLine.argc
        var argv = CommandLine.unsafeArgv
        exit(LLVMFuzzerRunDriver(&argc, &argv) { data, size in
            fuzzTarget.run(data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? [])
            return 0
        })
    }
}
#else
@main
struct Replay {
    static func main() throws {
        let args = Array(CommandLine.arguments.dropFirst())
        guard let name = args.first, let target = FuzzTarget(rawValue: name), args.count >= 2 else {
            FileHandle.standardError.write(Data("usage: efsc-fuzz <\(FuzzTarget.allCases.map(\.rawValue).joined(separator: "|"))> FILE…\n".utf8))
            exit(2)
        }
        for f in args.dropFirst() {
            target.run([UInt8](try Data(contentsOf: URL(fileURLWithPath: f))))
            print("ok \(f)")
        }
    }
}
#endif
