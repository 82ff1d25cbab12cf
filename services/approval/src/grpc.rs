//! `tongban.approval.v1.ApprovalService` over gRPC. Each handler does the same four things:
//! identity from the interceptor, the request parsed into a domain input
//! ([`crate::requests`]), one call into [`Approval`], the result converted
//! ([`crate::convert`]). Errors map to status codes in one place ([`crate::error`]).

use std::sync::Arc;

use tongban_auth::identity;
use tongban_authz::Action;
use tongban_proto::approval::{self as pb, approval_service_server::ApprovalService};
use tonic::{Request, Response, Status};

use crate::{
    convert::{
        audit_trail_to_proto, definition_to_proto, ledger_item_to_proto, rating_to_proto,
        task_to_proto, workflow_to_proto,
    },
    engine::Approval,
    requests::{
        Claim, Decide, Delegate, ListDefinitions, ListLedger, ListTasks, Publish, Rate,
        RateService, Rectify,
    },
};

pub struct ApprovalGrpc {
    approval: Arc<Approval>,
}

impl ApprovalGrpc {
    pub fn new(approval: Arc<Approval>) -> Self {
        Self { approval }
    }
}

#[tonic::async_trait]
impl ApprovalService for ApprovalGrpc {
    async fn list_tasks(
        &self,
        req: Request<pb::ListTasksRequest>,
    ) -> Result<Response<pb::ListTasksResponse>, Status> {
        let who = identity(&req)?;
        self.approval.policy.check_role(&who, Action::ListTasks)?;
        let input = ListTasks::try_from(req.into_inner())?;
        let page = self.approval.list_tasks(&who, input).await?;
        let now = self.approval.now_ms();
        Ok(Response::new(pb::ListTasksResponse {
            tasks: page.tasks.iter().map(|t| task_to_proto(t, now)).collect(),
            next_page_token: page.next_page_token,
        }))
    }

    async fn claim_task(
        &self,
        req: Request<pb::ClaimTaskRequest>,
    ) -> Result<Response<pb::ClaimTaskResponse>, Status> {
        let who = identity(&req)?;
        self.approval.policy.check_role(&who, Action::ClaimTask)?;
        let input = Claim::try_from(req.into_inner())?;
        let task = self.approval.claim(&who, input).await?;
        Ok(Response::new(pb::ClaimTaskResponse {
            task: Some(task_to_proto(&task, self.approval.now_ms())),
        }))
    }

    async fn decide_task(
        &self,
        req: Request<pb::DecideTaskRequest>,
    ) -> Result<Response<pb::DecideTaskResponse>, Status> {
        let who = identity(&req)?;
        self.approval.policy.check_role(&who, Action::DecideTask)?;
        let input = Decide::try_from(req.into_inner())?;
        let task = self.approval.decide(&who, input).await?;
        Ok(Response::new(pb::DecideTaskResponse {
            task: Some(task_to_proto(&task, self.approval.now_ms())),
        }))
    }

    async fn delegate_task(
        &self,
        req: Request<pb::DelegateTaskRequest>,
    ) -> Result<Response<pb::DelegateTaskResponse>, Status> {
        let who = identity(&req)?;
        self.approval
            .policy
            .check_role(&who, Action::DelegateTask)?;
        let input = Delegate::try_from(req.into_inner())?;
        let task = self.approval.delegate(&who, input).await?;
        Ok(Response::new(pb::DelegateTaskResponse {
            task: Some(task_to_proto(&task, self.approval.now_ms())),
        }))
    }

    async fn get_workflow(
        &self,
        req: Request<pb::GetWorkflowRequest>,
    ) -> Result<Response<pb::GetWorkflowResponse>, Status> {
        let who = identity(&req)?;
        let view = self
            .approval
            .workflow(&who, &req.get_ref().application_id)
            .await?;
        Ok(Response::new(pb::GetWorkflowResponse {
            workflow: Some(workflow_to_proto(view, self.approval.now_ms())),
        }))
    }

    async fn get_audit_trail(
        &self,
        req: Request<pb::GetAuditTrailRequest>,
    ) -> Result<Response<pb::GetAuditTrailResponse>, Status> {
        let who = identity(&req)?;
        let trail = self
            .approval
            .audit_trail(&who, &req.get_ref().application_id)
            .await?;
        Ok(Response::new(audit_trail_to_proto(trail)))
    }

