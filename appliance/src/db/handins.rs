//! Hand-ins (migration 0016): what an instructor opened for a lab, and the receipts of what
//! each student handed in. The files themselves are never here.

use serde::{Deserialize, Serialize};

use super::{DbError, Store, now, on_pool};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Handin {
    pub id: String,
    pub lab: String,
    pub owner_id: i64,
    pub owner_username: String,
    pub collector_device_key: String,
    pub title: String,
    pub instructions: String,
    /// Lowercase endings without the dot, comma-separated; '' for any.
    pub extensions: String,
    pub max_bytes: Option<i64>,
    pub allow_late: i64,
    pub deadline: i64,
    pub created_at: i64,
    pub closed_at: Option<i64>,
}

impl Handin {
    pub fn extension_list(&self) -> Vec<String> {
        self.extensions.split(',').filter(|e| !e.is_empty()).map(str::to_string).collect()
    }

    pub fn allows_late(&self) -> bool {
        self.allow_late != 0
    }
}

/// One verified file of a receipt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceiptFile {
    pub name: String,
    pub size: u64,
    pub sha256: String,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Receipt {
    pub handin_id: String,
    #[allow(dead_code)] // read by sqlx; the key of a student's receipts
    pub user_id: i64,
    pub version: i64,
    pub username: String,
    pub transfer_id: String,
    /// JSON list of [`ReceiptFile`].
    pub files: String,
    pub total_bytes: i64,
    pub received_at: i64,
    pub late: i64,
}

impl Receipt {
    pub fn file_list(&self) -> Vec<ReceiptFile> {
        serde_json::from_str(&self.files).unwrap_or_default()
    }
}

const HANDIN_COLUMNS: &str = "id, lab, owner_id, owner_username, collector_device_key, title, instructions, \
                              extensions, max_bytes, allow_late, deadline, created_at, closed_at";
const RECEIPT_COLUMNS: &str =
    "handin_id, user_id, version, username, transfer_id, files, total_bytes, received_at, late";

pub async fn create(store: &Store, h: &Handin) -> Result<(), DbError> {
    let sql = format!(
        "INSERT INTO handins ({HANDIN_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
    );
    on_pool!(store, |pool| {
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(&h.id)
            .bind(&h.lab)
            .bind(h.owner_id)
            .bind(&h.owner_username)
            .bind(&h.collector_device_key)
            .bind(&h.title)
            .bind(&h.instructions)
            .bind(&h.extensions)
            .bind(h.max_bytes)
            .bind(h.allow_late)
            .bind(h.deadline)
            .bind(h.created_at)
            .bind(h.closed_at)
            .execute(pool)
            .await?;
        Ok(())
    })
}

