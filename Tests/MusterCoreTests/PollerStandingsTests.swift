import Testing

@testable import MusterCore

/// The verdicts that admit poller heartbeats without a read of the store: kept for their lifetime only, gone
/// with any forget of their poller, never kept from a read that a forget overtook, a few serials per poller.
@Suite("poller standings")
struct PollerStandingsTests {
    let id = "spiffe://standings.test/muster/poller/p1"

    @Test("a remembered verdict admits its serial and ID only, until its poller is forgotten")
    func admitsUntilForgotten() {
        let standings = PollerStandings()
        #expect(!standings.admits("p1", serial: "01", spiffeID: id))
        standings.remember("p1", serial: "01", spiffeID: id, readAt: standings.generation)
        #expect(standings.admits("p1", serial: "01", spiffeID: id))
        #expect(!standings.admits("p1", serial: "02", spiffeID: id))
        #expect(!standings.admits("p1", serial: "01", spiffeID: id + "x"))
        #expect(!standings.admits("p2", serial: "01", spiffeID: id))
        standings.forget("p2")
        #expect(standings.admits("p1", serial: "01", spiffeID: id))
        standings.forget("p1")
        #expect(!standings.admits("p1", serial: "01", spiffeID: id))
    }

    @Test("a read that began before a forget is not kept after it")
    func staleReadIsDropped() {
        let standings = PollerStandings()
        let before = standings.generation
        standings.forget("p1")  // a revocation lands while the read is in flight
        standings.remember("p1", serial: "01", spiffeID: id, readAt: before)
        #expect(!standings.admits("p1", serial: "01", spiffeID: id))
        standings.remember("p1", serial: "01", spiffeID: id, readAt: standings.generation)
        #expect(standings.admits("p1", serial: "01", spiffeID: id))
    }

    @Test("a verdict lives for its lifetime only")
    func expires() async throws {
        let standings = PollerStandings(ttl: .milliseconds(100))
        standings.remember("p1", serial: "01", spiffeID: id, readAt: standings.generation)
        #expect(standings.admits("p1", serial: "01", spiffeID: id))
        try await Task.sleep(for: .milliseconds(200))
        #expect(!standings.admits("p1", serial: "01", spiffeID: id))
    }

    @Test("a poller keeps its newest few serials")
    func boundedPerPoller() {
        let standings = PollerStandings()
        let serials = (0...PollerStandings.serialsPerPoller).map { "s\($0)" }
        for serial in serials {
            standings.remember("p1", serial: serial, spiffeID: id, readAt: standings.generation)
        }
        #expect(!standings.admits("p1", serial: serials[0], spiffeID: id))
        for serial in serials.dropFirst() { #expect(standings.admits("p1", serial: serial, spiffeID: id)) }
    }
}