    async fn list_definitions(
        &self,
        req: Request<pb::ListDefinitionsRequest>,
    ) -> Result<Response<pb::ListDefinitionsResponse>, Status> {
        let who = identity(&req)?;
        let input = ListDefinitions::try_from(req.into_inner())?;
        let (definitions, next_page_token) = self.approval.list_definitions(&who, input).await?;
        Ok(Response::new(pb::ListDefinitionsResponse {
            definitions: definitions.into_iter().map(definition_to_proto).collect(),
            next_page_token,
        }))
    }

    async fn publish_definition(
        &self,
        req: Request<pb::PublishDefinitionRequest>,
    ) -> Result<Response<pb::PublishDefinitionResponse>, Status> {
        let who = identity(&req)?;
        self.approval
            .policy
            .check_role(&who, Action::PublishDefinition)?;
        let input = Publish::try_from(req.into_inner())?;
        let definition = self.approval.publish_definition(&who, input).await?;
        Ok(Response::new(pb::PublishDefinitionResponse {
            definition: Some(definition_to_proto(definition)),
        }))
    }

    async fn rate_outcome(
        &self,
        req: Request<pb::RateOutcomeRequest>,
    ) -> Result<Response<pb::RateOutcomeResponse>, Status> {
        let who = identity(&req)?;
        self.approval.policy.check_role(&who, Action::RateOutcome)?;
        let input = Rate::try_from(req.into_inner())?;
        let view = self.approval.rate(&who, input).await?;
        Ok(Response::new(pb::RateOutcomeResponse {
            workflow: Some(workflow_to_proto(view, self.approval.now_ms())),
        }))
    }

    async fn list_ledger_items(
        &self,
        req: Request<pb::ListLedgerItemsRequest>,
    ) -> Result<Response<pb::ListLedgerItemsResponse>, Status> {
        let who = identity(&req)?;
        self.approval
            .policy
            .check_role(&who, Action::ListLedgerItems)?;
        let input = ListLedger::try_from(req.into_inner())?;
        let page = self.approval.list_ledger(&who, input).await?;
        let now = self.approval.now_ms();
        Ok(Response::new(pb::ListLedgerItemsResponse {
            items: page
                .items
                .iter()
                .map(|i| ledger_item_to_proto(i, &self.approval.calendar, now))
                .collect(),
            next_page_token: page.next_page_token,
        }))
    }

    async fn get_ledger_item(
        &self,
        req: Request<pb::GetLedgerItemRequest>,
    ) -> Result<Response<pb::GetLedgerItemResponse>, Status> {
        let who = identity(&req)?;
        self.approval
            .policy
            .check_role(&who, Action::GetLedgerItem)?;
        let item = self
            .approval
            .ledger_item(&who, &req.get_ref().item_id)
            .await?;
        Ok(Response::new(pb::GetLedgerItemResponse {
            item: Some(ledger_item_to_proto(
                &item,
                &self.approval.calendar,
                self.approval.now_ms(),
            )),
        }))
    }

    async fn rate_service(
        &self,
        req: Request<pb::RateServiceRequest>,
    ) -> Result<Response<pb::RateServiceResponse>, Status> {
        let who = identity(&req)?;
        self.approval.policy.check_role(&who, Action::RateService)?;
        let input = RateService::try_from(req.into_inner())?;
        let rating = self.approval.rate_service(&who, input).await?;
        Ok(Response::new(pb::RateServiceResponse {
            rating: Some(rating_to_proto(&rating)),
        }))
    }

    async fn record_rectification(
        &self,
        req: Request<pb::RecordRectificationRequest>,
    ) -> Result<Response<pb::RecordRectificationResponse>, Status> {
        let who = identity(&req)?;
        self.approval
            .policy
            .check_role(&who, Action::RecordRectification)?;
        let input = Rectify::try_from(req.into_inner())?;
        let rating = self.approval.record_rectification(&who, input).await?;
        Ok(Response::new(pb::RecordRectificationResponse {
            rating: Some(rating_to_proto(&rating)),
        }))
    }
}
