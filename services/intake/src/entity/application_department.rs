//! `application_departments`: the departments and township offices that have (or had) a task
//! in each application's workflow, learnt from `task.created` and `task.moved`. Together with
//! the matter's lead department they are who of the staff may read the application (see
//! [`crate::authz`]).

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
