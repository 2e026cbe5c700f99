//! ECS task scale-in protection: while it holds jobs, a worker running as an ECS task marks its
//! task protected, so a scale-in (or a deployment) stops idle tasks and never a busy one.
//!
//! The ECS container agent injects `ECS_AGENT_URI` into every task's containers and serves
//! `$ECS_AGENT_URI/task-protection/v1/state` (ECS developer guide, "Task scale-in protection
//! endpoint"): `PUT {"ProtectionEnabled": bool, "ExpiresInMinutes": n}` answers
//! `{"protection": {"ProtectionEnabled", "ExpirationDate", "TaskArn"}}`, or `{"failure": {...}}`
//! / `{"error": {...}}` with a reason or code. The agent calls ECS's `UpdateTaskProtection` with
//! the task role, which needs `ecs:UpdateTaskProtection`.
//!
//! Protection is asked for as soon as the worker holds a job and released once the worker has
//! held none for `release_after`; the pause keeps a worker that is busy with short gaps from
//! calling ECS twice per job. One busy spell is protected for one lifetime at most (ECS lets it
//! lapse; it is asked for again after the worker was idle), so a deployment never waits longer
//! than that for a task whose worker never runs out of work.
//!
//! It is best effort: a failed call is logged and retried after a pause, and jobs never wait for
//! it. A task that ECS stops anyway (protection missing, or lapsed) still gets SIGTERM and
//! drains.

use std::time::Duration;

use serde::Deserialize;
use serde_json::json;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

/// The agent's variable, set by ECS in every task (agent 1.65+, Fargate platform 1.4+).
pub const AGENT_URI_VAR: &str = "ECS_AGENT_URI";

/// How a worker protects its task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtectionSettings {
    /// `$ECS_AGENT_URI`.
    pub(crate) agent_uri: String,
    /// Protection asked for at a time; ECS accepts 1 to 2,880 minutes.
    pub(crate) lifetime: Duration,
    /// Idle time after which protection is released.
    pub(crate) release_after: Duration,
}

impl ProtectionSettings {
    /// Settings for a task whose agent is at `agent_uri`, protected `minutes` at a time (clamped
    /// to what ECS accepts). `None` when `minutes` is 0 (protection turned off).
    pub fn new(agent_uri: impl Into<String>, minutes: u32) -> Option<ProtectionSettings> {
        (minutes > 0).then(|| ProtectionSettings {
            agent_uri: agent_uri.into(),
            lifetime: Duration::from_secs(u64::from(minutes.clamp(1, 2880)) * 60),
            release_after: Duration::from_secs(5),
        })
    }

    fn expires_in_minutes(&self) -> u64 {
        (self.lifetime.as_secs() / 60).clamp(1, 2880)
    }
}

/// Why a call to the agent did not set the protection.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ProtectionError {
    #[error("agent unreachable: {0}")]
    Unreachable(#[from] reqwest::Error),
    /// The agent answered with a failure or an error (e.g. `TASK_NOT_VALID`,
    /// `AccessDeniedException`, `ThrottlingException`).
    #[error("agent refused ({status}): {code}: {message}")]
    Refused { status: u16, code: String, message: String },
}

