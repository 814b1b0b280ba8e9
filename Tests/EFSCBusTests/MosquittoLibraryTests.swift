import Testing
@testable import EFSCBus

/// Proves libmosquitto links: the library initialises and reports a 2.x version
/// (MQTT v5 support arrived in 2.0).
@Suite struct MosquittoLibraryTests {
    @Test func initialisesAndReportsVersion() {
        #expect(MosquittoLibrary.initialize())
        let parts = MosquittoLibrary.version.split(separator: ".").compactMap { Int($0) }
        #expect(parts.count == 3)
        #expect((parts.first ?? 0) >= 2)
    }
}
