//! `tongban.dispatch.v1.DispatchService` over gRPC: identity from the interceptor, one call
//! into [`Dispatch`], errors mapped once (see [`crate::error`]).

use std::sync::Arc;

use tongban_auth::identity;
use tongban_proto::dispatch::{self as pb, dispatch_service_server::DispatchService};
use tonic::{Request, Response, Status};

use crate::service::Dispatch;

pub struct DispatchGrpc {
    dispatch: Arc<Dispatch>,
}

impl DispatchGrpc {
    pub fn new(dispatch: Arc<Dispatch>) -> Self {
        Self { dispatch }
    }
}

#[tonic::async_trait]
impl DispatchService for DispatchGrpc {
    async fn list_platforms(
        &self,
        req: Request<pb::ListPlatformsRequest>,
    ) -> Result<Response<pb::ListPlatformsResponse>, Status> {
        let who = identity(&req)?;
        let (platforms, next_page_token) =
            self.dispatch.list_platforms(&who, req.get_ref()).await?;
        Ok(Response::new(pb::ListPlatformsResponse {
            platforms,
            next_page_token,
        }))
    }

    async fn list_deliveries(
        &self,
        req: Request<pb::ListDeliveriesRequest>,
    ) -> Result<Response<pb::ListDeliveriesResponse>, Status> {
        let who = identity(&req)?;
        let (deliveries, next_page_token) =
            self.dispatch.list_deliveries(&who, req.get_ref()).await?;
        Ok(Response::new(pb::ListDeliveriesResponse {
            deliveries,
            next_page_token,
        }))
    }

    async fn retry_delivery(
        &self,
        req: Request<pb::RetryDeliveryRequest>,
    ) -> Result<Response<pb::RetryDeliveryResponse>, Status> {
        let who = identity(&req)?;
        let delivery = self
            .dispatch
            .retry_delivery(&who, &req.get_ref().delivery_id)
            .await?;
        Ok(Response::new(pb::RetryDeliveryResponse {
            delivery: Some(delivery),
        }))
    }

    async fn replay_dead_letters(
        &self,
        req: Request<pb::ReplayDeadLettersRequest>,
    ) -> Result<Response<pb::ReplayDeadLettersResponse>, Status> {
        let who = identity(&req)?;
        let replayed = self
            .dispatch
            .replay_dead_letters(&who, req.get_ref())
            .await?;
        Ok(Response::new(pb::ReplayDeadLettersResponse { replayed }))
    }

    async fn discard_delivery(
        &self,
        req: Request<pb::DiscardDeliveryRequest>,
    ) -> Result<Response<pb::DiscardDeliveryResponse>, Status> {
        let who = identity(&req)?;
        let delivery = self.dispatch.discard_delivery(&who, req.get_ref()).await?;
        Ok(Response::new(pb::DiscardDeliveryResponse {
            delivery: Some(delivery),
        }))
    }

    async fn reconcile(
        &self,
        req: Request<pb::ReconcileRequest>,
    ) -> Result<Response<pb::ReconcileResponse>, Status> {
        let who = identity(&req)?;
        Ok(Response::new(
            self.dispatch.reconcile(&who, req.get_ref()).await?,
        ))
    }
}
