//! The timers of the long-poll event loop: at most one per member, kept in
//! due-time order so that a wakeup looks only at the earliest ones.

use std::{collections::BTreeSet, time::Instant};

/// One optional timer per member, indexed by member number.
#[derive(Debug)]
pub struct Timers {
    /// `(due time, member)` of every set timer.
    due: BTreeSet<(Instant, usize)>,
    /// Due time of each member's timer, if it has one.
    member_due: Vec<Option<Instant>>,
}

impl Timers {
    pub fn new(members: usize) -> Self {
        Self {
            due: BTreeSet::new(),
            member_due: vec![None; members],
        }
    }

    /// Sets the timer of `member` to `at`, replacing the one it had.
    pub fn set(&mut self, member: usize, at: Instant) {
        self.clear(member);
        self.due.insert((at, member));
        self.member_due[member] = Some(at);
    }

    /// Removes the timer of `member`, if it has one.
    pub fn clear(&mut self, member: usize) {
        if let Some(at) = self.member_due[member].take() {
            self.due.remove(&(at, member));
        }
    }

    /// Returns the earliest due time of all timers.
    pub fn next_due(&self) -> Option<Instant> {
        self.due.first().map(|&(at, _)| at)
    }

    /// Removes the earliest timer that is due at `now` and returns its
    /// member, or returns `None` when no timer is due.
    pub fn pop_due(&mut self, now: Instant) -> Option<usize> {
        let &(at, member) = self.due.first()?;
        if at > now {
            return None;
        }
        self.due.pop_first();
        self.member_due[member] = None;
        Some(member)
    }

    /// Returns the number of set timers.
    pub fn len(&self) -> usize {
        self.due.len()
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::Timers;

    fn ms(millis: u64) -> Duration {
        Duration::from_millis(millis)
    }

    #[test]
    fn due_timers_pop_in_order() {
        let start = Instant::now();
        let mut timers = Timers::new(3);
        timers.set(0, start + ms(30));
        timers.set(1, start + ms(10));
        timers.set(2, start + ms(20));
        assert_eq!(timers.next_due(), Some(start + ms(10)));

        assert_eq!(timers.pop_due(start + ms(5)), None);
        assert_eq!(timers.pop_due(start + ms(25)), Some(1));
        assert_eq!(timers.pop_due(start + ms(25)), Some(2));
        assert_eq!(timers.pop_due(start + ms(25)), None);
        assert_eq!(timers.next_due(), Some(start + ms(30)));
        assert_eq!(timers.pop_due(start + ms(30)), Some(0));
        assert_eq!(timers.next_due(), None);
        assert_eq!(timers.len(), 0);
    }

    #[test]
    fn set_replaces_the_member_timer() {
        let start = Instant::now();
        let mut timers = Timers::new(2);
        timers.set(0, start + ms(10));
        timers.set(0, start + ms(50));
        assert_eq!(timers.len(), 1);
        assert_eq!(timers.pop_due(start + ms(20)), None);
        assert_eq!(timers.pop_due(start + ms(50)), Some(0));
    }

    #[test]
    fn clear_removes_only_that_member() {
        let start = Instant::now();
        let mut timers = Timers::new(2);
        timers.set(0, start + ms(10));
        timers.set(1, start + ms(10));
        timers.clear(0);
        timers.clear(0);
        assert_eq!(timers.len(), 1);
        assert_eq!(timers.pop_due(start + ms(10)), Some(1));
        assert_eq!(timers.pop_due(start + ms(10)), None);
    }

    #[test]
    fn popped_timer_can_be_set_again() {
        let start = Instant::now();
        let mut timers = Timers::new(1);
        timers.set(0, start);
        assert_eq!(timers.pop_due(start), Some(0));
        timers.clear(0);
        timers.set(0, start + ms(1));
        assert_eq!(timers.next_due(), Some(start + ms(1)));
    }
}
