//! Intake's persistence, one narrow trait per table: [`ApplicationStore`], [`MatterStore`]
//! and [`Involved`], implemented for every sea-orm connection or transaction. Everything that
//! writes runs on the caller's transaction, so that state and the events it causes commit
//! together.

use std::future::Future;

use prost::Message;
use sea_orm::{
    ActiveValue::Set,
    ColumnTrait, Condition, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
    sea_query::{OnConflict, Query},
};
use tongban_proto::intake::{Application, ApplicationStatus};

use crate::{
    entity::{application, application_department, matter},
    error::IntakeError,
};

/// A stored application and the fingerprint of the request that created it.
#[derive(Debug, Clone)]
pub struct Stored {
    pub application: Application,
    pub fingerprint: String,
}

impl TryFrom<application::Model> for Stored {
    type Error = IntakeError;
    fn try_from(m: application::Model) -> Result<Self, IntakeError> {
        let application = Application::decode(m.body.as_slice())
            .map_err(|e| IntakeError::Corrupt(e.to_string()))?;
        Ok(Stored {
            application,
            fingerprint: m.fingerprint,
        })
    }
}

/// Filter for [`ApplicationStore::list_applications`].
#[derive(Debug, Default, Clone)]
pub struct ListFilter {
    pub status: Option<ApplicationStatus>,
    pub matter_code: Option<String>,
    pub credit_code: Option<String>,
    pub region_prefix: Option<String>,
    /// Staff: only the applications this department or office may read.
    pub staff: Option<StaffFilter>,
    /// Only ids before this one (ids are time-ordered UUIDv7: newest first paging).
    pub before_id: Option<String>,
    pub limit: u64,
}

/// What a clerk or supervisor may list: the applications whose workflow has (or had) a task
/// in `department` (a department or township office code), and those of the matters it leads.
#[derive(Debug, Default, Clone)]
pub struct StaffFilter {
    pub department: String,
    /// Matter codes whose lead department is `department`.
    pub led_matters: Vec<String>,
}

/// The status column's value for `app`; an application is never stored unspecified.
fn stored_status(app: &Application) -> Result<application::Status, DbErr> {
    application::Status::try_from(app.status()).map_err(|e| DbErr::Type(e.to_string()))
}

/// The `applications` table.
pub trait ApplicationStore {
    fn find_application(
        &self,
        application_id: &str,
    ) -> impl Future<Output = Result<Option<Stored>, IntakeError>> + Send;

    /// Like [`Self::find_application`], locking the row for update on PostgreSQL.
    fn find_application_for_update(
        &self,
        application_id: &str,
    ) -> impl Future<Output = Result<Option<Stored>, IntakeError>> + Send;

    fn find_by_request_id(
        &self,
        request_id: &str,
    ) -> impl Future<Output = Result<Option<Stored>, IntakeError>> + Send;

    /// Inserts a new application. Returns `false` (and writes nothing) when the request id is
    /// taken, which happens when two identical submissions race.
    fn insert_application(
        &self,
        app: &Application,
        fingerprint: &str,
    ) -> impl Future<Output = Result<bool, DbErr>> + Send;

    /// Writes back a changed application (its version already bumped by the caller).
    fn update_application(
        &self,
        app: &Application,
    ) -> impl Future<Output = Result<(), DbErr>> + Send;

    /// Matching applications, newest first.
    fn list_applications(
        &self,
        f: &ListFilter,
    ) -> impl Future<Output = Result<Vec<Application>, IntakeError>> + Send;
}

impl<C: ConnectionTrait> ApplicationStore for C {
    async fn find_application(&self, application_id: &str) -> Result<Option<Stored>, IntakeError> {
        application::Entity::find_by_id(application_id)
            .one(self)
            .await?
            .map(Stored::try_from)
            .transpose()
    }

    async fn find_application_for_update(
        &self,
        application_id: &str,
    ) -> Result<Option<Stored>, IntakeError> {
        application::Entity::find_by_id(application_id)
            .lock_exclusive()
            .one(self)
            .await?
            .map(Stored::try_from)
            .transpose()
    }

    async fn find_by_request_id(&self, request_id: &str) -> Result<Option<Stored>, IntakeError> {
        application::Entity::find()
            .filter(application::Column::RequestId.eq(request_id))
            .one(self)
            .await?
            .map(Stored::try_from)
            .transpose()
    }

    async fn insert_application(
        &self,
        app: &Application,
        fingerprint: &str,
    ) -> Result<bool, DbErr> {
        let applicant = app.applicant.clone().unwrap_or_default();
        let now = chrono::Utc::now();
        let inserted = application::Entity::insert(application::ActiveModel {
            application_id: Set(app.application_id.clone()),
            request_id: Set(app.request_id.clone()),
            fingerprint: Set(fingerprint.to_string()),
            matter_code: Set(app.matter_code.clone()),
            credit_code: Set(applicant.credit_code),
            region_code: Set(applicant.region_code),
            credit_class: Set(
                crate::domain::credit_class(applicant.credit_class).map(|c| c.as_str().to_owned())
            ),
            credit_source: Set(Some(applicant.credit_source).filter(|s| !s.is_empty())),
            credit_checked_at: Set(applicant
                .credit_checked_time
                .as_ref()
                .and_then(tongban_proto::time::from_ts)),
            status: Set(stored_status(app)?),
            version: Set(app.version),
            body: Set(app.encode_to_vec()),
            created_at: Set(now),
            updated_at: Set(now),
        })
        .on_conflict(
            OnConflict::column(application::Column::RequestId)
                .do_nothing()
                .to_owned(),
        )
        .exec_without_returning(self)
        .await?;
        Ok(inserted == 1)
    }

