//! The API's OpenAPI 3.1 document, served at `GET /openapi.json`.
//!
//! The paths come from the route registrations in the `api` and `admin` modules (each
//! handler's `#[utoipa::path]`), assembled by `api::document`; this module adds what is not
//! about one route: the title and version, the tags and the bearer security scheme.

use utoipa::openapi::OpenApi as OpenApiDocument;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

/// Name of the security scheme every `/v1` operation requires.
pub(crate) const BEARER: &str = "bearer";

/// The document's frame: everything except the paths and the schemas they use, which the router
/// adds.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Surge",
        version = env!("CARGO_PKG_VERSION"),
        description = "Upload invoices, follow their jobs and fetch booking proposals. Every `/v1` route needs \
                       `Authorization: Bearer <key>`. Errors are JSON: `{\"code\": ..., \"message\": ...}`.",
    ),
    modifiers(&BearerScheme),
    tags(
        (name = "documents", description = "Uploads, their jobs and their booking proposals"),
        (name = "chart", description = "The tenant's chart of accounts and ledger rules"),
        (name = "operations", description = "Health, readiness, metrics, service status and this document"),
        (name = "operators", description = "The dashboard and operator actions, behind the admin token"),
    ),
)]
pub(crate) struct ApiDoc;

/// Adds the bearer scheme; [`BEARER`] names it in each `/v1` operation's `security`.
struct BearerScheme;

impl Modify for BearerScheme {
    fn modify(&self, openapi: &mut OpenApiDocument) {
        let scheme = HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .description(Some("An API key, as `surge tenant add` prints it"))
            .build();
        let admin = HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .description(Some(
                "The admin token: `api.admin_token`, or the one `surge up` keeps in `<data_dir>/admin-token`",
            ))
            .build();
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(BEARER, SecurityScheme::Http(scheme));
        components.add_security_scheme(ADMIN, SecurityScheme::Http(admin));
    }
}

/// Name of the security scheme of the operator routes (`/admin`).
pub(crate) const ADMIN: &str = "admin";

