//! Labs' seat maps: a name for the lab PC at one address (migration 0010). Rows are written
//! already checked (`lab_admin`: the address in the lab's ranges, names cleaned and
//! distinct); reading them back, an address that does not parse is skipped.

use super::{DbError, Store, on_pool};

/// One seat of a lab.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Seat {
    pub lab: String,
    pub address: String,
    pub name: String,
}

/// Every lab's seats, by lab name.
pub async fn all(store: &Store) -> Result<Vec<Seat>, DbError> {
    on_pool!(store, |pool| {
        Ok(sqlx::query_as::<_, Seat>(
            "SELECT l.name AS lab, s.address, s.name FROM lab_seats s JOIN labs l ON l.id = s.lab_id \
             ORDER BY lower(l.name), s.address",
        )
        .fetch_all(pool)
        .await?)
    })
}

/// The seats of one lab as (address, name).
pub async fn of_lab(store: &Store, lab_id: i64) -> Result<Vec<(String, String)>, DbError> {
    on_pool!(store, |pool| {
        Ok(sqlx::query_as::<_, (String, String)>(
            "SELECT address, name FROM lab_seats WHERE lab_id = $1 ORDER BY address",
        )
        .bind(lab_id)
        .fetch_all(pool)
        .await?)
    })
}

/// The name of the seat at `address` (canonical text) of lab `lab`, if it has one.
pub async fn name_at(store: &Store, lab: &str, address: &str) -> Result<Option<String>, DbError> {
    on_pool!(store, |pool| {
        Ok(sqlx::query_scalar::<_, String>(
            "SELECT s.name FROM lab_seats s JOIN labs l ON l.id = s.lab_id \
             WHERE lower(l.name) = lower($1) AND s.address = $2",
        )
        .bind(lab)
        .bind(address)
        .fetch_optional(pool)
        .await?)
    })
}

/// How many seats each lab has, by lab id.
pub async fn counts(store: &Store) -> Result<Vec<(i64, i64)>, DbError> {
    on_pool!(store, |pool| {
        Ok(sqlx::query_as::<_, (i64, i64)>("SELECT lab_id, count(*) FROM lab_seats GROUP BY lab_id")
            .fetch_all(pool)
            .await?)
    })
}

/// A new seat, or a new name for one: ($1 lab id, $2 address, $3 name).
const SET: &str = "INSERT INTO lab_seats (lab_id, address, name) VALUES ($1, $2, $3) \
                   ON CONFLICT (lab_id, address) DO UPDATE SET name = excluded.name";

/// Names the seat at `address` of lab `lab_id` (a new seat, or a new name for it).
pub async fn set(store: &Store, lab_id: i64, address: &str, name: &str) -> Result<(), DbError> {
    on_pool!(store, |pool| {
        sqlx::query(SET).bind(lab_id).bind(address).bind(name).execute(pool).await?;
        Ok(())
    })
}

/// Removes the seat at `address` of lab `lab_id`; false when there was none.
pub async fn remove(store: &Store, lab_id: i64, address: &str) -> Result<bool, DbError> {
    on_pool!(store, |pool| {
        let done = sqlx::query("DELETE FROM lab_seats WHERE lab_id = $1 AND address = $2")
            .bind(lab_id)
            .bind(address)
            .execute(pool)
            .await?;
        Ok(done.rows_affected() > 0)
    })
}

/// Makes lab `lab_id`'s seat map exactly `seats` (address, name), in one transaction: the
/// seats not in it are removed, the others set. Rows that stay as they are are not written.
pub async fn replace(store: &Store, lab_id: i64, seats: &[(String, String)]) -> Result<(), DbError> {
    on_pool!(store, |pool| {
        let mut tx = pool.begin().await?;
        let before: std::collections::HashMap<String, String> =
            sqlx::query_as::<_, (String, String)>("SELECT address, name FROM lab_seats WHERE lab_id = $1")
                .bind(lab_id)
                .fetch_all(&mut *tx)
                .await?
                .into_iter()
                .collect();
        for address in before.keys().filter(|a| !seats.iter().any(|(s, _)| s == *a)) {
            sqlx::query("DELETE FROM lab_seats WHERE lab_id = $1 AND address = $2")
                .bind(lab_id)
                .bind(address)
                .execute(&mut *tx)
                .await?;
        }
        for (address, name) in seats.iter().filter(|(a, n)| before.get(a) != Some(n)) {
            sqlx::query(SET).bind(lab_id).bind(address).bind(name).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::labs;

    #[tokio::test]
    async fn seats_are_set_renamed_replaced_and_go_with_their_lab() {
        let pool = crate::db::test_store().await;
        let a = labs::create(&pool, "Lab A", &["10.1.0.0/24".into()]).await.unwrap();
        let b = labs::create(&pool, "Lab B", &["10.2.0.0/24".into()]).await.unwrap();
        set(&pool, a, "10.1.0.14", "PC-14").await.unwrap();
        set(&pool, a, "10.1.0.14", "PC 14").await.unwrap();
        set(&pool, b, "10.2.0.1", "B1").await.unwrap();
        assert_eq!(of_lab(&pool, a).await.unwrap(), vec![("10.1.0.14".to_string(), "PC 14".to_string())]);
        let pairs = |v: &[(&str, &str)]| v.iter().map(|(a, n)| (a.to_string(), n.to_string())).collect::<Vec<_>>();
        replace(&pool, a, &pairs(&[("10.1.0.15", "PC 15"), ("10.1.0.16", "PC 16")])).await.unwrap();
        assert_eq!(of_lab(&pool, a).await.unwrap(), pairs(&[("10.1.0.15", "PC 15"), ("10.1.0.16", "PC 16")]));
        let mut counted = counts(&pool).await.unwrap();
        counted.sort();
        assert_eq!(counted, vec![(a, 2), (b, 1)]);
        assert_eq!(name_at(&pool, "lab a", "10.1.0.16").await.unwrap().as_deref(), Some("PC 16"));
        assert_eq!(name_at(&pool, "Lab B", "10.1.0.16").await.unwrap(), None);
        assert!(remove(&pool, a, "10.1.0.15").await.unwrap());
        assert!(!remove(&pool, a, "10.1.0.15").await.unwrap());
        let every = all(&pool).await.unwrap();
        assert_eq!(
            every.iter().map(|s| (s.lab.as_str(), s.name.as_str())).collect::<Vec<_>>(),
            [("Lab A", "PC 16"), ("Lab B", "B1")]
        );
        labs::remove(&pool, "Lab A").await.unwrap();
        assert!(of_lab(&pool, a).await.unwrap().is_empty(), "a lab's seats go with it");
    }
}