pub async fn by_id(store: &Store, id: &str) -> Result<Option<Handin>, DbError> {
    let sql = format!("SELECT {HANDIN_COLUMNS} FROM handins WHERE id = $1");
    on_pool!(store, |pool| {
        Ok(sqlx::query_as::<_, Handin>(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(pool).await?)
    })
}

/// The hand-ins still open in `lab`, oldest first.
pub async fn open_in_lab(store: &Store, lab: &str) -> Result<Vec<Handin>, DbError> {
    let sql = format!(
        "SELECT {HANDIN_COLUMNS} FROM handins WHERE lower(lab) = lower($1) AND closed_at IS NULL ORDER BY created_at, id"
    );
    on_pool!(store, |pool| {
        Ok(sqlx::query_as::<_, Handin>(sqlx::AssertSqlSafe(sql)).bind(lab).fetch_all(pool).await?)
    })
}

/// Every hand-in, newest first (the portal's Hand-ins page).
pub async fn list(store: &Store, limit: i64) -> Result<Vec<Handin>, DbError> {
    let sql = format!("SELECT {HANDIN_COLUMNS} FROM handins ORDER BY created_at DESC, id LIMIT $1");
    on_pool!(store, |pool| {
        Ok(sqlx::query_as::<_, Handin>(sqlx::AssertSqlSafe(sql)).bind(limit).fetch_all(pool).await?)
    })
}

/// Closes an open hand-in; false when it was closed already.
pub async fn close(store: &Store, id: &str) -> Result<bool, DbError> {
    on_pool!(store, |pool| {
        let done = sqlx::query("UPDATE handins SET closed_at = $1 WHERE id = $2 AND closed_at IS NULL")
            .bind(now())
            .bind(id)
            .execute(pool)
            .await?;
        Ok(done.rows_affected() > 0)
    })
}

/// Stores a receipt as the student's next version (1 for the first), and returns it. A
/// receipt for a transfer already receipted is returned as it was (a repeated report).
pub async fn add_receipt(
    store: &Store,
    handin_id: &str,
    user_id: i64,
    username: &str,
    transfer_id: &str,
    files: &[ReceiptFile],
    late: bool,
) -> Result<Receipt, DbError> {
    let files_json = serde_json::to_string(files).unwrap_or_else(|_| "[]".into());
    let total: i64 = files.iter().map(|f| f.size as i64).sum();
    let select = format!("SELECT {RECEIPT_COLUMNS} FROM handin_receipts WHERE handin_id = $1 AND transfer_id = $2");
    let insert = format!(
        "INSERT INTO handin_receipts ({RECEIPT_COLUMNS}) SELECT $1, $2, COALESCE(MAX(version), 0) + 1, $3, $4, $5, $6, \
         $7, $8 FROM handin_receipts WHERE handin_id = $1 AND user_id = $2 RETURNING {RECEIPT_COLUMNS}"
    );
    // Read, then write: on SQLite the write lock is taken at the start, or two receipts at
    // once (several students' files verified together) would each hold a read lock and
    // fail to upgrade it.
    let begin = super::dialect::begin_write(store.backend());
    on_pool!(store, |pool| {
        let mut tx = pool.begin_with(begin).await?;
        if let Some(r) = sqlx::query_as::<_, Receipt>(sqlx::AssertSqlSafe(select.clone()))
            .bind(handin_id)
            .bind(transfer_id)
            .fetch_optional(&mut *tx)
            .await?
        {
            return Ok(r);
        }
        let r = sqlx::query_as::<_, Receipt>(sqlx::AssertSqlSafe(insert))
            .bind(handin_id)
            .bind(user_id)
            .bind(username)
            .bind(transfer_id)
            .bind(&files_json)
            .bind(total)
            .bind(now())
            .bind(i64::from(late))
            .fetch_one(&mut *tx)
            .await
            .map_err(|e| DbError::conflict_as(e, "receipt"))?;
        tx.commit().await?;
        Ok(r)
    })
}

/// Notes that `user_id` tries to hand in at `at`; only the first try is kept.
pub async fn note_attempt(store: &Store, handin_id: &str, user_id: i64, at: i64) -> Result<(), DbError> {
    on_pool!(store, |pool| {
        sqlx::query(
            "INSERT INTO handin_attempts (handin_id, user_id, first_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        )
        .bind(handin_id)
        .bind(user_id)
        .bind(at)
        .execute(pool)
        .await?;
        Ok(())
    })
}

/// When `user_id` first tried to hand in, if they did.
pub async fn first_attempt(store: &Store, handin_id: &str, user_id: i64) -> Result<Option<i64>, DbError> {
    on_pool!(store, |pool| {
        Ok(sqlx::query_scalar::<_, i64>("SELECT first_at FROM handin_attempts WHERE handin_id = $1 AND user_id = $2")
            .bind(handin_id)
            .bind(user_id)
            .fetch_optional(pool)
            .await?)
    })
}

/// Every receipt of a hand-in (all versions), by student then version.
pub async fn receipts(store: &Store, handin_id: &str) -> Result<Vec<Receipt>, DbError> {
    let sql = format!("SELECT {RECEIPT_COLUMNS} FROM handin_receipts WHERE handin_id = $1 ORDER BY username, version");
    on_pool!(store, |pool| {
        Ok(sqlx::query_as::<_, Receipt>(sqlx::AssertSqlSafe(sql)).bind(handin_id).fetch_all(pool).await?)
    })
}

/// A student's receipts of a hand-in, newest version last.
pub async fn receipts_of(store: &Store, handin_id: &str, user_id: i64) -> Result<Vec<Receipt>, DbError> {
    let sql =
        format!("SELECT {RECEIPT_COLUMNS} FROM handin_receipts WHERE handin_id = $1 AND user_id = $2 ORDER BY version");
    on_pool!(store, |pool| {
        Ok(sqlx::query_as::<_, Receipt>(sqlx::AssertSqlSafe(sql)).bind(handin_id).bind(user_id).fetch_all(pool).await?)
    })
}

/// The open hand-ins `owner_id` collects, wherever they are.
pub async fn open_collected_by(store: &Store, owner_id: i64) -> Result<Vec<Handin>, DbError> {
    let sql = format!(
        "SELECT {HANDIN_COLUMNS} FROM handins WHERE owner_id = $1 AND closed_at IS NULL ORDER BY created_at, id"
    );
    on_pool!(store, |pool| {
        Ok(sqlx::query_as::<_, Handin>(sqlx::AssertSqlSafe(sql)).bind(owner_id).fetch_all(pool).await?)
    })
}
