//! Announcements: short texts to a lab or to everyone, shown at once to the devices there
//! and to late joiners until they expire or are withdrawn (`announce`, `announce:withdraw`;
//! the portal's Announcements page withdraws through [`withdraw_by`] too).
//!
//! Scope as broadcasts: admins (`users.manage`) address any lab or everyone, instructors the
//! labs they are responsible for. Only the author or an admin withdraws. Every announcement
//! and withdrawal is audited.

use serde_json::Value;

use super::hub::{Audience, Emit};
use super::ids::PeerId;
use super::payloads::{Announce, AnnounceWithdraw, Target};
use super::protocol::{self, AnnounceAck, Announcement, AnnouncementWithdrawn, ServerEvent};
use super::{SignalError, deliver, member_of};
use crate::audit::{self, Actor, AuditEvent};
use crate::db;
use crate::labs::{self, LabName};
use crate::permission::Permission;
use crate::state::AppState;
use crate::text::clean_text;

/// Longest announcement, in characters.
pub const MAX_CHARS: usize = 500;

fn audience(lab: Option<&str>) -> Audience {
    match lab {
        Some(l) => Audience::InLab(LabName::from(l)),
        None => Audience::Everyone,
    }
}

pub async fn announce(state: AppState, peer: PeerId, req: Announce) -> Result<Value, SignalError> {
    let member = member_of(&state, &peer)?;
    if !member.has(Permission::Announce) {
        return Err(SignalError::Forbidden(Permission::Announce.name()));
    }
    let text = clean_text(&req.text, MAX_CHARS);
    if text.is_empty() {
        return Err(SignalError::Invalid("text must not be empty".into()));
    }
    let ttl = req.ttl_secs.unwrap_or(3600).clamp(60, 86_400) as i64;
    let reach = super::broadcast::Reach::of(&member);
    let lab = match &req.target {
        Target::Lab { lab } => {
            if lab.as_str() != labs::OTHER && db::labs::by_name(&state.db, lab.as_str()).await?.is_none() {
                return Err(SignalError::UnknownLab(lab.to_string()));
            }
            if !reach.allows(lab) {
                return Err(SignalError::Forbidden("announce (to this lab: you are not responsible for it)"));
            }
            Some(lab.clone())
        }
        Target::All { all: true } if reach.is_anywhere() => None,
        Target::All { all: true } => return Err(SignalError::Forbidden("announce (to all labs)")),
        _ => return Err(SignalError::Invalid("announce to {lab} or {all:true}".into())),
    };
    let lab = lab.as_ref().map(LabName::as_str);
    let a =
        db::announcements::create(&state.db, member.peer.user_id, &member.peer.display_name, lab, &text, ttl).await?;
    audit::record(&state.db, &member.actor(), AuditEvent::Announced { id: a.id, lab, text: &text, ttl_secs: ttl })
        .await?;
    let event = ServerEvent::Announcement(Announcement::from(&a));
    deliver(&state, vec![Emit { to: audience(lab), except: None, event }]).await;
    Ok(protocol::ack(&AnnounceAck { id: a.id }))
}

pub async fn withdraw(state: AppState, peer: PeerId, req: AnnounceWithdraw) -> Result<Value, SignalError> {
    let member = member_of(&state, &peer)?;
    if !member.has(Permission::Announce) && !member.has(Permission::UsersManage) {
        return Err(SignalError::Forbidden(Permission::Announce.name()));
    }
    withdraw_by(&state, &member.actor(), member.has(Permission::UsersManage), req.id).await?;
    Ok(protocol::ack(&serde_json::json!({})))
}

/// Ends announcement `id` now, for `actor` (who may withdraw only their own unless
/// `any`), and tells the devices that show it.
pub async fn withdraw_by(state: &AppState, actor: &Actor, any: bool, id: i64) -> Result<(), SignalError> {
    let Some(a) = db::announcements::live_by_id(&state.db, id).await? else {
        return Err(SignalError::UnknownAnnouncement);
    };
    if !any && a.from_user_id != actor.user_id {
        return Err(SignalError::Forbidden("users.manage (to withdraw someone else's announcement)"));
    }
    if !db::announcements::withdraw(&state.db, id).await? {
        return Err(SignalError::UnknownAnnouncement);
    }
    audit::record(&state.db, actor, AuditEvent::AnnouncementWithdrawn { id, lab: a.lab.as_deref() }).await?;
    let event = ServerEvent::AnnouncementWithdrawn(AnnouncementWithdrawn { id });
    deliver(state, vec![Emit { to: audience(a.lab.as_deref()), except: None, event }]).await;
    Ok(())
}
