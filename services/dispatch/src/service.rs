//! Dispatch's staff-facing use cases: the ledger views and the tools around it (retry, replay,
//! reconcile). Each asks the authorization table ([`crate::authz`]) first; lists keep what the
//! caller's scope covers.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    sync::Arc,
};

use futures::{StreamExt, stream};
use sea_orm::DatabaseConnection;
use tongban_auth::{Identity, Role};
use tongban_authz::{Action, Scope};
use tongban_platform::{PlatformConfig, Reconcile};
use tongban_proto::{dispatch as pb, page::Paging};

use crate::{
    authz::Authz,
    error::{DispatchError, invalid},
    ledger::{self, ApplicationSnapshots, DeliveryLedger, Involved, Status},
    worker::PlatformRuntime,
};

/// Paging of ListDeliveries: oldest first, resumed after the last delivery id.
const DELIVERIES: Paging = Paging::new("dispatch.deliveries", 50, 500);
/// Paging of ListPlatforms: configuration order, resumed after the last position.
const PLATFORMS: Paging = Paging::new("dispatch.platforms", 50, 200);

/// Dispatch's own audit chain (`service/dispatch`) holds its acts on no one application.
pub const SERVICE: &str = "dispatch";

pub struct Dispatch {
    db: DatabaseConnection,
    platforms: Arc<Vec<Arc<PlatformRuntime>>>,
    http: reqwest::Client,
    authz: Authz,
}

impl Dispatch {
    pub fn new(
        db: DatabaseConnection,
        platforms: Arc<Vec<Arc<PlatformRuntime>>>,
        http: reqwest::Client,
    ) -> Self {
        Self {
            db,
            platforms,
            http,
            authz: Authz::default(),
        }
    }

    /// Decides with `authz` (integrators, departments, matters); without it only admins and
    /// reference-data readers get through.
    pub fn with_authz(mut self, authz: Authz) -> Self {
        self.authz = authz;
        self
    }

    /// The scope of one application, from its stored canonical section and the departments
    /// recorded in its workflow.
    async fn application_scope(&self, application_id: &str) -> Result<Scope, DispatchError> {
        let section = self.db.load_application(application_id).await?;
        let recorded = self.db.departments_of(application_id).await?;
        Ok(self.authz.application_scope(section.as_ref(), recorded))
    }

    fn platform(&self, id: &str) -> Result<&Arc<PlatformRuntime>, DispatchError> {
        self.platforms
            .iter()
            .find(|p| p.config.id == id)
            .ok_or_else(|| DispatchError::NotFound(format!("platform {id}")))
    }

    fn wake(&self, platform_id: Option<&str>) {
        for p in self.platforms.iter() {
            if platform_id.is_none_or(|id| id == p.config.id) {
                p.wake.notify_one();
            }
        }
    }

    /// The configured platforms in configuration order, one page at a time.
    pub async fn list_platforms(
        &self,
        who: &Identity,
        req: &pb::ListPlatformsRequest,
    ) -> Result<(Vec<pb::Platform>, String), DispatchError> {
        self.authz
            .policy()
            .check(who, Action::ListPlatforms, &Scope::default(), "platforms")?;
        let page = PLATFORMS.page::<usize>(req.page_size, &req.page_token)?;
        let counts = self.db.delivery_counts().await?;
        let n = |id: &str, s: Status| counts.get(&(id.to_string(), s)).copied().unwrap_or(0);
        let positions: Vec<usize> = (0..self.platforms.len()).collect();
        let (positions, next) = page.slice(&positions, |i| *i);
        let platforms = positions
            .iter()
            .filter_map(|i| self.platforms.get(*i))
            .map(|p| {
                let c = &p.config;
                pb::Platform {
                    platform_id: c.id.clone(),
                    name: c.name.clone(),
                    endpoint: c.endpoint.clone(),
                    auth_kind: auth_kind(&c.auth) as i32,
                    event_types: c.event_types.clone(),
                    concurrency: u32::try_from(c.concurrency).unwrap_or(u32::MAX),
                    timeout: prost_types::Duration::try_from(c.timeout).ok(),
                    max_attempts: c.retry.max_attempts,
                    circuit: p.circuit_state() as i32,
                    succeeded: n(&c.id, Status::Succeeded),
                    pending: n(&c.id, Status::Pending),
                    dead_lettered: n(&c.id, Status::DeadLettered),
                }
            })
            .collect();
        Ok((platforms, next))
    }

