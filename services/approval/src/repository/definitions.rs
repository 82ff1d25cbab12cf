//! [`DefinitionStore`] on sea-orm.

use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder,
    sea_query::OnConflict,
};

use super::{DefinitionStore, StoredDefinition};
use crate::entity::definition::{self, Column};

impl<C: ConnectionTrait> DefinitionStore for C {
    async fn save_definition(&self, d: &StoredDefinition) -> Result<bool, DbErr> {
        let row = definition::ActiveModel {
            code: Set(d.code.clone()),
            version: Set(i64::from(d.version)),
            name: Set(d.name.clone()),
            source: Set(d.source.clone()),
            published_at: Set(d.published_at),
            published_by: Set(d.published_by.clone()),
        };
        let inserted = definition::Entity::insert(row)
            .on_conflict(
                OnConflict::columns([Column::Code, Column::Version])
                    .do_nothing()
                    .to_owned(),
            )
            .exec_without_returning(self)
            .await;
        match inserted {
            Ok(n) => Ok(n == 1),
            Err(DbErr::RecordNotInserted) => Ok(false),
            Err(e) => Err(e),
        }
    }

    async fn definitions(&self, code: Option<&str>) -> Result<Vec<StoredDefinition>, DbErr> {
        let mut q = definition::Entity::find();
        if let Some(c) = code {
            q = q.filter(Column::Code.eq(c));
        }
        let rows = q
            .order_by_asc(Column::Code)
            .order_by_asc(Column::Version)
            .all(self)
            .await?;
        Ok(rows
            .into_iter()
            .map(|r| StoredDefinition {
                code: r.code,
                version: r.version as u32,
                name: r.name,
                source: r.source,
                published_at: r.published_at,
                published_by: r.published_by,
            })
            .collect())
    }
}
