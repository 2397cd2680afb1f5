//! The transfer log: one row per transfer (per recipient for broadcasts), inserted when it
//! is requested and updated as it is accepted and finished, so a restart loses nothing.

use serde::{Deserialize, Serialize};

use super::{DbError, Store, now, on_pool};

/// Where a transfer stands. A row is `Requested`, then `Accepted`, then ends in one of the
/// others. Stored, serialised and shown as its lowercase word; the database refuses any
/// other word (migration 0006).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TransferStatus {
    /// Asked, not answered yet.
    Requested,
    /// Accepted and not finished: under way (or paused, waiting to be resumed).
    Accepted,
    /// The receiver verified every byte.
    Completed,
    Failed,
    Cancelled,
    Declined,
    /// Nobody answered in time.
    Expired,
}

impl TransferStatus {
    pub const ALL: [TransferStatus; 7] = [
        TransferStatus::Requested,
        TransferStatus::Accepted,
        TransferStatus::Completed,
        TransferStatus::Failed,
        TransferStatus::Cancelled,
        TransferStatus::Declined,
        TransferStatus::Expired,
    ];

    /// The status named `word`, if there is one.
    pub fn parse(word: &str) -> Option<TransferStatus> {
        TransferStatus::ALL.into_iter().find(|s| s.as_str() == word)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            TransferStatus::Requested => "requested",
            TransferStatus::Accepted => "accepted",
            TransferStatus::Completed => "completed",
            TransferStatus::Failed => "failed",
            TransferStatus::Cancelled => "cancelled",
            TransferStatus::Declined => "declined",
            TransferStatus::Expired => "expired",
        }
    }
}

// Stored as its word in a TEXT column on every database (sqlx's derive would want a
// PostgreSQL enum type): encoded and decoded through `str`.
impl<DB: sqlx::Database> sqlx::Type<DB> for TransferStatus
where
    str: sqlx::Type<DB>,
{
    fn type_info() -> DB::TypeInfo {
        <str as sqlx::Type<DB>>::type_info()
    }
    fn compatible(ty: &DB::TypeInfo) -> bool {
        <str as sqlx::Type<DB>>::compatible(ty)
    }
}

impl<'q, DB: sqlx::Database> sqlx::Encode<'q, DB> for TransferStatus
where
    &'static str: sqlx::Encode<'q, DB>,
{
    fn encode_by_ref(
        &self,
        buf: &mut <DB as sqlx::Database>::ArgumentBuffer,
    ) -> Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
        self.as_str().encode_by_ref(buf)
    }
}

impl<'r, DB: sqlx::Database> sqlx::Decode<'r, DB> for TransferStatus
where
    &'r str: sqlx::Decode<'r, DB>,
{
    fn decode(value: <DB as sqlx::Database>::ValueRef<'r>) -> Result<Self, sqlx::error::BoxDynError> {
        let word = <&str as sqlx::Decode<DB>>::decode(value)?;
        TransferStatus::parse(word).ok_or_else(|| format!("{word:?} is not a transfer status").into())
    }
}

impl std::fmt::Display for TransferStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct TransferRow {
    pub id: String,
    pub sender_id: Option<i64>,
    pub receiver_id: Option<i64>,
    pub sender_username: String,
    pub receiver_username: String,
    pub sender_device: String,
    pub receiver_device: String,
    pub sender_lab: String,
    pub receiver_lab: String,
    #[serde(serialize_with = "raw_json")]
    pub files: String,
    pub file_count: i64,
    pub total_bytes: i64,
    pub bytes: i64,
    pub sha256: String,
    /// A `TransferStatus` word, as stored (the pages that list rows show it as text).
    pub status: String,
    pub path: String,
    pub requested_at: i64,
    pub accepted_at: Option<i64>,
    pub finished_at: Option<i64>,
    pub duration_ms: Option<i64>,
    pub failure_reason: String,
    pub broadcast_id: Option<String>,
}

