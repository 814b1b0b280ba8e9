import CMosquitto
import EFSCCore

#if canImport(Glibc)
import Glibc
#endif

/// An MQTT v5 client over libmosquitto — the only place the libmosquitto C API
/// is touched. libmosquitto's network thread runs the protocol; callbacks
/// copy what arrived into Swift values and hand them on without waiting, so
/// the network thread never blocks on Swift work.
///
/// Delivery guarantees: QoS 1/2 publishes complete only when the broker
/// acknowledges them; while the broker is unreachable publishes are queued
/// (bounded) or refused, per `MQTTConfiguration.offlinePolicy`. The network
/// thread reconnects with bounded exponential backoff and restores
/// subscriptions when the broker did not keep the session.
public final class MQTTClient: @unchecked Sendable {
    // All mutable state is guarded by `lock`; libmosquitto calls back on its own thread.
    public let configuration: MQTTConfiguration
    private let mosq: OpaquePointer
    private let lock = Lock()
    private var connected = false
    private var closing = false
    private var loopRunning = false
    private var network: NetworkThread?
    /// What the callbacks reach this client through (libmosquitto's user data).
    private let target = CallbackTarget()
    private var connectWaiter: CheckedContinuation<Void, Error>?
    private var pendingPublishes: [Int32: CheckedContinuation<Void, Error>] = [:]
    private var pendingSubscribes: [Int32: (filter: String, cont: CheckedContinuation<Void, Error>)] = [:]
    private var pendingUnsubscribes: [Int32: CheckedContinuation<Void, Error>] = [:]
    /// Local handlers by their own id.
    private var subscriptions: [UInt32: Subscription] = [:]
    /// What the broker holds: one subscription per filter (its identifier
    /// is the first handler's id), shared by every local handler of that
    /// filter — a second SUBSCRIBE to the same filter replaces the broker's
    /// subscription, so identifiers must not multiply.
    private var brokerSubscriptions: [UInt32: BrokerSubscription] = [:]
    private var brokerIDOfFilter: [String: UInt32] = [:]
    private var nextSubscriptionID: UInt32 = 1
    private var offlineQueue: [(MQTTMessage, CheckedContinuation<Void, Error>?)] = []
    private var pendingRequests: [[UInt8]: CheckedContinuation<MQTTMessage, Error>] = [:]
    private var replySubscribed = false
    private var lastDisconnectReason = ""
    private var _overflow = 0
    private var _reconnects = 0

    struct Subscription {
        let filter: String
        let brokerID: UInt32
        let deliver: @Sendable (MQTTMessage) -> Bool
    }

    struct BrokerSubscription {
        let filter: String
        var qos: QoS
        var noLocal: Bool
        var handlers: [UInt32]
    }

    /// Messages that arrived while a subscription's buffer was full (counted, never silent).
    public var overflowCount: Int { lock.withLock { _overflow } }
    /// Completed reconnections after the first connection.
    public var reconnectCount: Int { lock.withLock { _reconnects } }
    public var isConnected: Bool { lock.withLock { connected } }

    /// The topic this client receives request replies on.
    public var replyTopic: String { Topics.reply(clientID: configuration.clientID) }

    public init(_ configuration: MQTTConfiguration) throws {
        MosquittoLibrary.initialize()
        self.configuration = configuration
        guard let m = mosquitto_new(configuration.clientID, configuration.cleanStart, nil) else {
            throw MQTTError.library("cannot create a client (client id '\(configuration.clientID)' invalid or out of memory)")
        }
        mosq = m
        target.client = self
        mosquitto_user_data_set(m, Unmanaged.passUnretained(target).toOpaque())
        mosquitto_int_option(m, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V5)
        mosquitto_int_option(m, MOSQ_OPT_TCP_NODELAY, 1)
        mosquitto_int_option(m, MOSQ_OPT_RECEIVE_MAXIMUM, 1000)
        mosquitto_int_option(m, MOSQ_OPT_SEND_MAXIMUM, 1000)
        mosquitto_reconnect_delay_set(
            m, UInt32(max(1, configuration.reconnectDelay.initial)), UInt32(max(1, configuration.reconnectDelay.max)), true)
        if let u = configuration.username {
            try check(mosquitto_username_pw_set(m, u, configuration.password), "username/password")
        }
        if let tls = configuration.tls {
            let rc = mosquitto_tls_set(m, tls.caFile, nil, tls.certFile, tls.keyFile, nil)
            if rc != MOSQ_ERR_SUCCESS.rawValue { throw MQTTError.tls(MosquittoLibrary.errorText(rc)) }
        }
        if let w = configuration.will {
            let rc = w.payload.withUnsafeBytes { p in
                mosquitto_will_set_v5(m, w.topic, Int32(w.payload.count), p.baseAddress, Int32(w.qos.rawValue), w.retain, nil)
            }
            try check(rc, "will message")
        }
        mosquitto_connect_v5_callback_set(m, onConnect)
        mosquitto_disconnect_v5_callback_set(m, onDisconnect)
        mosquitto_publish_v5_callback_set(m, onPublish)
        mosquitto_message_v5_callback_set(m, onMessage)
        mosquitto_subscribe_v5_callback_set(m, onSubscribe)
        mosquitto_unsubscribe_v5_callback_set(m, onUnsubscribe)
    }

