import CMosquitto
import Dispatch
import EFSCCore

#if canImport(Glibc)
import Glibc
#endif

/// The client's network thread. libmosquitto's own (`mosquitto_loop_start`)
/// ends for good when a connection fails with a TLS or protocol error —
/// what a TLS client sees when its broker is killed or restarts
/// (eclipse-mosquitto#3258) — and the client would never reconnect. This
/// one runs `mosquitto_loop` itself: while the connection works it keeps
/// going; when it fails (whatever the error) it waits the configured
/// backoff, in steps that notice a close, and reconnects. Once the client
/// is closing it only lets the DISCONNECT out and ends when the connection
/// does; a close never waits more than the loop's 1 s select, and the
/// client's `mosquitto` struct is only destroyed after the thread ended.
final class NetworkThread: @unchecked Sendable {
    private let mosq: OpaquePointer
    /// Kept while the thread runs: its callbacks' user data.
    private let target: CallbackTarget
    private let delay: (initial: Int, max: Int)
    private let lock = Lock()
    private var closing = false
    private var halted = false
    /// Signalled once when the thread ends (and again by each successful wait, so it stays signalled).
    private let exited = DispatchSemaphore(value: 0)

    init(mosq: OpaquePointer, reconnectDelay: (initial: Int, max: Int), target: CallbackTarget) {
        self.mosq = mosq
        self.target = target
        delay = (max(1, reconnectDelay.initial), max(1, reconnectDelay.max, reconnectDelay.initial))
        mosquitto_threaded_set(mosq, true)
    }

    private var state: (closing: Bool, halted: Bool) { lock.withLock { (closing, halted) } }

    func start() {
        var tid = pthread_t()
        let box = Unmanaged.passRetained(self)
        let rc = pthread_create(&tid, nil, { arg in
            let me = Unmanaged<NetworkThread>.fromOpaque(arg!).takeRetainedValue()
            me.run()
            return nil
        }, box.toOpaque())
        if rc != 0 {
            box.release()
            exited.signal()
        } else {
            pthread_detach(tid)
        }
    }

    private func run() {
        defer { exited.signal() }
        var wait = delay.initial
        var disconnectSent = false
        while true {
            let rc = mosquitto_loop(mosq, 1000, 1)
            let s = state
            if s.halted { return }
            if rc == MOSQ_ERR_SUCCESS.rawValue {
                wait = delay.initial
                // A connection made after the close was asked for (a reconnect
                // already under way) is closed too, from here.
                if s.closing && !disconnectSent {
                    disconnectSent = true
                    mosquitto_disconnect_v5(mosq, 0, nil)
                }
                continue
            }
            // The connection ended: after a close, that is the end.
            if s.closing { return }
            var slept = 0
            while slept < wait * 10 && !state.closing {
                usleep(100_000)
                slept += 1
            }
            if state.closing { return }
            wait = min(wait * 2, delay.max)
            _ = mosquitto_reconnect(mosq)
        }
    }

    /// No more reconnecting: the thread ends when the connection does.
    func close() { lock.withLock { closing = true } }

    /// Waits for the thread to end; returns whether it did. After 5 s it is
    /// told to stop at once (at its next select, ≤ 1 s later).
    @discardableResult
    func join() -> Bool {
        if ended(within: 5) { return true }
        lock.withLock { halted = true }
        return ended(within: 3)
    }

    private func ended(within seconds: Double) -> Bool {
        guard exited.wait(timeout: .now() + seconds) == .success else { return false }
        exited.signal()
        return true
    }
}

/// What libmosquitto's callbacks reach their client through: a weak
/// reference, which reads nil once the client is being freed, so a network
/// thread that outlives its client (a blocking reconnect) never touches it.
final class CallbackTarget: @unchecked Sendable {
    weak var client: MQTTClient?
}