    pub async fn list_deliveries(
        &self,
        who: &Identity,
        req: &pb::ListDeliveriesRequest,
    ) -> Result<(Vec<pb::Delivery>, String), DispatchError> {
        self.authz
            .policy()
            .check_role(who, Action::ListDeliveries)?;
        let page = DELIVERIES.page::<String>(req.page_size, &req.page_token)?;
        let status = match pb::DeliveryStatus::try_from(req.status) {
            Ok(pb::DeliveryStatus::Unspecified) => None,
            Ok(s) => Status::try_from(s).ok(),
            Err(_) => return Err(invalid("status", format!("unknown value {}", req.status))),
        };
        let non_empty = |s: &str| (!s.trim().is_empty()).then(|| s.trim().to_string());
        let application_id = non_empty(&req.application_id);
        if let Some(app) = &application_id {
            // One application asked for: the caller may read its ledger, or is refused.
            let scope = self.application_scope(app).await?;
            self.authz
                .policy()
                .check(who, Action::ListDeliveries, &scope, app)?;
        }
        let filter = ledger::Filter {
            application_id,
            platform_id: non_empty(&req.platform_id),
            status,
            after_id: page.after.clone(),
            limit: page.fetch_limit(),
        };
        let mut rows = self.db.list_deliveries(&filter).await?;
        let next = page.finish(&mut rows, |r| r.delivery_id.clone());
        if who.role != Role::Admin {
            // Keep the rows of applications in the caller's scope; the page may come out
            // shorter than asked, and the token still resumes after the last row read.
            let mut allowed: HashMap<String, bool> = HashMap::new();
            for r in &rows {
                if !allowed.contains_key(&r.application_id) {
                    let scope = self.application_scope(&r.application_id).await?;
                    let ok = self
                        .authz
                        .policy()
                        .allows(who, Action::ListDeliveries, &scope);
                    allowed.insert(r.application_id.clone(), ok);
                }
            }
            rows.retain(|r| allowed.get(&r.application_id).copied().unwrap_or(false));
        }
        Ok((rows.iter().map(ledger::Delivery::to_proto).collect(), next))
    }

    /// Delivery `id`, once the caller may do `action` on its application.
    async fn row_for(
        &self,
        who: &Identity,
        action: Action,
        id: &str,
    ) -> Result<ledger::Delivery, DispatchError> {
        let found = self
            .db
            .find_delivery(id)
            .await?
            .ok_or_else(|| DispatchError::NotFound(format!("delivery {id}")))?;
        let scope = self.application_scope(&found.application_id).await?;
        self.authz
            .policy()
            .check(who, action, &scope, &found.application_id)?;
        Ok(found)
    }

    pub async fn retry_delivery(
        &self,
        who: &Identity,
        delivery_id: &str,
    ) -> Result<pb::Delivery, DispatchError> {
        self.authz.policy().check_role(who, Action::RetryDelivery)?;
        let id = delivery_id.trim();
        if id.is_empty() {
            return Err(invalid("delivery_id", "is required"));
        }
        self.row_for(who, Action::RetryDelivery, id).await?;
        let txn = tongban_storage::begin_write(&self.db).await?;
        let row = txn.retry_now(id).await?;
        tongban_audit::append(
            &txn,
            &tongban_audit::application_chain(&row.application_id),
            tongban_storage::now_ms(),
            tongban_audit::Act::done(tongban_audit::Actor::from(who), "delivery.retry", id)
                .reason(format!("platform {}", row.platform_id)),
        )
        .await?;
        txn.commit().await?;
        tracing::info!(delivery_id = %id, actor = %who.actor_label(), "delivery retried by staff");
        self.wake(Some(&row.platform_id));
        Ok(row.to_proto())
    }

    /// Gives up on one dead letter, with the reason in the application's audit trail; the
    /// application's later deliveries to that platform go ahead.
    pub async fn discard_delivery(
        &self,
        who: &Identity,
        req: &pb::DiscardDeliveryRequest,
    ) -> Result<pb::Delivery, DispatchError> {
        self.authz
            .policy()
            .check_role(who, Action::DiscardDelivery)?;
        let id = req.delivery_id.trim();
        if id.is_empty() {
            return Err(invalid("delivery_id", "is required"));
        }
        let reason = req.reason.trim();
        if reason.is_empty() {
            return Err(invalid(
                "reason",
                "is required: say why the platform will never get this delivery",
            ));
        }
        let found = self.row_for(who, Action::DiscardDelivery, id).await?;
        let txn = tongban_storage::begin_write(&self.db).await?;
        let already = found.status == Status::Discarded;
        let row = txn.discard(id).await?;
        if !already {
            tongban_audit::append(
                &txn,
                &tongban_audit::application_chain(&row.application_id),
                tongban_storage::now_ms(),
                tongban_audit::Act::done(tongban_audit::Actor::from(who), "delivery.discard", id)
                    .reason(format!("platform {}: {reason}", row.platform_id)),
            )
            .await?;
        }
        txn.commit().await?;
        tracing::info!(delivery_id = %id, actor = %who.actor_label(), "delivery discarded by staff");
        self.wake(Some(&row.platform_id));
        Ok(row.to_proto())
    }

