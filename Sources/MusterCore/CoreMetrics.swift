import Foundation
import MusterConcurrency
import MusterStore
import Prometheus

/// Core's Prometheus metrics. Labels are route templates, statuses and types — never ids or secrets.
public final class CoreMetrics: Sendable {
    public let registry = PrometheusCollectorRegistry()
    private let requests = LockedValue<[String: Counter]>([:])
    private let transitions = LockedValue<[String: Counter]>([:])
    private let latency: DurationHistogram
    let redemptions: Counter
    let refusedRedemptions: Counter
    let authFailures: Counter
    let rateLimited: Counter
    let eventsPublished: Counter
    let expired: Counter
    let databaseUp: Gauge
    let packageStreams: Gauge
    let feedReads: Counter
    let feedDeliveries: Counter

    public init() {
        latency = registry.makeDurationHistogram(
            name: "muster_http_request_duration_seconds",
            buckets: [
                .milliseconds(1), .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50),
                .milliseconds(100), .milliseconds(250), .seconds(1), .seconds(5),
            ],
            help: "HTTP API request latency"
        )
        redemptions = registry.makeCounter(name: "muster_token_redemptions_total", help: "Join tokens redeemed")
        refusedRedemptions = registry.makeCounter(
            name: "muster_token_redemptions_refused_total", help: "Join token redemptions refused")
        authFailures = registry.makeCounter(
            name: "muster_http_auth_failures_total", help: "Requests refused for a missing, bad or under-scoped token")
        rateLimited = registry.makeCounter(
            name: "muster_http_rate_limited_total", help: "Package creations refused by the rate limit")
        eventsPublished = registry.makeCounter(
            name: "muster_nats_events_published_total", help: "Outbox events published to NATS")
        expired = registry.makeCounter(name: "muster_packages_expired_total", help: "Packages expired by the reaper")
        databaseUp = registry.makeGauge(name: "muster_database_up", help: "1 when the last database check succeeded")
        packageStreams = registry.makeGauge(
            name: "muster_package_streams", help: "Poller package streams open on this Core process")
        feedReads = registry.makeCounter(
            name: "muster_package_feed_reads_total", help: "Reads of the events table by the package feed")
        feedDeliveries = registry.makeCounter(
            name: "muster_package_feed_deliveries_total", help: "Events handed by the package feed to a stream")
    }

    func request(route: String, method: String, status: Int, duration: Duration) {
        let key = "\(method) \(route) \(status)"
        let counter = requests.withLock { counters in
            if let counter = counters[key] { return counter }
            let counter = registry.makeCounter(
                name: "muster_http_requests_total",
                labels: [("method", method), ("route", route), ("status", String(status))],
                help: "HTTP API requests"
            )
            counters[key] = counter
            return counter
        }
        counter.increment()
        latency.record(duration)
    }

    func packageTransition(_ status: String, type: ComponentType) {
        let key = "\(status) \(type.rawValue)"
        let counter = transitions.withLock { counters in
            if let counter = counters[key] { return counter }
            let counter = registry.makeCounter(
                name: "muster_package_transitions_total",
                labels: [("status", status), ("component_type", type.rawValue)],
                help: "Package lifecycle transitions by target status"
            )
            counters[key] = counter
            return counter
        }
        counter.increment()
    }

    public func text() -> String { registry.emitToString() }
}
