//! Row-lock suffixes for the statements that stay raw SQL (queue claims, the outbox relay).
//!
//! PostgreSQL runs several replicas side by side, so claims lock the rows they take and skip
//! the rows another replica holds. SQLite allows one writer at a time (a write transaction
//! begins `IMMEDIATE`, see [`crate::db::begin_write`]), so it needs no row locks and has no
//! syntax for them. Queries built with sea-query get the same effect from
//! `lock_with_behavior`, which the SQLite builder leaves out by itself.

use sea_orm::DbBackend;

/// ` FOR UPDATE` on PostgreSQL, nothing on SQLite.
pub fn for_update(backend: DbBackend) -> &'static str {
    match backend {
        DbBackend::Postgres => " FOR UPDATE",
        _ => "",
    }
}

/// ` FOR UPDATE SKIP LOCKED` on PostgreSQL, nothing on SQLite.
pub fn skip_locked(backend: DbBackend) -> &'static str {
    match backend {
        DbBackend::Postgres => " FOR UPDATE SKIP LOCKED",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_postgres_locks_rows() {
        assert_eq!(skip_locked(DbBackend::Postgres), " FOR UPDATE SKIP LOCKED");
        assert_eq!(for_update(DbBackend::Postgres), " FOR UPDATE");
        assert_eq!(skip_locked(DbBackend::Sqlite), "");
        assert_eq!(for_update(DbBackend::Sqlite), "");
    }
}
