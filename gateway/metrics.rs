//! Prometheus metrics (SPEC §6), a projection of each finished exchange.
//!
//! Label values come from configuration only (consumer ids, partner ids, decision names), never
//! from request input, so label sets stay bounded and no personal data can reach a time series.
//! Anything not configured is reported as `unknown`.

use prometheus::{
    Encoder, Gauge, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec,
    IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};

/// Buckets for a sub-millisecond proxy: 25 µs … 10 s (the gateway's own work per exchange is
/// tens of microseconds; partners and fsyncs take milliseconds; timeouts are seconds).
const LATENCY_BUCKETS: &[f64] = &[
    0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
    0.5, 1.0, 2.5, 5.0, 10.0,
];

pub struct Metrics {
    registry: Registry,
    pub requests_total: IntCounterVec,
    /// Refusals and failures by problem code (beyond SPEC §6: `decision` alone cannot tell a
    /// missing purpose from a missing grant).
    pub problems_total: IntCounterVec,
    pub request_duration: HistogramVec,
    pub upstream_duration: HistogramVec,
    pub upstream_errors: IntCounterVec,
    pub tls_handshake_failures: IntCounterVec,
    pub connections_active: IntGauge,
    /// Open HTTP/1.1 connections parked while idle (only their TLS state kept).
    pub connections_parked: IntGauge,
    pub certificate_expiry: GaugeVec,
    pub audit_failures: IntCounter,
    pub audit_queue_depth: IntGauge,
    pub audit_write_duration: Histogram,
    /// Records per group commit: grows with load (the adaptive commit delay), 1 when idle.
    pub audit_batch_records: Histogram,
    /// Round trips to the store (SPEC §9) by operation (`spend_approval`, `ping`, `prune`).
    /// Commits of the PostgreSQL audit sink are `audit_write_duration`, like file commits.
    pub store_duration: HistogramVec,
    /// Store round trips that failed, by operation.
    pub store_errors: IntCounterVec,
    pub policy_info: GaugeVec,
    pub policy_reloads: IntCounterVec,
    pub fields_withheld: IntCounterVec,
}

