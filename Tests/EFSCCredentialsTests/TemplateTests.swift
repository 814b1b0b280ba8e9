import EFSCCore
import Testing
@testable import EFSCCredentials

@Suite struct TemplateTests {
    static let owner = "did:key:z6MkmjY8GnV5i9YTDtPETC2uUAW6ejw3nk5mXF5yci5ab7th"

    func template(_ fields: [(String, FieldSpec)]) throws -> Template {
        try Template(id: "urn:test:t", version: 1, owner: Self.owner, title: "t", kind: .other, fields: fields)
    }

    func paths(_ v: [TemplateViolation]) -> [String] { v.map(\.path) }

    @Test func stringRules() throws {
        let t = try template([
            ("name", FieldSpec(.string, required: true, minLength: 2, maxLength: 4, pattern: "^[a-z]+$")),
            ("when", FieldSpec(.string, format: .dateTime)),
            ("who", FieldSpec(.string, format: .did)),
            ("tier", FieldSpec(.string, enumValues: ["gold", "silver"])),
        ])
        #expect(t.validate(["name": "abc", "when": "2026-01-01T00:00:00Z", "who": .string(Self.owner), "tier": "gold"]).isEmpty)
        #expect(paths(t.validate(["name": "a"])) == ["$.name"])
        #expect(paths(t.validate(["name": "abcde"])) == ["$.name"])
        #expect(paths(t.validate(["name": "AB"])) == ["$.name"])
        #expect(paths(t.validate(["name": 12])) == ["$.name"])
        #expect(paths(t.validate(["name": "ab", "when": "tomorrow", "who": "bob", "tier": "bronze"])) == ["$.when", "$.who", "$.tier"])
        #expect(t.validate([:]).first?.message == "required field is missing")
    }

    @Test func numericRules() throws {
        let t = try template([
            ("count", FieldSpec(.integer, required: true, minimum: 1, maximum: 10)),
            ("price", FieldSpec(.number, minimum: 0)),
        ])
        #expect(t.validate(["count": 3, "price": 0.5]).isEmpty)
        #expect(paths(t.validate(["count": 0])) == ["$.count"])
        #expect(paths(t.validate(["count": 11])) == ["$.count"])
        #expect(paths(t.validate(["count": 2.5])) == ["$.count"])
        #expect(paths(t.validate(["count": "3"])) == ["$.count"])
        #expect(paths(t.validate(["count": 1, "price": -1])) == ["$.price"])
        #expect(paths(t.validate(["count": 1, "price": "free"])) == ["$.price"])
    }

    @Test func booleanObjectAndArrayRules() throws {
        let t = try template([
            ("on", FieldSpec(.boolean, required: true)),
            (
                "spec",
                FieldSpec(.object, properties: [("cores", FieldSpec(.integer, required: true, minimum: 1)), ("model", FieldSpec(.string))])
            ),
            ("table", FieldSpec(.array, items: FieldSpec(.object, properties: [("price", FieldSpec(.number, required: true, minimum: 0))]), minItems: 1, maxItems: 2)),
        ])
        #expect(t.validate(["on": true, "spec": ["cores": 4], "table": [["price": 1]]]).isEmpty)
        #expect(paths(t.validate(["on": "yes"])) == ["$.on"])
        #expect(paths(t.validate(["on": true, "spec": ["model": "x"]])) == ["$.spec.cores"])
        #expect(paths(t.validate(["on": true, "spec": ["cores": 1, "ram": 2]])) == ["$.spec.ram"])
        #expect(paths(t.validate(["on": true, "spec": [1]])) == ["$.spec"])
        #expect(paths(t.validate(["on": true, "table": []])) == ["$.table"])
        #expect(paths(t.validate(["on": true, "table": [["price": -1], ["x": 1], 3]])) == ["$.table", "$.table[0].price", "$.table[1].price", "$.table[1].x", "$.table[2]"])
        // Every violation is reported, not just the first.
        #expect(t.validate(["on": 1, "spec": ["cores": 0], "extra": true]).count == 3)
        #expect(paths(t.validate("not an object")) == ["$"])
    }

    @Test func templateDocumentRoundTrip() throws {
        let t = BaseTemplates.tit
        let back = try Template(json: t.json)
        #expect(back == t)
        #expect(back.effectiveFields.map(\.0) == t.effectiveFields.map(\.0))
    }

