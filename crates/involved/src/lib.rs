//! The departments and township offices involved in each application's workflow.
//!
//! Approval runs the workflow and knows which departments have a task; intake, dispatch and
//! notification do not, yet each must decide who of the staff may see an application. So each
//! keeps this small read model in its own database, fed by approval's events
//! ([`from_task_event`]: `task.created` names the department and the office routing chose,
//! `task.moved` the department a delegation moved a task to). A department whose stage a
//! condition skipped never gets a task and so is never involved; one a task was moved to is,
//! once the event has arrived. Recording is idempotent and order-free: an event that arrives
//! before the application itself still counts.
//!
//! - [`application_department`]: the sea-orm entity of `application_departments`.
//! - [`Involved`]: record and read it on any connection or transaction.
//! - [`Migration`]: creates the table, under the name each service gives it.

use std::collections::HashMap;

use sea_orm::{
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, Set,
    sea_query::OnConflict,
};
use tongban_proto::events::{Envelope, envelope::Payload};

pub mod application_department {
    //! `application_departments`: one row per application and involved department or office.

    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "application_departments")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub application_id: String,
        /// A department code (`eco_env`) or a township office code (`eco_env.songyuan`).
        #[sea_orm(primary_key, auto_increment = false)]
        pub department: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// The department and office an approval task event involves (`task.created`, `task.moved`);
/// `None` for every other event. Either may be empty.
pub fn from_task_event(event: &Envelope) -> Option<[&str; 2]> {
    match &event.payload {
        Some(Payload::TaskCreated(t)) => Some([&t.department, &t.office]),
        Some(Payload::TaskMoved(t)) => Some([&t.department, &t.office]),
        _ => None,
    }
}

/// The `application_departments` table on a connection or transaction.
pub trait Involved {
    /// Records that `departments` (department or office codes; empty ones are skipped) are
    /// involved in `application_id`. Recording one again changes nothing.
    fn add_departments(
        &self,
        application_id: &str,
        departments: &[&str],
    ) -> impl Future<Output = Result<(), DbErr>> + Send;

    /// The departments and offices recorded for `application_id`, in code order.
    fn departments_of(
        &self,
        application_id: &str,
    ) -> impl Future<Output = Result<Vec<String>, DbErr>> + Send;

    /// [`Self::departments_of`] for many applications in one query (a page of a list).
    fn departments_of_all(
        &self,
        application_ids: &[String],
    ) -> impl Future<Output = Result<HashMap<String, Vec<String>>, DbErr>> + Send;
}

impl<C: ConnectionTrait> Involved for C {
    async fn add_departments(
        &self,
        application_id: &str,
        departments: &[&str],
    ) -> Result<(), DbErr> {
        for d in departments
            .iter()
            .map(|d| d.trim())
            .filter(|d| !d.is_empty())
        {
            application_department::Entity::insert(application_department::ActiveModel {
                application_id: Set(application_id.to_string()),
                department: Set(d.to_string()),
            })
            .on_conflict(
                OnConflict::columns([
                    application_department::Column::ApplicationId,
                    application_department::Column::Department,
                ])
                .do_nothing()
                .to_owned(),
            )
            .exec_without_returning(self)
            .await?;
        }
        Ok(())
    }

    async fn departments_of(&self, application_id: &str) -> Result<Vec<String>, DbErr> {
        Ok(application_department::Entity::find()
            .filter(application_department::Column::ApplicationId.eq(application_id))
            .order_by_asc(application_department::Column::Department)
            .all(self)
            .await?
            .into_iter()
            .map(|m| m.department)
            .collect())
    }

    async fn departments_of_all(
        &self,
        application_ids: &[String],
    ) -> Result<HashMap<String, Vec<String>>, DbErr> {
        let mut out: HashMap<String, Vec<String>> = HashMap::new();
        if application_ids.is_empty() {
            return Ok(out);
        }
        let rows = application_department::Entity::find()
            .filter(
                application_department::Column::ApplicationId
                    .is_in(application_ids.iter().map(String::as_str)),
            )
            .order_by_asc(application_department::Column::Department)
            .all(self)
            .await?;
        for m in rows {
            out.entry(m.application_id).or_default().push(m.department);
        }
        Ok(out)
    }
}