fn raw_json<S: serde::Serializer>(text: &str, s: S) -> Result<S::Ok, S::Error> {
    let value: serde_json::Value = serde_json::from_str(text).unwrap_or(serde_json::Value::Null);
    serde::Serialize::serialize(&value, s)
}

/// What is known when a transfer is requested.
pub struct NewTransfer<'a> {
    pub id: &'a str,
    pub sender_id: i64,
    pub receiver_id: i64,
    pub sender_username: &'a str,
    pub receiver_username: &'a str,
    pub sender_device: &'a str,
    pub receiver_device: &'a str,
    pub sender_lab: &'a str,
    pub receiver_lab: &'a str,
    pub files_json: &'a str,
    pub file_count: i64,
    pub total_bytes: i64,
    pub broadcast_id: Option<&'a str>,
    /// The devices' own ids, which let them re-claim the transfer after reconnecting; none
    /// for a broadcast's deliveries (stored as '').
    pub sender_device_key: Option<&'a str>,
    pub receiver_device_key: Option<&'a str>,
}

pub async fn insert(store: &Store, t: &NewTransfer<'_>) -> Result<(), DbError> {
    on_pool!(store, |pool| {
        sqlx::query(
            "INSERT INTO transfers (id, sender_id, receiver_id, sender_username, receiver_username, sender_device, \
             receiver_device, sender_lab, receiver_lab, files, file_count, total_bytes, status, requested_at, broadcast_id, \
             sender_device_key, receiver_device_key) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)",
        )
        .bind(t.id)
        .bind(t.sender_id)
        .bind(t.receiver_id)
        .bind(t.sender_username)
        .bind(t.receiver_username)
        .bind(t.sender_device)
        .bind(t.receiver_device)
        .bind(t.sender_lab)
        .bind(t.receiver_lab)
        .bind(t.files_json)
        .bind(t.file_count)
        .bind(t.total_bytes)
        .bind(TransferStatus::Requested)
        .bind(now())
        .bind(t.broadcast_id)
        .bind(t.sender_device_key.unwrap_or(""))
        .bind(t.receiver_device_key.unwrap_or(""))
        .execute(pool)
        .await?;
        Ok(())
    })
}

/// Deletes finished rows requested before `before` (unix seconds): retention.
pub async fn purge_before(store: &Store, before: i64) -> Result<u64, DbError> {
    on_pool!(store, |pool| {
        Ok(sqlx::query("DELETE FROM transfers WHERE requested_at < $1 AND finished_at IS NOT NULL")
            .bind(before)
            .execute(pool)
            .await?
            .rows_affected())
    })
}

pub async fn mark_accepted(store: &Store, id: &str) -> Result<(), DbError> {
    on_pool!(store, |pool| {
        sqlx::query("UPDATE transfers SET status = $1, accepted_at = $2 WHERE id = $3")
            .bind(TransferStatus::Accepted)
            .bind(now())
            .bind(id)
            .execute(pool)
            .await?;
        Ok(())
    })
}

/// An accepted transfer nobody finished: what a restarted server needs to let its two
/// devices re-claim it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ResumableRow {
    pub id: String,
    pub sender_id: Option<i64>,
    pub receiver_id: Option<i64>,
    pub sender_device_key: String,
    pub receiver_device_key: String,
    pub files: String,
    pub total_bytes: i64,
}

/// Accepted, unfinished transfers (read at start-up).
pub async fn resumable(store: &Store) -> Result<Vec<ResumableRow>, DbError> {
    on_pool!(store, |pool| {
        Ok(sqlx::query_as::<_, ResumableRow>(
            "SELECT id, sender_id, receiver_id, sender_device_key, receiver_device_key, files, total_bytes \
             FROM transfers WHERE status = $1 AND finished_at IS NULL AND broadcast_id IS NULL",
        )
        .bind(TransferStatus::Accepted)
        .fetch_all(pool)
        .await?)
    })
}