    deinit {
        network?.close()
        mosquitto_disconnect_v5(mosq, 0, nil)
        // A thread that did not end still uses the struct: leak it rather than free it under the thread.
        if network?.join() ?? true { mosquitto_destroy(mosq) }
    }

    private func check(_ rc: Int32, _ what: String) throws {
        guard rc == MOSQ_ERR_SUCCESS.rawValue else { throw MQTTError.library("\(what): \(MosquittoLibrary.errorText(rc))") }
    }

    static func from(_ obj: UnsafeMutableRawPointer?) -> MQTTClient? {
        guard let obj else { return nil }
        return Unmanaged<CallbackTarget>.fromOpaque(obj).takeUnretainedValue().client
    }

    // MARK: connection

    /// Connects and waits for the broker's CONNACK.
    public func connect() async throws {
        var props: OpaquePointer? = nil
        defer { mosquitto_property_free_all(&props) }
        if configuration.sessionExpiry > 0 {
            mosquitto_property_add_int32(&props, Int32(MQTT_PROP_SESSION_EXPIRY_INTERVAL.rawValue), configuration.sessionExpiry)
        }
        let rc = mosquitto_connect_bind_v5(mosq, configuration.host, Int32(configuration.port), Int32(configuration.keepAlive), nil, props)
        if rc != MOSQ_ERR_SUCCESS.rawValue {
            let detail = rc == MOSQ_ERR_ERRNO.rawValue ? String(cString: strerror(errno)) : MosquittoLibrary.errorText(rc)
            throw MQTTError.connectionFailed("\(configuration.host):\(configuration.port): \(detail)")
        }
        let timeout = configuration.connectTimeout
        try await withCheckedThrowingContinuation { (c: CheckedContinuation<Void, Error>) in
            lock.withLock {
                connectWaiter = c
                closing = false
            }
            // A thread of an earlier connection that was slow to end must end first.
            if let old = lock.withLock({ loopRunning ? nil : network }), old.join() { lock.withLock { network = nil } }
            let t = lock.withLock { () -> NetworkThread? in
                guard !loopRunning, network == nil else { return nil }
                loopRunning = true
                let n = NetworkThread(mosq: mosq, reconnectDelay: configuration.reconnectDelay, target: target)
                network = n
                return n
            }
            t?.start()
            Task { [weak self] in
                try? await Task.sleep(nanoseconds: UInt64(timeout * 1e9))
                guard let self else { return }
                let w = self.lock.withLock { () -> CheckedContinuation<Void, Error>? in
                    defer { self.connectWaiter = nil }
                    return self.connectWaiter
                }
                w?.resume(throwing: MQTTError.timeout("CONNACK from \(self.configuration.host):\(self.configuration.port)"))
            }
        }
    }

    /// Sends DISCONNECT (no will message) and stops the network thread.
    /// Pending acknowledgements fail with `.disconnected`.
    public func disconnect() async {
        let (pubs, subs, unsubs, reqs, queued) = lock.withLock {
            closing = true
            defer {
                pendingPublishes = [:]
                pendingSubscribes = [:]
                pendingUnsubscribes = [:]
                pendingRequests = [:]
                offlineQueue = []
            }
            return (pendingPublishes, pendingSubscribes, pendingUnsubscribes, pendingRequests, offlineQueue)
        }
        let n = lock.withLock { () -> NetworkThread? in
            defer { loopRunning = false }
            return network
        }
        n?.close()
        mosquitto_disconnect_v5(mosq, 0, nil)
        // Forgotten only once it ended: deinit must not free the struct under it.
        if n?.join() ?? true { lock.withLock { network = nil } }
        let err = MQTTError.disconnected("client disconnected")
        for c in pubs.values { c.resume(throwing: err) }
        for s in subs.values { s.cont.resume(throwing: err) }
        for c in unsubs.values { c.resume(throwing: err) }
        for c in reqs.values { c.resume(throwing: err) }
        for (_, c) in queued { c?.resume(throwing: err) }
        lock.withLock { connected = false }
    }