fn register<C: prometheus::core::Collector + Clone + 'static>(registry: &Registry, c: C) -> C {
    // Names are static and unique, so registration cannot collide; a failure would be a
    // programming error caught by the tests below, not a runtime condition.
    if let Err(e) = registry.register(Box::new(c.clone())) {
        tracing::error!(error = %e, "metric registration failed");
    }
    c
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        // What is running (for dashboards and alerts across a version change), and the process
        // metrics every exporter offers: CPU seconds, resident memory, open and maximum file
        // descriptors, threads, start time.
        let build_info = register(
            &registry,
            IntGaugeVec::new(
                Opts::new(
                    "doelpoort_build_info",
                    "The running build: its version and source revision (always 1).",
                ),
                &["version", "revision"],
            )
            .expect("static metric definition"),
        );
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION"), env!("DOELPOORT_REVISION")])
            .set(1);
        #[cfg(target_os = "linux")]
        if let Err(e) = registry.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        )) {
            tracing::error!(error = %e, "cannot register the process metrics");
        }
        let counter_vec = |name: &str, help: &str, labels: &[&str]| {
            register(
                &registry,
                IntCounterVec::new(Opts::new(name, help), labels)
                    .expect("static metric definition"),
            )
        };
        let histogram_vec = |name: &str, help: &str, labels: &[&str]| {
            register(
                &registry,
                HistogramVec::new(
                    HistogramOpts::new(name, help).buckets(LATENCY_BUCKETS.to_vec()),
                    labels,
                )
                .expect("static metric definition"),
            )
        };
        Self {
            requests_total: counter_vec(
                "doelpoort_requests_total",
                "Exchanges handled, by decision.",
                &["consumer", "partner", "operation", "purpose", "decision"],
            ),
            problems_total: counter_vec(
                "doelpoort_problems_total",
                "Exchanges answered with a problem, by problem code (SPEC §2).",
                &["consumer", "partner", "code"],
            ),
            request_duration: histogram_vec(
                "doelpoort_request_duration_seconds",
                "Time from request head to response, per partner and decision.",
                &["partner", "decision"],
            ),
            upstream_duration: histogram_vec(
                "doelpoort_upstream_duration_seconds",
                "Time the partner took to answer (whole body read).",
                &["partner"],
            ),
            upstream_errors: counter_vec(
                "doelpoort_upstream_errors_total",
                "Failed partner exchanges by kind.",
                &["partner", "kind"],
            ),
            tls_handshake_failures: counter_vec(
                "doelpoort_tls_handshake_failures_total",
                "Inbound TLS handshakes that failed, by reason.",
                &["reason"],
            ),
            connections_active: register(
                &registry,
                IntGauge::new("doelpoort_connections_active", "Open client connections.")
                    .expect("static metric definition"),
            ),
            connections_parked: register(
                &registry,
                IntGauge::new(
                    "doelpoort_connections_parked",
                    "Open HTTP/1.1 connections idling without HTTP state (only their TLS state).",
                )
                .expect("static metric definition"),
            ),
            certificate_expiry: register(
                &registry,
                GaugeVec::new(
                    Opts::new(
                        "doelpoort_certificate_expiry_timestamp_seconds",
                        "notAfter of each configured certificate (unix seconds).",
                    ),
                    &["certificate"],
                )
                .expect("static metric definition"),
            ),
            audit_failures: register(
                &registry,
                IntCounter::new(
                    "doelpoort_audit_failures_total",
                    "Exchanges refused because their audit record could not be written.",
                )
                .expect("static metric definition"),
            ),
            audit_queue_depth: register(
                &registry,
                IntGauge::new(
                    "doelpoort_audit_queue_depth",
                    "Audit records waiting for the writer.",
                )
                .expect("static metric definition"),
            ),
            audit_write_duration: register(
                &registry,
                Histogram::with_opts(
                    HistogramOpts::new(
                        "doelpoort_audit_write_duration_seconds",
                        "Duration of one audit group commit (write + fsync).",
                    )
                    .buckets(LATENCY_BUCKETS.to_vec()),
                )
                .expect("static metric definition"),
            ),
            audit_batch_records: register(
                &registry,
                Histogram::with_opts(
                    HistogramOpts::new(
                        "doelpoort_audit_batch_records",
                        "Records written by one audit group commit (one fsync).",
                    )
                    .buckets(vec![
                        1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 1024.0,
                    ]),
                )
                .expect("static metric definition"),
            ),
            store_duration: register(
                &registry,
                HistogramVec::new(
                    HistogramOpts::new(
                        "doelpoort_store_duration_seconds",
                        "Duration of one round trip to the store, by operation.",
                    )
                    .buckets(LATENCY_BUCKETS.to_vec()),
                    &["operation"],
                )
                .expect("static metric definition"),
            ),
            store_errors: counter_vec(
                "doelpoort_store_errors_total",
                "Round trips to the store that failed, by operation.",
                &["operation"],
            ),
            policy_info: register(
                &registry,
                GaugeVec::new(
                    Opts::new(
                        "doelpoort_policy_info",
                        "The active policy set version (1).",
                    ),
                    &["version"],
                )
                .expect("static metric definition"),
            ),
            policy_reloads: counter_vec(
                "doelpoort_policy_reloads_total",
                "Policy reload attempts by result.",
                &["result"],
            ),
            fields_withheld: counter_vec(
                "doelpoort_fields_withheld_total",
                "Response fields removed by minimisation.",
                &["partner", "operation", "purpose"],
            ),
            registry,
        }
        .with_known_series()
    }

    /// Series whose label values are known up front start at 0, so `increase()` sees their
    /// first event (a series that appears at 1 has no increase to show).
    fn with_known_series(self) -> Self {
        for result in ["ok", "failed"] {
            self.policy_reloads.with_label_values(&[result]);
        }
        self
    }

    /// The families the store reports its round trips to.
    pub fn store(&self) -> crate::store::StoreMetrics {
        crate::store::StoreMetrics {
            duration: self.store_duration.clone(),
            errors: self.store_errors.clone(),
        }
    }

    /// A registry with one example series in every family, so that the exposition lists every
    /// metric with its labels (families of labelled metrics appear only once they have a
    /// series). For tests, and for checking dashboards and alert rules against what exists.
    pub fn with_example_series() -> Self {
        let m = Self::new();
        m.requests_total
            .with_label_values(&["c", "p", "o", "unknown", "allow"])
            .inc();
        m.problems_total
            .with_label_values(&["c", "p", "not-granted"])
            .inc();
        m.request_duration
            .with_label_values(&["p", "allow"])
            .observe(0.001);
        m.upstream_duration.with_label_values(&["p"]).observe(0.001);
        m.upstream_errors.with_label_values(&["p", "connect"]).inc();
        m.tls_handshake_failures.with_label_values(&["x"]).inc();
        m.connections_active.inc();
        m.connections_parked.inc();
        m.set_certificate_expiry("listener", 1);
        m.audit_failures.inc();
        m.audit_queue_depth.set(1);
        m.audit_write_duration.observe(0.001);
        m.audit_batch_records.observe(1.0);
        m.store_duration
            .with_label_values(&["spend_approval"])
            .observe(0.001);
        m.store_errors.with_label_values(&["ping"]).inc();
        m.policy_info.with_label_values(&["v"]).set(1.0);
        m.policy_reloads.with_label_values(&["ok"]).inc();
        m.fields_withheld.with_label_values(&["p", "o", "x"]).inc();
        m
    }

    /// Starts the per-partner error series at 0 (called once the partners are configured).
    pub fn register_partner(&self, partner: &str) {
        for kind in crate::upstream::UpstreamErrorKind::ALL {
            self.upstream_errors
                .with_label_values(&[partner, kind.as_str()]);
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(8 * 1024);
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::error!(error = %e, "metrics encoding failed");
        }
        out
    }

    pub fn set_certificate_expiry(&self, certificate: &str, not_after: i64) {
        let gauge: Gauge = self.certificate_expiry.with_label_values(&[certificate]);
        gauge.set(not_after as f64);
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
    fn exposes_contract_names() {
        let m = Metrics::with_example_series();
        let text = String::from_utf8(m.render()).unwrap();
        for name in [
            "doelpoort_requests_total",
            "doelpoort_request_duration_seconds",
            "doelpoort_upstream_duration_seconds",
            "doelpoort_upstream_errors_total",
            "doelpoort_fields_withheld_total",
            "doelpoort_policy_reloads_total",
            "doelpoort_policy_info",
            "doelpoort_audit_write_duration_seconds",
            "doelpoort_audit_queue_depth",
            "doelpoort_audit_failures_total",
            "doelpoort_audit_batch_records",
            "doelpoort_store_duration_seconds",
            "doelpoort_store_errors_total",
            "doelpoort_tls_handshake_failures_total",
            "doelpoort_certificate_expiry_timestamp_seconds",
            "doelpoort_connections_active",
            "doelpoort_connections_parked",
            "doelpoort_problems_total",
        ] {
            assert!(text.contains(&format!("# TYPE {name} ")), "{name} missing");
        }
    }
}