/// Broadcast recipients still receiving when the server stopped: the relay tree lived in
/// the stopped process, so these end `failed` (the sender can broadcast again).
pub async fn fail_interrupted_broadcasts(store: &Store) -> Result<u64, DbError> {
    on_pool!(store, |pool| {
        Ok(sqlx::query(
            "UPDATE transfers SET status = $1, failure_reason = 'the server restarted during the broadcast', \
             finished_at = $2 WHERE broadcast_id IS NOT NULL AND status = $3 AND finished_at IS NULL",
        )
        .bind(TransferStatus::Failed)
        .bind(now())
        .bind(TransferStatus::Accepted)
        .execute(pool)
        .await?
        .rows_affected())
    })
}

/// Requests nobody answered before the server stopped: nobody can answer them now.
pub async fn expire_unanswered(store: &Store) -> Result<u64, DbError> {
    on_pool!(store, |pool| {
        Ok(sqlx::query(
            "UPDATE transfers SET status = $1, failure_reason = 'the server restarted before an answer', \
             finished_at = $2 WHERE status = $3 AND finished_at IS NULL",
        )
        .bind(TransferStatus::Expired)
        .bind(now())
        .bind(TransferStatus::Requested)
        .execute(pool)
        .await?
        .rows_affected())
    })
}

/// Who a row's parties are and whether it ended.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Parties {
    pub sender_id: Option<i64>,
    pub receiver_id: Option<i64>,
    pub status: TransferStatus,
    pub finished_at: Option<i64>,
}

pub async fn parties(store: &Store, id: &str) -> Result<Option<Parties>, DbError> {
    on_pool!(store, |pool| {
        Ok(sqlx::query_as::<_, Parties>(
            "SELECT sender_id, receiver_id, status, finished_at FROM transfers WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(pool)
        .await?)
    })
}

/// The final state of a transfer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub status: TransferStatus,
    pub bytes: i64,
    pub sha256: String,
    pub path: String,
    pub duration_ms: Option<i64>,
    pub failure_reason: String,
}

pub async fn finish(store: &Store, id: &str, o: &Outcome) -> Result<(), DbError> {
    on_pool!(store, |pool| {
        sqlx::query(
            "UPDATE transfers SET status = $1, bytes = $2, sha256 = $3, path = $4, duration_ms = $5, failure_reason = $6, \
             finished_at = $7 WHERE id = $8",
        )
        .bind(o.status)
        .bind(o.bytes)
        .bind(&o.sha256)
        .bind(&o.path)
        .bind(o.duration_ms)
        .bind(&o.failure_reason)
        .bind(now())
        .bind(id)
        .execute(pool)
        .await?;
        Ok(())
    })
}

macro_rules! select_columns {
    () => {
        "SELECT id, sender_id, receiver_id, sender_username, receiver_username, sender_device, receiver_device, \
         sender_lab, receiver_lab, files, file_count, total_bytes, bytes, sha256, status, path, requested_at, \
         accepted_at, finished_at, duration_ms, failure_reason, broadcast_id FROM transfers"
    };
}

#[cfg(test)]
pub async fn by_id(store: &Store, id: &str) -> Result<Option<TransferRow>, DbError> {
    on_pool!(store, |pool| {
        Ok(sqlx::query_as::<_, TransferRow>(concat!(select_columns!(), " WHERE id = $1"))
            .bind(id)
            .fetch_optional(pool)
            .await?)
    })
}

/// Which rows `list` returns; every field narrows the result.
#[derive(Debug, Default, Clone)]
pub struct TransferFilter {
    /// Rows where this user sent or received.
    pub party: Option<i64>,
    /// Rows where this username sent or received (admin filter).
    pub username: Option<String>,
    /// Rows where either side was in this lab.
    pub lab: Option<String>,
    pub status: Option<String>,
    pub path: Option<String>,
    /// `requested_at` bounds, unix seconds, inclusive.
    pub from: Option<i64>,
    pub to: Option<i64>,
    /// Keyset cursor: rows strictly older than (requested_at, id).
    pub before: Option<(i64, String)>,
}

