//! The operator routes, driven through the router.

use axum::body::Body;
use chrono::TimeZone;
use tower::ServiceExt;

use axum::Router;
use axum::extract::Request;
use axum::http::{StatusCode, header};
use axum::response::Response;
use chrono::Utc;
use shared::config::{Config, MaintenanceWindow};
use shared::domain::{JobId, JobStatus};

use super::status::announced;
use super::*;

fn window(start_hour: u32, end_hour: u32) -> MaintenanceWindow {
    MaintenanceWindow {
        starts_at: Utc.with_ymd_and_hms(2026, 11, 26, start_hour, 0, 0).unwrap(),
        ends_at: Utc.with_ymd_and_hms(2026, 11, 26, end_hour, 0, 0).unwrap(),
        message: format!("work {start_hour}-{end_hour}"),
    }
}

#[test]
fn current_and_upcoming_windows_are_announced_in_order() {
    let now = Utc.with_ymd_and_hms(2026, 11, 26, 10, 30, 0).unwrap();
    let notices = announced(&[window(12, 13), window(8, 9), window(10, 11)], now);
    let messages: Vec<_> = notices.iter().map(|n| (n.message.as_str(), n.active)).collect();
    assert_eq!(messages, vec![("work 10-11", true), ("work 12-13", false)]);
}

async fn state() -> (AdminState, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config { data_dir: dir.path().to_owned(), ..Config::default() };
    config.api.admin_token = Some("an-admin-token-of-length".into());
    let topology = shared::region::Topology::open(&config).await.unwrap();
    let backends = topology.backends();
    (AdminState::new(config, topology, backends, SharedBoard::default(), Workers::Elsewhere), dir)
}

async fn get(app: &Router, uri: &str, headers: &[(&str, &str)]) -> Response {
    let mut request = Request::builder().uri(uri);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    app.clone().oneshot(request.body(Body::empty()).unwrap()).await.unwrap()
}

