//! The relay tree of a broadcast: which receiver gets the file's pieces from whom.
//!
//! The sender is the root; every receiver has one parent (the sender or another receiver)
//! and at most `fanout` children, so no uplink carries more than `fanout` copies. Nodes are
//! placed breadth-first (the shallowest node with a free slot), which keeps the tree as
//! flat as the fan-out allows: pieces are forwarded as they arrive, so each level adds only
//! one piece's time, not one file's.
//!
//! Repair keeps two invariants: the tree has no cycles (a node is never attached below
//! itself), and a node flagged as a bad forwarder (it sent a piece whose hash did not match
//! the sender's manifest) or gone never gets children again. When no receiver has a free
//! slot, the sender takes the child beyond its fan-out: it always has every piece.
//!
//! Plain data, no I/O: `signaling::broadcast` turns the moves into link events.

use std::collections::{HashMap, HashSet};

use super::ids::PeerId;

/// A change of parent: `child` now receives from `parent`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Move {
    pub child: PeerId,
    pub parent: PeerId,
}

#[derive(Debug, Clone)]
pub struct RelayTree {
    root: PeerId,
    fanout: usize,
    parent: HashMap<PeerId, PeerId>,
    children: HashMap<PeerId, Vec<PeerId>>,
    /// Attachment order, so that placement is deterministic.
    order: Vec<PeerId>,
    /// May not forward (sent a bad piece); still receives.
    flagged: HashSet<PeerId>,
}

impl RelayTree {
    pub fn new(root: &PeerId, fanout: usize) -> RelayTree {
        RelayTree {
            root: root.clone(),
            fanout: fanout.max(1),
            parent: HashMap::new(),
            children: HashMap::new(),
            order: vec![root.clone()],
            flagged: HashSet::new(),
        }
    }

    /// A tree over `receivers`, filled breadth-first in the given order.
    #[cfg(test)]
    pub fn plan(root: &PeerId, receivers: &[PeerId], fanout: usize) -> (RelayTree, Vec<Move>) {
        let mut tree = RelayTree::new(root, fanout);
        let moves = receivers.iter().filter_map(|r| tree.attach(r)).collect();
        (tree, moves)
    }

    pub fn root(&self) -> &PeerId {
        &self.root
    }

    pub fn contains(&self, node: &PeerId) -> bool {
        self.parent.contains_key(node)
    }

    #[cfg(test)]
    pub fn parent_of(&self, node: &PeerId) -> Option<&PeerId> {
        self.parent.get(node)
    }

    pub fn children_of(&self, node: &PeerId) -> &[PeerId] {
        self.children.get(node).map(Vec::as_slice).unwrap_or(&[])
    }

    #[cfg(test)]
    pub fn is_flagged(&self, node: &PeerId) -> bool {
        self.flagged.contains(node)
    }

    /// Hops from the sender (the sender's children are at depth 1).
    pub fn depth(&self, node: &PeerId) -> usize {
        let mut d = 0;
        let mut at = node;
        while let Some(p) = self.parent.get(at) {
            d += 1;
            at = p;
            if d > self.parent.len() {
                break;
            }
        }
        d
    }

    /// The deepest level of the tree.
    #[cfg(test)]
    pub fn height(&self) -> usize {
        self.parent.keys().map(|n| self.depth(n)).max().unwrap_or(0)
    }

    /// True when `node` is `ancestor` or lies below it.
    fn is_below(&self, node: &PeerId, ancestor: &PeerId) -> bool {
        let mut at = node;
        for _ in 0..=self.parent.len() {
            if at == ancestor {
                return true;
            }
            match self.parent.get(at) {
                Some(p) => at = p,
                None => return false,
            }
        }
        false
    }

    /// The best parent for `node`, never one below it nor one in `avoid`: the shallowest
    /// non-flagged node with a free slot (earliest attached first), else the sender.
    fn pick_parent(&self, node: &PeerId, avoid: &[&PeerId]) -> PeerId {
        let mut best: Option<(usize, usize, &PeerId)> = None;
        for (i, candidate) in self.order.iter().enumerate() {
            let is_root = *candidate == self.root;
            if !is_root && !self.parent.contains_key(candidate) {
                continue;
            }
            if self.flagged.contains(candidate) || avoid.contains(&candidate) {
                continue;
            }
            if self.is_below(candidate, node) {
                continue;
            }
            if self.children_of(candidate).len() >= self.fanout {
                continue;
            }
            let key = (self.depth(candidate), i);
            if best.is_none_or(|(d, j, _)| key < (d, j)) {
                best = Some((key.0, key.1, candidate));
            }
        }
        best.map(|(_, _, p)| p.clone()).unwrap_or_else(|| self.root.clone())
    }

