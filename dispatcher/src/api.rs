//! The tenant-facing HTTP API: upload, status, result, listing, health and metrics.
//!
//! Every `/v1` route needs `Authorization: Bearer <key>`. Another tenant's document answers
//! exactly like a missing one (404), so ids reveal nothing across tenants.
//!
//! Each handler carries its OpenAPI description (`#[utoipa::path]`) and is registered with
//! `routes!`, which takes path and methods from that description: the routes served and the
//! routes in `/openapi.json` ([`document`], framed by the `openapi` module) are one list.

use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use axum::extract::{FromRequestParts, MatchedPath, Path, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use metrics_exporter_prometheus::PrometheusHandle;
use serde::{Deserialize, Serialize};
use shared::backend::Backends;
use shared::chart::{Chart, chart_key};
use shared::config::ApiConfig;
use shared::domain::{DocumentType, Job, JobError, JobId, JobStatus, TenantId};
use shared::ports::ApiKey;
use shared::proposal::BookingProposal;
use tokio::sync::Semaphore;
use utoipa::openapi::OpenApi as OpenApiDocument;
use utoipa::{IntoParams, OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub(crate) use crate::error::{ApiError, ErrorBody};
use crate::intake::{self, Accepted};

/// Shared state of the API handlers.
#[derive(Clone)]
pub(crate) struct ApiState {
    pub backends: Backends,
    pub config: ApiConfig,
    /// Renders `/metrics`; `None` when another recorder owns the process (tests).
    pub metrics: Option<PrometheusHandle>,
    /// Bounds uploads held in memory at once.
    pub uploads: Arc<Semaphore>,
    /// Uploads in progress per tenant, bounded by `api.max_concurrent_uploads_per_tenant`.
    pub tenant_uploads: crate::doors::TenantSlots,
}

impl ApiState {
    pub(crate) fn new(backends: Backends, config: ApiConfig, metrics: Option<PrometheusHandle>) -> ApiState {
        let uploads = Arc::new(Semaphore::new(config.max_concurrent_uploads));
        let tenant_uploads = crate::doors::TenantSlots::new(config.max_concurrent_uploads_per_tenant);
        ApiState { backends, config, metrics, uploads, tenant_uploads }
    }
}

pub(crate) fn router(state: ApiState) -> Router {
    let (routes, _document) = documented_routes().split_for_parts();
    routes
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such route") })
        .layer(middleware::from_fn(crate::error::json_errors))
        .layer(middleware::from_fn_with_state(
            Duration::from_secs(state.config.request_timeout_secs),
            crate::doors::request_deadline,
        ))
        .layer(middleware::from_fn(track_http))
        .with_state(state)
}

/// Every route of the API with its OpenAPI description. Register routes here and only through
/// `routes!` (a test in [`crate::openapi`] checks that this file adds none any other way).
pub(crate) fn documented_routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::with_openapi(crate::openapi::ApiDoc::openapi())
        .routes(routes!(upload, list))
        .routes(routes!(status))
        .routes(routes!(result))
        .routes(routes!(get_chart, put_chart))
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(render_metrics))
        .routes(routes!(serve_document))
}

/// The whole OpenAPI document: the frame plus every registered route, the API's and the
/// operators'.
pub(crate) fn document() -> OpenApiDocument {
    crate::openapi::combine(documented_routes().into_openapi(), crate::admin::document())
}

/// Built on first request; the routes cannot change while the process runs.
static DOCUMENT: LazyLock<OpenApiDocument> = LazyLock::new(document);

/// This OpenAPI document
#[utoipa::path(
    get,
    path = "/openapi.json",
    operation_id = "openapi",
    tag = "operations",
    responses((status = 200, description = "The OpenAPI 3.1 document of this API.", body = Object)),
)]
pub(crate) async fn serve_document() -> Json<&'static OpenApiDocument> {
    Json(&DOCUMENT)
}

/// The tenant a request is authenticated as.
pub(crate) struct Tenant(pub TenantId);