/// Creates `application_departments`, with an index by department for staff listings. Each
/// service lists it in its own migrator under its own, never changing, name.
pub struct Migration {
    name: &'static str,
}

impl Migration {
    pub const fn named(name: &'static str) -> Self {
        Self { name }
    }
}

impl sea_orm_migration::MigrationName for Migration {
    fn name(&self) -> &str {
        self.name
    }
}

#[derive(sea_orm_migration::prelude::DeriveIden)]
enum ApplicationDepartments {
    Table,
    ApplicationId,
    Department,
}

#[async_trait::async_trait]
impl sea_orm_migration::MigrationTrait for Migration {
    async fn up(&self, manager: &sea_orm_migration::SchemaManager) -> Result<(), DbErr> {
        use sea_orm_migration::{prelude::*, schema::text};
        manager
            .create_table(
                Table::create()
                    .table(ApplicationDepartments::Table)
                    .if_not_exists()
                    .col(text(ApplicationDepartments::ApplicationId))
                    .col(text(ApplicationDepartments::Department))
                    .primary_key(
                        Index::create()
                            .col(ApplicationDepartments::ApplicationId)
                            .col(ApplicationDepartments::Department),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name("application_departments_department")
                    .table(ApplicationDepartments::Table)
                    .col(ApplicationDepartments::Department)
                    .col(ApplicationDepartments::ApplicationId)
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &sea_orm_migration::SchemaManager) -> Result<(), DbErr> {
        tongban_storage::schema::drop_tables(manager, &["application_departments"]).await
    }
}

#[cfg(test)]
mod tests {
    use sea_orm::Database;
    use sea_orm_migration::{MigrationTrait, SchemaManager};

    use super::*;

    #[tokio::test]
    async fn records_once_in_code_order_and_reads_back_per_application() -> anyhow::Result<()> {
        let db = Database::connect("sqlite::memory:").await?;
        let m = Migration::named("m_test");
        m.up(&SchemaManager::new(&db)).await?;
        // Running it again (a kill between DDL and the migration record on SQLite) is harmless.
        m.up(&SchemaManager::new(&db)).await?;
        db.add_departments("a1", &["water", "", "eco_env.songyuan", "eco_env"])
            .await?;
        db.add_departments("a1", &["water", " eco_env "]).await?;
        db.add_departments("a2", &["dev_reform"]).await?;
        assert_eq!(
            db.departments_of("a1").await?,
            vec!["eco_env", "eco_env.songyuan", "water"]
        );
        assert!(db.departments_of("a3").await?.is_empty());
        let all = db
            .departments_of_all(&["a1".into(), "a2".into(), "a3".into()])
            .await?;
        assert_eq!(all.len(), 2);
        assert_eq!(all["a2"], vec!["dev_reform"]);
        m.down(&SchemaManager::new(&db)).await?;
        assert!(db.departments_of("a1").await.is_err());
        Ok(())
    }

    #[test]
    fn only_task_events_involve_a_department() {
        use tongban_proto::events::{TaskCreated, TaskMoved, TaskOverdue};
        let env = |p| Envelope {
            payload: Some(p),
            ..Default::default()
        };
        let created = env(Payload::TaskCreated(TaskCreated {
            department: "eco_env".into(),
            office: "eco_env.zhengdun".into(),
            ..Default::default()
        }));
        assert_eq!(
            from_task_event(&created),
            Some(["eco_env", "eco_env.zhengdun"])
        );
        let moved = env(Payload::TaskMoved(TaskMoved {
            department: "water".into(),
            ..Default::default()
        }));
        assert_eq!(from_task_event(&moved), Some(["water", ""]));
        let overdue = env(Payload::TaskOverdue(TaskOverdue {
            department: "water".into(),
            ..Default::default()
        }));
        assert_eq!(from_task_event(&overdue), None);
    }
}
