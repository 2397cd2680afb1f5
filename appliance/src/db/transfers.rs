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
    /// The length (Unicode characters) of the text the transfer carried, when it carried a
    /// text instead of files; the text itself is never stored.
    pub text_chars: Option<i64>,
    /// The hand-in this transfer delivered a student's files to.
    pub handin_id: Option<String>,
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
    /// Set for a text (its length); `None` for files.
    pub text_chars: Option<i64>,
    /// The hand-in it delivers to; `None` for other transfers.
    pub handin_id: Option<&'a str>,
}

pub async fn insert(store: &Store, t: &NewTransfer<'_>) -> Result<(), DbError> {
    on_pool!(store, |pool| {
        sqlx::query(
            "INSERT INTO transfers (id, sender_id, receiver_id, sender_username, receiver_username, sender_device, \
             receiver_device, sender_lab, receiver_lab, files, file_count, total_bytes, status, requested_at, broadcast_id, \
             sender_device_key, receiver_device_key, text_chars, handin_id) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)",
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
        .bind(t.text_chars)
        .bind(t.handin_id)
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
         accepted_at, finished_at, duration_ms, failure_reason, broadcast_id, text_chars, handin_id FROM transfers"
    };
}

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
///
/// The statement names only the filters that are set, so each database plans it for them:
/// a cursor and a date range bound the scan of the `(requested_at, id)` index, a status is
/// looked up in `transfers_status`. With one text holding `($n IS NULL OR …)` for every
/// filter, neither database could use an index for any of them: both walked the log
/// newest-first until a page matched, from the newest row down to a cursor, and through
/// the whole log for a value with no rows (bench/store).
///
/// A filter on either side of a transfer (a user, a username, a lab) is read as two index
/// scans, the sending side's and the receiving side's (migration 0008 for names and labs),
/// each newest first and stopped after `limit` rows; the page is the newest `limit` of the
/// two. A page then costs the same whether the value has a million rows or none. Walking
/// the log instead reads it all for a value with no rows, and one scan of both indexes
/// (`sender = v OR receiver = v`) reads and sorts every row of the value before it has the
/// newest (bench/store). With several such filters the first of user, username and lab is
/// split so; the others stay conditions.
pub async fn list(store: &Store, f: &TransferFilter, limit: i64) -> Result<Vec<TransferRow>, DbError> {
    let pieces = list_statement(f, limit);
    on_pool!(store, |pool| {
        let mut q = sqlx::QueryBuilder::new("");
        for piece in &pieces {
            match piece {
                Piece::Sql(sql) => q.push(sql),
                Piece::Int(v) => q.push_bind(*v),
                Piece::Text(v) => q.push_bind(*v),
            };
        }
        Ok(q.build_query_as::<TransferRow>().fetch_all(pool).await?)
    })
}

/// A piece of a statement built at run time: SQL text, or a value bound in its place.
#[derive(Debug, Clone, Copy)]
enum Piece<'a> {
    Sql(&'static str),
    Int(i64),
    Text(&'a str),
}

/// A filter on either side of a transfer.
#[derive(Debug, Clone, Copy)]
enum Side<'a> {
    User(i64),
    Username(&'a str),
    Lab(&'a str),
}

impl<'a> Side<'a> {
    /// The sending side's column and the receiving side's.
    fn columns(self) -> [&'static str; 2] {
        match self {
            Side::User(_) => ["sender_id", "receiver_id"],
            Side::Username(_) => ["sender_username", "receiver_username"],
            Side::Lab(_) => ["sender_lab", "receiver_lab"],
        }
    }

    fn value(self) -> Piece<'a> {
        match self {
            Side::User(id) => Piece::Int(id),
            Side::Username(v) | Side::Lab(v) => Piece::Text(v),
        }
    }
}

/// The statement of `list`, as pieces (see `list` for its shape).
fn list_statement(f: &TransferFilter, limit: i64) -> Vec<Piece<'_>> {
    use Piece::{Int, Sql, Text};
    let sides: Vec<Side> =
        [f.party.map(Side::User), f.username.as_deref().map(Side::Username), f.lab.as_deref().map(Side::Lab)]
            .into_iter()
            .flatten()
            .collect();
    // Every condition but the split side's, each starting with AND.
    let mut conditions = Vec::new();
    for side in sides.iter().skip(1) {
        let [sending, receiving] = side.columns();
        conditions.extend([Sql(" AND ("), Sql(sending), Sql(" = "), side.value()]);
        conditions.extend([Sql(" OR "), Sql(receiving), Sql(" = "), side.value(), Sql(")")]);
    }
    if let Some(status) = &f.status {
        conditions.extend([Sql(" AND status = "), Text(status)]);
    }
    if let Some(path) = &f.path {
        conditions.extend([Sql(" AND path = "), Text(path)]);
    }
    if let Some(from) = f.from {
        conditions.extend([Sql(" AND requested_at >= "), Int(from)]);
    }
    if let Some(to) = f.to {
        conditions.extend([Sql(" AND requested_at <= "), Int(to)]);
    }
    if let Some((at, id)) = &f.before {
        // (requested_at, id) < (at, id), written so that both databases seek to `at`.
        conditions.extend([Sql(" AND requested_at <= "), Int(*at)]);
        conditions.extend([Sql(" AND (requested_at < "), Int(*at), Sql(" OR id < "), Text(id), Sql(")")]);
    }
    const NEWEST_FIRST: Piece<'static> = Sql(" ORDER BY requested_at DESC, id DESC LIMIT ");
    let mut out = vec![Sql(select_columns!())];
    match sides.first() {
        None => {
            out.push(Sql(" WHERE 1 = 1"));
            out.extend(conditions);
        }
        Some(split) => {
            let [sending, receiving] = split.columns();
            out.push(Sql(" WHERE id IN ("));
            for (column, alias) in [(sending, ") AS sending UNION ALL "), (receiving, ") AS receiving")] {
                out.extend([Sql("SELECT id FROM (SELECT id FROM transfers WHERE "), Sql(column), Sql(" = ")]);
                out.push(split.value());
                out.extend(conditions.iter().copied());
                out.extend([NEWEST_FIRST, Int(limit), Sql(alias)]);
            }
            out.push(Sql(")"));
        }
    }
    out.extend([NEWEST_FIRST, Int(limit)]);
    out
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

/// A failed transfer's reason and where it happened (the Health page's failures by cause).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Failure {
    pub requested_at: i64,
    pub sender_lab: String,
    pub receiver_lab: String,
    pub failure_reason: String,
}

/// The failed transfers requested since `since`, newest first, at most `limit`
/// (`transfers_status` serves it).
pub async fn failures_since(store: &Store, since: i64, limit: i64) -> Result<Vec<Failure>, DbError> {
    on_pool!(store, |pool| {
        Ok(sqlx::query_as::<_, Failure>(
            "SELECT requested_at, sender_lab, receiver_lab, failure_reason FROM transfers \
             WHERE status = 'failed' AND requested_at >= $1 ORDER BY requested_at DESC LIMIT $2",
        )
        .bind(since)
        .bind(limit)
        .fetch_all(pool)
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

/// A `BroadcastRow` for each broadcast `b` that `$tail` (WHERE, ORDER BY, LIMIT over
/// `broadcasts b`) keeps, with its recipients' outcomes counted from the transfer log. Each
/// count looks up the broadcast's own rows (`transfers_broadcast`), for the broadcasts kept
/// only: grouping the join of every broadcast with its rows and then keeping the newest
/// read every delivery ever logged, and PostgreSQL would still merge-join the whole index
/// to find the rows of the newest (bench/store).
macro_rules! broadcast_rows {
    ($tail:literal) => {
        concat!(
            "SELECT b.id, b.sender_username, b.target, b.files, b.total_bytes, b.recipients, b.created_at, ",
            "(SELECT COUNT(*) FROM transfers t WHERE t.broadcast_id = b.id AND t.status = 'completed') AS completed, ",
            "(SELECT COUNT(*) FROM transfers t WHERE t.broadcast_id = b.id ",
            "AND t.status IN ('failed', 'cancelled', 'declined', 'expired')) AS failed ",
            "FROM broadcasts b ",
            $tail
        )
    };
}

/// The newest `limit` broadcasts.
pub async fn broadcasts(store: &Store, limit: i64) -> Result<Vec<BroadcastRow>, DbError> {
    on_pool!(store, |pool| {
        Ok(sqlx::query_as::<_, BroadcastRow>(broadcast_rows!("ORDER BY b.created_at DESC, b.id DESC LIMIT $1"))
            .bind(limit)
            .fetch_all(pool)
            .await?)
    })
}

pub async fn broadcast(store: &Store, id: &str) -> Result<Option<BroadcastRow>, DbError> {
    on_pool!(store, |pool| {
        Ok(sqlx::query_as::<_, BroadcastRow>(broadcast_rows!("WHERE b.id = $1")).bind(id).fetch_optional(pool).await?)
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
            text_chars: None,
            handin_id: None,
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
        assert_eq!(json["text_chars"], serde_json::Value::Null, "files, not a text");

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

    /// Every combination of filters, paged with the cursor, returns exactly the rows the
    /// filters describe, newest first, ties in `requested_at` ordered by id.
    #[tokio::test]
    async fn a_text_is_logged_with_its_length_only() {
        let pool = pool_with_users().await;
        insert(&pool, &new("files")).await.unwrap();
        insert(&pool, &NewTransfer { text_chars: Some(42), ..new("text") }).await.unwrap();
        assert_eq!(by_id(&pool, "text").await.unwrap().unwrap().text_chars, Some(42));
        let rows = list(&pool, &TransferFilter::default(), 10).await.unwrap();
        let chars: Vec<(&str, Option<i64>)> = rows.iter().map(|r| (r.id.as_str(), r.text_chars)).collect();
        assert_eq!(chars.len(), 2);
        assert!(chars.contains(&("text", Some(42))) && chars.contains(&("files", None)), "{chars:?}");
        let json = serde_json::to_value(by_id(&pool, "files").await.unwrap().unwrap()).unwrap();
        assert_eq!(json["text_chars"], serde_json::Value::Null);
    }

    #[tokio::test]
    async fn filters_and_cursor_pages_return_exactly_the_matching_rows() {
        let pool = pool_with_users().await;
        let users = ["a", "b", "c"];
        let labs = ["Lab A", "Lab B"];
        let statuses = ["completed", "failed", "cancelled"];
        let mut rows = Vec::new();
        for i in 0..60i64 {
            let (from, to) = (users[(i % 3) as usize], users[((i / 3) % 3) as usize]);
            let (lab_from, lab_to) = (labs[(i % 2) as usize], labs[((i / 5) % 2) as usize]);
            let status = statuses[((i / 2) % 3) as usize];
            let path = if i % 4 == 0 { "relay" } else { "direct" };
            // Four rows a second: the cursor must order ties by id.
            let at = 1_000 + i / 4;
            let id = format!("t{:02}", (i * 37) % 60);
            let party = if from == "a" {
                1
            } else if to == "a" {
                2
            } else {
                0
            };
            pool.exec(format!(
                "INSERT INTO transfers (id, sender_id, receiver_id, sender_username, receiver_username, sender_lab, \
                 receiver_lab, status, path, requested_at) VALUES ('{id}', {}, {}, '{from}', '{to}', '{lab_from}', \
                 '{lab_to}', '{status}', '{path}', {at})",
                if party == 1 { "1" } else { "NULL" },
                if party == 2 { "1" } else { "NULL" },
            ))
            .await
            .unwrap();
            rows.push((id, party == 0, from, to, lab_from, lab_to, status, path, at));
        }
        let filters = [
            TransferFilter::default(),
            TransferFilter { party: Some(1), ..Default::default() },
            TransferFilter { username: Some("b".into()), ..Default::default() },
            TransferFilter { username: Some("nobody".into()), ..Default::default() },
            TransferFilter { lab: Some("Lab B".into()), status: Some("failed".into()), ..Default::default() },
            TransferFilter { path: Some("relay".into()), from: Some(1_003), to: Some(1_011), ..Default::default() },
            TransferFilter {
                username: Some("c".into()),
                status: Some("completed".into()),
                from: Some(1_005),
                ..Default::default()
            },
            TransferFilter { username: Some("a".into()), lab: Some("Lab A".into()), ..Default::default() },
            TransferFilter {
                party: Some(1),
                lab: Some("Lab B".into()),
                path: Some("direct".into()),
                ..Default::default()
            },
            TransferFilter { lab: Some("Lab C".into()), ..Default::default() },
        ];
        for filter in filters {
            let mut expected: Vec<_> = rows
                .iter()
                .filter(|(_, no_party, from, to, lab_from, lab_to, status, path, at)| {
                    filter.party.is_none_or(|_| !no_party)
                        && filter.username.as_deref().is_none_or(|u| u == *from || u == *to)
                        && filter.lab.as_deref().is_none_or(|l| l == *lab_from || l == *lab_to)
                        && filter.status.as_deref().is_none_or(|s| s == *status)
                        && filter.path.as_deref().is_none_or(|p| p == *path)
                        && filter.from.is_none_or(|f| *at >= f)
                        && filter.to.is_none_or(|t| *at <= t)
                })
                .map(|(id, .., at)| (*at, id.clone()))
                .collect();
            expected.sort_by(|x, y| y.cmp(x));
            let mut got = Vec::new();
            let mut page = filter.clone();
            loop {
                let rows = list(&pool, &page, 7).await.unwrap();
                got.extend(rows.iter().map(|r| (r.requested_at, r.id.clone())));
                match rows.last() {
                    Some(last) if rows.len() == 7 => page.before = Some((last.requested_at, last.id.clone())),
                    _ => break,
                }
            }
            assert_eq!(got, expected, "{filter:?}");
        }
    }

    #[tokio::test]
    async fn broadcasts_are_the_newest_with_their_recipients_outcomes() {
        let pool = pool_with_users().await;
        for (n, id) in ["b1", "b2", "b3"].into_iter().enumerate() {
            pool.exec(format!(
                "INSERT INTO broadcasts (id, sender_id, sender_username, target, files, total_bytes, recipients, \
                 created_at) VALUES ('{id}', 1, 'a', '{{\"all\":true}}', '[]', 3, 3, {})",
                100 + n
            ))
            .await
            .unwrap();
        }
        // b2: one completed, one declined, one under way; b3: no recipient row yet.
        for (id, broadcast, status) in
            [("r1", "b2", "completed"), ("r2", "b2", "declined"), ("r3", "b2", "accepted"), ("r4", "b1", "failed")]
        {
            pool.exec(format!(
                "INSERT INTO transfers (id, sender_username, receiver_username, status, requested_at, broadcast_id) \
                 VALUES ('{id}', 'a', 'b', '{status}', 100, '{broadcast}')"
            ))
            .await
            .unwrap();
        }
        let newest = broadcasts(&pool, 2).await.unwrap();
        let got: Vec<_> = newest.iter().map(|b| (b.id.as_str(), b.completed, b.failed)).collect();
        assert_eq!(got, [("b3", 0, 0), ("b2", 1, 1)]);
        let one = broadcast(&pool, "b1").await.unwrap().unwrap();
        assert_eq!((one.id.as_str(), one.completed, one.failed, one.recipients), ("b1", 0, 1, 3));
        assert!(broadcast(&pool, "nope").await.unwrap().is_none());
        assert_eq!(broadcasts(&pool, 10).await.unwrap().len(), 3);
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
