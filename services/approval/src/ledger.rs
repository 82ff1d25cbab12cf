//! The supervision ledger (挂账督办、事结销号): every promise to an enterprise that is still
//! open, who answers for it, and, once the work it tracks is done, who struck it off and when.
//!
//! Items are not written anywhere: they are read off the tasks and instances they track
//! ([`crate::repository::ledger`]), so an item opens and closes in the very transaction that
//! changes its task or instance, and the ledger can never disagree with the work. What each
//! kind tracks:
//! - [`LedgerKind::OverdueTask`]: a review or request-handling task past its deadline; on the
//!   ledger from the deadline until it is decided (or cancelled with its application).
//! - [`LedgerKind::OwedMaterial`]: a material accepted as owed (容缺受理) and not supplied by
//!   its deadline; from the deadline until it is supplied.
//! - [`LedgerKind::PledgeVerification`]: the verification of a pledge (告知承诺制); from the
//!   approval until the verification is decided.
//! - [`LedgerKind::EnterpriseRequest`]: an enterprise request; from its submission until the
//!   enterprise's rating closes it, or it is withdrawn. Its reopen count comes from the
//!   request's audit chain.
//! - [`LedgerKind::PoorRating`]: a poor rating (差评, [`crate::rating`]); from the rating
//!   until the rated department records its rectification.
//!
//! An item's age is working time on the holiday calendar, up to now while open and up to its
//! close once closed.

use chrono::TimeDelta;
use tongban_auth::{Identity, Role};
use tongban_authz::{Action, Scope};
use tongban_calendar::Calendar;

use crate::{
    engine::Approval,
    error::ApprovalError,
    repository::{from_ms, ledger},
    requests::ListLedger,
};

/// What a ledger item tracks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LedgerKind {
    OverdueTask,
    OwedMaterial,
    PledgeVerification,
    EnterpriseRequest,
    PoorRating,
}

impl LedgerKind {
    pub const ALL: [LedgerKind; 5] = [
        LedgerKind::OverdueTask,
        LedgerKind::OwedMaterial,
        LedgerKind::PledgeVerification,
        LedgerKind::EnterpriseRequest,
        LedgerKind::PoorRating,
    ];

    /// The prefix of its items' ids (`overdue:<task id>`), also the kind's value in the
    /// ledger query.
    pub fn prefix(self) -> &'static str {
        match self {
            LedgerKind::OverdueTask => "overdue",
            LedgerKind::OwedMaterial => "owed",
            LedgerKind::PledgeVerification => "pledge",
            LedgerKind::EnterpriseRequest => "request",
            LedgerKind::PoorRating => "rating",
        }
    }

    pub fn from_prefix(p: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.prefix() == p)
    }
}

/// An item id: its kind and the id of what it tracks (a task id, or for an enterprise
/// request the application id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemId {
    pub kind: LedgerKind,
    pub source: String,
}

impl ItemId {
    /// Reads `<kind>:<id>`; `None` when the kind is unknown or the id empty.
    pub fn parse(s: &str) -> Option<Self> {
        let (prefix, source) = s.trim().split_once(':')?;
        let kind = LedgerKind::from_prefix(prefix)?;
        (!source.is_empty()).then(|| ItemId {
            kind,
            source: source.to_string(),
        })
    }
}

impl std::fmt::Display for ItemId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.kind.prefix(), self.source)
    }
}

/// One ledger entry, as read off its task or instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerItem {
    pub id: ItemId,
    pub application_id: String,
    pub matter_code: String,
    /// Empty for an enterprise request.
    pub task_id: String,
    /// 责任单位.
    pub responsible_unit: String,
    /// 承办单位: a department, or a township office `<department>.<office>`.
    pub handling_unit: String,
    pub title: String,
    /// Unix milliseconds, as every time here.
    pub opened_at: i64,
    pub due_at: Option<i64>,
    pub closed_at: Option<i64>,
    /// Empty while open.
    pub closed_by: String,
    pub escalation_level: i32,
    pub reopen_count: i32,
}

impl LedgerItem {
    pub fn is_open(&self) -> bool {
        self.closed_at.is_none()
    }

    /// Working time on the ledger: up to `now_ms` while open, up to the close once closed.
    pub fn age(&self, calendar: &Calendar, now_ms: i64) -> TimeDelta {
        calendar.working_time_between(
            from_ms(self.opened_at),
            from_ms(self.closed_at.unwrap_or(now_ms)),
        )
    }
}

