// The data set of the store benchmark, as SQL run directly in the database while its server
// is stopped: one text per dialect (SQLite through the sqlite3 shell, PostgreSQL through
// psql) that writes the same rows on both. Every value is a function of the row number (no
// random()), so both stores hold identical data and a run can be repeated.
//
// What it writes (`opts` may scale it; the defaults are the benchmark's):
// - 2,000 users u0001…u2000 (every 40th an instructor who owns one lab, the others
//   students), all with the password hash `hash` (one argon2 hash made by the binary);
// - 40 labs "Lab 01"…"Lab 40", each with a 10.N.0.0/16 range;
// - 1,000,000 transfer rows over the last 180 days, oldest first (requested_at rises with
//   the row number, ~15.5 s apart, the newest now): 88 % completed, 5 % failed, 3 %
//   cancelled, 2 % declined, 2 % expired; a quarter relayed; one row in 50 is a delivery of
//   one of 1,001 broadcasts (20 recipients each, sent by instructors);
// - 300,000 audit rows over the same 180 days (logins, logouts, failed logins, changes);
// - 20,000 sessions, one every ~13 minutes, a third of them revoked, ~55 still live.

const DAY = 86_400;

export const DEFAULTS = { transfers: 1_000_000, users: 2_000, labs: 40, audit: 300_000, sessions: 20_000, days: 180 };

/** SQL helpers that differ between the two databases. */
const DIALECTS = {
  sqlite: {
    series: (n) => `WITH RECURSIVE seq(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM seq WHERE i < ${n})`,
    hex: (x, width) => `printf('%0${width}x', ${x})`,
    pad: (x, width) => `printf('%0${width}d', ${x})`,
    begin: 'PRAGMA cache_size = -262144;\nBEGIN;',
    end: 'COMMIT;',
    // Identity columns: SQLite's rowid follows the largest id by itself.
    resetIdentity: () => '',
  },
  postgres: {
    series: (n) => `WITH seq(i) AS (SELECT CAST(generate_series(1, ${n}) AS BIGINT))`,
    hex: (x, width) => `lpad(to_hex(${x}), ${width}, '0')`,
    pad: (x, width) => `lpad(CAST(${x} AS TEXT), ${width}, '0')`,
    begin: "SET maintenance_work_mem = '256MB';\nBEGIN;",
    end: 'COMMIT;',
    // Rows given an explicit id do not move an identity's sequence.
    resetIdentity: (table) => `SELECT setval(pg_get_serial_sequence('${table}', 'id'), (SELECT max(id) FROM ${table}));`,
  },
};

/**
 * The SQL that fills a store created by `labbeam serve` (schema, roles, the first admin),
 * for `dialect` ('sqlite' or 'postgres'). `now` is the run's unix time (the newest row).
 */