    fileprivate func handleConnect(rc: Int32, flags: Int32) {
        var toResume: CheckedContinuation<Void, Error>? = nil
        var failure: Error? = nil
        var resubscribe: [(UInt32, BrokerSubscription)] = []
        var flush: [(MQTTMessage, CheckedContinuation<Void, Error>?)] = []
        lock.withLock {
            toResume = connectWaiter
            connectWaiter = nil
            if rc == 0 {
                if connected == false && toResume == nil { _reconnects += 1 }
                connected = true
                let sessionPresent = flags & 1 == 1
                if !sessionPresent { resubscribe = brokerSubscriptions.sorted { $0.key < $1.key } }
                flush = offlineQueue
                offlineQueue = []
            } else {
                failure = MQTTError.connectionRefused(reasonCode: Int(rc), reason: MosquittoLibrary.reasonText(Int(rc)))
            }
        }
        if let failure {
            // A refused connection is final: stop retrying.
            mosquitto_disconnect_v5(mosq, 0, nil)
            toResume?.resume(throwing: failure)
            return
        }
        for (id, s) in resubscribe { _ = rawSubscribe(s.filter, qos: s.qos, noLocal: s.noLocal, id: id, cont: nil) }
        for (m, c) in flush { sendNow(m, cont: c) }
        toResume?.resume()
    }

    fileprivate func handleDisconnect(rc: Int32) {
        lock.withLock {
            connected = false
            lastDisconnectReason = rc == 0 ? "normal disconnect" : MosquittoLibrary.reasonText(Int(rc))
        }
    }

    // MARK: publish

    /// Publishes a message. QoS 0 returns once handed to the network thread;
    /// QoS 1/2 return when the broker acknowledges (PUBACK/PUBCOMP).
    public func publish(
        _ topic: String, payload: [UInt8], qos: QoS = .atLeastOnce, retain: Bool = false, properties: MQTTProperties = .none
    ) async throws {
        guard TopicFilter.isValidTopic(topic) else { throw MQTTError.invalidTopic(topic) }
        let m = MQTTMessage(topic: topic, payload: payload, qos: qos, retain: retain, properties: properties)
        if qos == .atMostOnce {
            try enqueueOrSend(m, cont: nil)
            return
        }
        try await withCheckedThrowingContinuation { (c: CheckedContinuation<Void, Error>) in
            do {
                try enqueueOrSend(m, cont: c)
            } catch {
                c.resume(throwing: error)
            }
        }
    }

    /// Publishes without waiting for an acknowledgement, for hot paths that
    /// count on QoS 0 semantics. Throws only if the message cannot be handed over.
    /// With QoS 1 or 2, libmosquitto still retries until acknowledged; the
    /// caller just does not wait for it.
    public func publishNow(_ topic: String, payload: [UInt8], qos: QoS = .atMostOnce, retain: Bool = false, properties: MQTTProperties = .none) throws {
        try enqueueOrSend(MQTTMessage(topic: topic, payload: payload, qos: qos, retain: retain, properties: properties), cont: nil)
    }

    private func enqueueOrSend(_ m: MQTTMessage, cont: CheckedContinuation<Void, Error>?) throws {
        let queued = try lock.withLock { () -> Bool in
            if closing { throw MQTTError.disconnected("client is disconnecting") }
            if connected { return false }
            switch configuration.offlinePolicy {
            case .failFast: throw MQTTError.notConnected
            case .queue(let limit):
                guard offlineQueue.count < limit else { throw MQTTError.offlineQueueFull(limit: limit) }
                offlineQueue.append((m, cont))
                return true
            }
        }
        if !queued {
            if let e = sendNow(m, cont: cont, throwing: true) { throw e }
        }
    }