    @Test(arguments: [
        #"{"id":"x","version":1,"owner":"did:key:z6MkmjY8GnV5i9YTDtPETC2uUAW6ejw3nk5mXF5yci5ab7th","fields":{"a":{"type":"date"}}}"#,
        #"{"id":"x","version":0,"owner":"did:key:z6MkmjY8GnV5i9YTDtPETC2uUAW6ejw3nk5mXF5yci5ab7th","fields":{}}"#,
        #"{"id":"x","version":1,"owner":"bob","fields":{}}"#,
        #"{"id":"x","version":1,"owner":"did:key:z6MkmjY8GnV5i9YTDtPETC2uUAW6ejw3nk5mXF5yci5ab7th","fields":{"a":{"type":"integer","minimum":5,"maximum":1}}}"#,
        #"{"id":"x","version":1,"owner":"did:key:z6MkmjY8GnV5i9YTDtPETC2uUAW6ejw3nk5mXF5yci5ab7th","fields":{"a":{"type":"string","pattern":"("}}}"#,
        #"{"id":"x","version":1,"owner":"did:key:z6MkmjY8GnV5i9YTDtPETC2uUAW6ejw3nk5mXF5yci5ab7th","fields":{"a":{"type":"integer","format":"did"}}}"#,
        #"{"id":"x","version":1,"owner":"did:key:z6MkmjY8GnV5i9YTDtPETC2uUAW6ejw3nk5mXF5yci5ab7th","fields":{"a":{"type":"integer","enum":["a"]}}}"#,
        #"{"id":"x","version":1,"owner":"did:key:z6MkmjY8GnV5i9YTDtPETC2uUAW6ejw3nk5mXF5yci5ab7th","fields":{"id":{"type":"string"}}}"#,
        #"{"id":"x","version":1,"owner":"did:key:z6MkmjY8GnV5i9YTDtPETC2uUAW6ejw3nk5mXF5yci5ab7th","fields":{"a":{"type":"string","colour":"red"}}}"#,
        #"{"id":"x","version":1,"owner":"did:key:z6MkmjY8GnV5i9YTDtPETC2uUAW6ejw3nk5mXF5yci5ab7th","extends":{"id":"urn:nope","version":1},"fields":{}}"#,
    ])
    func invalidTemplatesAreRefused(text: String) throws {
        #expect(throws: TemplateError.self) { try Template(json: try JSONParser.parse(text)) }
    }

    /// A provider's TIT: the base fields plus a time-of-day price table and an
    /// incentive factor. It may add fields, never drop or redefine base ones.
    @Test func providerExtension() throws {
        let ext = try ProviderTemplates.timeOfDayTIT(owner: Self.owner)
        #expect(ext.kind == .tit)
        let names = ext.effectiveFields.map(\.0)
        for base in BaseTemplates.tit.effectiveFields.map(\.0) { #expect(names.contains(base)) }
        #expect(names.contains("priceTable"))
        #expect(names.contains("incentiveFactor"))
        // A claim missing a base field fails even though the extension does not list it.
        var claim = ProviderTemplates.sampleTITClaim(provider: Self.owner, consumer: "did:key:z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp")
        #expect(ext.validate(.object(claim)).isEmpty)
        claim["unitPrice"] = nil
        #expect(paths(ext.validate(.object(claim))) == ["$.unitPrice"])
        // Redefining a base field is refused.
        #expect(throws: TemplateError.self) {
            try Template(
                id: "urn:p:t", version: 1, owner: Self.owner, title: "x", kind: .tit, extends: (BaseTemplates.titID, 1),
                fields: [("unitPrice", FieldSpec(.string))], base: BaseTemplates.tit)
        }
        // A TST cannot extend a TIT.
        #expect(throws: TemplateError.self) {
            try Template(id: "urn:p:t", version: 1, owner: Self.owner, title: "x", kind: .tst, extends: (BaseTemplates.titID, 1), fields: [], base: BaseTemplates.tit)
        }
        // The JSON form keeps only own fields and re-resolves the base.
        let back = try Template(json: ext.json)
        #expect(back.effectiveFields.map(\.0) == names)
    }

    @Test func baseTemplatesHaveThePapersFields() {
        let tit = Set(BaseTemplates.tit.effectiveFields.map(\.0))
        for f in ["providerDid", "consumerDid", "computingPower", "unitPrice", "settlementStrategy", "initialPricing", "settlementTemplateId", "encryptionMethod"] {
            #expect(tit.contains(f))
        }
        let tst = Set(BaseTemplates.tst.effectiveFields.map(\.0))
        for f in ["providerDid", "consumerDid", "channelId", "sequence", "usage", "fee", "start", "end", "encryptionMethod"] {
            #expect(tst.contains(f))
        }
    }
}
