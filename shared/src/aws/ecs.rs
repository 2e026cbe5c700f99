//! The ECS scale target: one ECS service per lane, resized with `UpdateService`.
//!
//! ECS picks the tasks it stops on scale-in and sends them SIGTERM; a worker drains on SIGTERM
//! (finishes or hands back its jobs), so the service's `stopTimeout` should be at least the
//! worker's `drain_timeout_secs`. ECS cannot be told which task to stop, so the idle workers the
//! dispatcher names are only logged; instead a worker holding jobs protects its own task from
//! scale-in (`worker::protection`), and ECS picks among the unprotected, idle ones.

use async_trait::async_trait;
use aws_sdk_ecs::Client;

use super::service_error::CallError;
use crate::config::EcsSettings;
use crate::domain::Lane;
use crate::ports::Fault;
use crate::ports::{PoolSize, ScaleError, ScaleTarget, WorkerBeat};

/// A [`ScaleTarget`] over ECS services.
pub struct EcsScaleTarget {
    client: Client,
    settings: EcsSettings,
}

impl EcsScaleTarget {
    /// Connects with the standard credential chain; checks nothing until first used.
    pub async fn connect(settings: &EcsSettings) -> EcsScaleTarget {
        let mut loader = super::sdk_loader(&settings.region);
        if let Some(url) = &settings.endpoint_url {
            loader = loader.endpoint_url(url);
        }
        EcsScaleTarget { client: Client::new(&loader.load().await), settings: settings.clone() }
    }

    fn service(&self, lane: Lane) -> &str {
        match lane {
            Lane::Small => &self.settings.small_service,
            Lane::Large => &self.settings.large_service,
        }
    }
}

fn unavailable(err: CallError) -> ScaleError {
    ScaleError::Unavailable(Fault::from_error(err))
}

fn count(n: i32) -> usize {
    usize::try_from(n).unwrap_or(0)
}

#[async_trait]
impl ScaleTarget for EcsScaleTarget {
    fn kind(&self) -> &'static str {
        "ecs"
    }

    async fn observe(&self, lane: Lane) -> Result<PoolSize, ScaleError> {
        let service = self.service(lane);
        let described = self
            .client
            .describe_services()
            .cluster(&self.settings.cluster)
            .services(service)
            .send()
            .await
            .map_err(|e| unavailable(CallError::from_sdk("DescribeServices", e)))?;
        let found = described.services().iter().find(|s| s.service_name() == Some(service));
        let found = found.ok_or_else(|| {
            ScaleError::Unavailable(Fault::new(format!(
                "ECS service {service} not found in cluster {}",
                self.settings.cluster
            )))
        })?;
        Ok(PoolSize {
            desired: count(found.desired_count()),
            running: count(found.running_count()),
            pending: count(found.pending_count()),
        })
    }

    async fn set_desired(&self, lane: Lane, desired: usize, idle: &[WorkerBeat]) -> Result<(), ScaleError> {
        let service = self.service(lane);
        let desired_count = i32::try_from(desired).unwrap_or(i32::MAX);
        self.client
            .update_service()
            .cluster(&self.settings.cluster)
            .service(service)
            .desired_count(desired_count)
            .send()
            .await
            .map_err(|e| unavailable(CallError::from_sdk("UpdateService", e)))?;
        tracing::info!(%lane, service, desired, idle = idle.len(), "ECS service resized");
        Ok(())
    }

    /// A new deployment of both services (`forceNewDeployment`): ECS starts new tasks, waits
    /// until they are healthy, then stops old ones with SIGTERM (they drain), within the
    /// services' deployment configuration (infra/: minimum healthy 100 %).
    async fn redeploy(&self) -> Result<Vec<String>, ScaleError> {
        let mut started = Vec::new();
        for lane in Lane::ALL {
            let service = self.service(lane);
            let updated = self
                .client
                .update_service()
                .cluster(&self.settings.cluster)
                .service(service)
                .force_new_deployment(true)
                .send()
                .await
                .map_err(|e| unavailable(CallError::from_sdk("UpdateService", e)))?;
            let deployment = updated.service().and_then(|s| s.deployments().first()).and_then(|d| d.id());
            started.push(format!("{service}: deployment {}", deployment.unwrap_or("started")));
        }
        tracing::info!(?started, "ECS services redeployed");
        Ok(started)
    }
}