    pub async fn replay_dead_letters(
        &self,
        who: &Identity,
        req: &pb::ReplayDeadLettersRequest,
    ) -> Result<u32, DispatchError> {
        self.authz
            .policy()
            .check_role(who, Action::ReplayDeadLetters)?;
        let platform = req.platform_id.trim();
        if !platform.is_empty() {
            self.platform(platform)?;
        }
        let application = req.application_id.trim();
        let platform_filter = (!platform.is_empty()).then_some(platform);
        // Decide what the caller may replay before writing anything.
        let apps: Option<Vec<String>> = if !application.is_empty() {
            let scope = self.application_scope(application).await?;
            self.authz
                .policy()
                .check(who, Action::ReplayDeadLetters, &scope, application)?;
            Some(vec![application.to_string()])
        } else if who.role == Role::Admin {
            None
        } else {
            // No application named: replay those the caller leads, and only those.
            let mut mine = Vec::new();
            for app in self.dead_lettered_applications(platform_filter).await? {
                let scope = self.application_scope(&app).await?;
                if self
                    .authz
                    .policy()
                    .allows(who, Action::ReplayDeadLetters, &scope)
                {
                    mine.push(app);
                }
            }
            Some(mine)
        };
        let txn = tongban_storage::begin_write(&self.db).await?;
        let n = match &apps {
            None => txn.replay_dead_letters(platform_filter, None).await?,
            Some(list) => {
                let mut n = 0;
                for app in list {
                    n += txn.replay_dead_letters(platform_filter, Some(app)).await?;
                }
                n
            }
        };
        // A replay of one application's letters belongs to its chain; a wider one to
        // dispatch's own.
        let chain = if application.is_empty() {
            tongban_audit::service_chain(SERVICE)
        } else {
            tongban_audit::application_chain(application)
        };
        tongban_audit::append(
            &txn,
            &chain,
            tongban_storage::now_ms(),
            tongban_audit::Act::done(
                tongban_audit::Actor::from(who),
                "dead_letters.replay",
                platform,
            )
            .reason(format!("{n} replayed")),
        )
        .await?;
        txn.commit().await?;
        tracing::info!(replayed = n, platform, application, actor = %who.actor_label(), "dead letters replayed");
        self.wake((!platform.is_empty()).then_some(platform));
        Ok(u32::try_from(n).unwrap_or(u32::MAX))
    }

