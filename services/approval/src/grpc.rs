//! `tongban.approval.v1.ApprovalService` over gRPC: identity from the interceptor, one call into
//! [`Approval`], errors mapped once (see [`crate::error`]).

use std::sync::Arc;

use tongban_auth::identity;
use tongban_proto::approval::{self as pb, approval_service_server::ApprovalService};
use tonic::{Request, Response, Status};

use crate::{
    repository::ms,
    service::{Approval, task_to_proto},
};

pub struct ApprovalGrpc {
    approval: Arc<Approval>,
}

impl ApprovalGrpc {
    pub fn new(approval: Arc<Approval>) -> Self {
        Self { approval }
    }

    fn now_ms(&self) -> i64 {
        ms(self.approval.now())
    }
}

#[tonic::async_trait]
impl ApprovalService for ApprovalGrpc {
    async fn list_tasks(
        &self,
        req: Request<pb::ListTasksRequest>,
    ) -> Result<Response<pb::ListTasksResponse>, Status> {
        let who = identity(&req)?;
        let (tasks, next_page_token) = self.approval.list_tasks(&who, req.get_ref()).await?;
        let now = self.now_ms();
        Ok(Response::new(pb::ListTasksResponse {
            tasks: tasks.iter().map(|t| task_to_proto(t, now)).collect(),
            next_page_token,
        }))
    }

    async fn claim_task(
        &self,
        req: Request<pb::ClaimTaskRequest>,
    ) -> Result<Response<pb::ClaimTaskResponse>, Status> {
        let who = identity(&req)?;
        let r = req.get_ref();
        let task = self
            .approval
            .claim(&who, &r.task_id, r.expected_version)
            .await?;
        Ok(Response::new(pb::ClaimTaskResponse {
            task: Some(task_to_proto(&task, self.now_ms())),
        }))
    }

    async fn decide_task(
        &self,
        req: Request<pb::DecideTaskRequest>,
    ) -> Result<Response<pb::DecideTaskResponse>, Status> {
        let who = identity(&req)?;
        let task = self.approval.decide(&who, req.into_inner()).await?;
        Ok(Response::new(pb::DecideTaskResponse {
            task: Some(task_to_proto(&task, self.now_ms())),
        }))
    }

    async fn delegate_task(
        &self,
        req: Request<pb::DelegateTaskRequest>,
    ) -> Result<Response<pb::DelegateTaskResponse>, Status> {
        let who = identity(&req)?;
        let task = self.approval.delegate(&who, req.into_inner()).await?;
        Ok(Response::new(pb::DelegateTaskResponse {
            task: Some(task_to_proto(&task, self.now_ms())),
        }))
    }

    async fn get_workflow(
        &self,
        req: Request<pb::GetWorkflowRequest>,
    ) -> Result<Response<pb::GetWorkflowResponse>, Status> {
        let who = identity(&req)?;
        let workflow = self
            .approval
            .workflow(&who, &req.get_ref().application_id)
            .await?;
        Ok(Response::new(pb::GetWorkflowResponse {
            workflow: Some(workflow),
        }))
    }

    async fn get_audit_trail(
        &self,
        req: Request<pb::GetAuditTrailRequest>,
    ) -> Result<Response<pb::GetAuditTrailResponse>, Status> {
        let who = identity(&req)?;
        Ok(Response::new(
            self.approval
                .audit_trail(&who, &req.get_ref().application_id)
                .await?,
        ))
    }

    async fn list_definitions(
        &self,
        req: Request<pb::ListDefinitionsRequest>,
    ) -> Result<Response<pb::ListDefinitionsResponse>, Status> {
        let who = identity(&req)?;
        let (definitions, next_page_token) =
            self.approval.list_definitions(&who, req.get_ref()).await?;
        Ok(Response::new(pb::ListDefinitionsResponse {
            definitions,
            next_page_token,
        }))
    }

    async fn publish_definition(
        &self,
        req: Request<pb::PublishDefinitionRequest>,
    ) -> Result<Response<pb::PublishDefinitionResponse>, Status> {
        let who = identity(&req)?;
        let r = req.get_ref();
        let definition = self
            .approval
            .publish_definition(&who, &r.source, &r.request_id)
            .await?;
        Ok(Response::new(pb::PublishDefinitionResponse {
            definition: Some(definition),
        }))
    }

    async fn rate_outcome(
        &self,
        req: Request<pb::RateOutcomeRequest>,
    ) -> Result<Response<pb::RateOutcomeResponse>, Status> {
        let who = identity(&req)?;
        let workflow = self.approval.rate(&who, req.into_inner()).await?;
        Ok(Response::new(pb::RateOutcomeResponse {
            workflow: Some(workflow),
        }))
    }
}
