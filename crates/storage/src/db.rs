//! Connections and transactions: connect by URL, begin write transactions that
//! behave the same on both engines, and make throw-away databases for tests.

use std::time::Duration;

use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DatabaseTransaction, DbBackend,
    DbErr, SqliteTransactionMode, Statement, TransactionOptions, TransactionTrait, Value,
};

/// Connects to `url` (`postgres://…` or `sqlite://path?mode=rwc`). SQLite files get WAL mode and
/// their directory is created.
pub async fn connect(url: &str) -> Result<DatabaseConnection, DbErr> {
    let mut opts = ConnectOptions::new(url.to_string());
    opts.sqlx_logging(false)
        .acquire_timeout(Duration::from_secs(30));
    if let Some(rest) = url.strip_prefix("sqlite://") {
        let path = rest.split('?').next().unwrap_or(rest);
        if let Some(dir) = std::path::Path::new(path)
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
        {
            std::fs::create_dir_all(dir)
                .map_err(|e| DbErr::Custom(format!("creating {}: {e}", dir.display())))?;
        }
        // SQLite allows one writer; more connections only add SQLITE_BUSY.
        opts.max_connections(1).min_connections(1);
    } else {
        opts.max_connections(16).min_connections(1);
    }
    let db = Database::connect(opts).await?;
    if db.get_database_backend() == DbBackend::Sqlite {
        db.execute_unprepared("PRAGMA journal_mode=WAL").await?;
        db.execute_unprepared("PRAGMA foreign_keys=ON").await?;
    }
    Ok(db)
}

/// Begins a transaction that will write. On SQLite it takes the write lock up front (`BEGIN
/// IMMEDIATE`) so that it cannot fail half-way on a lock upgrade.
pub async fn begin_write(db: &DatabaseConnection) -> Result<DatabaseTransaction, DbErr> {
    if db.get_database_backend() == DbBackend::Sqlite {
        db.begin_with_options(TransactionOptions {
            sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
            ..TransactionOptions::default()
        })
        .await
    } else {
        db.begin().await
    }
}

/// `?, ?, …`: `n` placeholders, for `IN (…)`.
pub fn placeholders(n: usize) -> String {
    vec!["?"; n].join(", ")
}

/// `(?, ?), (?, ?), …`: `rows` tuples of `columns` placeholders, for a multi-row `VALUES`.
pub fn value_rows(rows: usize, columns: usize) -> String {
    vec![format!("({})", placeholders(columns)); rows].join(", ")
}

/// A statement written with `?` placeholders, renumbered to `$1, $2, …` for PostgreSQL.
pub fn stmt(backend: DbBackend, sql: &str, values: Vec<Value>) -> Statement {
    if backend == DbBackend::Postgres {
        let mut out = String::with_capacity(sql.len() + 8);
        let mut n = 0;
        let mut in_str = false;
        for ch in sql.chars() {
            match ch {
                '\'' => {
                    in_str = !in_str;
                    out.push(ch);
                }
                '?' if !in_str => {
                    n += 1;
                    out.push('$');
                    out.push_str(&n.to_string());
                }
                _ => out.push(ch),
            }
        }
        Statement::from_sql_and_values(backend, out, values)
    } else {
        Statement::from_sql_and_values(backend, sql, values)
    }
}

/// Creates a fresh, uniquely named PostgreSQL database next to `admin_url`'s and returns its
/// URL. Tests use it so that none depends on another or on order.
pub async fn create_postgres_database(admin_url: &str, prefix: &str) -> Result<String, DbErr> {
    let name = format!("{prefix}_{}", uuid::Uuid::now_v7().simple());
    let admin = Database::connect(admin_url).await?;
    admin
        .execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
        .await?;
    admin.close().await?;
    let base = admin_url
        .rsplit_once('/')
        .map(|(b, _)| b)
        .unwrap_or(admin_url);
    Ok(format!("{base}/{name}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_rows_are_tuples_of_placeholders() {
        assert_eq!(placeholders(3), "?, ?, ?");
        assert_eq!(value_rows(2, 3), "(?, ?, ?), (?, ?, ?)");
        assert_eq!(value_rows(1, 1), "(?)");
    }

    #[test]
    fn placeholders_are_renumbered_for_postgres_only() {
        let s = stmt(DbBackend::Postgres, "SELECT ? , '?' , ?", vec![]);
        assert_eq!(s.sql, "SELECT $1 , '?' , $2");
        let s = stmt(DbBackend::Sqlite, "SELECT ?", vec![]);
        assert_eq!(s.sql, "SELECT ?");
    }
}