/// A page of the ledger.
#[derive(Debug)]
pub struct LedgerPage {
    pub items: Vec<LedgerItem>,
    pub next_page_token: String,
}

/// How many rows one scan of [`Approval::list_ledger`] reads when it must drop closed items
/// younger than the asked age (only those are filtered after the query).
const SCAN: u64 = 500;

impl Approval {
    /// The units a caller may ask about for `unit`: the unit itself, and the department it is
    /// an office of (staff of either may see it). Task lists use it too.
    pub(crate) fn covering(&self, unit: &str) -> Vec<String> {
        let mut covering = vec![unit.to_string()];
        if let Some(parent) = self
            .defs
            .departments()
            .iter()
            .find(|d| d.offices.iter().any(|o| o.code == unit))
        {
            covering.push(parent.code.clone());
        }
        covering
    }

    /// `ListLedgerItems`: oldest first, filtered and paged.
    pub async fn list_ledger(
        &self,
        who: &Identity,
        req: ListLedger,
    ) -> Result<LedgerPage, ApprovalError> {
        self.policy.check_role(who, Action::ListLedgerItems)?;
        let mut unit = req.unit;
        if who.role != Role::Admin && unit.is_none() {
            unit = who.department.clone();
        }
        self.policy.check(
            who,
            Action::ListLedgerItems,
            &Scope::departments(
                unit.as_deref()
                    .map(|u| self.covering(u))
                    .unwrap_or_default(),
            ),
            unit.as_deref().unwrap_or("all units"),
        )?;
        let now_ms = self.now_ms();
        let min_age = TimeDelta::hours(i64::from(req.min_age_working_hours));
        // Whatever its state, an item at least `min_age` old opened at least `min_age` of
        // working time before now: that bound goes into the query. A closed item's age ends at
        // its close, so closed items are checked again here.
        let opened_by = (req.min_age_working_hours > 0).then(|| {
            crate::repository::ms(self.calendar.sub_working_time(from_ms(now_ms), min_age))
        });
        let wanted = usize::try_from(req.page.fetch_limit()).unwrap_or(usize::MAX);
        let mut items = Vec::new();
        let mut after = req.page.after.clone();
        loop {
            let filter = ledger::Filter {
                now_ms,
                unit: unit.clone(),
                kinds: req.kinds.clone(),
                open: req.open,
                opened_by,
                after: after.clone(),
                limit: if opened_by.is_some() {
                    SCAN
                } else {
                    req.page.fetch_limit()
                },
            };
            let rows = ledger::list(&self.db, &filter).await?;
            let scanned = rows.len() as u64;
            after = rows.last().map(|r| (r.opened_at, r.id.to_string()));
            items.extend(
                rows.into_iter()
                    .filter(|r| r.is_open() || r.age(&self.calendar, now_ms) >= min_age),
            );
            if items.len() >= wanted || scanned < filter.limit {
                break;
            }
        }
        items.truncate(wanted);
        let next_page_token = req
            .page
            .finish(&mut items, |r| (r.opened_at, r.id.to_string()));
        Ok(LedgerPage {
            items,
            next_page_token,
        })
    }

    /// `GetLedgerItem`.
    pub async fn ledger_item(
        &self,
        who: &Identity,
        item_id: &str,
    ) -> Result<LedgerItem, ApprovalError> {
        self.policy.check_role(who, Action::GetLedgerItem)?;
        let id = ItemId::parse(item_id).ok_or_else(|| {
            crate::error::invalid(
                "item_id",
                "must be <kind>:<id>, kind one of overdue, owed, pledge, request, rating",
            )
        })?;
        let item = ledger::find(&self.db, &id, self.now_ms())
            .await?
            .ok_or_else(|| ApprovalError::NotFound(format!("ledger item {id}")))?;
        let mut units = self.covering(&item.handling_unit);
        units.extend(self.covering(&item.responsible_unit));
        self.policy.check(
            who,
            Action::GetLedgerItem,
            &Scope::departments(units),
            item_id,
        )?;
        Ok(item)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn item_ids_round_trip_and_refuse_strangers() {
        for kind in LedgerKind::ALL {
            let id = ItemId {
                kind,
                source: "01a2-x".into(),
            };
            assert_eq!(ItemId::parse(&id.to_string()), Some(id));
        }
        for bad in ["", "overdue", "overdue:", "late:1", ":1"] {
            assert_eq!(ItemId::parse(bad), None, "{bad:?}");
        }
    }
}
