//! `application_facts`: what notification knows about each application, from
//! `application.submitted`, so that later events (which carry only the id) can address the
//! applicant.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "application_facts")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub application_id: String,
    pub credit_code: String,
    pub contact_email: String,
    pub locale: String,
    pub matter_code: String,
    pub project_name: String,
    pub created_ms: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