    /// Hands a message to libmosquitto. With `throwing`, an immediate failure
    /// is returned instead of resuming the continuation.
    @discardableResult
    private func sendNow(_ m: MQTTMessage, cont: CheckedContinuation<Void, Error>?, throwing: Bool = false) -> Error? {
        var props: OpaquePointer? = nil
        defer { mosquitto_property_free_all(&props) }
        let p = m.properties
        if let rt = p.responseTopic { mosquitto_property_add_string(&props, Int32(MQTT_PROP_RESPONSE_TOPIC.rawValue), rt) }
        if let cd = p.correlationData {
            cd.withUnsafeBytes { b in
                _ = mosquitto_property_add_binary(&props, Int32(MQTT_PROP_CORRELATION_DATA.rawValue), b.baseAddress, UInt16(cd.count))
            }
        }
        if let e = p.messageExpiry { mosquitto_property_add_int32(&props, Int32(MQTT_PROP_MESSAGE_EXPIRY_INTERVAL.rawValue), e) }
        if let ct = p.contentType { mosquitto_property_add_string(&props, Int32(MQTT_PROP_CONTENT_TYPE.rawValue), ct) }
        if let f = p.payloadIsUTF8 { mosquitto_property_add_byte(&props, Int32(MQTT_PROP_PAYLOAD_FORMAT_INDICATOR.rawValue), f ? 1 : 0) }
        for u in p.userProperties { mosquitto_property_add_string_pair(&props, Int32(MQTT_PROP_USER_PROPERTY.rawValue), u.name, u.value) }
        var mid: Int32 = 0
        // The lock spans the call so the acknowledgement callback (network
        // thread) finds the continuation; libmosquitto in threaded mode never
        // runs callbacks on the publishing thread.
        let rc: Int32 = lock.withLock {
            let rc = m.payload.withUnsafeBytes { b in
                mosquitto_publish_v5(mosq, &mid, m.topic, Int32(m.payload.count), b.baseAddress, Int32(m.qos.rawValue), m.retain, props)
            }
            if rc == MOSQ_ERR_SUCCESS.rawValue, let cont, m.qos != .atMostOnce { pendingPublishes[mid] = cont }
            return rc
        }
        if rc == MOSQ_ERR_SUCCESS.rawValue {
            if m.qos == .atMostOnce { cont?.resume() }
            return nil
        }
        let err: MQTTError
        switch rc {
        case MOSQ_ERR_OVERSIZE_PACKET.rawValue, MOSQ_ERR_PAYLOAD_SIZE.rawValue: err = .payloadTooLarge(bytes: m.payload.count)
        case MOSQ_ERR_NO_CONN.rawValue: err = .notConnected
        case MOSQ_ERR_MALFORMED_UTF8.rawValue: err = .invalidTopic(m.topic)
        default: err = .library("publish: \(MosquittoLibrary.errorText(rc))")
        }
        if throwing { return err }
        cont?.resume(throwing: err)
        return nil
    }

    fileprivate func handlePublishAck(mid: Int32, rc: Int32) {
        guard let c = lock.withLock({ pendingPublishes.removeValue(forKey: mid) }) else { return }
        if rc < 0x80 {
            c.resume()
        } else if rc == 0x95 {
            c.resume(throwing: MQTTError.payloadTooLarge(bytes: -1))
        } else {
            c.resume(throwing: MQTTError.publishRefused(reasonCode: Int(rc), reason: MosquittoLibrary.reasonText(Int(rc))))
        }
    }

    // MARK: subscribe

    /// Subscribes and returns the matching messages as a stream. Ending the
    /// stream's iteration unsubscribes. `filter` may be `$share/GROUP/…`.
    public func subscribe(_ filter: String, qos: QoS = .atLeastOnce) async throws -> AsyncStream<MQTTMessage> {
        let (stream, cont) = AsyncStream<MQTTMessage>.makeStream(bufferingPolicy: .bufferingOldest(configuration.subscriptionBuffer))
        let id = try await subscribe(filter, qos: qos) { m in
            if case .dropped = cont.yield(m) { return false }
            return true
        }
        cont.onTermination = { [weak self] _ in
            guard let self else { return }
            Task { try? await self.unsubscribe(id: id) }
        }
        return stream
    }