    fn link(&mut self, child: &PeerId, parent: &PeerId) {
        if let Some(old) = self.parent.insert(child.clone(), parent.clone())
            && let Some(list) = self.children.get_mut(&old)
        {
            list.retain(|c| c != child);
        }
        self.children.entry(parent.clone()).or_default().push(child.clone());
    }

    /// Adds a receiver (at the start, or a late joiner). `None` if it is already in the
    /// tree or is the sender.
    pub fn attach(&mut self, node: &PeerId) -> Option<Move> {
        if *node == self.root || self.parent.contains_key(node) {
            return None;
        }
        let parent = self.pick_parent(node, &[]);
        self.order.push(node.clone());
        self.link(node, &parent);
        Some(Move { child: node.clone(), parent })
    }

    /// Removes a receiver that left; its children are re-attached elsewhere.
    pub fn detach(&mut self, node: &PeerId) -> Vec<Move> {
        let Some(old_parent) = self.parent.remove(node) else { return Vec::new() };
        if let Some(list) = self.children.get_mut(&old_parent) {
            list.retain(|c| c != node);
        }
        self.order.retain(|n| n != node);
        let orphans = self.children.remove(node).unwrap_or_default();
        let mut moves = Vec::new();
        for child in orphans {
            // Detached children hang nowhere for a moment; remove the dangling link first.
            self.parent.remove(&child);
            let parent = self.pick_parent(&child, &[node]);
            self.link(&child, &parent);
            moves.push(Move { child, parent });
        }
        moves
    }

    /// `child` gets nothing (or bad pieces) from its parent: give it another one, never the
    /// same. `None` when `child` is not in the tree.
    pub fn reparent(&mut self, child: &PeerId) -> Option<Move> {
        let old = self.parent.get(child)?.clone();
        let parent = if old == self.root {
            // Nobody is better placed than the sender; reconnect to it.
            self.root.clone()
        } else {
            self.pick_parent(child, &[&old])
        };
        self.link(child, &parent);
        Some(Move { child: child.clone(), parent })
    }

