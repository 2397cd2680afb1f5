//! The command line: user management, clear one-line errors for bad flags and bad
//! configuration, and a restart that keeps accounts and the certificate.
// Test code: a failed expectation stops the test loudly (the workspace denies these elsewhere).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "harness/mod.rs"]
mod harness;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::SystemTime;

use harness::{Options, PASSWORD, Server, binary};

fn run(args: &[&str]) -> Output {
    Command::new(binary()).args(args).output().expect("run labbeam")
}

fn one_line_error(out: &Output) -> String {
    assert!(!out.status.success(), "expected failure, got success: {}", String::from_utf8_lossy(&out.stdout));
    let err = String::from_utf8_lossy(&out.stderr).trim().to_string();
    assert_eq!(err.lines().count(), 1, "error is not one line: {err:?}");
    assert!(err.starts_with("labbeam: "), "{err}");
    err
}

/// The output of a command line that must succeed.
fn stdout_of(s: &Server, args: &[&str]) -> String {
    let out = s.cli(args, None);
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).to_string()
}

#[tokio::test]
async fn user_add_list_passwd_disable_enable() {
    let s = Server::start().await;
    s.add_user("lena", "instructor");
    let out = s.cli(&["user", "add", "lena", "--role", "student", "--password-stdin"], Some(PASSWORD));
    assert!(one_line_error(&out).contains("already exists"));
    let out = s.cli(&["user", "add", "mo", "--role", "janitor", "--password-stdin"], Some(PASSWORD));
    assert!(one_line_error(&out).contains("unknown role"));
    let out = s.cli(&["user", "add", "mo", "--role", "student", "--password-stdin"], Some("short"));
    assert!(one_line_error(&out).contains("at least"));
    let out = s.cli(&["user", "add", "bad name", "--role", "student", "--password-stdin"], Some(PASSWORD));
    assert!(one_line_error(&out).contains("username"));

    // Without --password-stdin a one-time password is printed and must be changed.
    let out = s.cli(&["user", "add", "nora", "--role", "student", "--display-name", "Nora N."], None);
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let otp = stdout.lines().find_map(|l| l.split("login): ").nth(1)).expect("otp printed").trim().to_string();
    let token = s.login("nora", &otp).await;
    assert_eq!(s.get("/api/me", &token).await.1["must_change_password"], true);

    let list = String::from_utf8_lossy(&s.cli(&["user", "list"], None).stdout).to_string();
    assert!(list.contains("lena") && list.contains("instructor") && list.contains("Nora N."), "{list}");

    let token = s.login("lena", PASSWORD).await;
    let out = s.cli(&["user", "passwd", "lena", "--password-stdin"], Some("a brand new passphrase"));
    assert!(out.status.success());
    assert_eq!(s.get("/api/me", &token).await.0, 401, "passwd ends sessions");
    s.login("lena", "a brand new passphrase").await;

    assert!(s.cli(&["user", "disable", "lena"], None).status.success());
    assert_eq!(s.login_raw("lena", "a brand new passphrase").await.status(), 401, "disabled: like a wrong password");
    assert!(s.cli(&["user", "enable", "lena"], None).status.success());
    s.login("lena", "a brand new passphrase").await;
    let out = s.cli(&["user", "disable", "nobody"], None);
    assert!(one_line_error(&out).contains("no user"));
    // The only admin cannot be disabled.
    let out = s.cli(&["user", "disable", "admin"], None);
    assert!(one_line_error(&out).contains("last active admin"));
}

/// `labbeam lab seat|seats`: the contract `lab seat LAB ADDRESS NAME`, its errors (exit 1,
/// one line), removal, the listing and a CSV import that changes nothing when a line is bad.
#[tokio::test]
async fn lab_seats_are_named_listed_imported_and_removed() {
    let s = Server::start().await;
    let ok = |args: &[&str]| stdout_of(&s, args);
    let fails = |args: &[&str]| {
        let out = s.cli(args, None);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        one_line_error(&out)
    };
    ok(&["lab", "add", "Lab 2", "--cidr", "10.0.2.0/24"]);
    ok(&["lab", "add", "Lab 3", "--cidr", "10.0.3.0/24"]);
    assert_eq!(ok(&["lab", "seat", "Lab 2", "10.0.2.14", "PC-14"]).trim(), "10.0.2.14 in Lab 2 is now PC-14");
    assert_eq!(ok(&["lab", "seat", "lab 2", "10.0.2.14", "PC-14"]).trim(), "10.0.2.14 in Lab 2 is PC-14 already");
    assert_eq!(ok(&["lab", "seat", "Lab 2", "::ffff:10.0.2.15", " PC\t15 "]).trim(), "10.0.2.15 in Lab 2 is now PC 15");
    assert_eq!(
        ok(&["lab", "seat", "Lab 2", "10.0.2.14", "PC 14"]).trim(),
        "10.0.2.14 in Lab 2 renamed from PC-14 to PC 14"
    );

    let e = fails(&["lab", "seat", "Lab 2", "10.0.2", "PC-99"]);
    assert!(e.contains("\"10.0.2\" is not an address like 10.0.2.14"), "{e}");
    let e = fails(&["lab", "seat", "Lab 2", "10.0.3.14", "PC-99"]);
    assert!(e.contains("10.0.3.14 is not in the ranges of lab \"Lab 2\" (10.0.2.0/24)"), "{e}");
    let e = fails(&["lab", "seat", "Lab 9", "10.0.2.16", "PC-16"]);
    assert!(e.contains("no lab named \"Lab 9\""), "{e}");
    let e = fails(&["lab", "seat", "Lab 2", "10.0.2.16", "pc 14"]);
    assert!(e.contains("also names 10.0.2.14"), "{e}");
    let e = fails(&["lab", "seat", "Lab 2", "10.0.2.16", &"x".repeat(65)]);
    assert!(e.contains("1 to 64"), "{e}");
    // Flag mistakes: exit 2.
    for args in [&["lab", "seat", "Lab 2", "10.0.2.16"][..], &["lab", "seat", "Lab 2", "10.0.2.16", "X", "--remove"]] {
        let out = s.cli(args, None);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        one_line_error(&out);
    }

    let list = ok(&["lab", "seats", "Lab 2"]);
    let rows: Vec<Vec<&str>> = list.lines().skip(1).map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(rows, [vec!["10.0.2.14", "PC", "14"], vec!["10.0.2.15", "PC", "15"]], "{list}");
    assert!(list.starts_with("ADDRESS"), "{list}");

    // A file with a bad line: nothing applied, each bad line named.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("seats.csv");
    std::fs::write(&file, "address,name\n10.0.2.20,PC 20\n10.0.3.1,far away\n10.0.2.21,\"Back, left\"\n").unwrap();
    let e = fails(&["lab", "seats", "Lab 2", "--import", file.to_str().unwrap()]);
    assert!(e.contains("line 3: 10.0.3.1 is not in the ranges") && e.ends_with("nothing was changed"), "{e}");
    assert_eq!(ok(&["lab", "seats", "Lab 2"]), list, "nothing half-applied");
    std::fs::write(&file, "10.0.2.20,PC 20\n10.0.2.21,\"Back, left\"\n10.0.2.14,PC-14\n").unwrap();
    let out = ok(&["lab", "seats", "Lab 2", "--import", file.to_str().unwrap()]);
    assert_eq!(out.trim(), "Lab 2: 2 added, 1 renamed, 0 removed, 1 kept");
    let out = ok(&["lab", "seats", "Lab 2", "--import", file.to_str().unwrap(), "--replace"]);
    assert_eq!(out.trim(), "Lab 2: 0 added, 0 renamed, 1 removed, 3 kept");
    let e = fails(&["lab", "seats", "Lab 2", "--import", "/nonexistent/seats.csv"]);
    assert!(e.contains("cannot read /nonexistent/seats.csv"), "{e}");

    assert_eq!(
        ok(&["lab", "seat", "Lab 2", "10.0.2.20", "--remove"]).trim(),
        "removed seat PC 20 (10.0.2.20) from Lab 2"
    );
    let e = fails(&["lab", "seat", "Lab 2", "10.0.2.20", "--remove"]);
    assert!(e.contains("lab \"Lab 2\" has no seat at 10.0.2.20"), "{e}");
    let list = ok(&["lab", "seats", "Lab 2"]);
    assert!(list.contains("Back, left") && list.contains("PC-14") && !list.contains("PC 20"), "{list}");

    let db = s.store().await;
    let actions =
        db.int("SELECT count(*) FROM audit_log WHERE action IN ('lab.seat', 'lab.unseat', 'lab.seats')").await;
    assert_eq!(actions, 6, "three seats set, two imports, one removal; refusals and no-ops write nothing");
    db.close().await;
}

