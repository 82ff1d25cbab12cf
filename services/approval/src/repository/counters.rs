//! [`CounterStore`] on sea-orm: one upsert that returns the new value, so two transactions
//! never draw the same number.

use sea_orm::{
    ConnectionTrait,
    sea_query::{Expr, ExprTrait, OnConflict, Query},
};

use super::CounterStore;
use crate::{
    entity::counter::{self, Column},
    error::ApprovalError,
};

impl<C: ConnectionTrait> CounterStore for C {
    async fn next_counter(&self, name: &str) -> Result<i64, ApprovalError> {
        // Built with sea-query rather than `Entity::insert`, whose RETURNING support on SQLite
        // depends on a cargo feature; the statement is the same on both engines.
        let mut upsert = Query::insert();
        upsert
            .into_table(counter::Entity)
            .columns([Column::Name, Column::Value]);
        upsert
            .values([name.into(), 1i64.into()])
            .map_err(|e| ApprovalError::Corrupt(format!("counter {name}: {e}")))?;
        upsert
            .on_conflict(
                OnConflict::column(Column::Name)
                    .value(
                        Column::Value,
                        Expr::col((counter::Entity, Column::Value)).add(1),
                    )
                    .to_owned(),
            )
            .returning_col(Column::Value);
        let row = self
            .query_one(&upsert)
            .await?
            .ok_or_else(|| ApprovalError::Corrupt(format!("counter {name} returned nothing")))?;
        Ok(row.try_get("", "value")?)
    }
}