export function fillSql(dialect, { now, hash, ...scale }) {
  const d = DIALECTS[dialect];
  if (!d) throw new Error(`unknown dialect ${dialect}`);
  if (!/^\$argon2id\$[A-Za-z0-9$=,+/]+$/.test(hash)) throw new Error('the password hash does not look like argon2id');
  const o = { ...DEFAULTS, ...scale };
  const span = o.days * DAY;
  const t0 = now - span;
  const instructorEvery = Math.max(1, Math.floor(o.users / 50));
  const username = (k) => `'u' || ${d.pad(k, 4)}`;
  const lab = (n) => `'Lab ' || ${d.pad(n, 2)}`;
  const broadcasts = Math.floor(o.transfers / 1000) + 1;
  // Broadcast b is sent by instructor s_b (0-based user index) to their lab.
  const bSender = (b) => `((${b}) % 50) * ${instructorEvery} + ${instructorEvery - 1}`;
  const userLab = (s) => `(${s}) % ${o.labs} + 1`;

  return `
${d.begin}

-- Users: ids 1001…, 0-based index k - 1 in the formulas below.
${d.series(o.users)}
INSERT INTO users (id, username, display_name, password_hash, role_id, disabled, must_change_password,
                   created_at, updated_at, last_login_at)
SELECT 1000 + i, ${username('i')}, 'User ' || CAST(i AS TEXT), '${hash}',
       CASE WHEN i % ${instructorEvery} = 0 THEN 2 ELSE 3 END,
       CASE WHEN i % 97 = 0 THEN 1 ELSE 0 END, 0,
       ${t0} + i * 600, ${t0} + i * 600,
       CASE WHEN i % 10 = 0 THEN NULL ELSE ${now} - (i * 7919) % ${30 * DAY} END
FROM seq;
${d.resetIdentity('users')}

${d.series(o.labs)}
INSERT INTO labs (id, name, description, created_at)
SELECT i, ${lab('i')}, 'Teaching lab ' || CAST(i AS TEXT), ${t0} FROM seq;
${d.resetIdentity('labs')}

${d.series(o.labs)}
INSERT INTO lab_ranges (lab_id, cidr) SELECT i, '10.' || CAST(i AS TEXT) || '.0.0/16' FROM seq;

-- Each instructor owns the lab of their own index.
${d.series(o.users)}
INSERT INTO user_labs (user_id, lab_id)
SELECT 1000 + i, ${userLab('i - 1')} FROM seq WHERE i % ${instructorEvery} = 0;

${d.series(broadcasts)}, b(n) AS (SELECT i - 1 FROM seq)
INSERT INTO broadcasts (id, sender_id, sender_username, target, files, total_bytes, recipients, created_at)
SELECT ${d.hex('n + 1', 24)}, 1001 + ${bSender('n')}, ${username(`${bSender('n')} + 1`)},
       '{"lab":"' || ${lab(userLab(bSender('n')))} || '"}',
       '[{"name":"handout-' || CAST(n AS TEXT) || '.pdf","size":2000000,"mime":"application/pdf"}]',
       2000000, 20, ${t0} + n * ${Math.round((span * 1000) / o.transfers)}
FROM b;

-- Transfers: row i is requested at t0 + i * span / N; s and r are the 0-based indexes of
-- sender and receiver, m picks the status.
${d.series(o.transfers)},
base AS (
  SELECT i,
         CASE WHEN i % 50 = 0 THEN ${bSender('i / 1000')} ELSE (i * 7919) % ${o.users} END AS s,
         (i * 37) % 100 AS m,
         ${t0} + (i * ${span}) / ${o.transfers} AS at,
         CASE WHEN i % 50 = 0 THEN 2000000 ELSE 1000 + (i * 104729) % 500000000 END AS size
  FROM seq
),
g AS (
  SELECT base.*, (s + 1 + (i * 31) % ${o.users - 1}) % ${o.users} AS r,
         CASE WHEN m < 88 THEN 'completed' WHEN m < 93 THEN 'failed' WHEN m < 96 THEN 'cancelled'
              WHEN m < 98 THEN 'declined' ELSE 'expired' END AS st
  FROM base
)
INSERT INTO transfers (id, sender_id, receiver_id, sender_username, receiver_username, sender_device,
                       receiver_device, sender_lab, receiver_lab, files, file_count, total_bytes, bytes,
                       sha256, status, path, requested_at, accepted_at, finished_at, duration_ms,
                       failure_reason, broadcast_id)
SELECT ${d.hex('(i * 2654435761) % 4294967296', 8)} || ${d.hex('i', 16)},
       1001 + s, 1001 + r, ${username('s + 1')}, ${username('r + 1')},
       'PC ' || CAST(s % 30 + 1 AS TEXT), 'PC ' || CAST(r % 30 + 1 AS TEXT),
       ${lab(userLab('s'))},
       CASE WHEN i % 50 = 0 OR i % 10 <> 0 THEN ${lab(userLab('s'))} ELSE ${lab(userLab('r'))} END,
       CASE WHEN i % 50 = 0 THEN '[{"name":"handout-' || CAST(i / 1000 AS TEXT) || '.pdf","size":2000000,"mime":"application/pdf"}]'
            ELSE '[{"name":"report-' || CAST(i AS TEXT) || '.pdf","size":' || CAST(size AS TEXT) || ',"mime":"application/pdf"}]' END,
       1, size,
       CASE st WHEN 'completed' THEN size WHEN 'failed' THEN size / 3 ELSE 0 END,
       CASE WHEN st = 'completed' THEN ${d.hex('i', 64)} ELSE '' END,
       st,
       CASE WHEN st IN ('completed', 'failed') THEN (CASE WHEN i % 4 = 0 THEN 'relay' ELSE 'direct' END) ELSE '' END,
       at,
       CASE WHEN st IN ('completed', 'failed', 'cancelled') THEN at + 3 + i % 20 END,
       at + 5 + i % 600,
       CASE WHEN st IN ('completed', 'failed') THEN (i % 600) * 1000 + 500 END,
       CASE st WHEN 'failed' THEN 'connection lost' WHEN 'cancelled' THEN 'sender: cancelled'
               WHEN 'expired' THEN 'no answer in time' ELSE '' END,
       CASE WHEN i % 50 = 0 THEN ${d.hex('i / 1000 + 1', 24)} END
FROM g;

-- Audit: 70 % logins, 15 % logouts, 10 % failed logins, the rest changes.
${d.series(o.audit)},
a AS (SELECT i, (i * 13) % ${o.users} + 1 AS k, i % 100 AS m FROM seq)
INSERT INTO audit_log (at, actor_user_id, actor_username, action, target, details, client_addr)
SELECT ${t0} + (i * ${span}) / ${o.audit},
       CASE WHEN m >= 85 AND m < 95 THEN NULL ELSE 1000 + k END,
       ${username('k')},
       CASE WHEN m < 70 THEN 'login.success' WHEN m < 85 THEN 'logout' WHEN m < 95 THEN 'login.failure'
            WHEN m < 97 THEN 'password.change' WHEN m < 99 THEN 'user.update' ELSE 'setting.change' END,
       'user:' || ${username('k')},
       CASE WHEN m >= 85 AND m < 95 THEN '{"reason":"wrong_password"}' ELSE '{}' END,
       '10.' || CAST(k % ${o.labs} + 1 AS TEXT) || '.0.' || CAST(k % 200 + 10 AS TEXT)
FROM a;

${d.series(o.sessions)},
s AS (SELECT i, ${now} - (${o.sessions} - i) * ${Math.floor(span / o.sessions)} AS at FROM seq)
INSERT INTO sessions (id, user_id, created_at, expires_at, last_seen_at, revoked_at, client_addr, user_agent)
SELECT ${d.hex('i', 32)}, 1001 + (i * 7) % ${o.users}, at, at + 43200, at + i % 3600,
       CASE WHEN i % 3 = 0 THEN at + 1800 END,
       '10.' || CAST(i % ${o.labs} + 1 AS TEXT) || '.0.' || CAST(i % 200 + 10 AS TEXT),
       'Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0'
FROM s;

${d.end}
`;
}
