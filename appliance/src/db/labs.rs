//! Labs and their address ranges.

use super::{DbError, Store, now, on_pool};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct LabRange {
    pub lab: String,
    pub cidr: String,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Lab {
    pub id: i64,
    pub name: String,
}

/// Every (lab, range) pair; ranges are stored already validated.
pub async fn ranges(store: &Store) -> Result<Vec<LabRange>, DbError> {
    on_pool!(store, |pool| {
        Ok(sqlx::query_as::<_, LabRange>(
            "SELECT l.name AS lab, r.cidr FROM lab_ranges r JOIN labs l ON l.id = r.lab_id ORDER BY lower(l.name)",
        )
        .fetch_all(pool)
        .await?)
    })
}

pub async fn list(store: &Store) -> Result<Vec<Lab>, DbError> {
    on_pool!(store, |pool| {
        Ok(sqlx::query_as::<_, Lab>("SELECT id, name FROM labs ORDER BY lower(name)").fetch_all(pool).await?)
    })
}

pub async fn by_name(store: &Store, name: &str) -> Result<Option<Lab>, DbError> {
    on_pool!(store, |pool| {
        Ok(sqlx::query_as::<_, Lab>("SELECT id, name FROM labs WHERE lower(name) = lower($1)")
            .bind(name)
            .fetch_optional(pool)
            .await?)
    })
}

/// Creates a lab with its ranges in one transaction.
pub async fn create(store: &Store, name: &str, cidrs: &[String]) -> Result<i64, DbError> {
    on_pool!(store, |pool| {
        let mut tx = pool.begin().await?;
        let id = sqlx::query_scalar::<_, i64>("INSERT INTO labs (name, created_at) VALUES ($1, $2) RETURNING id")
            .bind(name)
            .bind(now())
            .fetch_one(&mut *tx)
            .await
            .map_err(|e| DbError::conflict_as(e, &format!("lab {name:?}")))?;
        for cidr in cidrs {
            sqlx::query("INSERT INTO lab_ranges (lab_id, cidr) VALUES ($1, $2)")
                .bind(id)
                .bind(cidr)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(id)
    })
}

pub async fn remove(store: &Store, name: &str) -> Result<(), DbError> {
    on_pool!(store, |pool| {
        let done = sqlx::query("DELETE FROM labs WHERE lower(name) = lower($1)").bind(name).execute(pool).await?;
        if done.rows_affected() == 0 {
            return Err(DbError::NotFound(format!("lab {name:?}")));
        }
        Ok(())
    })
}

pub async fn by_id(store: &Store, id: i64) -> Result<Option<Lab>, DbError> {
    on_pool!(store, |pool| {
        Ok(sqlx::query_as::<_, Lab>("SELECT id, name FROM labs WHERE id = $1").bind(id).fetch_optional(pool).await?)
    })
}

/// Replaces a lab's ranges in one transaction.
pub async fn set_ranges(store: &Store, lab_id: i64, cidrs: &[String]) -> Result<(), DbError> {
    on_pool!(store, |pool| {
        let mut tx = pool.begin().await?;
        sqlx::query("DELETE FROM lab_ranges WHERE lab_id = $1").bind(lab_id).execute(&mut *tx).await?;
        for cidr in cidrs {
            sqlx::query("INSERT INTO lab_ranges (lab_id, cidr) VALUES ($1, $2)")
                .bind(lab_id)
                .bind(cidr)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    })
}

/// Names of the labs in exam mode (migration 0012).
pub async fn in_exam(store: &Store) -> Result<Vec<String>, DbError> {
    on_pool!(store, |pool| {
        Ok(sqlx::query_scalar::<_, String>("SELECT name FROM labs WHERE exam = 1 ORDER BY lower(name)")
            .fetch_all(pool)
            .await?)
    })
}

/// Whether lab `lab_id` is in exam mode (`None`: no such lab).
pub async fn exam_of(store: &Store, lab_id: i64) -> Result<Option<bool>, DbError> {
    on_pool!(store, |pool| {
        Ok(sqlx::query_scalar::<_, i64>("SELECT exam FROM labs WHERE id = $1")
            .bind(lab_id)
            .fetch_optional(pool)
            .await?
            .map(|v| v != 0))
    })
}

/// Switches lab `lab_id`'s exam mode; the row is written only when it changes, so the
/// access counter moves only then. With `within` (unix seconds), only while the lab's exam
/// window (migration 0018) holds that time: the schedule's switch, which a window ended or
/// cleared meanwhile stops. Returns whether it changed.
pub async fn set_exam(store: &Store, lab_id: i64, on: bool, within: Option<i64>) -> Result<bool, DbError> {
    on_pool!(store, |pool| {
        let done =
            match within {
                None => {
                    sqlx::query("UPDATE labs SET exam = $1 WHERE id = $2 AND exam <> $1")
                        .bind(i64::from(on))
                        .bind(lab_id)
                        .execute(pool)
                        .await?
                }
                Some(now) => sqlx::query(
                    "UPDATE labs SET exam = $1 WHERE id = $2 AND exam <> $1 AND exam_from <= $3 AND exam_until > $3",
                )
                .bind(i64::from(on))
                .bind(lab_id)
                .bind(now)
                .execute(pool)
                .await?,
            };
        Ok(done.rows_affected() > 0)
    })
}

/// A lab's policies: exam mode, its own visibility, its exam window.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct LabPolicyRow {
    pub id: i64,
    pub name: String,
    /// 1 while the lab is in exam mode.
    pub exam: i64,
    /// `own`, `all`, or `None`: it follows the setting.
    pub visibility: Option<String>,
    pub exam_from: Option<i64>,
    pub exam_until: Option<i64>,
}

/// Every lab's policies, by name.
pub async fn policies(store: &Store) -> Result<Vec<LabPolicyRow>, DbError> {
    on_pool!(store, |pool| {
        Ok(sqlx::query_as::<_, LabPolicyRow>(
            "SELECT id, name, exam, visibility, exam_from, exam_until FROM labs ORDER BY lower(name)",
        )
        .fetch_all(pool)
        .await?)
    })
}

/// Lab `lab_id`'s policies (`None`: no such lab).
pub async fn policy_of(store: &Store, lab_id: i64) -> Result<Option<LabPolicyRow>, DbError> {
    on_pool!(store, |pool| {
        Ok(sqlx::query_as::<_, LabPolicyRow>(
            "SELECT id, name, exam, visibility, exam_from, exam_until FROM labs WHERE id = $1",
        )
        .bind(lab_id)
        .fetch_optional(pool)
        .await?)
    })
}

/// A lab with an exam window (migration 0018): unix seconds.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ExamWindowRow {
    pub id: i64,
    pub name: String,
    /// 1 while the lab is in exam mode.
    pub exam: i64,
    pub exam_from: i64,
    pub exam_until: i64,
}

/// Every lab with an exam window, by name.
pub async fn exam_windows(store: &Store) -> Result<Vec<ExamWindowRow>, DbError> {
    on_pool!(store, |pool| {
        Ok(sqlx::query_as::<_, ExamWindowRow>(
            "SELECT id, name, exam, exam_from, exam_until FROM labs \
             WHERE exam_from IS NOT NULL AND exam_until IS NOT NULL ORDER BY lower(name)",
        )
        .fetch_all(pool)
        .await?)
    })
}

/// Lab `lab_id`'s exam window as (from, until) (`None`: no such lab; `Some(None)`: it has
/// none).
pub async fn exam_window_of(store: &Store, lab_id: i64) -> Result<Option<Option<(i64, i64)>>, DbError> {
    on_pool!(store, |pool| {
        let row =
            sqlx::query_as::<_, (Option<i64>, Option<i64>)>("SELECT exam_from, exam_until FROM labs WHERE id = $1")
                .bind(lab_id)
                .fetch_optional(pool)
                .await?;
        Ok(row.map(|(from, until)| from.zip(until)))
    })
}

/// Sets (or with `None` clears) lab `lab_id`'s exam window, checked by the caller; the row
/// is written only when it changes. Returns whether it changed.
pub async fn set_exam_window(store: &Store, lab_id: i64, window: Option<(i64, i64)>) -> Result<bool, DbError> {
    let (from, until) = (window.map(|w| w.0), window.map(|w| w.1));
    on_pool!(store, |pool| {
        let done = sqlx::query(
            "UPDATE labs SET exam_from = $1, exam_until = $2 \
             WHERE id = $3 AND (exam_from IS DISTINCT FROM $1 OR exam_until IS DISTINCT FROM $2)",
        )
        .bind(from)
        .bind(until)
        .bind(lab_id)
        .execute(pool)
        .await?;
        Ok(done.rows_affected() > 0)
    })
}

/// Clears lab `lab_id`'s exam window if it is still exactly (from, until): of several
/// servers (or a server and a person) ending the same window, one does. Returns whether
/// this call cleared it.
pub async fn clear_exam_window(store: &Store, lab_id: i64, window: (i64, i64)) -> Result<bool, DbError> {
    on_pool!(store, |pool| {
        let done = sqlx::query(
            "UPDATE labs SET exam_from = NULL, exam_until = NULL WHERE id = $1 AND exam_from = $2 AND exam_until = $3",
        )
        .bind(lab_id)
        .bind(window.0)
        .bind(window.1)
        .execute(pool)
        .await?;
        Ok(done.rows_affected() > 0)
    })
}

/// The labs with a visibility of their own (migration 0015), as (name, stored word).
pub async fn visibilities(store: &Store) -> Result<Vec<(String, String)>, DbError> {
    on_pool!(store, |pool| {
        Ok(sqlx::query_as::<_, (String, String)>(
            "SELECT name, visibility FROM labs WHERE visibility IS NOT NULL ORDER BY lower(name)",
        )
        .fetch_all(pool)
        .await?)
    })
}

/// Lab `lab_id`'s own visibility as stored (`None`: no such lab; `Some(None)`: it follows
/// the setting).
pub async fn visibility_of(store: &Store, lab_id: i64) -> Result<Option<Option<String>>, DbError> {
    on_pool!(store, |pool| {
        Ok(sqlx::query_scalar::<_, Option<String>>("SELECT visibility FROM labs WHERE id = $1")
            .bind(lab_id)
            .fetch_optional(pool)
            .await?)
    })
}

/// Sets (or with `None` clears) lab `lab_id`'s own visibility; the row is written only when
/// it changes, so the access counter moves only then. Returns whether it changed.
pub async fn set_visibility(store: &Store, lab_id: i64, word: Option<&str>) -> Result<bool, DbError> {
    on_pool!(store, |pool| {
        let done = sqlx::query("UPDATE labs SET visibility = $1 WHERE id = $2 AND visibility IS DISTINCT FROM $1")
            .bind(word)
            .bind(lab_id)
            .execute(pool)
            .await?;
        Ok(done.rows_affected() > 0)
    })
}

/// Replaces the labs a user is responsible for.
pub async fn set_owned(store: &Store, user_id: i64, lab_ids: &[i64]) -> Result<(), DbError> {
    on_pool!(store, |pool| {
        let mut tx = pool.begin().await?;
        sqlx::query("DELETE FROM user_labs WHERE user_id = $1").bind(user_id).execute(&mut *tx).await?;
        for lab in lab_ids {
            sqlx::query("INSERT INTO user_labs (user_id, lab_id) VALUES ($1, $2)")
                .bind(user_id)
                .bind(lab)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    })
}

/// Names of the labs a user (an instructor) is responsible for.
pub async fn owned_by(store: &Store, user_id: i64) -> Result<Vec<String>, DbError> {
    on_pool!(store, |pool| {
        Ok(sqlx::query_scalar::<_, String>(
            "SELECT l.name FROM user_labs ul JOIN labs l ON l.id = ul.lab_id WHERE ul.user_id = $1 ORDER BY lower(l.name)",
        )
        .bind(user_id)
        .fetch_all(pool)
        .await?)
    })
}

pub async fn assign(store: &Store, user_id: i64, lab_id: i64) -> Result<(), DbError> {
    on_pool!(store, |pool| {
        sqlx::query("INSERT INTO user_labs (user_id, lab_id) VALUES ($1, $2) ON CONFLICT DO NOTHING")
            .bind(user_id)
            .bind(lab_id)
            .execute(pool)
            .await?;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn labs_keep_their_ranges_and_owners() {
        let pool = crate::db::test_store().await;
        let id = create(&pool, "Lab A", &["10.1.0.0/24".into(), "10.1.1.0/24".into()]).await.unwrap();
        assert!(matches!(create(&pool, "lab a", &[]).await, Err(DbError::Conflict(_))));
        assert_eq!(ranges(&pool).await.unwrap().len(), 2);
        let uid = crate::db::users::create(
            &pool,
            &crate::db::users::NewUser {
                username: "t",
                display_name: "T",
                password_hash: "h",
                role_id: 2,
                must_change_password: false,
            },
        )
        .await
        .unwrap();
        assign(&pool, uid, id).await.unwrap();
        assert_eq!(owned_by(&pool, uid).await.unwrap(), vec!["Lab A"]);
        assert!(in_exam(&pool).await.unwrap().is_empty());
        assert!(set_exam(&pool, id, true, None).await.unwrap());
        assert!(!set_exam(&pool, id, true, None).await.unwrap(), "already on: nothing written");
        assert_eq!(in_exam(&pool).await.unwrap(), vec!["Lab A"]);
        assert_eq!(exam_of(&pool, id).await.unwrap(), Some(true));
        assert!(set_exam(&pool, id, false, None).await.unwrap());
        assert_eq!(exam_of(&pool, id).await.unwrap(), Some(false));
        assert_eq!(exam_of(&pool, id + 100).await.unwrap(), None);
        assert_eq!(visibility_of(&pool, id).await.unwrap(), Some(None));
        assert!(set_visibility(&pool, id, Some("own")).await.unwrap());
        assert!(!set_visibility(&pool, id, Some("own")).await.unwrap(), "the same: nothing written");
        assert_eq!(visibilities(&pool).await.unwrap(), vec![("Lab A".to_string(), "own".to_string())]);
        assert!(set_visibility(&pool, id, None).await.unwrap());
        assert!(!set_visibility(&pool, id, None).await.unwrap());
        assert!(visibilities(&pool).await.unwrap().is_empty());
        assert_eq!(visibility_of(&pool, id + 100).await.unwrap(), None);
        remove(&pool, "Lab A").await.unwrap();
        assert!(ranges(&pool).await.unwrap().is_empty());
        assert!(owned_by(&pool, uid).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn an_exam_window_is_set_cleared_once_and_bounds_the_schedules_switch() {
        let pool = crate::db::test_store().await;
        let id = create(&pool, "Lab A", &[]).await.unwrap();
        assert_eq!(exam_window_of(&pool, id).await.unwrap(), Some(None));
        assert_eq!(exam_window_of(&pool, id + 100).await.unwrap(), None);
        assert!(!set_exam(&pool, id, true, Some(150)).await.unwrap(), "no window: the schedule's switch does nothing");
        assert!(set_exam_window(&pool, id, Some((100, 200))).await.unwrap());
        assert!(!set_exam_window(&pool, id, Some((100, 200))).await.unwrap(), "the same: nothing written");
        let listed = exam_windows(&pool).await.unwrap();
        assert_eq!(listed, vec![ExamWindowRow { id, name: "Lab A".into(), exam: 0, exam_from: 100, exam_until: 200 }]);
        for outside in [99, 200, 250] {
            assert!(!set_exam(&pool, id, true, Some(outside)).await.unwrap(), "{outside} is outside the window");
        }
        assert!(set_exam(&pool, id, true, Some(100)).await.unwrap());
        assert!(!set_exam(&pool, id, true, Some(150)).await.unwrap(), "already on");
        assert!(!clear_exam_window(&pool, id, (100, 300)).await.unwrap(), "another window: left alone");
        assert!(clear_exam_window(&pool, id, (100, 200)).await.unwrap());
        assert!(!clear_exam_window(&pool, id, (100, 200)).await.unwrap(), "cleared once");
        assert_eq!(exam_window_of(&pool, id).await.unwrap(), Some(None));
        assert!(exam_windows(&pool).await.unwrap().is_empty());
        assert!(set_exam_window(&pool, id, Some((300, 400))).await.unwrap());
        assert!(set_exam_window(&pool, id, None).await.unwrap());
        assert!(!set_exam_window(&pool, id, None).await.unwrap());
    }
}
