//! The names signaling gives things, as types: a socket (`PeerId`), a transfer
//! (`TransferId`), a relay-tree link of a broadcast (`LinkId`), a device (`DeviceKey`). Each
//! is its text on the wire (serde-transparent), so the protocol is unchanged; in the code a
//! transfer id cannot be passed where a socket is meant, and what a `signal` travels over is
//! told once, by `Channel::parse`, not by looking for a `-` wherever it matters.
//!
//! The ids that come from clients are checked for shape (`payloads::validate_id`) before any
//! rule sees them; these types add no check of their own, so an unknown id is an unknown
//! transfer or a party mismatch, exactly as before.

use std::fmt;

use serde::{Deserialize, Serialize};

macro_rules! text_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[cfg_attr(test, derive(ts_rs::TS))]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl From<String> for $name {
            fn from(s: String) -> Self {
                $name(s)
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                $name(s.to_string())
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

text_id!(
    /// A connected socket (socketioxide's socket id): one browser tab. Its room is
    /// `peer:<id>`.
    PeerId
);

text_id!(
    /// A transfer, also a transfer-log row: 24 hex digits chosen by the server
    /// (`events::new_id`). Each recipient of a broadcast has one too.
    TransferId
);

text_id!(
    /// A device: the id its browser generated and keeps across reloads (`deviceId` of the
    /// connect `auth`), or `socket:<peer id>` for a client that sent none (it can then never
    /// re-claim a transfer). Never sent to other clients.
    DeviceKey
);

text_id!(
    /// An edge of a broadcast's relay tree, `<broadcast id>-<n>`: signaled over like a
    /// transfer, only between its parent and its child.
    LinkId
);

impl LinkId {
    /// The `n`th link of broadcast `broadcast`.
    pub fn new(broadcast: &str, n: u64) -> LinkId {
        LinkId(format!("{broadcast}-{n}"))
    }

    /// `id` if it has the shape of a link id: a broadcast id, `-`, a number. Broadcast and
    /// transfer ids are hex digits, so a transfer id never parses as a link.
    pub fn parse(id: &str) -> Option<LinkId> {
        let (broadcast, n) = id.rsplit_once('-')?;
        let numbered = !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit());
        (!broadcast.is_empty() && numbered).then(|| LinkId(id.to_string()))
    }

    /// The broadcast this link belongs to.
    pub fn broadcast(&self) -> &str {
        self.0.rsplit_once('-').map_or("", |(b, _)| b)
    }
}

/// What a `signal` travels over, told from its `transferId` field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Channel {
    /// An accepted transfer, between its two parties (`hub`).
    Transfer(TransferId),
    /// A relay-tree link, between its parent and child (`broadcast`).
    Link(LinkId),
}

impl Channel {
    pub fn parse(id: &str) -> Channel {
        match LinkId::parse(id) {
            Some(link) => Channel::Link(link),
            None => Channel::Transfer(TransferId::from(id)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signal_goes_over_a_link_only_when_its_id_is_shaped_like_one() {
        let link = LinkId::new("0a1b2c", 7);
        assert_eq!(link.as_str(), "0a1b2c-7");
        assert_eq!(link.broadcast(), "0a1b2c");
        assert_eq!(Channel::parse("0a1b2c-7"), Channel::Link(link));
        for transfer in ["0a1b2c3d4e5f60718293a4b5", "0a1b2c-", "-7", "0a1b2c-x7", "a_b"] {
            assert_eq!(Channel::parse(transfer), Channel::Transfer(transfer.into()), "{transfer:?}");
        }
    }

    #[test]
    fn ids_are_their_text_on_the_wire() {
        let peer: PeerId = serde_json::from_str(r#""AbC_12""#).unwrap();
        assert_eq!(peer.as_str(), "AbC_12");
        assert_eq!(serde_json::to_string(&TransferId::from("t1")).unwrap(), r#""t1""#);
        assert_eq!(serde_json::to_string(&LinkId::new("b", 1)).unwrap(), r#""b-1""#);
    }
}
