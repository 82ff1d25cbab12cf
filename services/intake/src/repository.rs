//! Intake's persistence: the `applications` and `matters` tables. Everything that writes takes
//! the caller's transaction, so that state and the events it causes commit together.

use prost::Message;
use sea_orm::{ConnectionTrait, DbErr, Value};
use tongban_proto::intake::{Application, ApplicationStatus};
use tongban_storage::stmt;

use crate::error::IntakeError;

/// A stored application and the fingerprint of the request that created it.
#[derive(Debug, Clone)]
pub struct Stored {
    pub application: Application,
    pub fingerprint: String,
}

pub fn status_name(s: ApplicationStatus) -> &'static str {
    s.as_str_name()
}

fn decode(row: &sea_orm::QueryResult) -> Result<Stored, IntakeError> {
    let body: Vec<u8> = row.try_get("", "body")?;
    let application =
        Application::decode(body.as_slice()).map_err(|e| IntakeError::Corrupt(e.to_string()))?;
    Ok(Stored {
        application,
        fingerprint: row.try_get("", "fingerprint")?,
    })
}

pub async fn find<C: ConnectionTrait>(
    conn: &C,
    application_id: &str,
) -> Result<Option<Stored>, IntakeError> {
    let b = conn.get_database_backend();
    let row = conn
        .query_one_raw(stmt(
            b,
            "SELECT body, fingerprint FROM applications WHERE application_id = ?",
            vec![application_id.into()],
        ))
        .await?;
    row.as_ref().map(decode).transpose()
}

/// Like [`find`], locking the row for update on PostgreSQL.
pub async fn find_for_update<C: ConnectionTrait>(
    conn: &C,
    application_id: &str,
) -> Result<Option<Stored>, IntakeError> {
    let b = conn.get_database_backend();
    let lock = if b == sea_orm::DbBackend::Postgres {
        " FOR UPDATE"
    } else {
        ""
    };
    let row = conn
        .query_one_raw(stmt(
            b,
            &format!("SELECT body, fingerprint FROM applications WHERE application_id = ?{lock}"),
            vec![application_id.into()],
        ))
        .await?;
    row.as_ref().map(decode).transpose()
}

pub async fn find_by_request_id<C: ConnectionTrait>(
    conn: &C,
    request_id: &str,
) -> Result<Option<Stored>, IntakeError> {
    let b = conn.get_database_backend();
    let row = conn
        .query_one_raw(stmt(
            b,
            "SELECT body, fingerprint FROM applications WHERE request_id = ?",
            vec![request_id.into()],
        ))
        .await?;
    row.as_ref().map(decode).transpose()
}

/// Inserts a new application. Returns `false` (and writes nothing) when the request id is
/// taken, which happens when two identical submissions race.
pub async fn insert<C: ConnectionTrait>(
    conn: &C,
    app: &Application,
    fingerprint: &str,
) -> Result<bool, DbErr> {
    let b = conn.get_database_backend();
    let applicant = app.applicant.clone().unwrap_or_default();
    let now = chrono::Utc::now();
    let res = conn
        .execute_raw(stmt(
            b,
            "INSERT INTO applications (application_id, request_id, fingerprint, matter_code, credit_code, region_code, status, version, body, created_at, updated_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (request_id) DO NOTHING",
            vec![
                app.application_id.clone().into(),
                app.request_id.clone().into(),
                fingerprint.into(),
                app.matter_code.clone().into(),
                applicant.credit_code.into(),
                applicant.region_code.into(),
                status_name(app.status()).into(),
                app.version.into(),
                app.encode_to_vec().into(),
                now.into(),
                now.into(),
            ],
        ))
        .await?;
    Ok(res.rows_affected() == 1)
}

/// Writes back a changed application (its version already bumped by the caller).
pub async fn update<C: ConnectionTrait>(conn: &C, app: &Application) -> Result<(), DbErr> {
    let b = conn.get_database_backend();
    conn.execute_raw(stmt(
        b,
        "UPDATE applications SET status = ?, version = ?, body = ?, updated_at = ? WHERE application_id = ?",
        vec![
            status_name(app.status()).into(),
            app.version.into(),
            app.encode_to_vec().into(),
            chrono::Utc::now().into(),
            app.application_id.clone().into(),
        ],
    ))
    .await?;
    Ok(())
}

/// Filter for [`list`].
#[derive(Debug, Default, Clone)]
pub struct ListFilter {
    pub status: Option<ApplicationStatus>,
    pub matter_code: Option<String>,
    pub credit_code: Option<String>,
    pub region_prefix: Option<String>,
    /// Only ids before this one (ids are time-ordered UUIDv7: newest first paging).
    pub before_id: Option<String>,
    pub limit: u64,
}

pub async fn list<C: ConnectionTrait>(
    conn: &C,
    f: &ListFilter,
) -> Result<Vec<Application>, IntakeError> {
    let b = conn.get_database_backend();
    let mut sql = String::from("SELECT body, fingerprint FROM applications WHERE 1=1");
    let mut values: Vec<Value> = Vec::new();
    if let Some(s) = f.status {
        sql.push_str(" AND status = ?");
        values.push(status_name(s).into());
    }
    if let Some(m) = &f.matter_code {
        sql.push_str(" AND matter_code = ?");
        values.push(m.clone().into());
    }
    if let Some(c) = &f.credit_code {
        sql.push_str(" AND credit_code = ?");
        values.push(c.clone().into());
    }
    if let Some(r) = &f.region_prefix {
        sql.push_str(" AND region_code LIKE ?");
        values.push(format!("{}%", r.replace(['%', '_'], "")).into());
    }
    if let Some(id) = &f.before_id {
        sql.push_str(" AND application_id < ?");
        values.push(id.clone().into());
    }
    sql.push_str(" ORDER BY application_id DESC LIMIT ?");
    values.push((f.limit as i64).into());
    let rows = conn.query_all_raw(stmt(b, &sql, values)).await?;
    rows.iter()
        .map(|r| decode(r).map(|s| s.application))
        .collect()
}

/// Records a matter definition source (idempotent).
pub async fn save_matter<C: ConnectionTrait>(
    conn: &C,
    code: &str,
    version: u32,
    source: &str,
) -> Result<(), DbErr> {
    let b = conn.get_database_backend();
    conn.execute_raw(stmt(
        b,
        "INSERT INTO matters (code, version, source, loaded_at) VALUES (?, ?, ?, ?) ON CONFLICT (code, version) DO NOTHING",
        vec![code.into(), i64::from(version).into(), source.into(), chrono::Utc::now().into()],
    ))
    .await?;
    Ok(())
}

/// Every stored matter source, oldest version first.
pub async fn matter_sources<C: ConnectionTrait>(conn: &C) -> Result<Vec<(String, String)>, DbErr> {
    let b = conn.get_database_backend();
    let rows = conn
        .query_all_raw(stmt(
            b,
            "SELECT code, source FROM matters ORDER BY code, version",
            vec![],
        ))
        .await?;
    rows.iter()
        .map(|r| Ok((r.try_get("", "code")?, r.try_get("", "source")?)))
        .collect()
}