/// The agent's answer, in its documented shapes.
#[derive(Debug, Deserialize)]
struct AgentAnswer {
    protection: Option<AgentProtection>,
    failure: Option<AgentFailure>,
    error: Option<AgentFailure>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct AgentProtection {
    protection_enabled: bool,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct AgentFailure {
    reason: Option<String>,
    code: Option<String>,
    message: Option<String>,
    detail: Option<String>,
}

/// The client of the agent's task-protection endpoint.
pub(crate) struct TaskProtection {
    settings: ProtectionSettings,
    client: reqwest::Client,
}

impl TaskProtection {
    pub(crate) fn new(settings: ProtectionSettings) -> TaskProtection {
        let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap_or_default();
        TaskProtection { settings, client }
    }

    fn url(&self) -> String {
        format!("{}/task-protection/v1/state", self.settings.agent_uri.trim_end_matches('/'))
    }

    /// Sets the task's protection; answers whether the agent reports it enabled.
    pub(crate) async fn set(&self, enabled: bool) -> Result<bool, ProtectionError> {
        let body = if enabled {
            json!({"ProtectionEnabled": true, "ExpiresInMinutes": self.settings.expires_in_minutes()})
        } else {
            json!({"ProtectionEnabled": false})
        };
        let response = self.client.put(self.url()).json(&body).send().await?;
        let status = response.status().as_u16();
        let text = response.text().await?;
        let answer: Option<AgentAnswer> = serde_json::from_str(&text).ok();
        let (protection, failure) = match answer {
            Some(answer) => (answer.protection, answer.failure.or(answer.error)),
            None => (None, None),
        };
        match (protection, failure) {
            (Some(protection), None) if (200..300).contains(&status) => Ok(protection.protection_enabled),
            (_, Some(failure)) => Err(ProtectionError::Refused {
                status,
                code: failure.code.or(failure.reason).unwrap_or_else(|| "unknown".to_owned()),
                message: failure.message.or(failure.detail).unwrap_or_default(),
            }),
            _ => Err(ProtectionError::Refused {
                status,
                code: "unexpected_answer".to_owned(),
                message: text.chars().take(200).collect(),
            }),
        }
    }

    /// Keeps the task protected while `held` (jobs this worker holds) is above zero, for one
    /// lifetime per busy spell at most, until `stop` is cancelled.
    pub(crate) async fn keep(self, mut held: watch::Receiver<usize>, stop: CancellationToken) {
        let mut guard = Guard::new(self.settings.lifetime, self.settings.release_after);
        loop {
            let now = Instant::now();
            guard.observe(now, *held.borrow_and_update() > 0);
            match guard.next(now) {
                Step::Set(enabled) => {
                    let outcome = self.set(enabled).await;
                    match outcome {
                        Ok(_) => {
                            debug!(enabled, "task scale-in protection set");
                            guard.applied(now, enabled);
                        }
                        Err(err) => {
                            warn!(enabled, error = %err, "could not set task scale-in protection; retrying");
                            guard.failed(now);
                        }
                    }
                }
                Step::Wait(until) => {
                    let sleep = async {
                        match until {
                            Some(until) => tokio::time::sleep_until(until).await,
                            None => std::future::pending().await,
                        }
                    };
                    tokio::select! {
                        changed = held.changed() => if changed.is_err() { return },
                        () = sleep => {}
                        () = stop.cancelled() => return,
                    }
                }
            }
        }
    }
}

/// What the protection loop does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Set(bool),
    /// Until this time, or until the held jobs change (`None`: only that).
    Wait(Option<Instant>),
}

/// When to protect and release: pure, driven by the loop's clock.
#[derive(Debug)]
struct Guard {
    lifetime: Duration,
    release_after: Duration,
    /// Protected until then, as far as this worker knows.
    protected_until: Option<Instant>,
    /// Holding no job since then.
    idle_since: Option<Instant>,
    /// The protection of this busy spell lapsed: not asked for again before the worker has been
    /// idle, so a deployment waits at most one lifetime for a busy task.
    lapsed: bool,
    /// No call before then (after a failure).
    quiet_until: Option<Instant>,
    failures: u32,
}

impl Guard {
    fn new(lifetime: Duration, release_after: Duration) -> Guard {
        Guard {
            lifetime,
            release_after,
            protected_until: None,
            idle_since: None,
            lapsed: false,
            quiet_until: None,
            failures: 0,
        }
    }

    fn observe(&mut self, now: Instant, holding: bool) {
        if self.protected_until.is_some_and(|until| now >= until) {
            self.protected_until = None;
            self.lapsed = holding;
        }
        if holding {
            self.idle_since = None;
        } else {
            self.idle_since.get_or_insert(now);
            self.lapsed = false;
        }
    }

    fn next(&self, now: Instant) -> Step {
        let wanted = self.wanted(now);
        if let Some(quiet) = self.quiet_until.filter(|&quiet| now < quiet)
            && wanted.is_some()
        {
            return Step::Wait(Some(quiet));
        }
        match wanted {
            Some(enabled) => Step::Set(enabled),
            None => Step::Wait(self.next_deadline()),
        }
    }

