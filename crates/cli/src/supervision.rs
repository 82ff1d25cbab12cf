//! Supervision from the terminal: `tongban ledger` lists the supervision ledger (挂账督办), or
//! shows one item with `--item`; `tongban evaluate` is the applicant's rating of a finished
//! application (好差评) and `tongban rectify` the rated department's answer to a poor one.

use tongban_proto::approval as ap;

use crate::{
    client::{Conn, Svc},
    output::{fields, local, local_short, print_json, short_enum, table, trunc},
};

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub(crate) enum KindArg {
    Overdue,
    Owed,
    Pledge,
    Request,
    Rating,
}

impl KindArg {
    fn proto(self) -> ap::LedgerItemKind {
        match self {
            KindArg::Overdue => ap::LedgerItemKind::OverdueTask,
            KindArg::Owed => ap::LedgerItemKind::OwedMaterial,
            KindArg::Pledge => ap::LedgerItemKind::PledgeVerification,
            KindArg::Request => ap::LedgerItemKind::EnterpriseRequest,
            KindArg::Rating => ap::LedgerItemKind::PoorRating,
        }
    }
}

#[derive(clap::Args, Debug)]
pub struct LedgerArgs {
    /// Show this one item (an id from the list, e.g. overdue:0195...).
    #[arg(long, conflicts_with_all = ["unit", "kind", "open", "closed", "min_age_hours"])]
    item: Option<String>,
    /// Only this department (its township offices included) or office; staff default to
    /// their own.
    #[arg(long)]
    unit: Option<String>,
    /// Only these kinds (repeatable).
    #[arg(long, value_enum)]
    kind: Vec<KindArg>,
    /// Only open items.
    #[arg(long, conflicts_with = "closed")]
    open: bool,
    /// Only items struck off.
    #[arg(long)]
    closed: bool,
    /// Only items at least this many working hours on the ledger.
    #[arg(long)]
    min_age_hours: Option<u32>,
}

fn kind(i: &ap::LedgerItem) -> String {
    short_enum(i.kind().as_str_name(), "LEDGER_ITEM_KIND_").to_lowercase()
}

fn state(i: &ap::LedgerItem) -> String {
    short_enum(i.state().as_str_name(), "LEDGER_ITEM_STATE_").to_lowercase()
}

/// Working minutes as "3d 2h" in working days of 8 hours (the shipped calendar's day).
fn age(minutes: i64) -> String {
    let hours = minutes / 60;
    match (hours / 8, hours % 8) {
        (0, h) => format!("{h}h {}m", minutes % 60),
        (d, h) => format!("{d}d {h}h"),
    }
}

pub(crate) async fn ledger(conn: &Conn, args: LedgerArgs) -> anyhow::Result<()> {
    let mut client = conn.approval()?;
    if let Some(id) = args.item {
        let item = client
            .get_ledger_item(conn.req(ap::GetLedgerItemRequest { item_id: id }))
            .await
            .map_err(conn.err(Svc::Approval))?
            .into_inner()
            .item
            .unwrap_or_default();
        if conn.json() {
            return print_json("tongban.approval.v1.LedgerItem", &item);
        }
        let rows = [
            ("Item", item.item_id.clone()),
            ("Kind", kind(&item)),
            ("State", state(&item)),
            ("Title", item.title.clone()),
            ("Application", item.application_id.clone()),
            ("Matter", item.matter_code.clone()),
            ("Task", item.task_id.clone()),
            ("Responsible (责任单位)", item.responsible_unit.clone()),
            ("Handling (承办单位)", item.handling_unit.clone()),
            ("Opened", local(item.open_time.as_ref())),
            ("Due", local(item.due_time.as_ref())),
            ("Closed", local(item.close_time.as_ref())),
            ("Closed by", item.closed_by.clone()),
            ("Age (working time)", age(item.age_working_minutes)),
            ("Escalation level", item.escalation_level.to_string()),
            ("Reopened", item.reopen_count.to_string()),
        ];
        println!("{}", fields(&rows));
        return Ok(());
    }
    let wanted = match (args.open, args.closed) {
        (true, _) => ap::LedgerItemState::Open,
        (_, true) => ap::LedgerItemState::Closed,
        _ => ap::LedgerItemState::Unspecified,
    };
    let mut req = ap::ListLedgerItemsRequest {
        unit: args.unit.unwrap_or_default(),
        kinds: args.kind.iter().map(|k| k.proto() as i32).collect(),
        state: wanted as i32,
        min_age_working_hours: args.min_age_hours.unwrap_or(0),
        page_size: 200,
        page_token: String::new(),
    };
    let mut items = Vec::new();
    loop {
        let resp = client
            .list_ledger_items(conn.req(req.clone()))
            .await
            .map_err(conn.err(Svc::Approval))?
            .into_inner();
        items.extend(resp.items);
        if resp.next_page_token.is_empty() || items.len() >= 2000 {
            break;
        }
        req.page_token = resp.next_page_token;
    }
    if conn.json() {
        return print_json(
            "tongban.approval.v1.ListLedgerItemsResponse",
            &ap::ListLedgerItemsResponse {
                items,
                next_page_token: String::new(),
            },
        );
    }
    if items.is_empty() {
        println!("Nothing on the ledger.");
        return Ok(());
    }
    // The item id starts with its kind (overdue:, owed:, pledge:, request:, rating:).
    let mut t = table(&["ITEM", "STATE", "OPENED", "AGE", "ESC", "UNIT", "TITLE"]);
    for i in &items {
        t.add_row(vec![
            i.item_id.clone(),
            state(i),
            local_short(i.open_time.as_ref()),
            age(i.age_working_minutes),
            i.escalation_level.to_string(),
            i.handling_unit.clone(),
            trunc(&i.title, 24),
        ]);
    }
    for col in 0..6 {
        crate::output::keep_whole(&mut t, col);
    }
    println!("{t}");
    let open = items
        .iter()
        .filter(|i| i.state() == ap::LedgerItemState::Open)
        .count();
    println!(
        "{} item(s), {open} open; oldest first; times Asia/Shanghai, ages in working time",
        items.len()
    );
    Ok(())
}