    /// Subscribes with a handler that runs on the network thread: it must
    /// return quickly and must not block. Returns the subscription id.
    /// With `noLocal` (MQTT 5's No Local option) the broker does not send
    /// back what this client itself publishes on matching topics: a node's
    /// own consensus broadcasts, up to 700 KB each, would otherwise come
    /// straight back to it.
    @discardableResult
    public func subscribe(
        _ filter: String, qos: QoS = .atLeastOnce, noLocal: Bool = false, handler: @escaping @Sendable (MQTTMessage) -> Void
    ) async throws -> UInt32 {
        try await subscribe(filter, qos: qos, noLocal: noLocal) { m in
            handler(m)
            return true
        }
    }

    private func subscribe(_ filter: String, qos: QoS, noLocal: Bool = false, deliver: @escaping @Sendable (MQTTMessage) -> Bool) async throws -> UInt32 {
        guard TopicFilter.isValid(filter) else { throw MQTTError.invalidTopic(filter) }
        let (id, brokerID) = lock.withLock { () -> (UInt32, UInt32) in
            let id = nextSubscriptionID
            nextSubscriptionID += 1
            let bid = brokerIDOfFilter[filter] ?? id
            brokerIDOfFilter[filter] = bid
            brokerSubscriptions[bid, default: BrokerSubscription(filter: filter, qos: qos, noLocal: noLocal, handlers: [])].handlers.append(id)
            brokerSubscriptions[bid]!.qos = qos
            brokerSubscriptions[bid]!.noLocal = noLocal
            subscriptions[id] = Subscription(filter: filter, brokerID: bid, deliver: deliver)
            return (id, bid)
        }
        do {
            // The same filter again: the same identifier, so the broker's
            // subscription keeps delivering to every handler of it.
            try await withCheckedThrowingContinuation { (c: CheckedContinuation<Void, Error>) in
                if let e = rawSubscribe(filter, qos: qos, noLocal: noLocal, id: brokerID, cont: c) { c.resume(throwing: e) }
            }
        } catch {
            lock.withLock { _ = removeHandler(id) }
            throw error
        }
        return id
    }

    /// Forgets a local handler; returns the filter when no handler of it is left.
    private func removeHandler(_ id: UInt32) -> String? {
        guard let s = subscriptions.removeValue(forKey: id) else { return nil }
        brokerSubscriptions[s.brokerID]?.handlers.removeAll { $0 == id }
        guard brokerSubscriptions[s.brokerID]?.handlers.isEmpty ?? true else { return nil }
        brokerSubscriptions[s.brokerID] = nil
        brokerIDOfFilter[s.filter] = nil
        return s.filter
    }

    private func rawSubscribe(_ filter: String, qos: QoS, noLocal: Bool, id: UInt32, cont: CheckedContinuation<Void, Error>?) -> Error? {
        var props: OpaquePointer? = nil
        defer { mosquitto_property_free_all(&props) }
        mosquitto_property_add_varint(&props, Int32(MQTT_PROP_SUBSCRIPTION_IDENTIFIER.rawValue), id)
        var mid: Int32 = 0
        let rc: Int32 = lock.withLock {
            let rc = mosquitto_subscribe_v5(mosq, &mid, filter, Int32(qos.rawValue), noLocal ? Int32(MQTT_SUB_OPT_NO_LOCAL.rawValue) : 0, props)
            if rc == MOSQ_ERR_SUCCESS.rawValue, let cont { pendingSubscribes[mid] = (filter, cont) }
            return rc
        }
        if rc == MOSQ_ERR_SUCCESS.rawValue { return nil }
        if rc == MOSQ_ERR_NO_CONN.rawValue { return MQTTError.notConnected }
        return MQTTError.library("subscribe '\(filter)': \(MosquittoLibrary.errorText(rc))")
    }

    fileprivate func handleSubAck(mid: Int32, granted: [Int32]) {
        guard let p = lock.withLock({ pendingSubscribes.removeValue(forKey: mid) }) else { return }
        if let g = granted.first, g >= 0x80 {
            p.cont.resume(throwing: MQTTError.subscribeRefused(filter: p.filter, reasonCode: Int(g), reason: MosquittoLibrary.reasonText(Int(g))))
        } else {
            p.cont.resume()
        }
    }

    public func unsubscribe(id: UInt32) async throws {
        // The broker's subscription goes only with the filter's last handler.
        guard let filter = lock.withLock({ removeHandler(id) }) else { return }
        try await withCheckedThrowingContinuation { (c: CheckedContinuation<Void, Error>) in
            var mid: Int32 = 0
            let rc: Int32 = lock.withLock {
                let rc = mosquitto_unsubscribe_v5(mosq, &mid, filter, nil)
                if rc == MOSQ_ERR_SUCCESS.rawValue { pendingUnsubscribes[mid] = c }
                return rc
            }
            if rc != MOSQ_ERR_SUCCESS.rawValue {
                c.resume(throwing: rc == MOSQ_ERR_NO_CONN.rawValue ? MQTTError.notConnected : MQTTError.library(MosquittoLibrary.errorText(rc)))
            }
        }
    }

