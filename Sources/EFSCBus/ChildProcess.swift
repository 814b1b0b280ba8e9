import EFSCCore
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A child process started with a clean signal state. Foundation's `Process`
/// passes on the spawning thread's signal mask, and Dispatch worker threads
/// block every signal, so a child started from Swift concurrency would
/// ignore SIGTERM and could not shut down gracefully. This spawns with an
/// empty mask and default handlers.
public final class ChildProcess: @unchecked Sendable {
    public let pid: pid_t
    private var status: Int32? = nil
    private let lock = Lock()

    /// Starts `path` with `arguments`; stdout/stderr go to `outputPath` (appended) or /dev/null.
    public init(path: String, arguments: [String], outputPath: String? = nil, inputPath: String? = nil, environment: [String: String]? = nil) throws {
        var attr = posix_spawnattr_t()
        posix_spawnattr_init(&attr)
        defer { posix_spawnattr_destroy(&attr) }
        var empty = sigset_t()
        sigemptyset(&empty)
        posix_spawnattr_setsigmask(&attr, &empty)
        var defaults = sigset_t()
        sigfillset(&defaults)
        sigdelset(&defaults, SIGKILL)
        sigdelset(&defaults, SIGSTOP)
        posix_spawnattr_setsigdefault(&attr, &defaults)
        posix_spawnattr_setflags(&attr, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, inputPath ?? "/dev/null", O_RDONLY, 0)
        let out = outputPath ?? "/dev/null"
        posix_spawn_file_actions_addopen(&actions, 1, out, O_WRONLY | O_CREAT | O_APPEND, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)

        let argv = ([path] + arguments).map { strdup($0) } + [nil]
        defer { for a in argv { free(a) } }
        let envStrings: [String]
        if let environment {
            envStrings = environment.map { "\($0.key)=\($0.value)" }
        } else {
            var list: [String] = []
            var e = environ
            while let p = e.pointee {
                list.append(String(cString: p))
                e += 1
            }
            envStrings = list
        }
        let envp = envStrings.map { strdup($0) } + [nil]
        defer { for a in envp { free(a) } }
        var child: pid_t = 0
        let rc = posix_spawn(&child, path, &actions, &attr, argv, envp)
        guard rc == 0 else { throw SpawnError(message: "cannot start \(path): \(String(cString: strerror(rc)))") }
        pid = child
    }

    /// Whether the process is still running (reaps it if it ended).
    public var isRunning: Bool {
        lock.withLock {
            if status != nil { return false }
            var s: Int32 = 0
            let r = waitpid(pid, &s, WNOHANG)
            if r == pid {
                status = s
                return false
            }
            return r == 0
        }
    }

    /// Exit status once ended (128+signal when killed by a signal).
    public var exitCode: Int32? {
        _ = isRunning
        return lock.withLock {
            guard let s = status else { return nil }
            if s & 0x7f == 0 { return (s >> 8) & 0xff }
            return 128 + (s & 0x7f)
        }
    }

    public func signal(_ sig: Int32) {
        if isRunning { kill(pid, sig) }
    }

    /// Waits up to `timeout` seconds; returns whether it ended.
    @discardableResult
    public func wait(timeout: Double) -> Bool {
        var waited = 0.0
        while isRunning {
            if waited >= timeout { return false }
            usleep(10_000)
            waited += 0.01
        }
        return true
    }

    /// Runs `path` to completion (terminated after `timeout` seconds) and
    /// returns its exit status (-1 if it never exited) with what it printed.
    public static func run(_ path: String, _ arguments: [String], timeout: Double) throws -> (code: Int32, out: String) {
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("efsc-run-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: out) }
        let p = try ChildProcess(path: path, arguments: arguments, outputPath: out)
        if !p.wait(timeout: timeout) { p.terminate(grace: 2) }
        return (p.exitCode ?? -1, (try? String(contentsOfFile: out, encoding: .utf8)) ?? "")
    }

    /// SIGTERM, then SIGKILL after `grace` seconds.
    public func terminate(grace: Double = 5) {
        signal(SIGTERM)
        if !wait(timeout: grace) {
            signal(SIGKILL)
            wait(timeout: 5)
        }
    }
}

/// Why a child process could not be started.
public struct SpawnError: Error, CustomStringConvertible {
    public let message: String
    public var description: String { message }
}