    /// The call due now, if any.
    fn wanted(&self, now: Instant) -> Option<bool> {
        match (self.idle_since, self.protected_until) {
            (None, None) => (!self.lapsed).then_some(true),
            (None, Some(_)) => None,
            (Some(idle), Some(_)) => (now >= idle + self.release_after).then_some(false),
            (Some(_), None) => None,
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        match (self.idle_since, self.protected_until) {
            (None, Some(until)) => Some(until),
            (Some(idle), Some(until)) => Some((idle + self.release_after).min(until)),
            _ => None,
        }
    }

    fn applied(&mut self, now: Instant, enabled: bool) {
        self.protected_until = enabled.then(|| now + self.lifetime);
        self.quiet_until = None;
        self.failures = 0;
    }

    /// Backs off 1 s, 2 s, 4 s ... up to 30 s.
    fn failed(&mut self, now: Instant) {
        let pause = Duration::from_secs(1 << self.failures.min(5)).min(Duration::from_secs(30));
        self.failures += 1;
        self.quiet_until = Some(now + pause);
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::net::SocketAddr;
    use std::sync::{Arc, Mutex};

    use axum::Json;
    use axum::extract::State;
    use axum::http::StatusCode;
    use axum::routing::put;
    use serde_json::Value;

    use super::*;

    const MIN: Duration = Duration::from_secs(60);
    const RELEASE: Duration = Duration::from_secs(5);

    #[test]
    fn protects_a_busy_spell_and_releases_after_an_idle_pause() {
        let t0 = Instant::now();
        let mut guard = Guard::new(10 * MIN, RELEASE);
        guard.observe(t0, false);
        assert_eq!(guard.next(t0), Step::Wait(None), "idle and unprotected: nothing to do");
        guard.observe(t0, true);
        assert_eq!(guard.next(t0), Step::Set(true));
        guard.applied(t0, true);
        assert_eq!(guard.next(t0), Step::Wait(Some(t0 + 10 * MIN)), "nothing until it lapses");
        // Idle for less than the pause: stays protected.
        let idle = t0 + MIN;
        guard.observe(idle, false);
        assert_eq!(guard.next(idle + Duration::from_secs(2)), Step::Wait(Some(idle + RELEASE)));
        guard.observe(idle + Duration::from_secs(2), true);
        guard.observe(idle + Duration::from_secs(3), false);
        let idle = idle + Duration::from_secs(3);
        assert_eq!(guard.next(idle + RELEASE), Step::Set(false), "idle for the whole pause: release");
        guard.applied(idle + RELEASE, false);
        assert_eq!(guard.next(idle + RELEASE), Step::Wait(None));
        // Protection that lapsed while idle is not released again.
        guard.observe(idle + MIN, true);
        guard.applied(idle + MIN, true);
        guard.observe(idle + 2 * MIN, false);
        guard.observe(idle + 20 * MIN, false);
        assert_eq!(guard.next(idle + 20 * MIN), Step::Wait(None));
    }

    #[test]
    fn a_busy_spell_is_protected_for_one_lifetime_at_most() {
        let t0 = Instant::now();
        let mut guard = Guard::new(10 * MIN, RELEASE);
        guard.observe(t0, true);
        guard.applied(t0, true);
        guard.observe(t0 + 10 * MIN, true);
        assert_eq!(guard.next(t0 + 10 * MIN), Step::Wait(None), "lapsed while busy: not renewed");
        guard.observe(t0 + 11 * MIN, false);
        guard.observe(t0 + 12 * MIN, true);
        assert_eq!(guard.next(t0 + 12 * MIN), Step::Set(true), "a new busy spell after an idle moment");
    }

    #[test]
    fn a_failed_call_is_retried_with_backoff() {
        let t0 = Instant::now();
        let mut guard = Guard::new(10 * MIN, RELEASE);
        guard.observe(t0, true);
        guard.failed(t0);
        assert_eq!(guard.next(t0), Step::Wait(Some(t0 + Duration::from_secs(1))));
        assert_eq!(guard.next(t0 + Duration::from_secs(1)), Step::Set(true));
        guard.failed(t0 + Duration::from_secs(1));
        assert_eq!(guard.next(t0 + Duration::from_secs(1)), Step::Wait(Some(t0 + Duration::from_secs(3))));
        guard.observe(t0 + Duration::from_secs(2), false);
        assert_eq!(guard.next(t0 + Duration::from_secs(2)), Step::Wait(None), "nothing due while idle");
    }

    #[test]
    fn settings_clamp_to_what_ecs_accepts_and_zero_turns_protection_off() {
        assert_eq!(ProtectionSettings::new("http://agent", 0), None);
        assert_eq!(ProtectionSettings::new("http://agent", 5000).unwrap().expires_in_minutes(), 2880);
        assert_eq!(ProtectionSettings::new("http://agent", 60).unwrap().expires_in_minutes(), 60);
    }

    /// What the ECS agent's endpoint received, and how it answers: the documented request and
    /// answer shapes (the agent needs a real ECS task to run, so it cannot run in the tests).
    #[derive(Default)]
    pub(crate) struct Agent {
        pub(crate) calls: Mutex<Vec<Value>>,
        /// When each call came.
        pub(crate) times: Mutex<Vec<std::time::Instant>>,
        refuse: Mutex<Option<(StatusCode, Value)>>,
    }

    async fn state(State(agent): State<Arc<Agent>>, Json(body): Json<Value>) -> (StatusCode, Json<Value>) {
        agent.calls.lock().unwrap().push(body.clone());
        agent.times.lock().unwrap().push(std::time::Instant::now());
        if let Some((status, answer)) = agent.refuse.lock().unwrap().clone() {
            return (status, Json(answer));
        }
        let arn = "arn:aws:ecs:eu-central-1:111122223333:task/surge/0123456789abcdef";
        let Some(enabled) = body.get("ProtectionEnabled").and_then(Value::as_bool) else {
            let error = json!({"error": {"Arn": arn, "Code": "InvalidParameterException", "Message": "ProtectionEnabled is required"}});
            return (StatusCode::BAD_REQUEST, Json(error));
        };
        let minutes = body.get("ExpiresInMinutes").and_then(Value::as_u64).unwrap_or(120);
        let expiration = enabled.then(|| format!("in {minutes} minutes"));
        (
            StatusCode::OK,
            Json(json!({"protection": {"ExpirationDate": expiration, "ProtectionEnabled": enabled, "TaskArn": arn}})),
        )
    }

    /// Serves the agent endpoint on a free port; answers `$ECS_AGENT_URI`.
    pub(crate) async fn serve_agent(agent: Arc<Agent>) -> String {
        let app = axum::Router::new().route("/api/task-protection/v1/state", put(state)).with_state(agent);
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        format!("http://{addr}/api")
    }

    #[tokio::test]
    async fn speaks_the_agent_endpoint_and_reports_its_refusals() {
        let agent = Arc::new(Agent::default());
        let uri = serve_agent(Arc::clone(&agent)).await;
        let protection = TaskProtection::new(ProtectionSettings::new(&uri, 30).unwrap());
        assert!(protection.set(true).await.unwrap());
        assert!(!protection.set(false).await.unwrap());
        assert_eq!(
            *agent.calls.lock().unwrap(),
            vec![json!({"ProtectionEnabled": true, "ExpiresInMinutes": 30}), json!({"ProtectionEnabled": false})]
        );
        let denied = json!({"requestID": "12345", "error": {"Arn": "arn:aws:ecs:::task/x", "Code": "AccessDeniedException", "Message": "not authorized to perform: ecs:UpdateTaskProtection"}});
        *agent.refuse.lock().unwrap() = Some((StatusCode::BAD_REQUEST, denied));
        let err = protection.set(true).await.unwrap_err();
        assert!(err.to_string().contains("AccessDeniedException"), "{err}");
        let failure = json!({"failure": {"Arn": "arn:aws:ecs:::task/x", "Detail": null, "Reason": "TASK_NOT_VALID"}});
        *agent.refuse.lock().unwrap() = Some((StatusCode::OK, failure));
        assert!(protection.set(true).await.unwrap_err().to_string().contains("TASK_NOT_VALID"));
        let unreachable = TaskProtection::new(ProtectionSettings::new("http://127.0.0.1:9/api", 30).unwrap());
        assert!(matches!(unreachable.set(true).await, Err(ProtectionError::Unreachable(_))));
    }
}
