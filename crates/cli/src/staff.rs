//! Commands for approval staff: my tasks, claim and decide (always with the version seen),
//! the whole timeline of an application, the delivery ledger and the audit chain.

use anyhow::Context as _;
use tongban_proto::{
    approval::{self as ap, Decision, TaskStatus},
    dispatch as dp,
};
use tonic::Code;

use crate::{
    applicant::{get_application, platform_total, print_application},
    client::{Conn, Svc, status_of},
    output::{local_short, print_json, short_enum, table, trunc},
};

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub(crate) enum StatusArg {
    Open,
    Claimed,
    Approved,
    Rejected,
    #[value(name = "supplement_requested", alias = "supplement-requested")]
    SupplementRequested,
    Cancelled,
    Done,
}

impl StatusArg {
    fn proto(self) -> TaskStatus {
        match self {
            StatusArg::Open => TaskStatus::Open,
            StatusArg::Claimed => TaskStatus::Claimed,
            StatusArg::Approved => TaskStatus::Approved,
            StatusArg::Rejected => TaskStatus::Rejected,
            StatusArg::SupplementRequested => TaskStatus::SupplementRequested,
            StatusArg::Cancelled => TaskStatus::Cancelled,
            StatusArg::Done => TaskStatus::Done,
        }
    }
}

const ALL_STATUSES: [TaskStatus; 7] = [
    TaskStatus::Open,
    TaskStatus::Claimed,
    TaskStatus::Approved,
    TaskStatus::Rejected,
    TaskStatus::SupplementRequested,
    TaskStatus::Cancelled,
    TaskStatus::Done,
];