    /// Compares the ledger's delivered keys with what the platform says it holds, asked the
    /// way its file's `[reconcile] method` allows; optionally queues the missing ones again.
    pub async fn reconcile(
        &self,
        who: &Identity,
        req: &pb::ReconcileRequest,
    ) -> Result<pb::ReconcileResponse, DispatchError> {
        self.authz.policy().check(
            who,
            Action::Reconcile,
            &Scope::default(),
            req.platform_id.trim(),
        )?;
        let id = req.platform_id.trim();
        if id.is_empty() {
            return Err(invalid("platform_id", "is required"));
        }
        let platform = self.platform(id)?;
        let config = &platform.config;
        let (ledger_keys, evidence) = match &config.reconcile {
            Reconcile::List => (
                self.db.delivery_keys(id).await?,
                Evidence::listing(self.held_keys(config).await?),
            ),
            Reconcile::Status { .. } => {
                let ledger_keys = self.db.delivery_keys(id).await?;
                let delivered = ledger_keys
                    .iter()
                    .filter(|(_, s)| **s == Status::Succeeded)
                    .map(|(k, _)| k.clone())
                    .collect();
                let evidence = self.key_states(config, delivered).await;
                (ledger_keys, evidence)
            }
            Reconcile::None => {
                let receipts = self.db.succeeded_receipts(id).await?;
                let evidence = Evidence::receipts(&receipts);
                let ledger_keys = receipts
                    .into_keys()
                    .map(|k| (k, Status::Succeeded))
                    .collect();
                (ledger_keys, evidence)
            }
        };
        let found = compare(&ledger_keys, &evidence);
        let txn = tongban_storage::begin_write(&self.db).await?;
        let redelivered = if req.redeliver_missing {
            txn.redeliver_keys(id, &found.missing).await?
        } else {
            0
        };
        tongban_audit::append(
            &txn,
            &tongban_audit::service_chain(SERVICE),
            tongban_storage::now_ms(),
            tongban_audit::Act::done(tongban_audit::Actor::from(who), "reconcile", id).reason(
                format!(
                    "method {}, missing {}, extra {}, matched {}, unchecked {}, redelivered {redelivered}",
                    config.reconcile.method(),
                    found.missing.len(),
                    found.extra.len(),
                    found.matched,
                    found.unchecked.len(),
                ),
            ),
        )
        .await?;
        txn.commit().await?;
        if redelivered > 0 {
            self.wake(Some(id));
        }
        tracing::info!(
            platform = id,
            method = config.reconcile.method(),
            missing = found.missing.len(),
            extra = found.extra.len(),
            matched = found.matched,
            unchecked = found.unchecked.len(),
            redelivered,
            "reconciled"
        );
        Ok(pb::ReconcileResponse {
            platform_id: id.to_string(),
            missing: found.missing,
            extra: found.extra,
            matched: u32::try_from(found.matched).unwrap_or(u32::MAX),
            redelivered: u32::try_from(redelivered).unwrap_or(u32::MAX),
            method: evidence.method.into(),
            unchecked: found.unchecked,
            note: found.note,
        })
    }

    /// The applications with dead-lettered deliveries (to `platform` when given).
    async fn dead_lettered_applications(
        &self,
        platform: Option<&str>,
    ) -> Result<Vec<String>, DispatchError> {
        let mut out: Vec<String> = Vec::new();
        let mut after_id = None;
        loop {
            let rows = self
                .db
                .list_deliveries(&ledger::Filter {
                    application_id: None,
                    platform_id: platform.map(str::to_string),
                    status: Some(Status::DeadLettered),
                    after_id: after_id.clone(),
                    limit: 500,
                })
                .await?;
            for r in &rows {
                if !out.contains(&r.application_id) {
                    out.push(r.application_id.clone());
                }
            }
            match rows.last() {
                Some(last) if rows.len() == 500 => after_id = Some(last.delivery_id.clone()),
                _ => return Ok(out),
            }
        }
    }

    /// The keys the platform's listing endpoint says it holds; a failed listing fails the
    /// whole comparison (UNAVAILABLE), since nothing at all could be checked.
    async fn held_keys(&self, config: &PlatformConfig) -> Result<HashSet<String>, DispatchError> {
        let fail = |message: String| DispatchError::Platform {
            platform: config.id.clone(),
            message,
        };
        let mut req = self
            .http
            .get(&config.query_endpoint)
            .timeout(config.timeout);
        for (name, value) in config.auth.headers(b"", chrono::Utc::now()) {
            req = req.header(name, value);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| fail(format!("query failed: {e}")))?;
        if !resp.status().is_success() {
            return Err(fail(format!("query answered HTTP {}", resp.status())));
        }
        let body: serde_json::Value = resp
            .json()
            .await
            .map_err(|e| fail(format!("query answer is not JSON: {e}")))?;
        let keys = body
            .get("keys")
            .and_then(serde_json::Value::as_array)
            .ok_or_else(|| fail("query answer has no `keys` array".into()))?;
        Ok(keys
            .iter()
            .filter_map(|k| k.as_str().map(str::to_string))
            .collect())
    }

    /// Asks the platform's per-key status URL about each of `keys`, at most
    /// `config.concurrency` at a time (the platform's bulkhead size).
    async fn key_states(&self, config: &PlatformConfig, keys: Vec<String>) -> Evidence {
        let answers: Vec<(String, KeyState)> = stream::iter(keys)
            .map(|key| async move {
                let state = self.key_state(config, &key).await;
                (key, state)
            })
            .buffer_unordered(config.concurrency.max(1))
            .collect()
            .await;
        Evidence::per_key(answers)
    }