/// Newest first, at most `limit` rows.
pub async fn list(store: &Store, f: &TransferFilter, limit: i64) -> Result<Vec<TransferRow>, DbError> {
    on_pool!(store, |pool| {
        let (before_at, before_id) = match &f.before {
            Some((at, id)) => (Some(*at), Some(id.clone())),
            None => (None, None),
        };
        Ok(sqlx::query_as::<_, TransferRow>(concat!(
            select_columns!(),
            " WHERE ($1 IS NULL OR sender_id = $1 OR receiver_id = $1)",
            " AND ($2 IS NULL OR sender_username = $2 OR receiver_username = $2)",
            " AND ($3 IS NULL OR sender_lab = $3 OR receiver_lab = $3)",
            " AND ($4 IS NULL OR status = $4) AND ($5 IS NULL OR path = $5)",
            " AND ($6 IS NULL OR requested_at >= $6) AND ($7 IS NULL OR requested_at <= $7)",
            " AND ($8 IS NULL OR requested_at < $8 OR (requested_at = $8 AND id < $9))",
            " ORDER BY requested_at DESC, id DESC LIMIT $10"
        ))
        .bind(f.party)
        .bind(&f.username)
        .bind(&f.lab)
        .bind(&f.status)
        .bind(&f.path)
        .bind(f.from)
        .bind(f.to)
        .bind(before_at)
        .bind(before_id)
        .bind(limit)
        .fetch_all(pool)
        .await?)
    })
}

/// Today's figures for the dashboard.
#[derive(Debug, Clone, Default, sqlx::FromRow)]
pub struct DayStats {
    pub total: i64,
    pub completed: i64,
    pub failed: i64,
    pub bytes_direct: i64,
    pub bytes_relay: i64,
}

