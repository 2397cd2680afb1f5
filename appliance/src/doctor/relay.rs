//! The TURN relay's configuration as this machine sees it (`turn.peer_policy`).

use super::Report;
use crate::config::Config;
use crate::db;

/// The relay checks.
pub async fn checks(config: &Config, store: Option<&db::Store>, r: &mut Report) {
    peer_policy(config, store, r).await;
}

/// `turn.peer_policy`: what the relay will reach, in words, so an admin sees it before a
/// student does.
async fn peer_policy(config: &Config, store: Option<&db::Store>, r: &mut Report) {
    let Some(store) = store else {
        r.warn(
            "turn.peer_policy",
            "cannot tell what the relay reaches: the labs' ranges are in the store (see store.connect)",
        );
        return;
    };
    match crate::turn::describe_peer_policy(store, &config.turn).await {
        Ok(text) if config.turn.enabled => r.ok("turn.peer_policy", text),
        Ok(text) => r.warn("turn.peer_policy", text),
        Err(e) => r.fail("turn.peer_policy", format!("cannot read the labs' address ranges: {e}")),
    }
}
