//! Prometheus metrics (OpenMetrics text), exposed at `/metrics`. Each subsystem gets its
//! counters from here; the registry is built once at start and only read afterwards.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    pub method: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LoginLabels {
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EventLabels {
    pub event: &'static str,
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: &'static str,
}

pub struct Metrics {
    registry: Registry,
    pub http_requests: Family<HttpLabels, Counter>,
    http_connections_refused: Family<ReasonLabels, Counter>,
    pub logins: Family<LoginLabels, Counter>,
    pub sockets: Gauge,
    socket_events: Family<EventLabels, Counter>,
    signals_refused: Family<ReasonLabels, Counter>,
    transfers_finished: Family<ReasonLabels, Counter>,
    pub transfer_log_waiting: Gauge,
    pub turn: crate::turn::TurnCounters,
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("labbeam");
        let http_requests = Family::<HttpLabels, Counter>::default();
        registry.register("http_requests", "HTTP requests answered, by method and status", http_requests.clone());
        let http_connections_refused = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "http_connections_refused",
            "HTTPS connections closed at accept, by reason (per_address: http.max_connections_per_address)",
            http_connections_refused.clone(),
        );
        // The series exists from the start, at 0.
        let _ = http_connections_refused.get_or_create(&ReasonLabels { reason: "per_address".into() });
        let logins = Family::<LoginLabels, Counter>::default();
        registry.register("logins", "Login attempts by result", logins.clone());
        let build = Family::<BuildLabels, Gauge>::default();
        build.get_or_create(&BuildLabels { version: env!("CARGO_PKG_VERSION") }).set(1);
        registry.register("build_info", "The running version", build);
        let sockets = Gauge::default();
        registry.register("sockets_connected", "Signaling connections (devices online)", sockets.clone());
        let socket_events = Family::<EventLabels, Counter>::default();
        registry.register("socket_events", "Client events by name and result code", socket_events.clone());
        let signals_refused = Family::<ReasonLabels, Counter>::default();
        registry.register("signals_refused", "WebRTC signals refused, by reason", signals_refused.clone());
        let transfers_finished = Family::<ReasonLabels, Counter>::default();
        registry.register("transfers_finished", "Transfers logged, by final status", transfers_finished.clone());
        let transfer_log_waiting = Gauge::default();
        registry.register(
            "transfer_log_waiting",
            "Transfer-log records waiting in memory for the store to come back",
            transfer_log_waiting.clone(),
        );
        let turn = crate::turn::TurnCounters::register(&mut registry);
        Self {
            registry,
            http_requests,
            http_connections_refused,
            logins,
            sockets,
            socket_events,
            signals_refused,
            transfers_finished,
            transfer_log_waiting,
            turn,
        }
    }

    /// The counter of HTTPS connections refused for `reason`, for the listener to hold.
    pub fn http_connections_refused(&self, reason: &str) -> Counter {
        self.http_connections_refused.get_or_create(&ReasonLabels { reason: reason.to_string() }).clone()
    }

    pub fn socket_event(&self, event: &'static str, result: &'static str) {
        self.socket_events.get_or_create(&EventLabels { event, result }).inc();
    }

    pub fn signal_refused(&self, reason: &str) {
        self.signals_refused.get_or_create(&ReasonLabels { reason: reason.to_string() }).inc();
    }

    pub fn transfer_finished(&self, status: &str) {
        self.transfers_finished.get_or_create(&ReasonLabels { reason: status.to_string() }).inc();
    }

    pub fn login(&self, result: &'static str) {
        self.logins.get_or_create(&LoginLabels { result }).inc();
    }

    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_appear_in_text() {
        let m = Metrics::new();
        m.login("failure");
        m.http_requests.get_or_create(&HttpLabels { method: "GET".into(), status: 200 }).inc();
        let text = m.encode();
        assert!(text.contains("labbeam_logins_total{result=\"failure\"} 1"), "{text}");
        assert!(text.contains("labbeam_http_requests_total{method=\"GET\",status=\"200\"} 1"), "{text}");
        assert!(text.contains("labbeam_build_info"));
        assert!(text.ends_with("# EOF\n"));
    }
}
