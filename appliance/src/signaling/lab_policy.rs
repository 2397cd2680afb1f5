//! A lab's policies from the web client (docs/PROTOCOL.md, "Exam mode"): its responsible
//! instructor, or an admin, switches its exam mode and sets its visibility.
//!
//! - `lab:policy {lab, exam?, visibility?}`: through `lab_admin`, as the CLI and the portal
//!   do, so each change is audited with who made it (the device's user and address) and
//!   reaches the lab's live devices within a second (the access counter, `access_watch`).
//!   The visibility goes first, then exam mode; the ack is the lab's policies after both.
//! - `lab:policies`: the labs the caller may set, each with its policies, so that a client
//!   can draw its switches.
//!
//! Who may: admins (`users.manage`) any lab; holders of `broadcast.send` the labs they are
//! responsible for (`labbeam lab assign`), the rule of broadcasts and hand-ins
//! (`broadcast::Reach`). Everyone else is refused (`forbidden`), so students never can.

use serde_json::Value;

use super::broadcast::Reach;
use super::hub::Member;
use super::ids::PeerId;
use super::payloads::{LabPolicy, NoFields};
use super::protocol::{self, LabPoliciesAck, LabPolicyState};
use super::{SignalError, member_of};
use crate::db;
use crate::lab_admin::{self, LabError};
use crate::labs::LabName;
use crate::permission::Permission;
use crate::state::AppState;

impl From<LabError> for SignalError {
    fn from(e: LabError) -> Self {
        match e {
            LabError::Db(d) => d.into(),
            LabError::NoSuchLab(name) => SignalError::UnknownLab(name),
            LabError::NoLabWithId(id) => SignalError::UnknownLab(format!("#{id}")),
            LabError::Invalid(what) => SignalError::Invalid(what),
            other => SignalError::Internal(other.to_string()),
        }
    }
}

/// Where `member` may set policies, or why not at all.
fn reach(member: &Member) -> Result<Reach, SignalError> {
    if member.has(Permission::UsersManage) || member.has(Permission::BroadcastSend) {
        Ok(Reach::of(member))
    } else {
        Err(SignalError::Forbidden("broadcast.send (to set a lab's policies, for a lab you are responsible for)"))
    }
}

pub async fn set(state: AppState, peer: PeerId, req: LabPolicy) -> Result<Value, SignalError> {
    let member = member_of(&state, &peer)?;
    let reach = reach(&member)?;
    if req.exam.is_none() && req.visibility.is_none() {
        return Err(SignalError::Invalid(
            "give exam (true or false), visibility (\"own\", \"all\" or \"default\"), or both".into(),
        ));
    }
    let lab = lab_admin::lab_named(&state.db, req.lab.as_str()).await?;
    if !reach.allows(&LabName::from(lab.name.as_str())) {
        return Err(SignalError::Forbidden("broadcast.send (for this lab: you are not responsible for it)"));
    }
    let actor = member.actor();
    if let Some(visibility) = req.visibility {
        lab_admin::set_visibility(&state.db, &actor, &lab, visibility.choice()).await?;
    }
    if let Some(on) = req.exam {
        lab_admin::set_exam(&state.db, &actor, &lab, on).await?;
    }
    let row = db::labs::policy_of(&state.db, lab.id).await?.ok_or_else(|| SignalError::UnknownLab(lab.name.clone()))?;
    Ok(protocol::ack(&LabPolicyState::from(&row)))
}

pub async fn list(state: AppState, peer: PeerId, _: Option<NoFields>) -> Result<Value, SignalError> {
    let member = member_of(&state, &peer)?;
    let reach = reach(&member)?;
    let labs = db::labs::policies(&state.db)
        .await?
        .iter()
        .filter(|row| reach.allows(&LabName::from(row.name.as_str())))
        .map(LabPolicyState::from)
        .collect();
    Ok(protocol::ack(&LabPoliciesAck { labs }))
}