#[derive(clap::Args, Debug)]
pub struct TasksArgs {
    /// Only tasks assigned to me.
    #[arg(long)]
    mine: bool,
    /// Only this department (staff default to their own).
    #[arg(long)]
    department: Option<String>,
    /// Only these statuses (repeatable); default open and claimed.
    #[arg(long, value_enum)]
    status: Vec<StatusArg>,
    /// Every status, decided ones included.
    #[arg(long, conflicts_with = "status")]
    all: bool,
    /// Only this application.
    #[arg(long)]
    application: Option<String>,
    /// Only these kinds (repeatable): a review desk asks for review only.
    #[arg(long, value_enum)]
    kind: Vec<TaskKindArg>,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub(crate) enum TaskKindArg {
    Review,
    VerifyPledge,
    FollowUpMaterial,
    HandleRequest,
    FollowUpVisit,
}

impl TaskKindArg {
    fn proto(self) -> ap::TaskKind {
        match self {
            TaskKindArg::Review => ap::TaskKind::Review,
            TaskKindArg::VerifyPledge => ap::TaskKind::VerifyPledge,
            TaskKindArg::FollowUpMaterial => ap::TaskKind::FollowUpMaterial,
            TaskKindArg::HandleRequest => ap::TaskKind::HandleRequest,
            TaskKindArg::FollowUpVisit => ap::TaskKind::FollowUpVisit,
        }
    }
}

/// Where to find the task and which version to send.
#[derive(clap::Args, Debug)]
pub struct TaskRef {
    /// Task id.
    task: String,
    /// The task version you saw; looked up when omitted.
    #[arg(long)]
    version: Option<i64>,
    /// Application of the task (narrows the version lookup).
    #[arg(long)]
    application: Option<String>,
}

#[derive(clap::Args, Debug)]
pub struct ApproveArgs {
    #[command(flatten)]
    task: TaskRef,
    #[arg(long)]
    comment: Option<String>,
    /// 分类交办: at an enterprise request's assignment stage, the department(s) that handle it
    /// (repeatable; several work in parallel).
    #[arg(long = "assign")]
    assign: Vec<String>,
}

#[derive(clap::Args, Debug)]
pub struct RejectArgs {
    #[command(flatten)]
    task: TaskRef,
    /// Why (required; the applicant sees it).
    #[arg(long)]
    comment: String,
}

#[derive(clap::Args, Debug)]
pub struct RequestSupplementArgs {
    #[command(flatten)]
    task: TaskRef,
    /// What is missing (required; the applicant sees it).
    #[arg(long)]
    comment: String,
    /// Material kind asked for (repeatable).
    #[arg(long = "material", value_name = "KIND")]
    materials: Vec<String>,
}

#[derive(clap::Args, Debug)]
pub struct DelegateArgs {
    #[command(flatten)]
    task: TaskRef,
    /// Subject of the clerk who takes over.
    #[arg(long)]
    to: String,
    /// Move the task to another department (supervisors and admins).
    #[arg(long)]
    department: Option<String>,
    #[arg(long)]
    reason: Option<String>,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub(crate) enum DeliveryStatusArg {
    Pending,
    Succeeded,
    #[value(name = "dead_lettered", alias = "dead-lettered")]
    DeadLettered,
    Superseded,
    Discarded,
}

#[derive(clap::Args, Debug)]
pub struct DeliveriesArgs {
    #[arg(long)]
    application: Option<String>,
    #[arg(long)]
    platform: Option<String>,
    #[arg(long, value_enum)]
    status: Option<DeliveryStatusArg>,
}

fn task_status(t: &ap::Task) -> String {
    short_enum(t.status().as_str_name(), "TASK_STATUS_").to_lowercase()
}

fn dept(t: &ap::Task) -> String {
    if t.office.is_empty() {
        t.department.clone()
    } else {
        t.office.clone()
    }
}

fn due(t: &ap::Task) -> String {
    let d = local_short(t.due_time.as_ref());
    if t.overdue { format!("{d} !") } else { d }
}

async fn list_tasks(conn: &Conn, req: ap::ListTasksRequest) -> anyhow::Result<Vec<ap::Task>> {
    let mut client = conn.approval()?;
    let mut out = Vec::new();
    let mut req = ap::ListTasksRequest {
        page_size: 200,
        ..req
    };
    loop {
        let resp = client
            .list_tasks(conn.req(req.clone()))
            .await
            .map_err(conn.err(Svc::Approval))?
            .into_inner();
        out.extend(resp.tasks);
        if resp.next_page_token.is_empty() || out.len() >= 2000 {
            return Ok(out);
        }
        req.page_token = resp.next_page_token;
    }
}

pub(crate) async fn tasks(conn: &Conn, args: TasksArgs) -> anyhow::Result<()> {
    let statuses = if args.all {
        ALL_STATUSES.iter().map(|s| *s as i32).collect()
    } else {
        args.status.iter().map(|s| s.proto() as i32).collect()
    };
    let req = ap::ListTasksRequest {
        department: args.department.unwrap_or_default(),
        assignee: if args.mine {
            "me".into()
        } else {
            String::new()
        },
        statuses,
        application_id: args.application.unwrap_or_default(),
        kinds: args.kind.iter().map(|k| k.proto() as i32).collect(),
        ..Default::default()
    };
    let tasks = list_tasks(conn, req).await?;
    if conn.json() {
        return print_json(
            "tongban.approval.v1.ListTasksResponse",
            &ap::ListTasksResponse {
                tasks,
                next_page_token: String::new(),
            },
        );
    }
    if tasks.is_empty() {
        println!("No tasks.");
        return Ok(());
    }
    let mut t = table(&["TASK", "DUE", "STATUS", "DEPT", "TITLE"]);
    for task in &tasks {
        let title = if task.title.is_empty() {
            &task.stage_name
        } else {
            &task.title
        };
        t.add_row(vec![
            task.task_id.clone(),
            due(task),
            task_status(task),
            dept(task),
            trunc(title, 24),
        ]);
    }
    for col in 0..3 {
        crate::output::keep_whole(&mut t, col);
    }
    println!("{t}");
    let overdue = tasks.iter().filter(|t| t.overdue).count();
    println!(
        "{} task(s); due times Asia/Shanghai{}",
        tasks.len(),
        if overdue > 0 {
            format!("; ! = overdue ({overdue})")
        } else {
            String::new()
        }
    );
    Ok(())
}

/// The task as the server has it now, found through ListTasks.
async fn find_task(conn: &Conn, r: &TaskRef) -> anyhow::Result<ap::Task> {
    let req = ap::ListTasksRequest {
        application_id: r.application.clone().unwrap_or_default(),
        statuses: ALL_STATUSES.iter().map(|s| *s as i32).collect(),
        ..Default::default()
    };
    list_tasks(conn, req)
        .await?
        .into_iter()
        .find(|t| t.task_id == r.task)
        .with_context(|| {
            format!(
                "task {} is not among the tasks you can see; pass --application or --version",
                r.task
            )
        })
}

async fn version_of(conn: &Conn, r: &TaskRef) -> anyhow::Result<i64> {
    match r.version {
        Some(v) => Ok(v),
        None => Ok(find_task(conn, r).await?.version),
    }
}

fn print_task(conn: &Conn, verb: &str, resp: Option<ap::Task>) -> anyhow::Result<()> {
    let task = resp.unwrap_or_default();
    if conn.json() {
        return print_json("tongban.approval.v1.Task", &task);
    }
    println!(
        "{verb} task {} ({}, {}) — now {} (version {}){}",
        task.task_id,
        dept(&task),
        trunc(&task.stage_name, 20),
        task_status(&task),
        task.version,
        if task.assignee.is_empty() {
            String::new()
        } else {
            format!(", held by {}", task.assignee)
        }
    );
    Ok(())
}

pub(crate) async fn claim(conn: &Conn, r: TaskRef) -> anyhow::Result<()> {
    let version = version_of(conn, &r).await?;
    let resp = conn
        .approval()?
        .claim_task(conn.req(ap::ClaimTaskRequest {
            task_id: r.task.clone(),
            expected_version: version,
        }))
        .await
        .map_err(conn.err(Svc::Approval))?
        .into_inner();
    print_task(conn, "Claimed", resp.task)
}

async fn decide(
    conn: &Conn,
    r: &TaskRef,
    decision: Decision,
    comment: Option<String>,
    materials: Vec<String>,
    assign: Vec<String>,
    verb: &str,
) -> anyhow::Result<()> {
    let version = version_of(conn, r).await?;
    let resp = conn
        .approval()?
        .decide_task(conn.req(ap::DecideTaskRequest {
            task_id: r.task.clone(),
            decision: decision as i32,
            comment: comment.unwrap_or_default(),
            expected_version: version,
            requested_materials: materials,
            assign_departments: assign,
        }))
        .await
        .map_err(conn.err(Svc::Approval))?
        .into_inner();
    print_task(conn, verb, resp.task)
}

pub(crate) async fn approve(conn: &Conn, a: ApproveArgs) -> anyhow::Result<()> {
    decide(
        conn,
        &a.task,
        Decision::Approve,
        a.comment,
        vec![],
        a.assign,
        "Approved",
    )
    .await
}

pub(crate) async fn reject(conn: &Conn, a: RejectArgs) -> anyhow::Result<()> {
    decide(
        conn,
        &a.task,
        Decision::Reject,
        Some(a.comment),
        vec![],
        vec![],
        "Rejected",
    )
    .await
}

pub(crate) async fn request_supplement(
    conn: &Conn,
    a: RequestSupplementArgs,
) -> anyhow::Result<()> {
    decide(
        conn,
        &a.task,
        Decision::RequestSupplement,
        Some(a.comment),
        a.materials,
        vec![],
        "Asked for supplement on",
    )
    .await
}

pub(crate) async fn delegate(conn: &Conn, a: DelegateArgs) -> anyhow::Result<()> {
    let version = version_of(conn, &a.task).await?;
    let resp = conn
        .approval()?
        .delegate_task(conn.req(ap::DelegateTaskRequest {
            task_id: a.task.task.clone(),
            assignee: a.to,
            department: a.department.unwrap_or_default(),
            reason: a.reason.unwrap_or_default(),
            expected_version: version,
        }))
        .await
        .map_err(conn.err(Svc::Approval))?
        .into_inner();
    print_task(conn, "Delegated", resp.task)
}

/// Errors that mean "this part is not there (yet)" rather than "stop".
fn absent(e: &anyhow::Error) -> Option<String> {
    let s = status_of(e)?;
    matches!(
        s.code(),
        Code::NotFound | Code::Unavailable | Code::Unimplemented
    )
    .then(|| e.to_string())
}

async fn workflow(conn: &Conn, id: &str) -> anyhow::Result<ap::Workflow> {
    conn.approval()?
        .get_workflow(conn.req(ap::GetWorkflowRequest {
            application_id: id.to_string(),
        }))
        .await
        .map_err(conn.err(Svc::Approval))?
        .into_inner()
        .workflow
        .context("the server returned no workflow")
}

async fn deliveries_of(
    conn: &Conn,
    req: dp::ListDeliveriesRequest,
) -> anyhow::Result<Vec<dp::Delivery>> {
    let mut client = conn.dispatch()?;
    let mut out = Vec::new();
    let mut req = dp::ListDeliveriesRequest {
        page_size: 200,
        ..req
    };
    loop {
        let resp = client
            .list_deliveries(conn.req(req.clone()))
            .await
            .map_err(conn.err(Svc::Dispatch))?
            .into_inner();
        out.extend(resp.deliveries);
        if resp.next_page_token.is_empty() || out.len() >= 2000 {
            return Ok(out);
        }
        req.page_token = resp.next_page_token;
    }
}

fn delivery_status(d: &dp::Delivery) -> String {
    short_enum(d.status().as_str_name(), "DELIVERY_STATUS_").to_lowercase()
}

fn task_rows(tasks: &[ap::Task]) -> comfy_table::Table {
    let mut t = table(&["DEPT", "ASSIGNEE", "STATUS", "DUE", "DECIDED"]);
    for task in tasks {
        t.add_row(vec![
            dept(task),
            trunc(&task.assignee, 20),
            task_status(task),
            due(task),
            local_short(task.decide_time.as_ref()),
        ]);
    }
    t
}

pub(crate) async fn show(conn: &Conn, id: &str) -> anyhow::Result<()> {
    let app = get_application(conn, id).await?;
    let wf = match workflow(conn, id).await {
        Ok(w) => Ok(w),
        Err(e) => Err(absent(&e).ok_or(e)?),
    };
    let deliveries = if !conn.reads_dispatch() {
        Err("dispatch's ledger is for staff; the application shows its platform progress".into())
    } else {
        match deliveries_of(
            conn,
            dp::ListDeliveriesRequest {
                application_id: id.to_string(),
                ..Default::default()
            },
        )
        .await
        {
            Ok(d) => Ok(d),
            Err(e) => Err(absent(&e).ok_or(e)?),
        }
    };
    if conn.json() {
        let mut v = serde_json::Map::new();
        v.insert(
            "application".into(),
            crate::output::json_value("tongban.intake.v1.Application", &app)?,
        );
        if let Ok(w) = &wf {
            v.insert(
                "workflow".into(),
                crate::output::json_value("tongban.approval.v1.Workflow", w)?,
            );
        }
        if let Ok(d) = &deliveries {
            let list = dp::ListDeliveriesResponse {
                deliveries: d.clone(),
                next_page_token: String::new(),
            };
            let value =
                crate::output::json_value("tongban.dispatch.v1.ListDeliveriesResponse", &list)?;
            v.insert(
                "deliveries".into(),
                value.get("deliveries").cloned().unwrap_or_default(),
            );
        }
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    let total = platform_total(conn).await;
    print_application(&app, total);
    match &wf {
        Err(why) => println!("\nWorkflow: not available ({why})"),
        Ok(w) => {
            println!(
                "\nWorkflow {} (definition v{}, version {})",
                short_enum(w.status().as_str_name(), "WORKFLOW_STATUS_"),
                w.definition_version,
                w.version
            );
            for (i, stage) in w.stages.iter().enumerate() {
                let state = short_enum(stage.state().as_str_name(), "STAGE_STATE_");
                println!("\n{}. {} [{}]", i + 1, stage.name, state.to_lowercase());
                if !stage.tasks.is_empty() {
                    println!("{}", task_rows(&stage.tasks));
                }
            }
            if !w.follow_ups.is_empty() {
                println!("\nFollow-ups");
                println!("{}", task_rows(&w.follow_ups));
            }
            if !w.timeline.is_empty() {
                println!("\nTimeline (Asia/Shanghai)");
                let mut t = table(&["TIME", "ACTOR", "ACTION", "DETAIL"]);
                for e in &w.timeline {
                    t.add_row(vec![
                        local_short(e.time.as_ref()),
                        trunc(&e.actor, 20),
                        trunc(&e.action, 18),
                        trunc(&e.detail, 30),
                    ]);
                }
                println!("{t}");
            }
        }
    }
    match &deliveries {
        Err(why) => println!("\nDeliveries: not available ({why})"),
        Ok(d) if d.is_empty() => println!("\nDeliveries: none yet"),
        Ok(d) => {
            println!("\nDeliveries");
            println!("{}", delivery_table(d, false));
        }
    }
    Ok(())
}

fn delivery_table(list: &[dp::Delivery], with_id: bool) -> comfy_table::Table {
    let mut headers = vec![];
    if with_id {
        headers.push("DELIVERY");
    }
    headers.extend([
        "PLATFORM",
        "EVENT",
        "STATUS",
        "TRIES",
        "RECEIPT",
        "WHEN / ERROR",
    ]);
    let mut t = table(&headers);
    for d in list {
        let when = if d.last_error.is_empty() || d.status() == dp::DeliveryStatus::Succeeded {
            local_short(d.deliver_time.as_ref().or(d.update_time.as_ref()))
        } else {
            trunc(&d.last_error, 30)
        };
        let mut row = vec![];
        if with_id {
            row.push(d.delivery_id.clone());
        }
        row.extend([
            trunc(&d.platform_id, 16),
            trunc(&d.event_type, 22),
            delivery_status(d),
            d.attempts.to_string(),
            d.receipt.clone(),
            when,
        ]);
        t.add_row(row);
    }
    if with_id {
        crate::output::keep_whole(&mut t, 0);
    }
    crate::output::keep_whole(&mut t, if with_id { 5 } else { 4 });
    t
}

pub(crate) async fn deliveries(conn: &Conn, a: DeliveriesArgs) -> anyhow::Result<()> {
    let status = match a.status {
        None => dp::DeliveryStatus::Unspecified,
        Some(DeliveryStatusArg::Pending) => dp::DeliveryStatus::Pending,
        Some(DeliveryStatusArg::Succeeded) => dp::DeliveryStatus::Succeeded,
        Some(DeliveryStatusArg::DeadLettered) => dp::DeliveryStatus::DeadLettered,
        Some(DeliveryStatusArg::Superseded) => dp::DeliveryStatus::Superseded,
        Some(DeliveryStatusArg::Discarded) => dp::DeliveryStatus::Discarded,
    };
    let list = deliveries_of(
        conn,
        dp::ListDeliveriesRequest {
            application_id: a.application.unwrap_or_default(),
            platform_id: a.platform.unwrap_or_default(),
            status: status as i32,
            ..Default::default()
        },
    )
    .await?;
    if conn.json() {
        return print_json(
            "tongban.dispatch.v1.ListDeliveriesResponse",
            &dp::ListDeliveriesResponse {
                deliveries: list,
                next_page_token: String::new(),
            },
        );
    }
    if list.is_empty() {
        println!("No deliveries.");
        return Ok(());
    }
    println!("{}", delivery_table(&list, true));
    Ok(())
}

pub(crate) async fn retry(conn: &Conn, id: &str) -> anyhow::Result<()> {
    let resp = conn
        .dispatch()?
        .retry_delivery(conn.req(dp::RetryDeliveryRequest {
            delivery_id: id.to_string(),
        }))
        .await
        .map_err(conn.err(Svc::Dispatch))?
        .into_inner();
    if conn.json() {
        return print_json("tongban.dispatch.v1.RetryDeliveryResponse", &resp);
    }
    let d = resp.delivery.unwrap_or_default();
    println!(
        "Retried {} to {}: {} after {} attempt(s){}",
        d.delivery_id,
        d.platform_id,
        delivery_status(&d),
        d.attempts,
        if d.last_error.is_empty() {
            String::new()
        } else {
            format!(" (last error: {})", trunc(&d.last_error, 60))
        }
    );
    Ok(())
}

pub(crate) async fn audit(conn: &Conn, id: &str) -> anyhow::Result<()> {
    let resp = conn
        .approval()?
        .get_audit_trail(conn.req(ap::GetAuditTrailRequest {
            application_id: id.to_string(),
        }))
        .await
        .map_err(conn.err(Svc::Approval))?
        .into_inner();
    if conn.json() {
        return print_json("tongban.approval.v1.GetAuditTrailResponse", &resp);
    }
    let mut t = table(&["SEQ", "TIME", "ACTOR", "ACTION", "REASON"]);
    for e in &resp.entries {
        t.add_row(vec![
            e.seq.to_string(),
            local_short(e.time.as_ref()),
            trunc(&e.actor, 22),
            // A refused attempt shows as such; it changed nothing else.
            trunc(
                &if e.outcome == "denied" {
                    format!("{} (denied)", e.action)
                } else {
                    e.action.clone()
                },
                18,
            ),
            trunc(&e.reason, 24),
        ]);
    }
    println!("{t}");
    if resp.verified {
        println!("{} entries; chain verified ✓", resp.entries.len());
    } else {
        println!(
            "{} entries; chain BROKEN at seq {}",
            resp.entries.len(),
            resp.first_bad_seq
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use unicode_width::UnicodeWidthStr as _;

    use super::*;

    #[test]
    fn task_tables_fit_80_columns() {
        let task = ap::Task {
            task_id: "01a2165f-d640-777b-87fd-a3a611d89241".into(),
            department: "natural_resources".into(),
            office: "eco_env.songyuan".into(),
            assignee: "clerk.natural_resources.zhang_san_feng".into(),
            stage_name: "联合审查（生态环境、自然资源、发展改革、水利）".into(),
            title: "年产5万立方米竹木复合板材生产线建设项目环境影响报告表审批".into(),
            overdue: true,
            due_time: Some(prost_types::Timestamp {
                seconds: 1_800_000_000,
                nanos: 0,
            }),
            ..Default::default()
        };
        let tasks = vec![task.clone(), task];
        let list = {
            let mut t = table(&["TASK", "DUE", "STATUS", "DEPT", "TITLE"]);
            for task in &tasks {
                t.add_row(vec![
                    task.task_id.clone(),
                    due(task),
                    task_status(task),
                    dept(task),
                    trunc(&task.title, 24),
                ]);
            }
            for col in 0..3 {
                crate::output::keep_whole(&mut t, col);
            }
            t
        };
        assert!(
            list.to_string()
                .contains("01a2165f-d640-777b-87fd-a3a611d89241")
        );
        for table in [task_rows(&tasks), list] {
            let text = table.to_string();
            for line in text.lines() {
                assert!(line.width() <= 80, "{} columns: {line}", line.width());
            }
            assert!(text.contains("16:00 !"), "{text}");
        }
    }
}