#[tokio::test]
async fn the_admin_routes_need_the_token_and_the_dashboard_link_sets_a_cookie() {
    let (state, _dir) = state().await;
    let app = router(state);
    assert_eq!(get(&app, "/admin/overview", &[]).await.status(), StatusCode::UNAUTHORIZED);
    let wrong = [("authorization", "Bearer not-the-token")];
    assert_eq!(get(&app, "/admin/overview", &wrong).await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(get(&app, "/dashboard", &[]).await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(get(&app, "/dashboard?token=wrong", &[]).await.status(), StatusCode::UNAUTHORIZED);

    let link = get(&app, "/dashboard?token=an-admin-token-of-length", &[]).await;
    assert_eq!(link.status(), StatusCode::SEE_OTHER);
    let cookie = link.headers()[header::SET_COOKIE].to_str().unwrap().to_owned();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"), "{cookie}");
    let pair = cookie.split(';').next().unwrap().to_owned();
    let page = get(&app, "/dashboard", &[("cookie", &pair)]).await;
    assert_eq!(page.status(), StatusCode::OK);
    let overview = get(&app, "/admin/overview", &[("cookie", &pair)]).await;
    assert_eq!(overview.status(), StatusCode::OK);
    let bearer = [("authorization", "Bearer an-admin-token-of-length")];
    let svg = get(&app, "/admin/charts/backlog.svg", &bearer).await;
    assert_eq!(svg.status(), StatusCode::OK);
    assert_eq!(svg.headers()[header::CONTENT_TYPE], "image/svg+xml");
    assert_eq!(get(&app, "/admin/charts/nope.svg", &bearer).await.status(), StatusCode::NOT_FOUND);
    assert_eq!(get(&app, "/v1/status", &[]).await.status(), StatusCode::OK, "public");
}

#[tokio::test]
async fn the_replay_button_puts_a_dead_job_back_in_the_queue() {
    let (state, _dir) = state().await;
    let backends = state.backends.clone();
    let job = shared::contract::new_job("acme", None);
    backends.tenants.add_tenant(&job.tenant).await.unwrap();
    backends.jobs.create(job.clone()).await.unwrap();
    let error = shared::domain::JobError { code: shared::domain::ErrorCode::WorkerLost, message: "worker died".into() };
    let bury = move |j: &shared::domain::Job| j.bury_abandoned(error.clone(), Utc::now());
    backends.jobs.update(job.id, Box::new(bury)).await.unwrap();
    let app = router(state);
    let bearer = ("authorization", "Bearer an-admin-token-of-length");

    let overview = get(&app, "/admin/overview", &[bearer]).await;
    let body = http_body_util::BodyExt::collect(overview.into_body()).await.unwrap().to_bytes();
    let overview: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(overview["dead_letters"][0]["id"], job.id.to_string(), "{overview}");
    assert_eq!(overview["dead_letters"][0]["reason"], "worker_lost");

    let request = Request::builder()
        .method("POST")
        .uri(format!("/admin/jobs/{}/replay", job.id))
        .header(bearer.0, bearer.1)
        .body(Body::empty())
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(backends.jobs.get(job.id).await.unwrap().unwrap().status, JobStatus::Queued);
    let sent = backends.incoming.receive(10, Duration::from_secs(5), Duration::ZERO).await.unwrap();
    assert_eq!(sent.len(), 1, "the job's message is back in the incoming queue");
    let overview = get(&app, "/admin/overview", &[bearer]).await;
    let body = http_body_util::BodyExt::collect(overview.into_body()).await.unwrap().to_bytes();
    let overview: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(overview["dead_letters"], serde_json::json!([]), "no longer listed: {overview}");

    let missing = format!("/admin/jobs/{}/replay", JobId::new());
    let request = Request::builder().method("POST").uri(missing).header(bearer.0, bearer.1).body(Body::empty());
    assert_eq!(app.oneshot(request.unwrap()).await.unwrap().status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn without_a_configured_token_the_admin_routes_are_off() {
    let (mut state, _dir) = state().await;
    state.token_digest = None;
    let app = router(state);
    let bearer = [("authorization", "Bearer anything-at-all-here")];
    assert_eq!(get(&app, "/admin/overview", &bearer).await.status(), StatusCode::FORBIDDEN);
    assert_eq!(get(&app, "/dashboard?token=anything-at-all-here", &[]).await.status(), StatusCode::UNAUTHORIZED);
}

/// A page of another site can make the operator's browser send the dashboard cookie; only the
/// dashboard's own origin may change state with it.
#[tokio::test]
async fn a_cross_origin_post_with_the_dashboard_cookie_is_refused() {
    let (state, _dir) = state().await;
    let backends = state.backends.clone();
    let job = shared::contract::new_job("acme", None);
    backends.tenants.add_tenant(&job.tenant).await.unwrap();
    backends.jobs.create(job.clone()).await.unwrap();
    let error = shared::domain::JobError { code: shared::domain::ErrorCode::WorkerLost, message: "worker died".into() };
    let bury = move |j: &shared::domain::Job| j.bury_abandoned(error.clone(), Utc::now());
    backends.jobs.update(job.id, Box::new(bury)).await.unwrap();
    let app = router(state);
    let cookie = format!("{COOKIE}=an-admin-token-of-length");
    let replay = |headers: &[(&str, &str)]| {
        let mut request = Request::builder().method("POST").uri(format!("/admin/jobs/{}/replay", job.id));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        app.clone().oneshot(request.body(Body::empty()).unwrap())
    };

    let hostile = [
        vec![("cookie", cookie.as_str()), ("host", "127.0.0.1:9000"), ("origin", "http://evil.example")],
        vec![("cookie", cookie.as_str()), ("host", "127.0.0.1:9000"), ("sec-fetch-site", "cross-site")],
        vec![("cookie", cookie.as_str()), ("host", "127.0.0.1:9000"), ("sec-fetch-site", "same-site")],
        vec![("cookie", cookie.as_str()), ("host", "127.0.0.1:9000")],
    ];
    for headers in &hostile {
        let response = replay(headers).await.unwrap();
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{headers:?}");
        let body = http_body_util::BodyExt::collect(response.into_body()).await.unwrap().to_bytes();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["code"], "cross_origin");
    }
    assert_eq!(backends.jobs.get(job.id).await.unwrap().unwrap().status, JobStatus::Dead, "nothing replayed");

    let dashboard = [("cookie", cookie.as_str()), ("host", "127.0.0.1:9000"), ("origin", "http://127.0.0.1:9000")];
    assert_eq!(replay(&dashboard).await.unwrap().status(), StatusCode::OK);
    assert_eq!(backends.jobs.get(job.id).await.unwrap().unwrap().status, JobStatus::Queued);
}