    /// `node` sent a piece that did not match the manifest: it may not forward any more, and
    /// every child it had is moved.
    pub fn flag(&mut self, node: &PeerId) -> Vec<Move> {
        if *node == self.root || !self.parent.contains_key(node) {
            return Vec::new();
        }
        self.flagged.insert(node.clone());
        let orphans = self.children.get(node).cloned().unwrap_or_default();
        let mut moves = Vec::new();
        for child in orphans {
            let parent = self.pick_parent(&child, &[node]);
            self.link(&child, &parent);
            moves.push(Move { child, parent });
        }
        moves
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(id: &str) -> PeerId {
        id.into()
    }

    fn ids(n: usize) -> Vec<PeerId> {
        (1..=n).map(|i| p(&format!("r{i}"))).collect()
    }

    /// Every receiver reaches the root, no node has more than `fanout` children (except the
    /// sender when it had to take overflow), flagged nodes have none.
    fn check(tree: &RelayTree, allow_root_overflow: bool) {
        for node in tree.parent.keys() {
            assert!(tree.is_below(node, tree.root()), "{node} does not reach the root");
            assert!(tree.depth(node) >= 1);
        }
        for (p, kids) in &tree.children {
            if *p != tree.root || !allow_root_overflow {
                assert!(kids.len() <= tree.fanout, "{p} has {} children", kids.len());
            }
            if tree.is_flagged(p) {
                assert!(kids.is_empty(), "flagged {p} still forwards");
            }
            for k in kids {
                assert_eq!(tree.parent_of(k), Some(p));
            }
        }
    }

    #[test]
    fn plan_fills_breadth_first() {
        let (tree, moves) = RelayTree::plan(&p("s"), &ids(8), 2);
        assert_eq!(moves.len(), 8);
        assert_eq!(tree.children_of(&p("s")), ["r1", "r2"]);
        assert_eq!(tree.children_of(&p("r1")), ["r3", "r4"]);
        assert_eq!(tree.children_of(&p("r2")), ["r5", "r6"]);
        assert_eq!(tree.children_of(&p("r3")), ["r7", "r8"]);
        assert_eq!(tree.height(), 3);
        check(&tree, false);
        // Fan-out 1 is a chain; a large fan-out is a star.
        let (chain, _) = RelayTree::plan(&p("s"), &ids(4), 1);
        assert_eq!(chain.depth(&p("r4")), 4);
        let (star, _) = RelayTree::plan(&p("s"), &ids(4), 8);
        assert_eq!(star.height(), 1);
        // The sender and duplicates are not placed.
        let mut t = RelayTree::new(&p("s"), 2);
        assert!(t.attach(&p("s")).is_none());
        assert!(t.attach(&p("a")).is_some());
        assert!(t.attach(&p("a")).is_none());
    }

    #[test]
    fn a_leaving_forwarder_hands_its_children_on() {
        let (mut tree, _) = RelayTree::plan(&p("s"), &ids(8), 2);
        let moves = tree.detach(&p("r1"));
        // r3 and r4 lose their parent; r3 had children r7, r8 and keeps them.
        let moved: Vec<&str> = moves.iter().map(|m| m.child.as_str()).collect();
        assert_eq!(moved, ["r3", "r4"]);
        assert!(!tree.contains(&p("r1")));
        for m in &moves {
            assert_ne!(m.parent, "r1");
            assert_eq!(tree.parent_of(&m.child), Some(&m.parent));
        }
        assert_eq!(tree.children_of(&p("r3")), ["r7", "r8"]);
        check(&tree, true);
        assert!(tree.detach(&p("r1")).is_empty(), "twice");
        // Most others leave too: the last three still reach the sender, within the fan-out.
        for r in ["r2", "r3", "r5", "r6"] {
            tree.detach(&p(r));
            check(&tree, false);
        }
        for r in ["r4", "r7", "r8"] {
            assert!(tree.contains(&p(r)), "{r}");
            for gone in ["r1", "r2", "r3", "r5", "r6"] {
                assert!(!tree.is_below(&p(r), &p(gone)), "{r} under {gone}");
            }
        }
    }

    #[test]
    fn no_node_is_attached_below_itself() {
        // A chain: when r2 is re-parented, r3 and r4 (below it) are not candidates.
        let (mut tree, _) = RelayTree::plan(&p("s"), &ids(4), 1);
        let m = tree.reparent(&p("r2")).unwrap();
        assert_ne!(m.parent, "r1", "not the same parent again");
        assert!(!["r2", "r3", "r4"].contains(&m.parent.as_str()));
        assert_eq!(m.parent, "s");
        check(&tree, true);
        // A child of the sender reconnects to the sender.
        assert_eq!(tree.reparent(&p("r1")).unwrap().parent, "s");
        assert!(tree.reparent(&p("nobody")).is_none());
    }

    #[test]
    fn a_bad_forwarder_loses_its_children_and_gets_no_new_ones() {
        let (mut tree, _) = RelayTree::plan(&p("s"), &ids(6), 2);
        let moves = tree.flag(&p("r1"));
        assert_eq!(moves.iter().map(|m| m.child.as_str()).collect::<Vec<_>>(), ["r3", "r4"]);
        assert!(tree.children_of(&p("r1")).is_empty());
        assert!(tree.contains(&p("r1")), "it still receives");
        check(&tree, true);
        // A late joiner is not placed under it either.
        let m = tree.attach(&p("late")).unwrap();
        assert_ne!(m.parent, "r1");
        check(&tree, true);
        assert!(tree.flag(&p("s")).is_empty(), "the sender is never flagged");
    }

    #[test]
    fn late_joiners_take_the_shallowest_free_slot() {
        let (mut tree, _) = RelayTree::plan(&p("s"), &ids(3), 2);
        // s: r1 r2; r1: r3. The free slot at depth 2 under r1 comes first.
        assert_eq!(tree.attach(&p("x")).unwrap().parent, "r1");
        assert_eq!(tree.attach(&p("y")).unwrap().parent, "r2");
        check(&tree, false);
    }

    #[test]
    fn repairs_keep_the_tree_sound_under_churn() {
        // A deterministic shuffle of joins, leaves, flags and re-parents.
        let mut tree = RelayTree::new(&p("s"), 3);
        let mut rng: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        for step in 0..2000 {
            let node = format!("n{}", next() % 40);
            match next() % 4 {
                0 => {
                    tree.attach(&p(&node));
                }
                1 => {
                    tree.detach(&p(&node));
                }
                2 => {
                    if step % 7 == 0 {
                        tree.flag(&p(&node));
                    }
                }
                _ => {
                    tree.reparent(&p(&node));
                }
            }
            check(&tree, true);
        }
    }
}
