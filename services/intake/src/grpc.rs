//! `tongban.intake.v1.IntakeService` over gRPC: identity from the interceptor, one call into
//! [`Intake`], errors mapped once (see [`crate::error`]).

use std::{pin::Pin, sync::Arc, time::Duration};

use futures::Stream;
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;
use tongban_auth::identity;
use tongban_proto::{
    intake::{self as pb, intake_service_server::IntakeService},
    time::ts,
};
use tonic::{Request, Response, Status};

use crate::{domain::is_final, repository::ApplicationStore, service::Intake};

pub struct IntakeGrpc {
    intake: Arc<Intake>,
    shutdown: CancellationToken,
}

impl IntakeGrpc {
    /// WatchApplication streams end when `shutdown` fires, so they never hold up the
    /// server's graceful shutdown.
    pub fn new(intake: Arc<Intake>, shutdown: CancellationToken) -> Self {
        Self { intake, shutdown }
    }
}

/// How often a watcher re-reads the application even without a local change signal (another
/// replica may have applied the event).
const WATCH_POLL: Duration = Duration::from_secs(2);

type WatchStream = Pin<Box<dyn Stream<Item = Result<pb::WatchApplicationResponse, Status>> + Send>>;

#[tonic::async_trait]
impl IntakeService for IntakeGrpc {
    async fn submit_application(
        &self,
        req: Request<pb::SubmitApplicationRequest>,
    ) -> Result<Response<pb::SubmitApplicationResponse>, Status> {
        let who = identity(&req)?;
        let (application, created) = self.intake.submit(&who, req.into_inner()).await?;
        Ok(Response::new(pb::SubmitApplicationResponse {
            application: Some(application),
            created,
        }))
    }

    async fn get_application(
        &self,
        req: Request<pb::GetApplicationRequest>,
    ) -> Result<Response<pb::GetApplicationResponse>, Status> {
        let who = identity(&req)?;
        let application = self.intake.get(&who, &req.get_ref().application_id).await?;
        Ok(Response::new(pb::GetApplicationResponse {
            application: Some(application),
        }))
    }

    async fn list_applications(
        &self,
        req: Request<pb::ListApplicationsRequest>,
    ) -> Result<Response<pb::ListApplicationsResponse>, Status> {
        let who = identity(&req)?;
        let (applications, next_page_token) = self.intake.list(&who, req.get_ref()).await?;
        Ok(Response::new(pb::ListApplicationsResponse {
            applications,
            next_page_token,
        }))
    }

    type WatchApplicationStream = WatchStream;

    async fn watch_application(
        &self,
        req: Request<pb::WatchApplicationRequest>,
    ) -> Result<Response<Self::WatchApplicationStream>, Status> {
        let who = identity(&req)?;
        let id = req.get_ref().application_id.trim().to_string();
        // Held by the stream task: released when the stream ends, however it ends.
        let permit = self.intake.watch_permit(&who)?;
        // Subscribe before the first read so no change between the two is missed.
        let mut changes = self.intake.subscribe_changes();
        let first = self
            .intake
            .get_for(&who, tongban_authz::Action::WatchApplication, &id)
            .await?;
        let intake = self.intake.clone();
        let shutdown = self.shutdown.clone();
        // The stream ends OK after the application's final state (nothing but delivery
        // progress changes after it), and with UNAVAILABLE when the service shuts down, so
        // the client knows to watch again elsewhere.
        let stream = tongban_runtime::stream_from_task(move |tx| async move {
            let _permit = permit;
            let mut seen = first.version;
            let done = is_final(first.status());
            let snapshot = pb::WatchApplicationResponse {
                change_time: first.update_time,
                application: Some(first),
                event_type: "snapshot".into(),
            };
            if tx.send(Ok(snapshot)).await.is_err() || done {
                return;
            }
            loop {
                let event_type = tokio::select! {
                    _ = tx.closed() => return,
                    _ = shutdown.cancelled() => {
                        let _ = tx.send(Err(tongban_runtime::streams::shutting_down())).await;
                        return;
                    }
                    msg = changes.recv() => match msg {
                        Ok(c) if c.application_id == id => c.event_type,
                        Ok(_) => continue,
                        Err(RecvError::Lagged(_)) => "changed".to_string(),
                        Err(RecvError::Closed) => return,
                    },
                    _ = tokio::time::sleep(WATCH_POLL) => "changed".to_string(),
                };
                match intake.db().find_application(&id).await {
                    Ok(Some(s)) if s.application.version > seen => {
                        seen = s.application.version;
                        let done = is_final(s.application.status());
                        let msg = pb::WatchApplicationResponse {
                            change_time: Some(ts(chrono::Utc::now())),
                            application: Some(s.application),
                            event_type,
                        };
                        if tx.send(Ok(msg)).await.is_err() || done {
                            return;
                        }
                    }
                    Ok(_) => {}
                    Err(e) => {
                        let _ = tx.send(Err(Status::from(e))).await;
                        return;
                    }
                }
            }
        });
        Ok(Response::new(stream))
    }

    async fn supplement_materials(
        &self,
        req: Request<pb::SupplementMaterialsRequest>,
    ) -> Result<Response<pb::SupplementMaterialsResponse>, Status> {
        let who = identity(&req)?;
        let application = self.intake.supplement(&who, req.into_inner()).await?;
        Ok(Response::new(pb::SupplementMaterialsResponse {
            application: Some(application),
        }))
    }

    async fn withdraw_application(
        &self,
        req: Request<pb::WithdrawApplicationRequest>,
    ) -> Result<Response<pb::WithdrawApplicationResponse>, Status> {
        let who = identity(&req)?;
        let application = self.intake.withdraw(&who, req.into_inner()).await?;
        Ok(Response::new(pb::WithdrawApplicationResponse {
            application: Some(application),
        }))
    }

    async fn list_matters(
        &self,
        req: Request<pb::ListMattersRequest>,
    ) -> Result<Response<pb::ListMattersResponse>, Status> {
        let who = identity(&req)?;
        let (matters, next_page_token) = self.intake.list_matters(&who, req.get_ref())?;
        Ok(Response::new(pb::ListMattersResponse {
            matters,
            next_page_token,
        }))
    }
}