#[derive(clap::Args, Debug)]
pub struct EvaluateArgs {
    /// Application id (finished: approved, rejected, or a request closed).
    id: String,
    /// 1 (非常不满意) to 5 (非常满意).
    #[arg(long, value_parser = clap::value_parser!(i32).range(1..=5))]
    score: i32,
    /// Reason codes (repeatable; 1 or 2 needs one): slow, unclear_guidance,
    /// repeated_materials, attitude, outcome, other.
    #[arg(long)]
    reason: Vec<String>,
    #[arg(long)]
    comment: Option<String>,
}

#[derive(clap::Args, Debug)]
pub struct RectifyArgs {
    /// Application id whose poor rating is answered.
    id: String,
    /// What was done (整改情况), as the applicant will read it.
    #[arg(long)]
    text: String,
}

fn print_rating(conn: &Conn, r: &ap::ServiceRating) -> anyhow::Result<()> {
    if conn.json() {
        return print_json("tongban.approval.v1.ServiceRating", r);
    }
    let rows = [
        ("Application", r.application_id.clone()),
        ("Score", r.score.to_string()),
        ("Poor (差评)", r.poor.to_string()),
        ("Reasons", r.reasons.join(", ")),
        ("Comment", r.comment.clone()),
        ("Department", r.department.clone()),
        ("Rated", local(r.rate_time.as_ref())),
        ("Rectification", r.rectification.clone()),
        ("Rectified by", r.rectified_by.clone()),
        ("Rectified", local(r.rectify_time.as_ref())),
    ];
    println!("{}", fields(&rows));
    Ok(())
}

pub(crate) async fn evaluate(conn: &Conn, args: EvaluateArgs) -> anyhow::Result<()> {
    let rating = conn
        .approval()?
        .rate_service(conn.req(ap::RateServiceRequest {
            application_id: args.id,
            score: args.score,
            reasons: args.reason,
            comment: args.comment.unwrap_or_default(),
        }))
        .await
        .map_err(conn.err(Svc::Approval))?
        .into_inner()
        .rating
        .unwrap_or_default();
    print_rating(conn, &rating)
}

pub(crate) async fn rectify(conn: &Conn, args: RectifyArgs) -> anyhow::Result<()> {
    let rating = conn
        .approval()?
        .record_rectification(conn.req(ap::RecordRectificationRequest {
            application_id: args.id,
            rectification: args.text,
        }))
        .await
        .map_err(conn.err(Svc::Approval))?
        .into_inner()
        .rating
        .unwrap_or_default();
    print_rating(conn, &rating)
}

#[cfg(test)]
mod tests {
    #[test]
    fn ages_read_in_working_days() {
        assert_eq!(super::age(59), "0h 59m");
        assert_eq!(super::age(7 * 60 + 5), "7h 5m");
        assert_eq!(super::age(8 * 60), "1d 0h");
        assert_eq!(super::age(19 * 60 + 30), "2d 3h");
    }
}
