//! "Test my connection" results: what a lab PC's browser reached on the appliance's STUN
//! and TURN, as it reported them (`POST /api/connection-tests`), for the Health page.

use serde::{Deserialize, Serialize};

use super::{DbError, Store, now, on_pool};

/// How long results are kept: older ones are deleted as new ones arrive.
pub const KEEP_SECS: i64 = 30 * 24 * 3600;

/// What became of one way of connecting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PathResult {
    Ok,
    Failed,
    /// The appliance does not offer it (TURN off, or no TLS port).
    NotOffered,
}

impl PathResult {
    pub fn as_str(self) -> &'static str {
        match self {
            PathResult::Ok => "ok",
            PathResult::Failed => "failed",
            PathResult::NotOffered => "not_offered",
        }
    }

    /// The stored word; anything else (a row written by hand) counts as failed.
    fn parse(word: &str) -> PathResult {
        match word {
            "ok" => PathResult::Ok,
            "not_offered" => PathResult::NotOffered,
            _ => PathResult::Failed,
        }
    }
}

/// The five ways a browser can reach others, as the web client tests them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Paths {
    /// A host candidate: this PC has a network address for direct connections.
    pub direct: PathResult,
    /// UDP to the appliance answers: a server-reflexive candidate, or a relay one over UDP.
    pub stun: PathResult,
    /// Relay candidates through TURN over UDP, TCP and TLS.
    pub relay_udp: PathResult,
    pub relay_tcp: PathResult,
    pub relay_tls: PathResult,
}

/// One stored result.
#[derive(Debug, Clone)]
pub struct ConnectionTest {
    pub id: i64,
    pub tested_at: i64,
    pub username: String,
    pub device: String,
    pub client_addr: String,
    /// '' when the PC was outside every lab.
    pub lab: String,
    pub paths: Paths,
}

#[derive(sqlx::FromRow)]
struct Row {
    id: i64,
    tested_at: i64,
    username: String,
    device: String,
    client_addr: String,
    lab: String,
    direct: String,
    stun: String,
    relay_udp: String,
    relay_tcp: String,
    relay_tls: String,
}

impl From<Row> for ConnectionTest {
    fn from(r: Row) -> Self {
        ConnectionTest {
            id: r.id,
            tested_at: r.tested_at,
            username: r.username,
            device: r.device,
            client_addr: r.client_addr,
            lab: r.lab,
            paths: Paths {
                direct: PathResult::parse(&r.direct),
                stun: PathResult::parse(&r.stun),
                relay_udp: PathResult::parse(&r.relay_udp),
                relay_tcp: PathResult::parse(&r.relay_tcp),
                relay_tls: PathResult::parse(&r.relay_tls),
            },
        }
    }
}

/// What a new result records besides its paths.
pub struct NewTest<'a> {
    pub user_id: i64,
    pub username: &'a str,
    pub device: &'a str,
    pub client_addr: &'a str,
    pub lab: &'a str,
    pub paths: Paths,
}

const COLUMNS: &str =
    "id, tested_at, username, device, client_addr, lab, direct, stun, relay_udp, relay_tcp, relay_tls";

/// Stores a result, and deletes the ones older than [`KEEP_SECS`].
pub async fn record(store: &Store, t: &NewTest<'_>) -> Result<ConnectionTest, DbError> {
    let at = now();
    let sql = format!(
        "INSERT INTO connection_tests (tested_at, user_id, username, device, client_addr, lab, direct, stun, \
         relay_udp, relay_tcp, relay_tls) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING {COLUMNS}"
    );
    on_pool!(store, |pool| {
        let mut tx = pool.begin().await?;
        sqlx::query("DELETE FROM connection_tests WHERE tested_at < $1").bind(at - KEEP_SECS).execute(&mut *tx).await?;
        let row = sqlx::query_as::<_, Row>(sqlx::AssertSqlSafe(sql))
            .bind(at)
            .bind(t.user_id)
            .bind(t.username)
            .bind(t.device)
            .bind(t.client_addr)
            .bind(t.lab)
            .bind(t.paths.direct.as_str())
            .bind(t.paths.stun.as_str())
            .bind(t.paths.relay_udp.as_str())
            .bind(t.paths.relay_tcp.as_str())
            .bind(t.paths.relay_tls.as_str())
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(row.into())
    })
}

/// How many results `user_id` sent since `since` (the API's rate limit).
pub async fn count_by_user_since(store: &Store, user_id: i64, since: i64) -> Result<i64, DbError> {
    on_pool!(store, |pool| {
        Ok(sqlx::query_scalar::<_, i64>(
            "SELECT CAST(COUNT(*) AS BIGINT) FROM connection_tests WHERE user_id = $1 AND tested_at >= $2",
        )
        .bind(user_id)
        .bind(since)
        .fetch_one(pool)
        .await?)
    })
}

/// The newest result of each PC address since `since`, newest first, at most `limit`.
pub async fn latest_per_address_since(store: &Store, since: i64, limit: i64) -> Result<Vec<ConnectionTest>, DbError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM connection_tests t WHERE tested_at >= $1 AND id = \
         (SELECT MAX(id) FROM connection_tests u WHERE u.client_addr = t.client_addr AND u.tested_at >= $1) \
         ORDER BY tested_at DESC, id DESC LIMIT $2"
    );
    on_pool!(store, |pool| {
        let rows = sqlx::query_as::<_, Row>(sqlx::AssertSqlSafe(sql)).bind(since).bind(limit).fetch_all(pool).await?;
        Ok(rows.into_iter().map(ConnectionTest::from).collect())
    })
}