    async fn update_application(&self, app: &Application) -> Result<(), DbErr> {
        application::Entity::update_many()
            .set(application::ActiveModel {
                status: Set(stored_status(app)?),
                version: Set(app.version),
                body: Set(app.encode_to_vec()),
                updated_at: Set(chrono::Utc::now()),
                ..Default::default()
            })
            .filter(application::Column::ApplicationId.eq(app.application_id.as_str()))
            .exec(self)
            .await?;
        Ok(())
    }

    async fn list_applications(&self, f: &ListFilter) -> Result<Vec<Application>, IntakeError> {
        let mut q = application::Entity::find();
        if let Some(s) = f.status {
            match application::Status::try_from(s) {
                Ok(s) => q = q.filter(application::Column::Status.eq(s)),
                // Nothing is stored unspecified.
                Err(_) => return Ok(Vec::new()),
            }
        }
        if let Some(m) = &f.matter_code {
            q = q.filter(application::Column::MatterCode.eq(m.as_str()));
        }
        if let Some(c) = &f.credit_code {
            q = q.filter(application::Column::CreditCode.eq(c.as_str()));
        }
        if let Some(r) = &f.region_prefix {
            let prefix = r.replace(['%', '_'], "");
            q = q.filter(application::Column::RegionCode.like(format!("{prefix}%")));
        }
        if let Some(staff) = &f.staff {
            // A semi-join on the recorded departments: each application once, so that the
            // page holds as many rows as asked and the token resumes where it should.
            let in_workflow = Query::select()
                .column(application_department::Column::ApplicationId)
                .from(application_department::Entity)
                .and_where(application_department::Column::Department.eq(staff.department.as_str()))
                .to_owned();
            let mut any =
                Condition::any().add(application::Column::ApplicationId.in_subquery(in_workflow));
            if !staff.led_matters.is_empty() {
                any = any.add(
                    application::Column::MatterCode
                        .is_in(staff.led_matters.iter().map(String::as_str)),
                );
            }
            q = q.filter(any);
        }
        if let Some(id) = &f.before_id {
            q = q.filter(application::Column::ApplicationId.lt(id.as_str()));
        }
        q.order_by_desc(application::Column::ApplicationId)
            .limit(f.limit)
            .all(self)
            .await?
            .into_iter()
            .map(|m| Stored::try_from(m).map(|s| s.application))
            .collect()
    }
}

pub use tongban_involved::Involved;

/// The `matters` table.
pub trait MatterStore {
    /// Records a matter definition source (idempotent).
    fn save_matter(
        &self,
        code: &str,
        version: u32,
        source: &str,
    ) -> impl Future<Output = Result<(), DbErr>> + Send;

    /// Every stored (code, version), by code then version.
    fn matter_versions(&self) -> impl Future<Output = Result<Vec<(String, u32)>, DbErr>> + Send;

    /// The source of one stored version, if stored.
    fn matter_source(
        &self,
        code: &str,
        version: u32,
    ) -> impl Future<Output = Result<Option<String>, DbErr>> + Send;
}

impl<C: ConnectionTrait> MatterStore for C {
    async fn save_matter(&self, code: &str, version: u32, source: &str) -> Result<(), DbErr> {
        let version = i32::try_from(version)
            .map_err(|_| DbErr::Type(format!("matter {code}: version {version} is too large")))?;
        matter::Entity::insert(matter::ActiveModel {
            code: Set(code.to_string()),
            version: Set(version),
            source: Set(source.to_string()),
            loaded_at: Set(chrono::Utc::now()),
        })
        .on_conflict(
            OnConflict::columns([matter::Column::Code, matter::Column::Version])
                .do_nothing()
                .to_owned(),
        )
        .exec_without_returning(self)
        .await?;
        Ok(())
    }

    async fn matter_versions(&self) -> Result<Vec<(String, u32)>, DbErr> {
        let rows: Vec<(String, i32)> = matter::Entity::find()
            .select_only()
            .column(matter::Column::Code)
            .column(matter::Column::Version)
            .order_by_asc(matter::Column::Code)
            .order_by_asc(matter::Column::Version)
            .into_tuple()
            .all(self)
            .await?;
        rows.into_iter()
            .map(|(code, version)| {
                let version = u32::try_from(version)
                    .map_err(|_| DbErr::Type(format!("matter version {version} out of range")))?;
                Ok((code, version))
            })
            .collect()
    }

    async fn matter_source(&self, code: &str, version: u32) -> Result<Option<String>, DbErr> {
        let Ok(version) = i32::try_from(version) else {
            return Ok(None);
        };
        Ok(matter::Entity::find_by_id((code.to_string(), version))
            .one(self)
            .await?
            .map(|m| m.source))
    }
}
