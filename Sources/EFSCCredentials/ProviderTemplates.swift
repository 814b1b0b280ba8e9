import EFSCCore

/// Ready-made provider extensions of the base templates, used by the demo
/// and as examples of the paper's "flexible trading patterns".
public enum ProviderTemplates {
    /// A TIT with a time-of-day price table (hours in UTC, [fromHour, toHour))
    /// and an incentive factor applied to the fee.
    public static func timeOfDayTIT(owner: String, id: String = "urn:efsc:template:tit:time-of-day", version: Int = 1) throws -> Template {
        try Template(
            id: id, version: version, owner: owner, title: "TIT with time-of-day pricing", kind: .tit,
            extends: (BaseTemplates.titID, 1),
            fields: [
                (
                    "priceTable",
                    FieldSpec(
                        .array, required: true, description: "unit-hour price by hour of day (UTC)",
                        items: FieldSpec(
                            .object,
                            properties: [
                                ("fromHour", FieldSpec(.integer, required: true, minimum: 0, maximum: 23)),
                                ("toHour", FieldSpec(.integer, required: true, minimum: 1, maximum: 24)),
                                ("unitPrice", FieldSpec(.number, required: true, minimum: 0)),
                            ]), minItems: 1, maxItems: 24)
                ),
                ("incentiveFactor", FieldSpec(.number, description: "multiplier on every fee, e.g. 0.9 for a 10% discount", minimum: 0, maximum: 10)),
            ],
            base: BaseTemplates.tit)
    }

    /// A claim that satisfies `timeOfDayTIT`.
    public static func sampleTITClaim(provider: String, consumer: String, period: Int = 60, evidenceEvery: Int = 10) -> JSONObject {
        [
            "providerDid": .string(provider), "consumerDid": .string(consumer),
            "computingPower": ["resourceType": "gpu", "units": 2, "model": "A100-80G", "memoryGiB": 80],
            "unitPrice": 12.5, "currency": "CNY",
            "settlementStrategy": ["period": .number(Double(period)), "evidenceEvery": .number(Double(evidenceEvery)), "evidenceEveryMax": 100],
            "initialPricing": 0, "settlementTemplateId": .string(BaseTemplates.tstID), "settlementTemplateVersion": 1,
            "encryptionMethod": "HPKE-X25519-SHA256-ChaCha20Poly1305",
            "priceTable": [
                ["fromHour": 0, "toHour": 8, "unitPrice": 8],
                ["fromHour": 8, "toHour": 20, "unitPrice": 12.5],
                ["fromHour": 20, "toHour": 24, "unitPrice": 10],
            ],
            "incentiveFactor": 0.95,
        ]
    }
}
