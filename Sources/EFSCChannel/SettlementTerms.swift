import EFSCCore
import EFSCCredentials

/// The terms a channel's settlements must follow, taken from its TIC: the
/// parties, the units bought, the pricing (flat, or a time-of-day table and
/// an incentive factor from a provider-extended TIT) and the settlement
/// strategy. The TCC and both parties' SDKs check every claim against them.
public struct SettlementTerms: Sendable, Equatable {
    public var channelId: String
    public var provider: String
    public var consumer: String
    public var units: Int
    public var unitPrice: Double
    /// (fromHour, toHour, unitPrice), hours of the day in UTC.
    public var priceTable: [PriceBand]
    public var incentiveFactor: Double
    public var period: Int
    public var evidenceEvery: Int
    public var evidenceEveryMax: Int
    public var templateId: String
    public var templateVersion: Int
    public var encryptionMethod: String

    public struct PriceBand: Sendable, Equatable {
        public var fromHour: Int
        public var toHour: Int
        public var unitPrice: Double
    }

    /// How far a claim's `end` may lie ahead of the checker's clock (seconds).
    public static let maxClockSkew = 30.0

    /// Terms from a channel id and the TIC (its claim carries everything else).
    public init(channelId: String, tic: JSONObject) throws(ChainError) {
        let c = tic["credentialSubject"] ?? .null
        guard let p = c["providerDid"]?.stringValue, let k = c["consumerDid"]?.stringValue else { throw ChainError("the TIC names no parties") }
        guard let price = c["unitPrice"]?.doubleValue, let s = c["settlementStrategy"], let period = s["period"]?.intValue, period >= 1,
            let every = s["evidenceEvery"]?.intValue, every >= 1
        else { throw ChainError("the TIC lacks unitPrice or a settlement strategy with period and evidenceEvery") }
        self.channelId = channelId
        provider = p
        consumer = k
        units = c["computingPower"]?["units"]?.intValue ?? 1
        unitPrice = price
        priceTable = (c["priceTable"]?.arrayValue ?? []).compactMap { b in
            guard let f = b["fromHour"]?.intValue, let t = b["toHour"]?.intValue, let u = b["unitPrice"]?.doubleValue else { return nil }
            return PriceBand(fromHour: f, toHour: t, unitPrice: u)
        }
        incentiveFactor = c["incentiveFactor"]?.doubleValue ?? 1
        self.period = period
        evidenceEvery = every
        evidenceEveryMax = max(every, s["evidenceEveryMax"]?.intValue ?? every)
        templateId = c["settlementTemplateId"]?.stringValue ?? BaseTemplates.tstID
        templateVersion = c["settlementTemplateVersion"]?.intValue ?? 1
        encryptionMethod = c["encryptionMethod"]?.stringValue ?? ""
    }

    /// The unit-hour price in force at time `t` (the band holding t's UTC hour, else the flat price).
    public func price(at t: Double) -> Double {
        let hour = Int((t.truncatingRemainder(dividingBy: 86400) + 86400).truncatingRemainder(dividingBy: 86400) / 3600)
        return priceTable.first { hour >= $0.fromHour && hour < $0.toHour }?.unitPrice ?? unitPrice
    }

    /// usage × price at the period's start × incentive factor, rounded to 6 decimals.
    public func fee(usage: Double, start: Double) -> Double {
        (usage * price(at: start) * incentiveFactor * 1e6).rounded() / 1e6
    }

    /// The claim a provider proposes for settlement `sequence` over [start, start + period).
    public func claim(sequence: Int, start: Double, usage: Double, final: Bool = false) -> JSONObject {
        var o: JSONObject = [
            "providerDid": .string(provider), "consumerDid": .string(consumer), "channelId": .string(channelId),
            "sequence": .number(Double(sequence)), "usage": .number(usage), "fee": .number(fee(usage: usage, start: start)),
            "start": .string(DateTime.format(start)), "end": .string(DateTime.format(start + Double(period))),
            "encryptionMethod": .string(encryptionMethod),
        ]
        if final { o["final"] = true }
        return o
    }

    /// Checks a settlement claim against the terms and the channel's last
    /// settlement (`lastSequence`, `lastEnd`; 0 / nil before the first).
    /// Returns the claim's end time.
    @discardableResult
    public func check(_ claim: JSON, lastSequence: Int, lastEnd: Double?, now: Double) throws(ChainError) -> Double {
        guard claim["channelId"]?.stringValue == channelId else { throw ChainError("the claim is for channel \(claim["channelId"]?.stringValue ?? "?"), not \(channelId)") }
        guard claim["providerDid"]?.stringValue == provider, claim["consumerDid"]?.stringValue == consumer else {
            throw ChainError("the claim's parties are not the channel's")
        }
        guard let seq = claim["sequence"]?.intValue else { throw ChainError("the claim has no integer sequence") }
        guard seq == lastSequence + 1 else {
            throw ChainError(seq <= lastSequence ? "stale sequence \(seq): the channel is at \(lastSequence)" : "sequence \(seq) skips ahead: expected \(lastSequence + 1)")
        }
        guard let ss = claim["start"]?.stringValue, let es = claim["end"]?.stringValue, let start = DateTime.parse(ss), let end = DateTime.parse(es) else {
            throw ChainError("the claim's start and end must be date-times")
        }
        guard abs(end - start - Double(period)) < 0.001 else { throw ChainError("the claim covers \(end - start) s, the settlement period is \(period) s") }
        if let lastEnd, abs(start - lastEnd) >= 0.001 { throw ChainError("the claim starts at \(ss), the previous period ended at \(DateTime.format(lastEnd))") }
        guard end <= now + Self.maxClockSkew else { throw ChainError("the claim ends at \(es), in the future") }
        guard let usage = claim["usage"]?.doubleValue, usage >= 0 else { throw ChainError("the claim has no usage") }
        let capacity = Double(units) * Double(period) / 3600
        guard usage <= capacity + 1e-9 else { throw ChainError("usage \(usage) unit-hours exceeds the \(capacity) the TIC allows per period") }
        guard let fee = claim["fee"]?.doubleValue else { throw ChainError("the claim has no fee") }
        let expected = self.fee(usage: usage, start: start)
        guard abs(fee - expected) <= 1e-6 else { throw ChainError("fee \(fee) does not match usage × price: expected \(expected)") }
        guard claim["encryptionMethod"]?.stringValue == encryptionMethod else { throw ChainError("the claim's encryptionMethod differs from the TIC's") }
        return end
    }
}