pub async fn stats_since(store: &Store, since: i64) -> Result<DayStats, DbError> {
    on_pool!(store, |pool| {
        Ok(sqlx::query_as::<_, DayStats>(
            "SELECT COUNT(*) AS total, \
             CAST(COALESCE(SUM(CASE WHEN status = 'completed' THEN 1 ELSE 0 END), 0) AS BIGINT) AS completed, \
             CAST(COALESCE(SUM(CASE WHEN status = 'failed' THEN 1 ELSE 0 END), 0) AS BIGINT) AS failed, \
             CAST(COALESCE(SUM(CASE WHEN status = 'completed' AND path = 'direct' THEN bytes ELSE 0 END), 0) AS BIGINT) AS bytes_direct, \
             CAST(COALESCE(SUM(CASE WHEN status = 'completed' AND path = 'relay' THEN bytes ELSE 0 END), 0) AS BIGINT) AS bytes_relay \
             FROM transfers WHERE requested_at >= $1",
        )
        .bind(since)
        .fetch_one(pool)
        .await?)
    })
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct BroadcastRow {
    pub id: String,
    pub sender_username: String,
    pub target: String,
    pub files: String,
    pub total_bytes: i64,
    pub recipients: i64,
    pub created_at: i64,
    pub completed: i64,
    pub failed: i64,
}

const BROADCAST_SELECT: &str = "SELECT b.id, b.sender_username, b.target, b.files, b.total_bytes, b.recipients, \
     b.created_at, \
     CAST(COALESCE(SUM(CASE WHEN t.status = 'completed' THEN 1 ELSE 0 END), 0) AS BIGINT) AS completed, \
     CAST(COALESCE(SUM(CASE WHEN t.status IN ('failed', 'cancelled', 'declined', 'expired') THEN 1 ELSE 0 END), 0) AS BIGINT) \
     AS failed \
     FROM broadcasts b LEFT JOIN transfers t ON t.broadcast_id = b.id";

pub async fn broadcasts(store: &Store, limit: i64) -> Result<Vec<BroadcastRow>, DbError> {
    on_pool!(store, |pool| {
        let sql = format!("{BROADCAST_SELECT} GROUP BY b.id ORDER BY b.created_at DESC LIMIT $1");
        Ok(sqlx::query_as::<_, BroadcastRow>(sqlx::AssertSqlSafe(sql)).bind(limit).fetch_all(pool).await?)
    })
}

pub async fn broadcast(store: &Store, id: &str) -> Result<Option<BroadcastRow>, DbError> {
    on_pool!(store, |pool| {
        let sql = format!("{BROADCAST_SELECT} WHERE b.id = $1 GROUP BY b.id");
        Ok(sqlx::query_as::<_, BroadcastRow>(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(pool).await?)
    })
}

pub async fn of_broadcast(store: &Store, id: &str) -> Result<Vec<TransferRow>, DbError> {
    on_pool!(store, |pool| {
        Ok(sqlx::query_as::<_, TransferRow>(concat!(
            select_columns!(),
            " WHERE broadcast_id = $1 ORDER BY receiver_username"
        ))
        .bind(id)
        .fetch_all(pool)
        .await?)
    })
}

pub struct NewBroadcast<'a> {
    pub id: &'a str,
    pub sender_id: i64,
    pub sender_username: &'a str,
    pub target_json: &'a str,
    pub files_json: &'a str,
    pub total_bytes: i64,
    pub recipients: i64,
}

pub async fn insert_broadcast(store: &Store, b: &NewBroadcast<'_>) -> Result<(), DbError> {
    on_pool!(store, |pool| {
        sqlx::query(
            "INSERT INTO broadcasts (id, sender_id, sender_username, target, files, total_bytes, recipients, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(b.id)
        .bind(b.sender_id)
        .bind(b.sender_username)
        .bind(b.target_json)
        .bind(b.files_json)
        .bind(b.total_bytes)
        .bind(b.recipients)
        .bind(now())
        .execute(pool)
        .await?;
        Ok(())
    })
}

/// One more recipient (a late joiner of the target lab).
pub async fn add_broadcast_recipient(store: &Store, id: &str) -> Result<(), DbError> {
    on_pool!(store, |pool| {
        sqlx::query("UPDATE broadcasts SET recipients = recipients + 1 WHERE id = $1").bind(id).execute(pool).await?;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new(id: &str) -> NewTransfer<'_> {
        NewTransfer {
            id,
            sender_id: 1,
            receiver_id: 2,
            sender_username: "a",
            receiver_username: "b",
            sender_device: "pc1",
            receiver_device: "pc2",
            sender_lab: "Lab A",
            receiver_lab: "Lab B",
            files_json: r#"[{"name":"x.txt","size":3,"mime":"text/plain"}]"#,
            file_count: 1,
            total_bytes: 3,
            broadcast_id: None,
            sender_device_key: Some("key-a"),
            receiver_device_key: Some("key-b"),
        }
    }

    async fn pool_with_users() -> Store {
        let pool = crate::db::test_store().await;
        for name in ["a", "b"] {
            crate::db::users::create(
                &pool,
                &crate::db::users::NewUser {
                    username: name,
                    display_name: name,
                    password_hash: "h",
                    role_id: 3,
                    must_change_password: false,
                },
            )
            .await
            .unwrap();
        }
        pool
    }

    #[tokio::test]
    async fn lifecycle_and_filters() {
        let pool = pool_with_users().await;
        for id in ["t1", "t2", "t3"] {
            insert(&pool, &new(id)).await.unwrap();
        }
        mark_accepted(&pool, "t2").await.unwrap();
        let outcome = Outcome {
            status: TransferStatus::Completed,
            bytes: 3,
            sha256: "ab".repeat(32),
            path: "direct".into(),
            duration_ms: Some(12),
            failure_reason: String::new(),
        };
        finish(&pool, "t2", &outcome).await.unwrap();
        let row = by_id(&pool, "t2").await.unwrap().unwrap();
        assert_eq!(row.status, "completed");
        assert!(row.accepted_at.is_some() && row.finished_at.is_some());
        let json = serde_json::to_value(&row).unwrap();
        assert_eq!(json["files"][0]["name"], "x.txt");

        let completed = TransferFilter { status: Some("completed".into()), ..Default::default() };
        assert_eq!(list(&pool, &completed, 10).await.unwrap().len(), 1);
        let lab = TransferFilter { lab: Some("Lab B".into()), party: Some(2), ..Default::default() };
        assert_eq!(list(&pool, &lab, 10).await.unwrap().len(), 3);
        let nobody = TransferFilter { party: Some(99), ..Default::default() };
        assert!(list(&pool, &nobody, 10).await.unwrap().is_empty());
        // Keyset pagination walks every row once.
        let first = list(&pool, &TransferFilter::default(), 2).await.unwrap();
        let last = first.last().unwrap();
        let cursor = TransferFilter { before: Some((last.requested_at, last.id.clone())), ..Default::default() };
        let rest = list(&pool, &cursor, 2).await.unwrap();
        assert_eq!(first.len() + rest.len(), 3);
        assert!(rest.iter().all(|r| !first.iter().any(|f| f.id == r.id)));
    }

    #[tokio::test]
    async fn a_restart_finds_accepted_transfers_and_expires_unanswered_ones() {
        let pool = pool_with_users().await;
        for id in ["asked", "running", "done"] {
            insert(&pool, &new(id)).await.unwrap();
        }
        mark_accepted(&pool, "running").await.unwrap();
        mark_accepted(&pool, "done").await.unwrap();
        let outcome = Outcome {
            status: TransferStatus::Completed,
            bytes: 3,
            sha256: String::new(),
            path: String::new(),
            duration_ms: None,
            failure_reason: String::new(),
        };
        finish(&pool, "done", &outcome).await.unwrap();
        let rows = resumable(&pool).await.unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].id, "running");
        assert_eq!((rows[0].sender_device_key.as_str(), rows[0].receiver_device_key.as_str()), ("key-a", "key-b"));
        assert_eq!(expire_unanswered(&pool).await.unwrap(), 1);
        assert_eq!(by_id(&pool, "asked").await.unwrap().unwrap().status, "expired");
        let done = parties(&pool, "done").await.unwrap().unwrap();
        assert_eq!((done.sender_id, done.receiver_id, done.status.as_str()), (Some(1), Some(2), "completed"));
        assert!(done.finished_at.is_some());
        let running = parties(&pool, "running").await.unwrap().unwrap();
        assert_eq!((running.status.as_str(), running.finished_at), ("accepted", None));
        assert_eq!(parties(&pool, "nope").await.unwrap(), None);
    }

    #[tokio::test]
    async fn the_store_refuses_a_status_that_is_not_a_transfer_status() {
        let pool = pool_with_users().await;
        insert(&pool, &new("t1")).await.unwrap();
        let set = |status: &'static str| pool.exec(format!("UPDATE transfers SET status = '{status}' WHERE id = 't1'"));
        for status in TransferStatus::ALL {
            set(status.as_str()).await.unwrap_or_else(|e| panic!("{status} refused: {e}"));
            assert_eq!(parties(&pool, "t1").await.unwrap().unwrap().status, status, "read back as the enum");
        }
        let e = set("done").await.unwrap_err().to_string();
        // SQLite's trigger says so; PostgreSQL names its CHECK constraint.
        assert!(e.contains("transfers.status must be") || e.contains("transfers_status_check"), "{e}");
        assert!(set("Completed").await.is_err(), "the words are lowercase");
        let raw = "INSERT INTO transfers (id, sender_username, receiver_username, status, requested_at) \
                   VALUES ('t2', 'a', 'b', 'finished', 0)";
        assert!(pool.exec(raw).await.is_err());
        // Serialised to the API like it is stored.
        assert_eq!(serde_json::to_value(TransferStatus::Declined).unwrap(), "declined");
    }
}
