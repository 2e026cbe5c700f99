//! Fair doors: what keeps one tenant's slow or numerous uploads from holding the API's capacity.
//! Per-tenant upload slots ([`TenantSlots`]), a body reader that cuts off bodies that stall or
//! trickle ([`BodyReader`]), and a deadline for every request ([`request_deadline`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http_body_util::BodyExt;
use shared::config::ApiConfig;
use shared::domain::TenantId;

use crate::error::ApiError;

/// Per-tenant counts of uploads in progress, each bounded by the same cap.
#[derive(Clone)]
pub(crate) struct TenantSlots {
    cap: usize,
    taken: Arc<Mutex<HashMap<TenantId, usize>>>,
}

/// One tenant's upload slot; given back when dropped.
pub(crate) struct TenantSlot {
    tenant: TenantId,
    taken: Arc<Mutex<HashMap<TenantId, usize>>>,
}

impl TenantSlots {
    pub(crate) fn new(cap: usize) -> TenantSlots {
        TenantSlots { cap, taken: Arc::default() }
    }

    /// A slot for `tenant`, or `None` when it already has `cap` uploads in progress.
    pub(crate) fn take(&self, tenant: &TenantId) -> Option<TenantSlot> {
        let mut taken = self.taken.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let count = taken.entry(tenant.clone()).or_default();
        if *count >= self.cap {
            return None;
        }
        *count += 1;
        Some(TenantSlot { tenant: tenant.clone(), taken: self.taken.clone() })
    }
}

impl Drop for TenantSlot {
    fn drop(&mut self) {
        let mut taken = self.taken.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(count) = taken.get_mut(&self.tenant) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                taken.remove(&self.tenant);
            }
        }
    }
}

/// Answers `408` when a request (headers to answer) takes longer than `limit`
/// (`api.request_timeout_secs`).
pub(crate) async fn request_deadline(State(limit): State<Duration>, request: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            metrics::counter!(shared::series::REQUESTS_CUT_OFF_TOTAL, "reason" => "request_timeout").increment(1);
            ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                "request_timeout",
                format!("the request took over {} s", limit.as_secs()),
            )
            .into_response()
        }
    }
}

pub(crate) enum ReadError {
    TooLarge,
    TooSlow(String),
    Broken(String),
}

/// Bytes read and thrown away after a body went over the limit, so that a client still sending
/// gets the 413 over a cleanly closed connection rather than a reset (lingering close).
const DRAIN_AFTER_LIMIT: u64 = 1024 * 1024;

/// Reads an upload body up to a size limit, at a pace: no frame may take longer than the idle
/// timeout, and after that grace the body must average the minimum rate.
pub(crate) struct BodyReader {
    body: Body,
    limit: u64,
    idle: Duration,
    min_bytes_per_sec: u64,
    started: Instant,
    collected: bytes::BytesMut,
    seen: u64,
    done: bool,
}

impl BodyReader {
    pub(crate) fn new(body: Body, limit: u64, config: &ApiConfig) -> BodyReader {
        BodyReader {
            body,
            limit,
            idle: Duration::from_secs(config.body_idle_timeout_secs),
            min_bytes_per_sec: config.body_min_bytes_per_sec,
            started: Instant::now(),
            collected: bytes::BytesMut::new(),
            seen: 0,
            done: false,
        }
    }

    /// Waits for the first bytes of the body (or its end).
    pub(crate) async fn first(&mut self) -> Result<(), ReadError> {
        while !self.done && self.seen == 0 {
            self.next().await?;
        }
        Ok(())
    }

    /// Reads the rest of the body.
    pub(crate) async fn rest(mut self) -> Result<Bytes, ReadError> {
        while !self.done {
            self.next().await?;
        }
        if self.seen > self.limit { Err(ReadError::TooLarge) } else { Ok(self.collected.freeze()) }
    }

    async fn next(&mut self) -> Result<(), ReadError> {
        let frame = match tokio::time::timeout(self.idle, self.body.frame()).await {
            Err(_) => {
                return Err(ReadError::TooSlow(format!("the body sent nothing for {} s", self.idle.as_secs())));
            }
            Ok(None) => {
                self.done = true;
                return Ok(());
            }
            Ok(Some(frame)) => {
                frame.map_err(|err| ReadError::Broken(format!("could not read the request body: {err}")))?
            }
        };
        let Ok(data) = frame.into_data() else { return Ok(()) };
        self.seen += data.len() as u64;
        if self.seen > self.limit {
            self.done = self.seen > self.limit + DRAIN_AFTER_LIMIT;
        } else {
            self.collected.extend_from_slice(&data);
        }
        let paced = self.started.elapsed().saturating_sub(self.idle);
        let expected = (paced.as_secs_f64() * self.min_bytes_per_sec as f64) as u64;
        if self.seen < expected {
            return Err(ReadError::TooSlow(format!(
                "the body arrived at under {} bytes a second",
                self.min_bytes_per_sec
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use super::*;

    fn config(idle_secs: u64, min_bytes_per_sec: u64) -> ApiConfig {
        ApiConfig {
            body_idle_timeout_secs: idle_secs,
            body_min_bytes_per_sec: min_bytes_per_sec,
            ..ApiConfig::default()
        }
    }

    /// A body that sends `chunks`, each after `pause`.
    fn paced(chunks: Vec<&'static [u8]>, pause: Duration) -> Body {
        let (sender, receiver) = tokio::sync::mpsc::channel(1);
        tokio::spawn(async move {
            for chunk in chunks {
                tokio::time::sleep(pause).await;
                if sender.send(Ok::<_, Infallible>(Bytes::from_static(chunk))).await.is_err() {
                    return;
                }
            }
        });
        Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(receiver))
    }

    #[tokio::test]
    async fn a_body_that_stalls_is_cut_off() {
        let mut reader = BodyReader::new(paced(vec![b"a", b"b"], Duration::from_secs(3)), 100, &config(1, 0));
        assert!(matches!(reader.first().await, Err(ReadError::TooSlow(_))));
    }

    #[tokio::test]
    async fn a_body_that_trickles_is_cut_off_after_the_grace() {
        // Five bytes a second: never silent for the idle timeout, but far under 100 a second.
        let chunks = vec![b"x".as_slice(); 50];
        let mut reader = BodyReader::new(paced(chunks, Duration::from_millis(200)), 1000, &config(1, 100));
        reader.first().await.map_err(|_| "the first byte is in time").unwrap();
        let Err(ReadError::TooSlow(message)) = reader.rest().await else { panic!("a trickle is cut off") };
        assert!(message.contains("100 bytes a second"), "{message}");
    }

    #[tokio::test]
    async fn a_body_at_pace_is_read_whole() {
        let chunks = vec![b"0123456789".as_slice(); 20];
        let mut reader = BodyReader::new(paced(chunks, Duration::from_millis(50)), 1000, &config(1, 100));
        reader.first().await.map_err(|_| "in time").unwrap();
        let Ok(body) = reader.rest().await else { panic!("read whole") };
        assert_eq!(body.len(), 200);
    }

    #[test]
    fn each_tenant_has_its_own_cap_and_slots_come_back() {
        let slots = TenantSlots::new(2);
        let acme: TenantId = "acme".parse().unwrap();
        let bravo: TenantId = "bravo".parse().unwrap();
        let first = slots.take(&acme).unwrap();
        let _second = slots.take(&acme).unwrap();
        assert!(slots.take(&acme).is_none(), "acme is at its cap");
        assert!(slots.take(&bravo).is_some(), "bravo is not affected");
        drop(first);
        assert!(slots.take(&acme).is_some(), "a finished upload gives its slot back");
    }
}