    /// One key: 2xx = held, 404 = missing, anything else (or no answer) = not checked.
    async fn key_state(&self, config: &PlatformConfig, key: &str) -> KeyState {
        let Some(url) = config.status_url(key) else {
            return KeyState::Unchecked("the platform has no status URL".into());
        };
        let mut req = self.http.get(&url).timeout(config.timeout);
        for (name, value) in config.auth.headers(b"", chrono::Utc::now()) {
            req = req.header(name, value);
        }
        match req.send().await {
            Ok(resp) if resp.status().is_success() => KeyState::Held,
            Ok(resp) if resp.status() == reqwest::StatusCode::NOT_FOUND => KeyState::Missing,
            Ok(resp) => KeyState::Unchecked(format!("status URL answered HTTP {}", resp.status())),
            Err(e) if e.is_timeout() => KeyState::Unchecked(format!(
                "status URL did not answer within {} ms",
                config.timeout.as_millis()
            )),
            Err(e) => KeyState::Unchecked(format!("status URL unreachable: {e}")),
        }
    }
}

/// What a platform said about one delivered key under `[reconcile] method = "status"`.
#[derive(Debug, Clone, PartialEq, Eq)]
enum KeyState {
    Held,
    Missing,
    /// Why it could not be told.
    Unchecked(String),
}

/// What could be learnt about a platform's holdings, whatever the method.
#[derive(Debug)]
struct Evidence {
    method: pb::ReconcileMethod,
    /// Keys the platform confirmed (listed, answered 2xx for, or gave a receipt for).
    held: HashSet<String>,
    /// Whether `held` is everything the platform holds, so keys unknown to the ledger show.
    complete: bool,
    /// Delivered keys that could not be checked, with why.
    unchecked: BTreeMap<String, String>,
}

impl Evidence {
    fn listing(held: HashSet<String>) -> Self {
        Self {
            method: pb::ReconcileMethod::List,
            held,
            complete: true,
            unchecked: BTreeMap::new(),
        }
    }

    fn per_key(answers: Vec<(String, KeyState)>) -> Self {
        let mut held = HashSet::new();
        let mut unchecked = BTreeMap::new();
        for (key, state) in answers {
            match state {
                KeyState::Held => {
                    held.insert(key);
                }
                KeyState::Missing => {}
                KeyState::Unchecked(why) => {
                    unchecked.insert(key, why);
                }
            }
        }
        Self {
            method: pb::ReconcileMethod::Status,
            held,
            complete: false,
            unchecked,
        }
    }

    /// The platform answers no queries: the receipt its reply gave is the only confirmation.
    fn receipts(succeeded: &HashMap<String, Option<String>>) -> Self {
        let mut held = HashSet::new();
        let mut unchecked = BTreeMap::new();
        for (key, receipt) in succeeded {
            if receipt.as_deref().is_some_and(|r| !r.is_empty()) {
                held.insert(key.clone());
            } else {
                unchecked.insert(key.clone(), NO_RECEIPT.to_string());
            }
        }
        Self {
            method: pb::ReconcileMethod::Receipts,
            held,
            complete: false,
            unchecked,
        }
    }
}

const NO_RECEIPT: &str = "the reply gave no receipt";

/// The comparison, as ReconcileResponse reports it.
#[derive(Debug, PartialEq, Eq)]
struct Findings {
    missing: Vec<String>,
    extra: Vec<String>,
    matched: usize,
    unchecked: Vec<String>,
    note: String,
}

/// Compares the ledger's keys (with status) with the evidence: a succeeded key is matched when
/// confirmed, unchecked when it could not be asked about, missing otherwise; keys the platform
/// holds beyond the ledger show only when the evidence is a complete listing.
fn compare(ledger: &HashMap<String, Status>, evidence: &Evidence) -> Findings {
    let delivered = || {
        ledger
            .iter()
            .filter(|(_, s)| **s == Status::Succeeded)
            .map(|(k, _)| k)
    };
    let mut missing: Vec<String> = delivered()
        .filter(|k| !evidence.held.contains(*k) && !evidence.unchecked.contains_key(*k))
        .cloned()
        .collect();
    missing.sort();
    let mut extra: Vec<String> = if evidence.complete {
        evidence
            .held
            .iter()
            .filter(|k| !ledger.contains_key(*k))
            .cloned()
            .collect()
    } else {
        Vec::new()
    };
    extra.sort();
    let matched = delivered().filter(|k| evidence.held.contains(*k)).count();
    let unchecked: Vec<String> = evidence.unchecked.keys().cloned().collect();
    let note = note(evidence, delivered().count(), matched);
    Findings {
        missing,
        extra,
        matched,
        unchecked,
        note,
    }
}

