//! The `service_ratings` table (see [`crate::rating`]), the same SQL on both engines.

use sea_orm::{ConnectionTrait, DbErr, QueryResult};

use crate::{error::ApprovalError, rating::ServiceRating};

const COLUMNS: &str = "application_id, score, reasons, comment, department, poor, rated_by, \
                       rated_at, rectification, rectified_by, rectified_at, rectify_due_at";

fn decode(r: &QueryResult) -> Result<ServiceRating, DbErr> {
    let reasons: String = r.try_get("", "reasons")?;
    Ok(ServiceRating {
        application_id: r.try_get("", "application_id")?,
        score: i32::try_from(r.try_get::<i64>("", "score")?).unwrap_or_default(),
        reasons: reasons
            .split(',')
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect(),
        comment: r.try_get("", "comment")?,
        department: r.try_get("", "department")?,
        poor: r.try_get::<i64>("", "poor")? != 0,
        rated_by: r.try_get("", "rated_by")?,
        rated_at: r.try_get("", "rated_at")?,
        rectification: r.try_get("", "rectification")?,
        rectified_by: r.try_get("", "rectified_by")?,
        rectified_at: r.try_get("", "rectified_at")?,
        rectify_due_at: r.try_get("", "rectify_due_at")?,
    })
}

/// An application's rating, if it was rated.
pub async fn find<C: ConnectionTrait>(
    db: &C,
    application_id: &str,
) -> Result<Option<ServiceRating>, ApprovalError> {
    let row = db
        .query_one_raw(tongban_storage::stmt(
            db.get_database_backend(),
            &format!("SELECT {COLUMNS} FROM service_ratings WHERE application_id = ?"),
            vec![application_id.into()],
        ))
        .await?;
    Ok(row.as_ref().map(decode).transpose()?)
}

/// Records a new rating (the caller checked there is none).
pub async fn insert<C: ConnectionTrait>(db: &C, r: &ServiceRating) -> Result<(), DbErr> {
    db.execute_raw(tongban_storage::stmt(
        db.get_database_backend(),
        &format!(
            "INSERT INTO service_ratings ({COLUMNS}) VALUES ({})",
            tongban_storage::placeholders(12)
        ),
        vec![
            r.application_id.clone().into(),
            i64::from(r.score).into(),
            r.reasons.join(",").into(),
            r.comment.clone().into(),
            r.department.clone().into(),
            i64::from(r.poor).into(),
            r.rated_by.clone().into(),
            r.rated_at.into(),
            r.rectification.clone().into(),
            r.rectified_by.clone().into(),
            r.rectified_at.into(),
            r.rectify_due_at.into(),
        ],
    ))
    .await?;
    Ok(())
}

/// Writes a rating's rectification.
pub async fn record_rectification<C: ConnectionTrait>(
    db: &C,
    r: &ServiceRating,
) -> Result<(), DbErr> {
    db.execute_raw(tongban_storage::stmt(
        db.get_database_backend(),
        "UPDATE service_ratings SET rectification = ?, rectified_by = ?, rectified_at = ? \
         WHERE application_id = ?",
        vec![
            r.rectification.clone().into(),
            r.rectified_by.clone().into(),
            r.rectified_at.into(),
            r.application_id.clone().into(),
        ],
    ))
    .await?;
    Ok(())
}
