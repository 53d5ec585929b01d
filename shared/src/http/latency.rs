//! Per-route request counts and latency percentiles since the process started, for
//! `GET /api/admin/stats`: recorded by the router around every matched route.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use hdrhistogram::Histogram;
use serde::Serialize;

/// One histogram per `METHOD template`: the route table's templates, so the keys are few
/// and fixed. Microseconds, two significant figures, growing as slower answers come.
#[derive(Default)]
pub struct RouteLatencies(Mutex<BTreeMap<String, Histogram<u64>>>);

/// One route's figures.
#[derive(Debug, Serialize, PartialEq)]
pub struct RouteFigures {
    pub route: String,
    pub count: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl RouteLatencies {
    pub fn record(&self, route: String, latency: Duration) {
        let micros = u64::try_from(latency.as_micros())
            .unwrap_or(u64::MAX)
            .max(1);
        let mut routes = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let histogram = routes.entry(route).or_insert_with(|| {
            Histogram::new(2).expect("two significant figures is a valid histogram")
        });
        // `record` grows the histogram to fit (`saturating_record` would clamp to its
        // initial range, a few microseconds); it fails only past `u64`'s range.
        if histogram.record(micros).is_err() {
            histogram.saturating_record(micros);
        }
    }

    /// Every route answered since start, by route.
    pub fn figures(&self) -> Vec<RouteFigures> {
        let routes = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let ms = |micros: u64| micros as f64 / 1000.0;
        routes
            .iter()
            .map(|(route, h)| RouteFigures {
                route: route.clone(),
                count: h.len(),
                p50_ms: ms(h.value_at_quantile(0.5)),
                p99_ms: ms(h.value_at_quantile(0.99)),
                max_ms: ms(h.max()),
            })
            .collect()
    }
}

/// Times a matched route's answer (to its headers; a stream's body runs on) and records it
/// under its method and template. Runs inside the router, where the template is known.
pub async fn record(
    axum::extract::State(latencies): axum::extract::State<std::sync::Arc<RouteLatencies>>,
    request: Request,
    next: Next,
) -> Response {
    let route = match request.extensions().get::<MatchedPath>() {
        Some(path) => format!("{} {}", request.method(), path.as_str()),
        None => format!("{} unmatched", request.method()),
    };
    let start = std::time::Instant::now();
    let response = next.run(request).await;
    latencies.record(route, start.elapsed());
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_come_from_what_was_recorded() {
        let latencies = RouteLatencies::default();
        for ms in 1..=100 {
            latencies.record("GET /a".into(), Duration::from_millis(ms));
        }
        latencies.record("POST /b".into(), Duration::from_micros(300));
        let figures = latencies.figures();
        assert_eq!(figures.len(), 2);
        let a = &figures[0];
        assert_eq!((a.route.as_str(), a.count), ("GET /a", 100));
        // Two significant figures: within 1 % of the true value.
        assert!((a.p50_ms - 50.0).abs() <= 0.5, "{a:?}");
        assert!((a.p99_ms - 99.0).abs() <= 1.0, "{a:?}");
        assert!((a.max_ms - 100.0).abs() <= 1.0, "{a:?}");
        assert_eq!(
            (figures[1].route.as_str(), figures[1].count),
            ("POST /b", 1)
        );
    }
}