    fileprivate func handleUnsubAck(mid: Int32) {
        lock.withLock { pendingUnsubscribes.removeValue(forKey: mid) }?.resume()
    }

    // MARK: delivery

    fileprivate func handleMessage(_ m: MQTTMessage) {
        if let corr = m.properties.correlationData, m.topic == replyTopic {
            if let c = lock.withLock({ pendingRequests.removeValue(forKey: corr) }) { c.resume(returning: m) }
            return
        }
        let targets: [Subscription] = lock.withLock {
            let ids = m.properties.subscriptionIdentifiers
            let bids = !ids.isEmpty ? ids : brokerSubscriptions.filter { TopicFilter.matches($0.value.filter, m.topic) }.map(\.key)
            return bids.flatMap { brokerSubscriptions[$0]?.handlers ?? [] }.compactMap { subscriptions[$0] }
        }
        var overflow = 0
        for t in targets where !t.deliver(m) { overflow += 1 }
        if overflow > 0 { lock.withLock { _overflow += overflow } }
    }

    /// Cuts the TCP connection without a DISCONNECT packet, as a network
    /// failure or crash would (the broker then publishes the will message).
    /// The network thread reconnects as usual. For tests and fault drills.
    public func dropConnection() {
        let fd = mosquitto_socket(mosq)
        if fd >= 0 { shutdown(fd, Int32(SHUT_RDWR)) }
    }

    // MARK: request / response

    /// Sends a request with an MQTT 5 response topic and fresh correlation
    /// data, and waits for the matching reply.
    public func request(_ topic: String, payload: [UInt8], timeout: Double = 5, qos: QoS = .atLeastOnce, userProperties: [UserProperty] = []) async throws -> MQTTMessage {
        if !lock.withLock({ replySubscribed }) {
            try await subscribe(replyTopic, qos: .atLeastOnce) { _ in }
            lock.withLock { replySubscribed = true }
        }
        let corr = Digest.randomBytes(16)
        let props = MQTTProperties(responseTopic: replyTopic, correlationData: corr, messageExpiry: UInt32(max(1, timeout.rounded(.up))), userProperties: userProperties)
        return try await withCheckedThrowingContinuation { (c: CheckedContinuation<MQTTMessage, Error>) in
            lock.withLock { pendingRequests[corr] = c }
            Task {
                do {
                    try await self.publish(topic, payload: payload, qos: qos, properties: props)
                } catch {
                    self.lock.withLock { self.pendingRequests.removeValue(forKey: corr) }?.resume(throwing: error)
                    return
                }
                try? await Task.sleep(nanoseconds: UInt64(timeout * 1e9))
                self.lock.withLock { self.pendingRequests.removeValue(forKey: corr) }?.resume(
                    throwing: MQTTError.timeout("a reply on \(topic) (\(timeout) s)"))
            }
        }
    }

    /// Replies to a request: publishes to its response topic with its correlation data.
    public func respond(
        to request: MQTTMessage, payload: [UInt8], qos: QoS = .atLeastOnce, contentType: String? = nil, userProperties: [UserProperty] = []
    ) async throws {
        guard let rt = request.properties.responseTopic else { throw MQTTError.invalidTopic("(request has no response topic)") }
        try await publish(
            rt, payload: payload, qos: qos,
            properties: MQTTProperties(correlationData: request.properties.correlationData, contentType: contentType, userProperties: userProperties))
    }
}

// MARK: C callbacks (network thread)

private func onConnect(_ m: OpaquePointer?, _ obj: UnsafeMutableRawPointer?, _ rc: Int32, _ flags: Int32, _ props: OpaquePointer?) {
    MQTTClient.from(obj)?.handleConnect(rc: rc, flags: flags)
}

private func onDisconnect(_ m: OpaquePointer?, _ obj: UnsafeMutableRawPointer?, _ rc: Int32, _ props: OpaquePointer?) {
    MQTTClient.from(obj)?.handleDisconnect(rc: rc)
}

