//! [`Cursor`]: where a session is in its device's mailbox, and what it has
//! delivered.
//!
//! On one node a mailbox position is handed out in commit order (or a
//! reader never reads past one still in flight), so the cursor is the last
//! position delivered and nothing can commit behind it. With several relay
//! nodes appending to one mailbox that no longer holds: node B may take a
//! position, and commit it, after node A committed a later one and a
//! session already delivered it. Such a late commit can lag at most the
//! store's *late-commit window* (`Mailboxes::late_commit_window`: how far
//! behind the newest position a write may still land, bounded by the write
//! timeout and the nodes' clock skew). So, with a window, the session
//! reads again from `position − window` and skips what it already
//! delivered: it remembers the positions it delivered within the window.
//! A late message is then delivered when its own event arrives (or at the
//! next read) — never skipped, only out of position order with messages
//! of other senders. Without a window the cursor is what it always was.

use std::collections::BTreeSet;

use crate::limits;
use crate::store::StoredMessage;

/// See the module documentation.
#[derive(Debug, Default)]
pub struct Cursor {
    /// The highest position delivered.
    position: Option<u64>,
    /// How far behind `position` a message may still commit (0: nothing can).
    window: u64,
    /// Positions delivered within `window` of `position`.
    recent: BTreeSet<u64>,
}

impl Cursor {
    /// A cursor before the first message, for a store whose late commits
    /// lag at most `window` positions.
    pub fn new(window: u64) -> Self {
        Self {
            window,
            ..Self::default()
        }
    }

    /// The highest position delivered.
    pub fn position(&self) -> Option<u64> {
        self.position
    }

    /// Where a read of everything not yet delivered starts (exclusive).
    pub fn read_after(&self) -> Option<u64> {
        let position = self.position?;
        if self.window == 0 {
            return Some(position);
        }
        position.checked_sub(self.window)
    }

    /// Whether the message at `seq` went out already.
    pub fn delivered(&self, seq: u64) -> bool {
        match self.position {
            None => false,
            Some(p) if self.window == 0 => seq <= p,
            Some(p) => seq <= p && (seq + self.window <= p || self.recent.contains(&seq)),
        }
    }

    /// Whether a message at `seq` not yet delivered lies behind the
    /// position (a late commit: only a store read finds what else is there).
    pub fn behind(&self, seq: u64) -> bool {
        self.position.is_some_and(|p| seq <= p)
    }

    /// Records the message at `seq` as delivered.
    pub fn record(&mut self, seq: u64) {
        let position = self.position.map_or(seq, |p| p.max(seq));
        self.position = Some(position);
        if self.window == 0 {
            return;
        }
        self.recent.insert(seq);
        let floor = position.saturating_sub(self.window);
        self.recent = self.recent.split_off(&floor);
        while self.recent.len() > limits::SESSION_RECENT_POSITIONS_MAX {
            // Past the bound the oldest are forgotten: at worst delivered
            // again (at least once), never skipped.
            self.recent.pop_first();
        }
    }

    /// The messages of a store read that were not delivered yet, each
    /// recorded as delivered now.
    pub fn take_new(&mut self, fetched: Vec<StoredMessage>) -> Vec<StoredMessage> {
        fetched
            .into_iter()
            .filter(|m| {
                let new = !self.delivered(m.seq);
                if new {
                    self.record(m.seq);
                }
                new
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Goal: without a window a cursor is a position; with one, a late
    /// commit behind the position is still new, what was delivered is not,
    /// and reads start a window back.
    #[test]
    fn late_commits_within_the_window_are_new() {
        let mut plain = Cursor::new(0);
        plain.record(10);
        assert!(plain.delivered(7) && !plain.delivered(11));
        assert_eq!(plain.read_after(), Some(10));

        let mut windowed = Cursor::new(100);
        assert_eq!(windowed.read_after(), None);
        windowed.record(1_000);
        windowed.record(1_050);
        assert!(windowed.delivered(1_000) && windowed.delivered(1_050));
        assert!(!windowed.delivered(1_020), "a late commit is new");
        assert!(windowed.behind(1_020));
        assert!(windowed.delivered(900), "behind the window: cannot be late");
        assert_eq!(windowed.read_after(), Some(950));
        windowed.record(1_020);
        assert!(windowed.delivered(1_020));
        windowed.record(2_000);
        assert_eq!(windowed.recent.len(), 1, "pruned below the window");
    }
}
