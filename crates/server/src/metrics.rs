//! Request metrics in the Prometheus text format: latency histograms by
//! request class and rejections by reason. Lock-free counters.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Histogram bucket upper bounds, in seconds.
const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];
const CLASSES: [&str; 3] = ["ingest", "api", "other"];
const REASONS: [&str; 3] = ["unauthorized", "bad_request", "too_large"];

#[derive(Debug, Default)]
struct Histogram {
    buckets: [AtomicU64; 12],
    count: AtomicU64,
    /// Microseconds.
    sum_us: AtomicU64,
}

/// Request latencies and rejections.
#[derive(Debug, Default)]
pub struct Metrics {
    latency: [Histogram; 3],
    rejected: [AtomicU64; 3],
}

impl Metrics {
    pub fn observe(&self, class: &str, elapsed: Duration) {
        let Some(i) = CLASSES.iter().position(|c| *c == class) else {
            return;
        };
        let h = &self.latency[i];
        let s = elapsed.as_secs_f64();
        for (b, bound) in h.buckets.iter().zip(BUCKETS) {
            if s <= bound {
                b.fetch_add(1, Ordering::Relaxed);
            }
        }
        h.count.fetch_add(1, Ordering::Relaxed);
        h.sum_us
            .fetch_add(elapsed.as_micros() as u64, Ordering::Relaxed);
    }

    pub fn rejected(&self, reason: &str) {
        if let Some(i) = REASONS.iter().position(|r| *r == reason) {
            self.rejected[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Appends the metrics in the Prometheus text format.
    pub fn render(&self, out: &mut String) {
        out.push_str("# HELP lifecycle_requests_rejected_total Requests rejected, by reason\n");
        out.push_str("# TYPE lifecycle_requests_rejected_total counter\n");
        for (reason, n) in REASONS.iter().zip(&self.rejected) {
            out.push_str(&format!(
                "lifecycle_requests_rejected_total{{reason=\"{reason}\"}} {}\n",
                n.load(Ordering::Relaxed)
            ));
        }
        let name = "lifecycle_request_duration_seconds";
        out.push_str(&format!(
            "# HELP {name} Request latency by class\n# TYPE {name} histogram\n"
        ));
        for (class, h) in CLASSES.iter().zip(&self.latency) {
            for (b, bound) in h.buckets.iter().zip(BUCKETS) {
                out.push_str(&format!(
                    "{name}_bucket{{class=\"{class}\",le=\"{bound}\"}} {}\n",
                    b.load(Ordering::Relaxed)
                ));
            }
            let count = h.count.load(Ordering::Relaxed);
            out.push_str(&format!(
                "{name}_bucket{{class=\"{class}\",le=\"+Inf\"}} {count}\n"
            ));
            out.push_str(&format!(
                "{name}_sum{{class=\"{class}\"}} {}\n",
                h.sum_us.load(Ordering::Relaxed) as f64 / 1e6
            ));
            out.push_str(&format!("{name}_count{{class=\"{class}\"}} {count}\n"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative() {
        let m = Metrics::default();
        m.observe("api", Duration::from_micros(700));
        m.observe("api", Duration::from_millis(30));
        m.rejected("unauthorized");
        let mut out = String::new();
        m.render(&mut out);
        assert!(
            out.contains(
                "lifecycle_request_duration_seconds_bucket{class=\"api\",le=\"0.0005\"} 0"
            )
        );
        assert!(
            out.contains("lifecycle_request_duration_seconds_bucket{class=\"api\",le=\"0.001\"} 1")
        );
        assert!(
            out.contains("lifecycle_request_duration_seconds_bucket{class=\"api\",le=\"0.05\"} 2")
        );
        assert!(out.contains("lifecycle_request_duration_seconds_count{class=\"api\"} 2"));
        assert!(out.contains("lifecycle_requests_rejected_total{reason=\"unauthorized\"} 1"));
    }
}