/// `labbeam lab policy NAME --exam on|off`: the contract, its errors (exit 1 with one line
/// for an unknown lab, exit 2 for a bad switch), `lab list` showing it, and one audit row
/// per change naming who made it.
#[tokio::test]
async fn lab_policy_switches_exam_mode_and_is_audited() {
    let s = Server::start().await;
    let ok = |args: &[&str]| stdout_of(&s, args);
    ok(&["lab", "add", "Lab 2", "--cidr", "10.0.2.0/24"]);
    ok(&["lab", "add", "Lab 3", "--cidr", "10.0.3.0/24"]);
    assert_eq!(ok(&["lab", "policy", "lab 2", "--exam", "on"]).trim(), "exam mode of Lab 2 is now on");
    assert_eq!(ok(&["lab", "policy", "Lab 2", "--exam", "on"]).trim(), "exam mode of Lab 2 is on already");
    let list = ok(&["lab", "list"]);
    let line = |name: &str| list.lines().find(|l| l.starts_with(name)).unwrap_or_default().to_string();
    assert!(line("Lab 2").ends_with("10.0.2.0/24  (exam mode)"), "{list}");
    assert!(line("Lab 3").ends_with("10.0.3.0/24"), "{list}");
    assert_eq!(ok(&["lab", "policy", "Lab 2", "--exam", "off"]).trim(), "exam mode of Lab 2 is now off");
    assert!(!ok(&["lab", "list"]).contains("exam"), "off again");

    let out = s.cli(&["lab", "policy", "Lab 9", "--exam", "on"], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(one_line_error(&out).contains("no lab named \"Lab 9\""));
    for args in [&["lab", "policy", "Lab 2", "--exam", "maybe"][..], &["lab", "policy", "Lab 2"]] {
        let out = s.cli(args, None);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(one_line_error(&out).contains("--exam"), "{args:?}");
    }

    let db = s.store().await;
    assert_eq!(db.int("SELECT count(*) FROM audit_log WHERE action = 'lab.policy'").await, 2, "no-ops write nothing");
    assert_eq!(
        db.int(
            "SELECT count(*) FROM audit_log WHERE action = 'lab.policy' AND target = 'lab:Lab 2' \
                AND actor_username LIKE 'cli%' AND details LIKE '%\"exam\":true%'"
        )
        .await,
        1
    );
    assert_eq!(db.int("SELECT exam FROM labs WHERE name = 'Lab 2'").await, 0);
    db.close().await;
}

#[tokio::test]
async fn lab_policy_sets_a_labs_visibility_and_is_audited() {
    let s = Server::start().await;
    let ok = |args: &[&str]| stdout_of(&s, args);
    ok(&["lab", "add", "Lab 2", "--cidr", "10.0.2.0/24"]);
    assert_eq!(
        ok(&["lab", "policy", "lab 2", "--visibility", "own"]).trim(),
        "visibility of Lab 2 is now own lab only"
    );
    assert_eq!(
        ok(&["lab", "policy", "Lab 2", "--visibility", "own"]).trim(),
        "visibility of Lab 2 is own lab only already"
    );
    assert!(ok(&["lab", "list"]).contains("10.0.2.0/24  (sees own lab only)"));
    // Both policies at once: visibility first, then exam mode.
    let both = ok(&["lab", "policy", "Lab 2", "--visibility", "all", "--exam", "on"]);
    assert_eq!(
        both.lines().collect::<Vec<_>>(),
        ["visibility of Lab 2 is now all labs", "exam mode of Lab 2 is now on"]
    );
    assert!(ok(&["lab", "list"]).contains("10.0.2.0/24  (exam mode)  (sees all labs)"));
    assert_eq!(
        ok(&["lab", "policy", "Lab 2", "--visibility", "default"]).trim(),
        "visibility of Lab 2 is now presence.scope (default)"
    );
    assert!(!ok(&["lab", "list"]).contains("sees"), "default: nothing of its own to show");

    let out = s.cli(&["lab", "policy", "Lab 9", "--visibility", "own"], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(one_line_error(&out).contains("no lab named \"Lab 9\""));
    let out = s.cli(&["lab", "policy", "Lab 2", "--visibility", "lab"], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(one_line_error(&out).contains("--visibility"));

    let db = s.store().await;
    let audited = |details: &'static str| {
        let db = &db;
        async move {
            db.int(&format!(
                "SELECT count(*) FROM audit_log WHERE action = 'lab.policy' AND target = 'lab:Lab 2' \
                    AND actor_username LIKE 'cli%' AND details LIKE '%{details}%'"
            ))
            .await
        }
    };
    assert_eq!(audited("\"visibility\":\"own\"").await, 1, "the repeat wrote nothing");
    assert_eq!(audited("\"visibility\":\"all\"").await, 1);
    assert_eq!(audited("\"before\":\"all\"").await, 1, "back to the setting, from all");
    assert_eq!(db.int("SELECT count(*) FROM labs WHERE visibility IS NULL").await, 1);
    db.close().await;
}

/// A command line of `s` run with the time zone `tz` (the `TZ` environment variable: a zone
/// name, or POSIX rules, which need no zone files).
fn cli_in_zone(s: &Server, tz: &str, args: &[&str]) -> Output {
    let mut cmd = Command::new(binary());
    cmd.args(args).arg("--data-dir").arg(s.data_dir()).env("TZ", tz);
    if let Some(url) = s.store_url() {
        cmd.env("LABBEAM_STORE_URL", url);
    }
    cmd.output().expect("run labbeam")
}

/// Unix seconds as RFC 3339 in UTC.
fn rfc3339(unix: i64) -> String {
    chrono::DateTime::from_timestamp(unix, 0).unwrap().format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// `labbeam lab policy NAME --exam-from TIME --exam-until TIME` and `--exam-schedule clear`:
/// set, repeated, listed, in the server's local time (TZ), refused with one clear line (exit
/// 1 for a window that breaks a rule, 2 for a TIME that is not one), applied by the running
/// server (as "schedule" in the audit log), ended by `--exam off`, and cleared.
#[tokio::test]
async fn lab_policy_schedules_an_exam_window_and_is_audited() {
    // UTC+3 all year, as POSIX rules: no zone files needed, no daylight saving.
    const ZONE: &str = "XYZ-3";
    let s = Server::start().await;
    let run_here = |args: &[&str]| cli_in_zone(&s, ZONE, args);
    let ok = |args: &[&str]| {
        let out = run_here(args);
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    ok(&["lab", "add", "Lab 2", "--cidr", "10.0.2.0/24"]);
    let now = harness::now();
    // Whole minutes from the next hour on, so that the local form names the same times.
    let from = (now / 3600 + 2) * 3600;
    let until = from + 90 * 60;
    let (from_text, until_text) = (rfc3339(from), rfc3339(until));
    let said = ok(&["lab", "policy", "lab 2", "--exam-from", &from_text, "--exam-until", &until_text]);
    assert!(said.starts_with("exam window of Lab 2 is now "), "{said}");
    assert!(said.ends_with(" UTC+03:00: exam mode goes on at its start and off at its end"), "{said}");
    let again = ok(&["lab", "policy", "Lab 2", "--exam-from", &from_text, "--exam-until", &until_text]);
    assert!(again.starts_with("exam window of Lab 2 is ") && again.ends_with(" UTC+03:00 already"), "{again}");
    let list = ok(&["lab", "list"]);
    assert!(list.contains("10.0.2.0/24  (exam window "), "{list}");
    let db = s.store().await;
    let window = || async {
        (
            db.int("SELECT coalesce(exam_from, 0) FROM labs WHERE name = 'Lab 2'").await,
            db.int("SELECT coalesce(exam_until, 0) FROM labs WHERE name = 'Lab 2'").await,
        )
    };
    assert_eq!(window().await, (from, until));

    // The server's local time: the same window typed as UTC+3 wall-clock times.
    let local =
        |unix: i64| chrono::DateTime::from_timestamp(unix + 3 * 3600, 0).unwrap().format("%Y-%m-%d %H:%M").to_string();
    let later =
        ok(&["lab", "policy", "Lab 2", "--exam-from", &local(from + 3600), "--exam-until", &local(until + 3600)]);
    assert!(later.starts_with("exam window of Lab 2 is now "), "{later}");
    assert_eq!(window().await, (from + 3600, until + 3600));

    // A window that breaks a rule: exit 1, one line, nothing written.
    for (a, b, want) in [
        (until, from, "the exam window must end after it starts"),
        (now - 7200, now - 3600, "has passed already"),
        (from, from + 25 * 3600, "an exam window lasts at most 24 hours; this one lasts 25 h"),
    ] {
        let out = run_here(&["lab", "policy", "Lab 2", "--exam-from", &rfc3339(a), "--exam-until", &rfc3339(b)]);
        assert_eq!(out.status.code(), Some(1), "{want}");
        let e = one_line_error(&out);
        assert!(e.contains(want), "{e}");
    }
    assert_eq!(window().await, (from + 3600, until + 3600));
    // Flag mistakes: exit 2, one line naming the flag.
    let next_year =
        chrono::DateTime::from_timestamp(now, 0).unwrap().format("%Y").to_string().parse::<i32>().unwrap() + 1;
    // The last Sunday of October, when central European clocks go back from 03:00 to 02:00.
    let fall_back = (25..=31)
        .map(|day| chrono::NaiveDate::from_ymd_opt(next_year, 10, day).unwrap())
        .find(|d| chrono::Datelike::weekday(d) == chrono::Weekday::Sun)
        .unwrap();
    let twice = format!("{fall_back} 02:30");
    let twice_words = format!(
        "{twice} happens twice in the server's time zone (the clocks go back then): give it with its offset, \
         {fall_back}T02:30:00+02:00 or {fall_back}T02:30:00+01:00"
    );
    for (args, tz, want) in [
        (vec!["--exam-from", "tomorrow", "--exam-until", &until_text], ZONE, "is not a time"),
        (vec!["--exam-from", &twice, "--exam-until", &until_text], "CET-1CEST,M3.5.0,M10.5.0/3", &twice_words),
        (vec!["--exam-from", &from_text], ZONE, "--exam-until"),
        (
            vec!["--exam-schedule", "clear", "--exam-from", &from_text, "--exam-until", &until_text],
            ZONE,
            "--exam-schedule",
        ),
        (vec!["--exam-schedule", "never"], ZONE, "--exam-schedule"),
    ] {
        let mut all = vec!["lab", "policy", "Lab 2"];
        all.extend(args.iter().copied());
        let out = cli_in_zone(&s, tz, &all);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let e = one_line_error(&out);
        assert!(e.contains(want), "{args:?}: {e}");
    }

    // A window that has started: the running server switches exam mode on within a second
    // or two, as "schedule"; `--exam off` then ends the window with it, for good.
    let started = ok(&["lab", "policy", "Lab 2", "--exam-from", &rfc3339(now - 60), "--exam-until", &until_text]);
    assert!(started.ends_with("(started: exam mode goes on within a second)"), "{started}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while db.int("SELECT exam FROM labs WHERE name = 'Lab 2'").await == 0 {
        assert!(std::time::Instant::now() < deadline, "the schedule did not switch exam mode on within 5 s");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let scheduled = "SELECT count(*) FROM audit_log WHERE action = 'lab.policy' AND target = 'lab:Lab 2' \
                     AND actor_username = 'schedule' AND details = '{\"exam\":true}'";
    assert_eq!(db.int(scheduled).await, 1);
    let off = ok(&["lab", "policy", "Lab 2", "--exam", "off"]);
    assert!(
        off.starts_with("exam mode of Lab 2 is now off; its exam window (") && off.ends_with(") ended with it"),
        "{off}"
    );
    assert_eq!(window().await, (0, 0));
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    assert_eq!(
        db.int("SELECT exam FROM labs WHERE name = 'Lab 2'").await,
        0,
        "the schedule did not switch it on again"
    );

    // Cleared: a window to come goes; a second clear says there is none.
    ok(&["lab", "policy", "Lab 2", "--exam-from", &from_text, "--exam-until", &until_text]);
    assert_eq!(ok(&["lab", "policy", "Lab 2", "--exam-schedule", "clear"]), "exam window of Lab 2 cleared");
    assert_eq!(ok(&["lab", "policy", "Lab 2", "--exam-schedule", "clear"]), "Lab 2 has no exam window");
    assert_eq!(window().await, (0, 0));
    assert!(!ok(&["lab", "list"]).contains("exam window"));

    let by_cli = db
        .int(
            "SELECT count(*) FROM audit_log WHERE action = 'lab.policy' AND target = 'lab:Lab 2' \
                AND actor_username LIKE 'cli%' AND details LIKE '%\"exam_window\"%'",
        )
        .await;
    // Set, moved, set started, ended by --exam off, set again, cleared: the repeat and the
    // refusals wrote nothing.
    assert_eq!(by_cli, 6);
    db.close().await;
}

#[test]
fn bad_flags_give_one_line_and_exit_2() {
    let out = run(&["serve", "--bogus"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(one_line_error(&out).contains("--bogus"));
    let out = run(&["serve", "--http-listen", "not-an-address"]);
    assert_eq!(out.status.code(), Some(2));
    one_line_error(&out);
    // A missing flag is named.
    let out = run(&["lab", "assign", "Lab A"]);
    assert_eq!(out.status.code(), Some(2));
    let e = one_line_error(&out);
    assert!(e.contains("not provided: <USERNAME>"), "{e}");
}

#[test]
fn bad_configuration_gives_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data = data.to_str().unwrap();
    let config = dir.path().join("labbeam.toml");
    let cfg = config.to_str().unwrap();
    let serve = |extra: &[&str]| {
        let mut args = vec!["serve", "--config", cfg, "--data-dir", data, "--turn-listen", "127.0.0.1:0"];
        args.extend_from_slice(extra);
        run(&args)
    };

    std::fs::write(&config, "http_listen = \"127.0.0.1:0\"\nfavourite_colour = \"blue\"\n").unwrap();
    let e = one_line_error(&serve(&[]));
    assert!(e.contains("favourite_colour") && e.contains("line 2"), "{e}");

    std::fs::write(&config, "http_listen = \"somewhere:port\"\n").unwrap();
    let e = one_line_error(&serve(&[]));
    assert!(e.contains("line 1"), "{e}");

    std::fs::write(&config, "[tls]\ncert = \"/nonexistent/cert.pem\"\nkey = \"/nonexistent/key.pem\"\n").unwrap();
    let e = one_line_error(&serve(&["--http-listen", "127.0.0.1:0"]));
    assert!(e.contains("/nonexistent/cert.pem"), "{e}");

    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    std::fs::write(&config, "").unwrap();
    let e = one_line_error(&serve(&["--http-listen", &addr]));
    assert!(e.contains("already in use") && e.contains(&addr), "{e}");

    let out = Command::new(binary())
        .args(["serve", "--config", cfg, "--data-dir", data])
        .env("LABBEAM_AUTH_SESSION_TTL_SECS", "forever")
        .output()
        .unwrap();
    assert!(one_line_error(&out).contains("LABBEAM_AUTH_SESSION_TTL_SECS"));

    let e = one_line_error(&run(&["serve", "--config", "/nonexistent/labbeam.toml"]));
    assert!(e.contains("/nonexistent/labbeam.toml"), "{e}");
}

#[tokio::test]
async fn restart_keeps_users_secrets_and_certificate() {
    let mut s = Server::start().await;
    let admin_otp = s.first_admin_password.clone().expect("first admin");
    s.add_user("olga", "student");
    let token = s.login("olga", PASSWORD).await;
    let fingerprint = s.fingerprint.clone();
    assert_eq!(fingerprint.len(), 95);
    assert_eq!(s.stop(), Some(0), "SIGTERM exits cleanly");
    s.restart().await;
    assert_eq!(s.fingerprint, fingerprint, "certificate reused");
    assert!(s.first_admin_password.is_none(), "no second admin is created");
    assert_eq!(s.get("/api/me", &token).await.0, 200, "sessions survive a restart");
    s.login("admin", &admin_otp).await;
    s.login("olga", PASSWORD).await;
}

/// A first start that fails once the store is ready (here: the TURN-over-TLS port is taken,
/// bound after the store opens) must not leave an admin whose one-time password nobody saw:
/// the first start that comes up makes the admin and prints its password. Until the admin
/// has chosen a password, every start prints the command that makes a new one-time password
/// (how an install that an older LabBeam locked out gets in).
#[tokio::test]
async fn a_failed_first_start_does_not_lock_the_admin_out() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let options = Options { config: Some(format!("[turn]\ntls_port = {port}\n")), ..Default::default() };
    let (mut s, error) = Server::start_failing(options).await;
    assert!(error.contains("already in use") && error.contains(&format!(":{port}")), "{error}");
    drop(taken);
    s.set_config(None);
    s.restart().await;
    let otp = s.first_admin_password.clone().unwrap_or_else(|| panic!("no admin password in {:#?}", s.banner));
    let token = s.login("admin", &otp).await;
    assert_eq!(s.get("/api/me", &token).await.1["must_change_password"], true);

    // Signed in but not changed: the next start cannot show that password again; it says
    // what to run instead, and that command works as printed.
    s.restart().await;
    assert!(s.first_admin_password.is_none(), "no second admin: {:#?}", s.banner);
    let banner = s.banner.join("\n");
    assert!(banner.contains("First admin:  admin has not chosen a password yet"), "{banner}");
    let command = s
        .banner
        .iter()
        .find_map(|l| l.trim().strip_prefix("labbeam "))
        .unwrap_or_else(|| panic!("no labbeam command in {banner}"));
    let args: Vec<&str> = command.split_whitespace().collect();
    assert_eq!(args[..3], ["user", "passwd", "admin"], "{command}");
    let data_dir = s.data_dir();
    assert!(command.ends_with(&format!("--data-dir {}", data_dir.display())), "{command}");
    let mut passwd = Command::new(binary());
    passwd.args(&args);
    if let Some(url) = s.store_url() {
        passwd.env("LABBEAM_STORE_URL", url);
    }
    let out = passwd.output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let new_otp = stdout.lines().find_map(|l| l.split_once("login): ")).map(|(_, pw)| pw.trim()).unwrap();
    assert_eq!(s.login_raw("admin", &otp).await.status(), 401, "the old one-time password is gone");
    let token = s.login("admin", new_otp).await;
    let r = s
        .client()
        .post(s.url("/api/me/password"))
        .bearer_auth(&token)
        .json(&serde_json::json!({ "current_password": new_otp, "new_password": PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // With a password of the admin's own, the banner has nothing to say about it.
    s.restart().await;
    assert!(!s.banner.iter().any(|l| l.contains("First admin")), "{:#?}", s.banner);
    s.login("admin", PASSWORD).await;
}

#[tokio::test]
async fn doctor_reports_each_check() {
    let s = Server::start().await;
    let out = s.cli(&["doctor"], None);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    // One line per check: the status, the check's name, what was found.
    assert!(lines_with(&out, "ok", "configuration is valid").iter().any(|l| l.contains(" config ")), "{text}");
    assert_eq!(lines_with(&out, "ok", "the schema is current").len(), 1, "{text}");
    assert!(text.contains("SHA-256"), "{text}");
    // What the TURN relay reaches, in words: nothing private until a lab says so.
    let policy = lines_with(&out, "ok", "turn.peer_policy");
    assert_eq!(policy.len(), 1, "{text}");
    assert!(
        policy[0].contains("the TURN relay reaches") && policy[0].contains("no private (campus) address"),
        "{text}"
    );
    assert!(s.cli(&["lab", "add", "Lab 1", "--cidr", "10.20.0.0/16"], None).status.success());
    let text = String::from_utf8_lossy(&s.cli(&["doctor"], None).stdout).to_string();
    assert!(text.contains("the labs' address ranges (10.20.0.0/16)"), "{text}");
}

/// Every file and folder under `root`: its bytes (none for a folder), mtime and mode.
fn snapshot(root: &std::path::Path) -> BTreeMap<PathBuf, (Option<Vec<u8>>, SystemTime, u32)> {
    let mut out = BTreeMap::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(path) = todo.pop() {
        let meta = std::fs::symlink_metadata(&path).unwrap();
        let bytes = if meta.is_dir() {
            todo.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
            None
        } else {
            Some(std::fs::read(&path).unwrap())
        };
        out.insert(path, (bytes, meta.modified().unwrap(), meta.permissions().mode()));
    }
    out
}

/// The lines of `out`'s standard output that start with `status` and mention `text`.
fn lines_with(out: &Output, status: &str, text: &str) -> Vec<String> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.starts_with(status) && l.contains(text))
        .map(str::to_string)
        .collect()
}

const NAMES_ABC: &str = "public_host = \"a.lab.test\"\n[tls]\nextra_names = [\"b.lab.test\", \"c.lab.test\"]\n";
/// The same names in another order and case.
const NAMES_CBA: &str = "public_host = \"a.lab.test\"\n[tls]\nextra_names = [\"C.Lab.Test\", \"b.lab.test\"]\n";

#[tokio::test]
async fn doctor_changes_nothing_in_the_data_dir() {
    let mut s = Server::start_with(Options { config: Some(NAMES_ABC.into()), ..Default::default() }).await;
    let fingerprint = s.fingerprint.clone();
    let data = s.data_dir();
    let other = tempfile::tempdir().unwrap();
    let cba = other.path().join("cba.toml");
    std::fs::write(&cba, NAMES_CBA).unwrap();
    let elsewhere = other.path().join("elsewhere.toml");
    std::fs::write(&elsewhere, "public_host = \"elsewhere.lab.test\"\n").unwrap();

    // While the server runs: its certificate and key are not touched, whatever names
    // doctor's configuration has.
    let tls = snapshot(&data.join("tls"));
    for config in [&cba, &elsewhere] {
        s.cli(&["doctor", "--config", config.to_str().unwrap()], None);
        assert_eq!(snapshot(&data.join("tls")), tls, "doctor with {} rewrote the certificate", config.display());
    }
    assert_eq!(s.stop(), Some(0));

    // Stopped: not one byte, mtime or mode changes, and nothing is created.
    let before = snapshot(&data);
    for args in [vec!["doctor"], vec!["doctor", "--config", cba.to_str().unwrap()]] {
        let out = s.cli(&args, None);
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(text.contains(&fingerprint), "{args:?}: the certificate in use is reported: {text}");
        assert_eq!(snapshot(&data), before, "{args:?} changed the data dir: {text}");
    }
    // What the next start of serve will do is a warning (doctor's lines are ok, warn or FAIL).
    let out = s.cli(&["doctor", "--config", elsewhere.to_str().unwrap()], None);
    assert_eq!(lines_with(&out, "warn", "elsewhere.lab.test").len(), 1, "{}", String::from_utf8_lossy(&out.stdout));
    assert_eq!(snapshot(&data), before);
}

#[test]
fn doctor_creates_nothing_when_the_data_dir_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let out = run(&["doctor", "--data-dir", data.to_str().unwrap(), "--config", "/dev/null"]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(!data.exists(), "doctor created {}: {text}", data.display());
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "{text}");
    // Not set up yet is a warning, not a failure: the first start of serve creates it.
    assert_eq!(lines_with(&out, "warn", "does not exist").len(), 1, "{text}");
}

#[tokio::test]
async fn an_open_data_dir_fails_doctor_and_is_tightened_at_start() {
    let mut s = Server::start().await;
    assert_eq!(s.stop(), Some(0));
    let data = s.data_dir();
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();

    let out = s.cli(&["doctor"], None);
    let fails = lines_with(&out, "FAIL", "0755");
    assert_eq!(fails.len(), 1, "{}", String::from_utf8_lossy(&out.stdout));
    assert!(!out.status.success());
    assert_eq!(mode(&data), 0o755, "doctor only reports");

    s.restart().await;
    assert_eq!(mode(&data), 0o700);
    let log = std::fs::read_to_string(s.log_path()).unwrap();
    assert!(log.lines().any(|l| l.contains("0755") && l.contains("0700")), "the log says so: {log}");
    let out = s.cli(&["doctor"], None);
    assert!(lines_with(&out, "FAIL", "data directory").is_empty(), "{}", String::from_utf8_lossy(&out.stdout));
}

/// Runs `serve` on `data` with `config` until its banner shows the certificate's fingerprint.
fn serve_fingerprint(data: &std::path::Path, config: &std::path::Path) -> String {
    let mut child = Command::new(binary())
        .args(["serve", "--http-listen", "127.0.0.1:0", "--turn-listen", "127.0.0.1:0", "--data-dir"])
        .arg(data)
        .arg("--config")
        .arg(config)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let fingerprint = stdout
        .lines()
        .map_while(Result::ok)
        .find_map(|l| l.trim().strip_prefix("SHA-256:").map(|f| f.trim().to_string()));
    let _ = child.kill();
    let _ = child.wait();
    fingerprint.expect("banner with SHA-256")
}

#[test]
fn host_names_in_another_order_keep_the_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (abc, cba, other) = (dir.path().join("abc.toml"), dir.path().join("cba.toml"), dir.path().join("d.toml"));
    std::fs::write(&abc, NAMES_ABC).unwrap();
    std::fs::write(&cba, NAMES_CBA).unwrap();
    std::fs::write(&other, "public_host = \"d.lab.test\"\n").unwrap();
    let first = serve_fingerprint(&data, &abc);
    assert_eq!(serve_fingerprint(&data, &cba), first, "same names, another order and case");
    assert_ne!(serve_fingerprint(&data, &other), first, "other names make a new certificate");
}

// ---------------------------------------------------------------------------------------
// `labbeam store copy`

/// The tables `store copy` carries, in its order.
const STORE_TABLES: [&str; 17] = [
    "roles",
    "role_permissions",
    "users",
    "labs",
    "lab_ranges",
    "lab_seats",
    "user_labs",
    "sessions",
    "audit_log",
    "transfers",
    "broadcasts",
    "announcements",
    "handins",
    "handin_receipts",
    "handin_attempts",
    "settings",
    "connection_tests",
];

fn sqlite_url(path: &std::path::Path) -> String {
    format!("sqlite://{}", path.display())
}

/// Runs `labbeam store copy` as the admin would (with the server's flags, as `s.cli` gives
/// them, when `s` is given).
fn store_copy(s: Option<&Server>, from: &str, to: &str, force: bool) -> Output {
    let mut args = vec!["store", "copy", "--from", from, "--to", to];
    if force {
        args.push("--force");
    }
    match s {
        Some(s) => s.cli(&args, None),
        None => run(&args),
    }
}

/// A successful copy's table lines: table -> (rows, checksum prefix).
fn copied(out: &Output) -> BTreeMap<String, (u64, String)> {
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "store copy failed:\n{text}");
    let tables: BTreeMap<String, (u64, String)> = text
        .lines()
        .filter(|l| l.starts_with("  "))
        .map(|l| {
            let words: Vec<&str> = l.split_whitespace().collect();
            assert_eq!(words.len(), 5, "{l}");
            assert_eq!(words[3], "sha256", "{l}");
            (words[0].to_string(), (words[1].parse().unwrap(), words[4].to_string()))
        })
        .collect();
    assert_eq!(tables.keys().map(String::as_str).collect::<Vec<_>>(), {
        let mut t = STORE_TABLES.to_vec();
        t.sort();
        t
    });
    let last = text.lines().last().unwrap_or("");
    assert!(last.starts_with("copied ") && last.contains("verified"), "{text}");
    tables
}

async fn row_counts(db: &harness::Store) -> BTreeMap<&'static str, i64> {
    let mut counts = BTreeMap::new();
    for table in STORE_TABLES {
        counts.insert(table, db.int(&format!("SELECT count(*) FROM {table}")).await);
    }
    counts
}

/// Rows of every kind, made the way an appliance makes them: the API, the portal and the
/// command line; the transfer log, a broadcast and announcements (which only live sockets
/// write) inserted directly. Returns the admin's token.
async fn populate(s: &Server) -> String {
    use harness::sql_text as t;
    let token = s.admin().await;
    let admin = harness::Browser::login(s, "admin").await;
    let csrf = admin.csrf().await;
    let (status, _, _) = admin.post("/admin/roles", &[("csrf", &csrf), ("name", "viewer")]).await;
    assert_eq!(status, 303, "custom role");
    let db = s.store().await;
    let viewer = db.int("SELECT id FROM roles WHERE name = 'viewer'").await;
    let form = [("csrf", csrf.as_str()), ("perm_portal.access", "on"), ("perm_transfer.receive", "on")];
    assert_eq!(admin.post(&format!("/admin/roles/{viewer}"), &form).await.0, 303);
    for (user, role) in [("vic", "viewer"), ("prof", "instructor"), ("zoë", "student"), ("stu", "student")] {
        s.add_user(user, role);
    }
    for args in [
        &["lab", "add", "Lab A", "--cidr", "10.1.0.0/24", "--cidr", "10.1.1.0/24"][..],
        &["lab", "add", "Lab B", "--cidr", "10.2.0.0/24"],
        &["lab", "assign", "Lab A", "prof"],
        &["lab", "seat", "Lab A", "10.1.0.14", "Zoë's PC – row 3"],
        &["setting", "set", "transfer.request_expiry_secs", "120"],
        &["user", "disable", "stu"],
    ] {
        let out = s.cli(args, None);
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    for user in ["vic", "prof", "zoë"] {
        s.login(user, PASSWORD).await;
    }
    let ended = s.login("prof", PASSWORD).await;
    let r = s.client().post(s.url("/api/auth/logout")).bearer_auth(&ended).send().await.unwrap();
    assert!(r.status().is_success(), "logout");

    let now = harness::now();
    let prof = db.int("SELECT id FROM users WHERE username = 'prof'").await;
    let zoe = db.int("SELECT id FROM users WHERE username = 'zoë'").await;
    db.exec(&format!(
        "INSERT INTO announcements (from_user_id, from_name, lab, text, created_at, expires_at) VALUES \
         ({prof}, 'Prof', 'Lab A', {}, {now}, {}), (NULL, 'Admin', NULL, 'Everyone: the lab closes at 6', {now}, {})",
        t("Exam at 10 — bring your ID ✓ (it's \"required\")"),
        now + 3600,
        now + 60
    ))
    .await;
    db.exec(&format!(
        "INSERT INTO broadcasts (id, sender_id, sender_username, target, files, total_bytes, recipients, created_at) \
         VALUES ('bc1', {prof}, 'prof', '{{\"lab\":\"Lab A\"}}', '[{{\"name\":\"exam.pdf\",\"size\":5}}]', 5, 2, {now})"
    ))
    .await;
    let files =
        t(&serde_json::json!([{ "name": "Résumé – final.pdf", "size": 123456, "mime": "application/pdf" }])
            .to_string());
    db.exec(&format!(
        "INSERT INTO transfers (id, sender_id, receiver_id, sender_username, receiver_username, sender_device, \
         receiver_device, sender_lab, receiver_lab, files, file_count, total_bytes, bytes, sha256, status, path, \
         requested_at, accepted_at, finished_at, duration_ms, failure_reason, broadcast_id) VALUES \
         ('direct1', {zoe}, {prof}, 'zoë', 'prof', 'pc-1', 'pc-2', 'Lab A', 'Lab A', {files}, 1, 123456, 123456, \
          'ab12', 'completed', 'relay', {now}, {now}, {}, 2500, '', NULL), \
         ('bcrow1', {prof}, {zoe}, 'prof', 'zoë', 'pc-9', 'pc-1', 'Lab A', 'Lab A', \
          '[{{\"name\":\"exam.pdf\",\"size\":5}}]', 1, 5, 0, '', 'failed', '', {}, NULL, NULL, NULL, \
          {}, 'bc1'), \
         ('gone1', NULL, NULL, 'left', 'also left', '', '', '', '', '[]', 0, 0, 0, '', 'expired', '', {}, NULL, \
          NULL, NULL, '', NULL)",
        now + 3,
        now - 1,
        t("receiver's disk is full"),
        now - 2,
    ))
    .await;
    db.exec(&format!(
        "INSERT INTO handins (id, lab, owner_id, owner_username, collector_device_key, title, instructions, extensions, \
         max_bytes, allow_late, deadline, created_at, closed_at) VALUES ('h1', 'Lab A', {prof}, 'prof', \
         'prof-pc-0123456789', {}, '', 'pdf,py', 1000000, 1, {}, {now}, NULL)",
        t("Week 3 — loops ✓"),
        now + 3600
    ))
    .await;
    db.exec(&format!(
        "INSERT INTO handin_receipts (handin_id, user_id, version, username, transfer_id, files, total_bytes, \
         received_at, late) VALUES ('h1', {zoe}, 1, 'zoë', 'direct1', {}, 123456, {now}, 0)",
        t(&serde_json::json!([{ "name": "Résumé – final.pdf", "size": 123456, "sha256": "ab".repeat(32) }])
            .to_string())
    ))
    .await;
    db.exec(&format!("INSERT INTO handin_attempts (handin_id, user_id, first_at) VALUES ('h1', {zoe}, {})", now - 60))
        .await;
    db.exec(&format!(
        "INSERT INTO connection_tests (tested_at, user_id, username, device, client_addr, lab, direct, stun, \
         relay_udp, relay_tcp, relay_tls) VALUES ({now}, {zoe}, 'zoë', {}, '10.1.0.14', 'Lab A', 'ok', 'failed', \
         'failed', 'ok', 'ok')",
        t("Zoë's PC – row 3")
    ))
    .await;
    // More rows than one INSERT of the copy takes, each with its own time (the log's order).
    db.exec(&format!(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2345) \
         INSERT INTO transfers (id, sender_username, receiver_username, files, file_count, total_bytes, status, \
         requested_at) SELECT 'bulk' || i, 'vic', 'zoë', '[{{\"name\":\"f' || i || '.txt\",\"size\":' || i || '}}]', \
         1, i, 'completed', {now} - 10 - i FROM n"
    ))
    .await;
    db.close().await;
    token
}

/// What the transfer log shows the admin: every page of `/api/transfers`.
async fn transfer_log(s: &Server, token: &str) -> Vec<serde_json::Value> {
    let mut rows = Vec::new();
    let mut next: Option<String> = None;
    loop {
        let path = match &next {
            Some(c) => format!("/api/transfers?limit=500&cursor={c}"),
            None => "/api/transfers?limit=500".to_string(),
        };
        let (status, body) = s.get(&path, token).await;
        assert_eq!(status, 200, "{body}");
        rows.extend(body["transfers"].as_array().unwrap().iter().cloned());
        match body["next"].as_str() {
            Some(c) => next = Some(c.to_string()),
            None => return rows,
        }
    }
}

/// A server on a copied store: every account signs in with its password (the disabled one
/// is still refused), the transfer log reads the same, the audit log refuses updates, and
/// a new account and its audit row get fresh ids. Returns the new account's id.
async fn check_copy(url: &str, log: &[serde_json::Value], max_user_id: i64) -> i64 {
    let s =
        Server::start_with(Options { env: vec![("LABBEAM_STORE_URL".into(), url.to_string())], ..Default::default() })
            .await;
    assert!(s.first_admin_password.is_none(), "{url}: the copied admin is there");
    let token = s.login("admin", PASSWORD).await;
    for user in ["vic", "prof", "zoë"] {
        s.login(user, PASSWORD).await;
    }
    assert_eq!(s.login_raw("stu", PASSWORD).await.status(), 401, "stu is still disabled");
    let (_, me) = s.get("/api/me", &s.login("vic", PASSWORD).await).await;
    assert_eq!(me["role"], "viewer", "{me}");
    assert_eq!(transfer_log(&s, &token).await, log, "{url}: the transfer log");
    let db = s.store().await;
    let e = db.try_exec("UPDATE audit_log SET action = 'nothing'").await.unwrap_err();
    assert!(e.contains("append-only"), "{url}: {e}");
    let audit_before = db.int("SELECT max(id) FROM audit_log").await;
    s.add_user("newbie", "student");
    let id = db.int("SELECT id FROM users WHERE username = 'newbie'").await;
    assert_eq!(id, max_user_id + 1, "{url}: a new user's id follows the copied ones");
    assert!(db.int("SELECT max(id) FROM audit_log").await > audit_before);
    db.close().await;
    id
}

#[tokio::test]
async fn store_copy_moves_every_row_between_sqlite_and_postgres() {
    let dir = tempfile::tempdir().unwrap();
    let first = sqlite_url(&dir.path().join("first.db"));
    // A SQLite-backed appliance, in the PostgreSQL run of the suite too.
    let mut s =
        Server::start_with(Options { env: vec![("LABBEAM_STORE_URL".into(), first.clone())], ..Default::default() })
            .await;
    let token = populate(&s).await;
    let log = transfer_log(&s, &token).await;
    assert_eq!(log.len(), 2348);
    s.stop();
    let source = harness::Store::open(&first).await;
    let counts = row_counts(&source).await;
    let max_user_id = source.int("SELECT max(id) FROM users").await;
    source.close().await;
    for (table, n) in &counts {
        assert!(*n > 0, "the test leaves {table} empty");
    }

    // SQLite to SQLite.
    let second = sqlite_url(&dir.path().join("second.db"));
    let sums = copied(&store_copy(Some(&s), &first, &second, false));
    for (table, n) in &counts {
        assert_eq!(sums[*table].0, *n as u64, "{table}");
    }
    assert_eq!(row_counts(&harness::Store::open(&second).await).await, counts);
    check_copy(&second, &log, max_user_id).await;

    let Some(admin_url) = harness::test_postgres() else {
        println!("PostgreSQL parts skipped: TEST_POSTGRES_URL is not set (tests/postgres.sh starts a server)");
        return;
    };
    // SQLite to an empty PostgreSQL database: the same rows, to the checksum.
    let pg = harness::fresh_postgres_database(&admin_url).await;
    assert_eq!(copied(&store_copy(Some(&s), &first, &pg, false)), sums);
    assert_eq!(row_counts(&harness::Store::open(&pg).await).await, counts);
    // And back to SQLite.
    let back = sqlite_url(&dir.path().join("back.db"));
    assert_eq!(copied(&store_copy(None, &pg, &back, false)), sums);
    assert_eq!(row_counts(&harness::Store::open(&back).await).await, counts);

    let newbie = check_copy(&pg, &log, max_user_id).await;
    let db = harness::Store::open(&pg).await;
    assert_eq!(db.int(&format!("SELECT count(*) FROM users WHERE id = {newbie}")).await, 1);
    // Not again over a store that is in use...
    let e = one_line_error(&store_copy(None, &first, &pg, false));
    assert!(e.contains("is not empty") && e.contains("users (") && e.contains("--force"), "{e}");
    assert_eq!(db.int("SELECT count(*) FROM users").await, counts["users"] + 1, "refused: nothing changed");
    // ...unless told to replace it.
    assert_eq!(copied(&store_copy(None, &first, &pg, true)), sums);
    assert_eq!(row_counts(&db).await, counts);
    db.close().await;
    check_copy(&back, &log, max_user_id).await;
}

#[tokio::test]
async fn store_copy_refuses_with_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name);
    let target = sqlite_url(&path("target.db"));

    let e = one_line_error(&store_copy(None, "mysql://lb:hunter2@db/labbeam", &target, false));
    assert!(e.contains("--from") && e.contains("sqlite:// or postgres://") && !e.contains("hunter2"), "{e}");
    let e = one_line_error(&store_copy(None, &sqlite_url(&path("missing.db")), &target, false));
    assert!(e.contains("no such file"), "{e}");
    let e = one_line_error(&store_copy(None, "postgres://lb:hunter2@127.0.0.1:1/labbeam", &target, false));
    assert!(e.contains("cannot connect") && e.contains("lb@127.0.0.1:1/labbeam") && !e.contains("hunter2"), "{e}");
    assert!(!path("target.db").exists(), "a failed copy creates no target");

    // Sources at another schema than this binary's.
    let migrations = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../migrations/sqlite");
    let migrator = sqlx::migrate::Migrator::new(migrations).await.unwrap();
    let sqlite = |name: &str| {
        let options = sqlx::sqlite::SqliteConnectOptions::new().filename(path(name)).create_if_missing(true);
        async move { sqlx::SqlitePool::connect_with(options).await.unwrap() }
    };
    let behind = sqlite("behind.db").await;
    migrator.run_to(6, &behind).await.unwrap();
    behind.close().await;
    let e = one_line_error(&store_copy(None, &sqlite_url(&path("behind.db")), &target, false));
    assert!(e.contains("behind") && e.contains("start `labbeam serve` on it once"), "{e}");
    let newer = sqlite("newer.db").await;
    migrator.run(&newer).await.unwrap();
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES (9999, 'from the future', 1, x'00', 0)",
    )
    .execute(&newer)
    .await
    .unwrap();
    newer.close().await;
    let e = one_line_error(&store_copy(None, &sqlite_url(&path("newer.db")), &target, false));
    assert!(e.contains("newer LabBeam"), "{e}");
    sqlite("empty.db").await.close().await;
    let e = one_line_error(&store_copy(None, &sqlite_url(&path("empty.db")), &target, false));
    assert!(e.contains("holds no LabBeam store"), "{e}");

    // A store copied onto itself, however it is spelled.
    let e = one_line_error(&store_copy(
        None,
        &sqlite_url(&path("newer.db")),
        &format!("sqlite://{}/../{}/newer.db", dir.path().display(), dir.path().file_name().unwrap().to_str().unwrap()),
        false,
    ));
    assert!(e.contains("the same database"), "{e}");
    // The flags are the contract.
    let out = run(&["store", "copy", "--from", &target]);
    assert_eq!(out.status.code(), Some(2));
    assert!(one_line_error(&out).contains("--to"));
}