impl FromRequestParts<ApiState> for Tenant {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Tenant, ApiError> {
        let unauthorized = || {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "a valid API key is required (Authorization: Bearer <key>)",
            )
        };
        let header = parts.headers.get(header::AUTHORIZATION).ok_or_else(unauthorized)?;
        let key = header
            .to_str()
            .ok()
            .and_then(|value| value.strip_prefix("Bearer ").or_else(|| value.strip_prefix("bearer ")))
            .map(str::trim)
            .filter(|key| !key.is_empty())
            .ok_or_else(unauthorized)?;
        let tenant = state
            .backends
            .tenants
            .find_tenant_by_key(&ApiKey::hash_presented(key))
            .await
            .map_err(ApiError::unavailable)?
            .ok_or_else(unauthorized)?;
        Ok(Tenant(tenant))
    }
}

/// A job as the API shows it: no lease, no storage keys.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub(crate) struct DocumentView {
    pub id: JobId,
    pub status: JobStatus,
    pub document_type: DocumentType,
    /// Size of the document in bytes.
    pub size: u64,
    /// SHA-256 of the document, hex.
    pub sha256: String,
    /// Processing attempts so far.
    pub attempts: u32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// When the latest attempt started.
    pub started_at: Option<DateTime<Utc>>,
    /// When the job reached `succeeded`, `failed` or `dead`.
    pub finished_at: Option<DateTime<Utc>>,
    /// Why it failed; only when `failed` or `dead`.
    pub error: Option<JobError>,
    /// Where the booking proposal is; only when `succeeded`.
    pub result_url: Option<String>,
}

impl From<&Job> for DocumentView {
    fn from(job: &Job) -> DocumentView {
        DocumentView {
            id: job.id,
            status: job.status,
            document_type: job.document_type,
            size: job.size,
            sha256: job.sha256.clone(),
            attempts: job.attempts,
            created_at: job.created_at,
            updated_at: job.updated_at,
            started_at: job.started_at,
            finished_at: job.finished_at,
            error: job.last_error.clone().filter(|_| job.status.is_terminal()),
            result_url: (job.status == JobStatus::Succeeded).then(|| format!("/v1/documents/{}/result", job.id)),
        }
    }
}

fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get("idempotency-key") else { return Ok(None) };
    let key = value
        .to_str()
        .ok()
        .map(str::trim)
        .filter(|k| !k.is_empty() && k.len() <= 255 && k.bytes().all(|b| b.is_ascii_graphic()))
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_idempotency_key",
                "Idempotency-Key must be 1 to 255 printable ASCII characters",
            )
        })?;
    Ok(Some(key.to_owned()))
}

