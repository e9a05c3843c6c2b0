//! The newest timeline events of each room, kept on every shard that
//! receives the room's announcements, so that an incremental `/sync` reads
//! its window from memory instead of scanning `roomid_pos_eventid`.
//!
//! Each announcement carries the position of the room's previous event. A
//! tail only grows when that position is its newest entry, so its entries
//! are every event of the room after `base`, without gaps. Any other
//! announcement starts the tail again from that event.

use std::{collections::VecDeque, sync::Arc};

/// Maximum events kept per room: the default timeline limit of 10, plus the
/// one more row that shows whether the timeline is limited, with room to
/// spare.
pub const TAIL_LEN: usize = 16;

/// The newest events of one room.
#[derive(Debug, Default)]
pub struct RoomTail {
    /// Every event of the room with a position in `(base, newest]` is in
    /// `events`.
    base: u64,
    /// `(position, event ID)`, oldest first.
    events: VecDeque<(u64, Arc<str>)>,
}

impl RoomTail {
    /// Starts a tail at the announced event whose predecessor is at
    /// `prev_pos`.
    #[must_use]
    pub fn starting_at(prev_pos: u64, pos: u64, event_id: Arc<str>) -> Self {
        let mut tail = Self {
            base: prev_pos,
            events: VecDeque::with_capacity(TAIL_LEN),
        };
        tail.events.push_back((pos, event_id));
        tail
    }

    /// Adds an announced event. An event not after the newest entry is a
    /// repeat and is ignored. A predecessor other than the newest entry
    /// means events were missed, so the tail starts again from this one.
    pub fn push(&mut self, prev_pos: u64, pos: u64, event_id: Arc<str>) {
        let newest = self.events.back().map_or(self.base, |(pos, _)| *pos);
        if pos <= newest {
            return;
        }
        if newest != prev_pos {
            *self = Self::starting_at(prev_pos, pos, event_id);
            return;
        }
        if self.events.len() == TAIL_LEN
            && let Some((oldest, _)) = self.events.pop_front()
        {
            self.base = oldest;
        }
        self.events.push_back((pos, event_id));
    }

    /// Returns the newest `count` events with positions in `(lower, upper]`,
    /// newest first, or `None` when the tail does not reach back to
    /// `lower`.
    ///
    /// The caller must know that every event of the room up to `upper` has
    /// been announced to this shard.
    #[must_use]
    pub fn window(&self, lower: u64, upper: u64, count: usize) -> Option<Vec<(u64, Arc<str>)>> {
        if self.base > lower {
            return None;
        }
        Some(
            self.events
                .iter()
                .rev()
                .filter(|(pos, _)| *pos > lower && *pos <= upper)
                .take(count)
                .cloned()
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(pos: u64) -> Arc<str> {
        Arc::from(format!("$e{pos}"))
    }

    fn positions(window: Option<Vec<(u64, Arc<str>)>>) -> Option<Vec<u64>> {
        window.map(|events| events.into_iter().map(|(pos, _)| pos).collect())
    }

    #[test]
    fn contiguous_events_are_served_newest_first() {
        let mut tail = RoomTail::starting_at(3, 5, id(5));
        tail.push(5, 8, id(8));
        tail.push(8, 9, id(9));
        assert_eq!(positions(tail.window(3, 9, 10)), Some(vec![9, 8, 5]));
        assert_eq!(positions(tail.window(5, 8, 10)), Some(vec![8]));
        assert_eq!(positions(tail.window(4, 100, 2)), Some(vec![9, 8]));
        assert_eq!(positions(tail.window(9, 100, 10)), Some(vec![]));
    }

    #[test]
    fn window_before_the_base_is_unknown() {
        let tail = RoomTail::starting_at(3, 5, id(5));
        assert_eq!(positions(tail.window(2, 9, 10)), None);
        assert_eq!(positions(tail.window(0, 9, 10)), None);
    }

    #[test]
    fn tail_restarts_after_a_gap() {
        let mut tail = RoomTail::starting_at(3, 5, id(5));
        // The event at 7 was not announced here.
        tail.push(7, 9, id(9));
        assert_eq!(positions(tail.window(7, 9, 10)), Some(vec![9]));
        assert_eq!(positions(tail.window(5, 9, 10)), None);
    }

    #[test]
    fn tail_ignores_a_repeat() {
        let mut tail = RoomTail::starting_at(3, 5, id(5));
        tail.push(5, 8, id(8));
        tail.push(5, 8, id(8));
        assert_eq!(positions(tail.window(3, 9, 10)), Some(vec![8, 5]));
    }

    #[test]
    fn tail_drops_oldest_when_full() {
        let mut tail = RoomTail::starting_at(0, 1, id(1));
        for pos in 2..=(TAIL_LEN as u64 + 1) {
            tail.push(pos - 1, pos, id(pos));
        }
        assert_eq!(positions(tail.window(0, 100, 100)), None);
        let window = positions(tail.window(1, 100, 100)).unwrap();
        assert_eq!(window.len(), TAIL_LEN);
        assert_eq!(window.last(), Some(&2));
    }
}