/// One document from the tenant API's part (which carries the frame) and the operators' part.
pub(crate) fn combine(mut api: OpenApiDocument, operators: OpenApiDocument) -> OpenApiDocument {
    api.merge(operators);
    api
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use axum::Router;
    use axum::body::Body;
    use axum::extract::{MatchedPath, Request};
    use axum::http::{StatusCode, header};
    use axum::middleware::{self, Next};
    use axum::response::Response;
    use http_body_util::BodyExt;
    use serde_json::Value;
    use shared::backend::Backends;
    use shared::config::{ApiConfig, Config};
    use shared::domain::JobId;
    use tower::ServiceExt;

    use super::*;
    use crate::admin;
    use crate::api::{ApiState, router};
    use crate::board::SharedBoard;

    const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

    fn document_json() -> Value {
        serde_json::from_str(&crate::api::document().to_json().unwrap()).unwrap()
    }

    /// Every operation in the document as (path, method).
    fn documented_operations(document: &Value) -> BTreeSet<(String, String)> {
        let paths = document["paths"].as_object().unwrap();
        paths
            .iter()
            .flat_map(|(path, item)| {
                METHODS
                    .iter()
                    .filter(|method| item.get(**method).is_some())
                    .map(|method| (path.clone(), method.to_string()))
            })
            .collect()
    }

    /// The API router on an empty embedded backend, answering with the route pattern it matched
    /// in `x-matched-path` (absent when the fallback answered).
    fn probed_router(data_dir: &std::path::Path) -> Router {
        let backends = Backends::open_embedded(data_dir, 3).unwrap();
        let report_match = |request: Request, next: Next| async move {
            let matched = request.extensions().get::<MatchedPath>().map(|path| path.as_str().to_owned());
            let mut response: Response = next.run(request).await;
            if let Some(matched) = matched {
                response.headers_mut().insert("x-matched-path", matched.parse().unwrap());
            }
            response
        };
        let mut config = Config { data_dir: data_dir.to_owned(), ..Config::default() };
        config.api.admin_token = Some(PROBE_ADMIN_TOKEN.to_owned());
        let admin = admin::router(admin::AdminState::new(
            config,
            shared::region::Topology::single(backends.clone()),
            backends.clone(),
            SharedBoard::default(),
            admin::Workers::Elsewhere,
        ));
        router(ApiState::new(backends, ApiConfig::default(), None))
            .merge(admin)
            .layer(middleware::from_fn(report_match))
    }

    /// The admin token of [`probed_router`]; probes carry it, so the operator routes answer
    /// past their token check (the API's routes take it for a wrong API key).
    const PROBE_ADMIN_TOKEN: &str = "probe-admin-token-0123";

    async fn send(router: &Router, method: &str, uri: &str) -> Response {
        let request = Request::builder()
            .method(method.to_uppercase().as_str())
            .uri(uri)
            .header(header::AUTHORIZATION, format!("Bearer {PROBE_ADMIN_TOKEN}"))
            .body(Body::empty())
            .unwrap();
        router.clone().oneshot(request).await.unwrap()
    }

    #[tokio::test]
    async fn the_router_serves_exactly_the_documented_routes_and_methods() {
        let data_dir = tempfile::tempdir().unwrap();
        let router = probed_router(data_dir.path());
        let document = document_json();
        let operations = documented_operations(&document);
        let paths: BTreeSet<&String> = operations.iter().map(|(path, _)| path).collect();
        assert!(paths.len() >= 8, "the document lists the routes: {paths:?}");
        let id = JobId::new().to_string();
        for path in paths {
            let uri = path.replace("{id}", &id).replace("{name}", "backlog.svg");
            for method in METHODS {
                let response = send(&router, method, &uri).await;
                let matched = response.headers().get("x-matched-path").map(|value| value.to_str().unwrap().to_owned());
                if operations.contains(&(path.clone(), method.to_owned())) {
                    assert_eq!(matched.as_deref(), Some(path.as_str()), "{method} {uri} reaches the route {path}");
                    assert_ne!(response.status(), StatusCode::METHOD_NOT_ALLOWED, "{method} {path} is served");
                } else {
                    assert_eq!(
                        response.status(),
                        StatusCode::METHOD_NOT_ALLOWED,
                        "{method} {path} is not documented, so it must not be served"
                    );
                }
            }
        }
        let response = send(&router, "get", "/v1/nothing-here").await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        assert!(response.headers().get("x-matched-path").is_none(), "the fallback matches no route");
    }

    #[test]
    fn the_api_registers_routes_only_through_routes_macro() {
        // `routes!` registers a handler under the path and methods of its `#[utoipa::path]`; any
        // other registration would be served without being documented.
        let source = include_str!("api.rs");
        for bypass in [".route(", ".route_service(", ".nest(", ".nest_service(", ".merge(", "Router::new("] {
            assert!(!source.contains(bypass), "api.rs registers a route with `{bypass}`; use `routes!` instead");
        }
        assert!(source.contains(".routes(routes!("), "the routes are registered with `routes!`");
        let admin = [
            include_str!("admin/mod.rs"),
            include_str!("admin/auth.rs"),
            include_str!("admin/dashboard.rs"),
            include_str!("admin/overview.rs"),
            include_str!("admin/roll.rs"),
            include_str!("admin/status.rs"),
        ]
        .concat()
        .replace("OpenApiRouter::new(", "");
        for bypass in [".route(", ".route_service(", ".nest(", ".nest_service(", "Router::new("] {
            assert!(!admin.contains(bypass), "admin/ registers a route with `{bypass}`; use `routes!` instead");
        }
    }

    #[test]
    fn the_document_is_openapi_3_1_with_bearer_auth_on_v1() {
        let document = document_json();
        assert!(document["openapi"].as_str().unwrap().starts_with("3.1."), "{}", document["openapi"]);
        assert_eq!(document["info"]["title"], "Surge");
        assert_eq!(document["info"]["version"], env!("CARGO_PKG_VERSION"));
        let scheme = &document["components"]["securitySchemes"][BEARER];
        assert_eq!((scheme["type"].as_str(), scheme["scheme"].as_str()), (Some("http"), Some("bearer")));
        let mut operation_ids = BTreeSet::new();
        for (path, method) in documented_operations(&document) {
            let operation_id = document["paths"][&path][&method]["operationId"].as_str().unwrap().to_owned();
            assert!(operation_ids.insert(operation_id), "{method} {path} has an operation id of its own");
            let security = &document["paths"][&path][&method]["security"];
            if path.starts_with("/v1/") && path != "/v1/status" {
                assert_eq!(security, &serde_json::json!([{ BEARER: [] }]), "{method} {path} needs the API key");
            } else if path.starts_with("/admin/") {
                assert_eq!(security, &serde_json::json!([{ ADMIN: [] }]), "{method} {path} needs the admin token");
            } else {
                assert!(security.is_null(), "{method} {path} is open");
            }
        }
    }

    #[test]
    fn the_upload_operation_lists_its_answers_and_content_types() {
        let document = document_json();
        let upload = &document["paths"]["/v1/documents"]["post"];
        let responses = upload["responses"].as_object().unwrap();
        for status in ["200", "202", "400", "401", "413", "415", "422", "503"] {
            assert!(responses.contains_key(status), "upload documents {status}: {:?}", responses.keys());
        }
        let content_types: BTreeSet<&str> =
            upload["requestBody"]["content"].as_object().unwrap().keys().map(String::as_str).collect();
        let accepted = ["application/pdf", "application/xml", "image/jpeg", "image/png", "image/tiff", "text/xml"];
        assert_eq!(content_types, BTreeSet::from(accepted));
        for media_type in accepted {
            assert!(
                shared::domain::DocumentType::from_media_type(media_type).is_some(),
                "{media_type} is documented and accepted"
            );
        }
        let parameters = upload["parameters"].as_array().unwrap();
        assert!(parameters.iter().any(|p| p["name"] == "Idempotency-Key" && p["in"] == "header"));
    }

    #[test]
    fn the_result_and_status_have_real_schemas() {
        let document = document_json();
        let schemas = &document["components"]["schemas"];
        for name in ["BookingProposal", "JournalEntry", "Totals", "DocumentView", "JobStatus", "Chart", "ErrorBody"] {
            assert!(schemas[name].is_object(), "schema {name} is in the document");
        }
        let result = &document["paths"]["/v1/documents/{id}/result"]["get"]["responses"];
        assert_eq!(
            result["200"]["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/BookingProposal"
        );
        assert!(result["409"].is_object() && result["422"].is_object() && result["404"].is_object());
        let error = &schemas["ErrorBody"];
        assert_eq!(error["required"], serde_json::json!(["code", "message"]));
    }

    #[test]
    fn every_schema_reference_resolves() {
        fn refs<'a>(value: &'a Value, found: &mut Vec<&'a str>) {
            match value {
                Value::Object(map) => {
                    if let Some(Value::String(target)) = map.get("$ref") {
                        found.push(target);
                    }
                    map.values().for_each(|v| refs(v, found));
                }
                Value::Array(items) => items.iter().for_each(|v| refs(v, found)),
                _ => {}
            }
        }
        let document = document_json();
        let mut found = Vec::new();
        refs(&document, &mut found);
        assert!(found.iter().any(|r| r.ends_with("/RollState")), "the roll's state is a schema");
        for target in found {
            let name = target.strip_prefix("#/components/schemas/").unwrap_or_else(|| panic!("{target}"));
            assert!(document["components"]["schemas"][name].is_object(), "{target} resolves");
        }
    }

    #[tokio::test]
    async fn openapi_json_is_served_without_auth() {
        let data_dir = tempfile::tempdir().unwrap();
        let router = probed_router(data_dir.path());
        let response = send(&router, "get", "/openapi.json").await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let served: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(served, document_json());
    }
}