/// Upload a document
///
/// The raw document is the body and its `Content-Type` says what it is. Answers `202` once the
/// document, the job record and the queue message are durable; follow `Location` for the status.
#[utoipa::path(
    post,
    path = "/v1/documents",
    operation_id = "upload_document",
    tag = "documents",
    security(("bearer" = [])),
    params(
        ("Idempotency-Key" = Option<String>, Header, nullable = false,
            description = "1 to 255 printable ASCII characters. A repeat with the same key and the same document \
                           returns the first upload's job (`200`)."),
    ),
    request_body(
        description = "The raw document, at most `api.max_upload_bytes` (default 25 MiB).",
        content(("application/pdf"), ("application/xml"), ("text/xml"), ("image/png"), ("image/jpeg"), ("image/tiff")),
    ),
    responses(
        (status = 202, description = "Accepted: a new job.", body = DocumentView,
            headers(("Location" = String, description = "The job's status, `/v1/documents/{id}`"))),
        (status = 200, description = "A repeat of an earlier upload with the same `Idempotency-Key`: its job.",
            body = DocumentView,
            headers(("Location" = String, description = "The job's status, `/v1/documents/{id}`"))),
        (status = 400, description = "`invalid_idempotency_key`, or `bad_body` (the body could not be read).",
            body = ErrorBody),
        (status = 401, description = "`unauthorized`: no valid API key.", body = ErrorBody),
        (status = 413, description = "`payload_too_large`: over `api.max_upload_bytes`; answered before the body \
                                      is read when `Content-Length` says so.", body = ErrorBody),
        (status = 408, description = "`request_timeout`: the body stalled for `api.body_idle_timeout_secs` or \
                                      arrived slower than `api.body_min_bytes_per_sec`.", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`: not one of the content types above.", body = ErrorBody),
        (status = 422, description = "`idempotency_key_reused`: the key was used for a different document.",
            body = ErrorBody),
        (status = 429, description = "`too_many_uploads`: this tenant already has \
                                      `api.max_concurrent_uploads_per_tenant` uploads in progress.", body = ErrorBody,
            headers(("Retry-After" = String, description = "Seconds to wait before trying again"))),
        (status = 503, description = "`unavailable`: storage is temporarily unavailable; retry later.",
            body = ErrorBody),
    ),
)]
async fn upload(State(state): State<ApiState>, tenant: Tenant, request: Request) -> Result<Response, ApiError> {
    let started = Instant::now();
    let headers = request.headers();
    let media_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let document_type = DocumentType::from_media_type(media_type).ok_or_else(|| {
        ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "Content-Type must be one of application/pdf, application/xml, text/xml, image/png, image/jpeg, image/tiff",
        )
    })?;
    let limit = state.config.max_upload_bytes;
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("documents may be at most {limit} bytes"),
        )
    };
    let declared = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit) {
        return Err(too_large());
    }
    let key = idempotency_key(headers)?;
    // This tenant's slot first, then the body's first bytes, and only then a shared slot: a
    // client that sends headers and then nothing holds none of the slots other tenants need.
    let Some(_tenant_slot) = state.tenant_uploads.take(&tenant.0) else {
        metrics::counter!(shared::series::UPLOADS_REFUSED_TOTAL, "reason" => "tenant_concurrency").increment(1);
        let error = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_uploads",
            format!(
                "at most {} uploads of one tenant are taken at once; retry shortly",
                state.config.max_concurrent_uploads_per_tenant
            ),
        );
        return Ok(([(header::RETRY_AFTER, HeaderValue::from_static("1"))], error).into_response());
    };
    let mut reader = crate::doors::BodyReader::new(request.into_body(), limit, &state.config);
    let read_error = |err| match err {
        crate::doors::ReadError::TooLarge => too_large(),
        crate::doors::ReadError::TooSlow(message) => {
            metrics::counter!(shared::series::REQUESTS_CUT_OFF_TOTAL, "reason" => "slow_body").increment(1);
            ApiError::new(StatusCode::REQUEST_TIMEOUT, "request_timeout", message)
        }
        crate::doors::ReadError::Broken(message) => ApiError::new(StatusCode::BAD_REQUEST, "bad_body", message),
    };
    reader.first().await.map_err(read_error)?;
    let _permit = state.uploads.acquire().await.map_err(ApiError::unavailable)?;
    let body = reader.rest().await.map_err(read_error)?;
    let accepted = intake::accept(&state.backends, &tenant.0, key, document_type, body).await?;
    metrics::histogram!(shared::series::UPLOAD_DURATION_SECONDS).record(started.elapsed().as_secs_f64());
    let (status, job) = match &accepted {
        Accepted::Created(job) => (StatusCode::ACCEPTED, job),
        Accepted::Repeated(job) => (StatusCode::OK, job),
    };
    tracing::info!(job_id = %job.id, tenant = %tenant.0, size = job.size, repeated = status == StatusCode::OK, "document accepted");
    let location = HeaderValue::from_str(&format!("/v1/documents/{}", job.id)).map_err(ApiError::unavailable)?;
    Ok((status, [(header::LOCATION, location)], Json(DocumentView::from(job))).into_response())
}

/// Loads a job that belongs to `tenant`; anything else is "not found".
async fn owned_job(state: &ApiState, tenant: &TenantId, id: &str) -> Result<Job, ApiError> {
    let id: JobId = id.parse().map_err(|_| ApiError::not_found())?;
    let job = state.backends.jobs.get(id).await.map_err(ApiError::unavailable)?;
    job.filter(|job| &job.tenant == tenant).ok_or_else(ApiError::not_found)
}

/// A document's status
#[utoipa::path(
    get,
    path = "/v1/documents/{id}",
    operation_id = "get_document",
    tag = "documents",
    security(("bearer" = [])),
    params(("id" = JobId, Path, description = "The job id the upload answered with.")),
    responses(
        (status = 200, description = "The job.", body = DocumentView),
        (status = 401, description = "`unauthorized`: no valid API key.", body = ErrorBody),
        (status = 404, description = "`not_found`: no such document for this tenant.", body = ErrorBody),
        (status = 503, description = "`unavailable`: storage is temporarily unavailable; retry later.",
            body = ErrorBody),
    ),
)]
async fn status(
    State(state): State<ApiState>,
    tenant: Tenant,
    Path(id): Path<String>,
) -> Result<Json<DocumentView>, ApiError> {
    let job = owned_job(&state, &tenant.0, &id).await?;
    Ok(Json(DocumentView::from(&job)))
}

/// A document's booking proposal
#[utoipa::path(
    get,
    path = "/v1/documents/{id}/result",
    operation_id = "get_document_result",
    tag = "documents",
    security(("bearer" = [])),
    params(("id" = JobId, Path, description = "The job id the upload answered with.")),
    responses(
        (status = 200, description = "The booking proposal.", body = BookingProposal),
        (status = 401, description = "`unauthorized`: no valid API key.", body = ErrorBody),
        (status = 404, description = "`not_found`: no such document for this tenant.", body = ErrorBody),
        (status = 409, description = "`result_not_ready`: the document is still queued or processing.",
            body = ErrorBody),
        (status = 422, description = "`processing_failed`: the document failed or is dead; the message says why.",
            body = ErrorBody),
        (status = 503, description = "`unavailable`: storage is temporarily unavailable; retry later.",
            body = ErrorBody),
    ),
)]
async fn result(State(state): State<ApiState>, tenant: Tenant, Path(id): Path<String>) -> Result<Response, ApiError> {
    let job = owned_job(&state, &tenant.0, &id).await?;
    match job.status {
        JobStatus::Succeeded => {}
        JobStatus::Queued | JobStatus::Processing => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "result_not_ready",
                format!("the document is {}; try again later", job.status),
            ));
        }
        JobStatus::Failed | JobStatus::Dead => {
            let reason = job.last_error.map(|e| e.message).unwrap_or_default();
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "processing_failed",
                format!("the document could not be processed: {reason}"),
            ));
        }
    }
    let key = job.result_key.ok_or_else(ApiError::not_found)?;
    let bytes = state.backends.blobs.get(&key).await.map_err(ApiError::unavailable)?;
    let bytes = bytes.ok_or_else(|| ApiError::unavailable(format!("result {key} missing")))?;
    Ok(([(header::CONTENT_TYPE, "application/json")], bytes).into_response())
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// Only documents in this status.
    #[param(value_type = Option<JobStatus>)]
    status: Option<String>,
    /// Page size.
    #[param(minimum = 1, maximum = 500, default = 50)]
    limit: Option<usize>,
    /// `next_cursor` of the previous page.
    #[param(value_type = Option<JobId>)]
    cursor: Option<String>,
}

/// One page of a tenant's documents, newest first.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub(crate) struct DocumentList {
    pub documents: Vec<DocumentView>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<JobId>,
}

/// The tenant's documents
#[utoipa::path(
    get,
    path = "/v1/documents",
    operation_id = "list_documents",
    tag = "documents",
    security(("bearer" = [])),
    params(ListQuery),
    responses(
        (status = 200, description = "A page of documents, newest first.", body = DocumentList),
        (status = 400, description = "`invalid_query`: a bad `status`, `limit` or `cursor`.", body = ErrorBody),
        (status = 401, description = "`unauthorized`: no valid API key.", body = ErrorBody),
        (status = 503, description = "`unavailable`: storage is temporarily unavailable; retry later.",
            body = ErrorBody),
    ),
)]
async fn list(
    State(state): State<ApiState>,
    tenant: Tenant,
    Query(query): Query<ListQuery>,
) -> Result<Json<DocumentList>, ApiError> {
    let bad = |message: &str| ApiError::new(StatusCode::BAD_REQUEST, "invalid_query", message);
    let status = query
        .status
        .as_deref()
        .map(str::parse::<JobStatus>)
        .transpose()
        .map_err(|_| bad("status must be one of queued, processing, succeeded, failed, dead"))?;
    let limit = query.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(bad("limit must be between 1 and 500"));
    }
    let cursor = query.cursor.as_deref().map(str::parse::<JobId>).transpose().map_err(|_| bad("invalid cursor"))?;
    let page =
        state.backends.jobs.list_by_tenant(&tenant.0, status, cursor, limit).await.map_err(ApiError::unavailable)?;
    Ok(Json(DocumentList { documents: page.jobs.iter().map(DocumentView::from).collect(), next_cursor: page.next }))
}

/// The tenant's chart of accounts
///
/// The chart of accounts and ledger rules (the default chart until one is set).
#[utoipa::path(
    get,
    path = "/v1/chart",
    operation_id = "get_chart",
    tag = "chart",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The chart in force.", body = Chart),
        (status = 401, description = "`unauthorized`: no valid API key.", body = ErrorBody),
        (status = 503, description = "`unavailable`: storage is temporarily unavailable; retry later.",
            body = ErrorBody),
    ),
)]
async fn get_chart(State(state): State<ApiState>, tenant: Tenant) -> Result<Json<Chart>, ApiError> {
    let stored = state.backends.blobs.get(&chart_key(&tenant.0)).await.map_err(ApiError::unavailable)?;
    let chart = match stored {
        Some(bytes) => serde_json::from_slice(&bytes).map_err(ApiError::unavailable)?,
        None => Chart::default(),
    };
    Ok(Json(chart))
}

/// Replace the tenant's chart of accounts
///
/// Fields left out keep their defaults. Applies to documents processed from now on.
#[utoipa::path(
    put,
    path = "/v1/chart",
    operation_id = "put_chart",
    tag = "chart",
    security(("bearer" = [])),
    request_body = Chart,
    responses(
        (status = 200, description = "The chart now in force, defaults filled in.", body = Chart),
        (status = 401, description = "`unauthorized`: no valid API key.", body = ErrorBody),
        (status = 422, description = "`invalid_chart`: not a valid chart; the message says why.", body = ErrorBody),
        (status = 503, description = "`unavailable`: storage is temporarily unavailable; retry later.",
            body = ErrorBody),
    ),
)]
async fn put_chart(State(state): State<ApiState>, tenant: Tenant, body: Bytes) -> Result<Json<Chart>, ApiError> {
    let chart: Chart = serde_json::from_slice(&body).map_err(|e| {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_chart", format!("invalid chart of accounts: {e}"))
    })?;
    let canonical = serde_json::to_vec(&chart).map_err(ApiError::unavailable)?;
    state.backends.blobs.put(&chart_key(&tenant.0), Bytes::from(canonical)).await.map_err(ApiError::unavailable)?;
    Ok(Json(chart))
}

/// Liveness
#[utoipa::path(
    get,
    path = "/healthz",
    operation_id = "healthz",
    tag = "operations",
    responses((status = 200, description = "The process is up.", body = String, content_type = "text/plain", example = "ok")),
)]
async fn healthz() -> &'static str {
    "ok"
}

/// Readiness
///
/// One cheap round trip to the job store and the incoming queue.
#[utoipa::path(
    get,
    path = "/readyz",
    operation_id = "readyz",
    tag = "operations",
    responses(
        (status = 200, description = "Storage is reachable.", body = String, content_type = "text/plain",
            example = "ready"),
        (status = 503, description = "`unavailable`: storage is not reachable.", body = ErrorBody),
    ),
)]
async fn readyz(State(state): State<ApiState>) -> Result<&'static str, ApiError> {
    // A lookup of an id that cannot exist: one cheap round trip to the job store.
    state.backends.jobs.get(JobId::new()).await.map_err(ApiError::unavailable)?;
    state.backends.incoming.depth().await.map_err(ApiError::unavailable)?;
    Ok("ready")
}

/// Prometheus metrics
#[utoipa::path(
    get,
    path = "/metrics",
    operation_id = "metrics",
    tag = "operations",
    responses(
        (status = 200, description = "Metrics in the Prometheus text format.", body = String,
            content_type = "text/plain; version=0.0.4"),
        (status = 404, description = "`not_found`: metrics are not enabled in this process.", body = ErrorBody),
    ),
)]
async fn render_metrics(State(state): State<ApiState>) -> Response {
    match &state.metrics {
        Some(handle) => ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], handle.render()).into_response(),
        None => {
            ApiError::new(StatusCode::NOT_FOUND, "not_found", "metrics are not enabled in this process").into_response()
        }
    }
}

/// Counts requests and their latency by route pattern (never the raw path, which holds ids).
async fn track_http(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|path| path.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let method = request.method().as_str().to_owned();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!(shared::series::HTTP_REQUESTS_TOTAL, "method" => method.clone(), "route" => route.clone(), "status" => status)
        .increment(1);
    metrics::histogram!(shared::series::HTTP_REQUEST_DURATION_SECONDS, "method" => method, "route" => route)
        .record(started.elapsed().as_secs_f64());
    response
}