/// The sentence saying what could not be checked and why (empty for a complete listing).
fn note(evidence: &Evidence, delivered: usize, matched: usize) -> String {
    let unchecked = evidence.unchecked.len();
    match evidence.method {
        pb::ReconcileMethod::Status => {
            let mut note = format!(
                "Asked the platform about each of the {delivered} delivered keys; a per-key status URL cannot show deliveries the ledger does not know, so extra keys were not looked for."
            );
            if unchecked > 0 {
                let mut reasons: Vec<&str> =
                    evidence.unchecked.values().map(String::as_str).collect();
                reasons.sort_unstable();
                reasons.dedup();
                let more = if reasons.len() > 2 { ", …" } else { "" };
                reasons.truncate(2);
                note.push_str(&format!(
                    " {unchecked} could not be checked ({}{more}); they are neither matched nor missing and were not re-delivered.",
                    reasons.join("; ")
                ));
            }
            note
        }
        pb::ReconcileMethod::Receipts => format!(
            "The platform answers no queries, so nothing was asked: {matched} of the {delivered} delivered keys are confirmed by the receipt in the platform's reply and {unchecked} gave no receipt and could not be checked; deliveries the platform lost cannot be found this way, so nothing is missing or re-delivered."
        ),
        pb::ReconcileMethod::List | pb::ReconcileMethod::Unspecified => String::new(),
    }
}

fn auth_kind(a: &tongban_platform::AuthConfig) -> pb::AuthKind {
    match a {
        tongban_platform::AuthConfig::Bearer { .. } => pb::AuthKind::Bearer,
        tongban_platform::AuthConfig::Hmac { .. } => pb::AuthKind::Hmac,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn ledger(rows: &[(&str, Status)]) -> HashMap<String, Status> {
        rows.iter().map(|(k, s)| ((*k).to_string(), *s)).collect()
    }

    fn set(keys: &[&str]) -> HashSet<String> {
        keys.iter().map(|k| (*k).to_string()).collect()
    }

    #[test]
    fn a_listing_finds_missing_and_extra_keys() {
        let l = ledger(&[
            ("a", Status::Succeeded),
            ("b", Status::Succeeded),
            ("c", Status::Pending),
        ]);
        let f = compare(&l, &Evidence::listing(set(&["a", "c", "z"])));
        assert_eq!(f.missing, ["b"]);
        // `c` is known to the ledger (still pending): not extra.
        assert_eq!(f.extra, ["z"]);
        assert_eq!((f.matched, f.unchecked.len(), f.note.as_str()), (1, 0, ""));
    }

    #[test]
    fn per_key_answers_split_held_missing_and_unchecked() {
        let l = ledger(&[
            ("a", Status::Succeeded),
            ("b", Status::Succeeded),
            ("c", Status::Succeeded),
            ("d", Status::Succeeded),
        ]);
        let e = Evidence::per_key(vec![
            ("a".into(), KeyState::Held),
            ("b".into(), KeyState::Missing),
            (
                "c".into(),
                KeyState::Unchecked("status URL answered HTTP 503".into()),
            ),
            (
                "d".into(),
                KeyState::Unchecked("status URL answered HTTP 503".into()),
            ),
        ]);
        let f = compare(&l, &e);
        assert_eq!((f.missing, f.matched), (vec!["b".to_string()], 1));
        assert!(f.extra.is_empty());
        assert_eq!(f.unchecked, ["c", "d"]);
        assert!(
            f.note
                .contains("2 could not be checked (status URL answered HTTP 503)"),
            "{}",
            f.note
        );
    }

    #[test]
    fn receipts_confirm_and_nothing_is_ever_missing() {
        let receipts: HashMap<String, Option<String>> = [
            ("a".to_string(), Some("R1".to_string())),
            ("b".to_string(), None),
            ("c".to_string(), Some(String::new())),
        ]
        .into_iter()
        .collect();
        let l = receipts
            .keys()
            .map(|k| (k.clone(), Status::Succeeded))
            .collect();
        let f = compare(&l, &Evidence::receipts(&receipts));
        assert!(f.missing.is_empty() && f.extra.is_empty());
        assert_eq!((f.matched, f.unchecked), (1, vec!["b".into(), "c".into()]));
        assert!(
            f.note.contains("1 of the 3") && f.note.contains("2 gave no receipt"),
            "{}",
            f.note
        );
    }
}