private func onPublish(_ m: OpaquePointer?, _ obj: UnsafeMutableRawPointer?, _ mid: Int32, _ rc: Int32, _ props: OpaquePointer?) {
    MQTTClient.from(obj)?.handlePublishAck(mid: mid, rc: rc)
}

private func onSubscribe(
    _ m: OpaquePointer?, _ obj: UnsafeMutableRawPointer?, _ mid: Int32, _ count: Int32, _ granted: UnsafePointer<Int32>?, _ props: OpaquePointer?
) {
    let g = granted.map { Array(UnsafeBufferPointer(start: $0, count: Int(count))) } ?? []
    MQTTClient.from(obj)?.handleSubAck(mid: mid, granted: g)
}

private func onUnsubscribe(_ m: OpaquePointer?, _ obj: UnsafeMutableRawPointer?, _ mid: Int32, _ props: OpaquePointer?) {
    MQTTClient.from(obj)?.handleUnsubAck(mid: mid)
}

private func onMessage(_ m: OpaquePointer?, _ obj: UnsafeMutableRawPointer?, _ msg: UnsafePointer<mosquitto_message>?, _ props: OpaquePointer?) {
    guard let client = MQTTClient.from(obj), let msg else { return }
    let raw = msg.pointee
    let topic = raw.topic.map { String(cString: $0) } ?? ""
    var payload: [UInt8] = []
    if let p = raw.payload, raw.payloadlen > 0 {
        payload = Array(UnsafeRawBufferPointer(start: p, count: Int(raw.payloadlen)))
    }
    client.handleMessage(
        MQTTMessage(topic: topic, payload: payload, qos: QoS(rawValue: Int(raw.qos)) ?? .atMostOnce, retain: raw.retain, properties: readProperties(props)))
}

/// Copies the PUBLISH properties EFSC uses out of libmosquitto's list.
private func readProperties(_ props: OpaquePointer?) -> MQTTProperties {
    var p = MQTTProperties()
    guard let props else { return p }
    var s: UnsafeMutablePointer<CChar>? = nil
    if mosquitto_property_read_string(props, Int32(MQTT_PROP_RESPONSE_TOPIC.rawValue), &s, false) != nil, let v = s {
        p.responseTopic = String(cString: v)
        free(v)
    }
    s = nil
    if mosquitto_property_read_string(props, Int32(MQTT_PROP_CONTENT_TYPE.rawValue), &s, false) != nil, let v = s {
        p.contentType = String(cString: v)
        free(v)
    }
    var bin: UnsafeMutableRawPointer? = nil
    var len: UInt16 = 0
    if mosquitto_property_read_binary(props, Int32(MQTT_PROP_CORRELATION_DATA.rawValue), &bin, &len, false) != nil, let b = bin {
        p.correlationData = Array(UnsafeRawBufferPointer(start: b, count: Int(len)))
        free(b)
    }
    var i32: UInt32 = 0
    if mosquitto_property_read_int32(props, Int32(MQTT_PROP_MESSAGE_EXPIRY_INTERVAL.rawValue), &i32, false) != nil { p.messageExpiry = i32 }
    var byte: UInt8 = 0
    if mosquitto_property_read_byte(props, Int32(MQTT_PROP_PAYLOAD_FORMAT_INDICATOR.rawValue), &byte, false) != nil { p.payloadIsUTF8 = byte == 1 }
    var cur = mosquitto_property_read_varint(props, Int32(MQTT_PROP_SUBSCRIPTION_IDENTIFIER.rawValue), &i32, false)
    while cur != nil {
        p.subscriptionIdentifiers.append(i32)
        cur = mosquitto_property_read_varint(cur, Int32(MQTT_PROP_SUBSCRIPTION_IDENTIFIER.rawValue), &i32, true)
    }
    var name: UnsafeMutablePointer<CChar>? = nil
    var value: UnsafeMutablePointer<CChar>? = nil
    var pc = mosquitto_property_read_string_pair(props, Int32(MQTT_PROP_USER_PROPERTY.rawValue), &name, &value, false)
    while pc != nil {
        if let n = name, let v = value {
            p.userProperties.append(UserProperty(String(cString: n), String(cString: v)))
        }
        free(name)
        free(value)
        name = nil
        value = nil
        pc = mosquitto_property_read_string_pair(pc, Int32(MQTT_PROP_USER_PROPERTY.rawValue), &name, &value, true)
    }
    return p
}
