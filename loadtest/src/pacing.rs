//! When each request of a measured phase starts, and the time its latency
//! is measured from.
//!
//! Closed-loop pacing lets every worker start its next request as soon as
//! the previous one completes. Open-loop pacing fixes the schedule in
//! advance: request `i` is due at `start + i / rate`. Worker `w` of `W` owns
//! requests `w`, `w + W`, `w + 2W`, … Latency is measured from the due time,
//! so a server that stalls a worker is charged for every request that the
//! stall delays (no coordinated omission).

use std::{
    sync::atomic::{AtomicU64, Ordering},
    thread,
    time::{Duration, Instant},
};

/// The fixed arrival schedule of an open-loop phase.
#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    start: Instant,
    rate_per_s: f64,
}

impl Schedule {
    /// Creates a schedule of `rate_per_s` requests per second from `start`.
    /// `rate_per_s` must be positive and finite.
    pub fn new(start: Instant, rate_per_s: f64) -> Self {
        Self { start, rate_per_s }
    }

    /// Returns the time at which request `index` is due.
    pub fn due(&self, index: u64) -> Instant {
        self.start + due_offset(index, self.rate_per_s)
    }
}

/// Returns the offset from the schedule start of request `index`.
#[allow(clippy::cast_precision_loss)]
pub fn due_offset(index: u64, rate_per_s: f64) -> Duration {
    Duration::from_secs_f64(index as f64 / rate_per_s)
}

/// Returns the number of requests that fall due strictly before `offset`
/// after the schedule start: those with `index / rate < offset`.
#[allow(
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss
)]
pub fn due_before(offset: Duration, rate_per_s: f64) -> u64 {
    // The float-to-int cast saturates, and the product is never negative.
    (offset.as_secs_f64() * rate_per_s).ceil() as u64
}

/// Returns how many of the indices `worker`, `worker + workers`, … are
/// below `end`.
pub fn owned_below(worker: u64, workers: u64, end: u64) -> u64 {
    if end <= worker {
        0
    } else {
        (end - worker - 1) / workers.max(1) + 1
    }
}

/// Request pacing of one phase, shared by its workers.
#[derive(Debug)]
pub enum Pacing {
    /// Each worker claims the next free index when its previous request ends.
    Closed { next_index: AtomicU64 },
    /// Worker `w` of `workers` sends its own indices when they fall due.
    Open { schedule: Schedule, workers: u64 },
}

impl Pacing {
    /// Creates open-loop pacing when `rate_per_s` is given, else closed-loop.
    pub fn new(rate_per_s: Option<f64>, start: Instant, workers: u64) -> Self {
        match rate_per_s {
            Some(rate) => Self::Open {
                schedule: Schedule::new(start, rate),
                workers,
            },
            None => Self::Closed {
                next_index: AtomicU64::new(0),
            },
        }
    }
}

/// One request that a worker is to send now.
#[derive(Debug, Clone, Copy)]
pub struct Slot {
    /// Index of the request in the phase, below the request limit.
    pub index: u64,
    /// Time the latency is measured from: the due time in open loop, the
    /// actual start in closed loop.
    pub origin: Instant,
    /// How late the request started after its due time; `None` in closed loop.
    pub start_lag: Option<Duration>,
}

/// The next step of a worker, as [`Pacer::poll_slot`] returns it.
#[derive(Debug, Clone, Copy)]
pub enum NextSlot {
    /// Send this request now.
    Ready(Slot),
    /// The worker's next request is due at this time, so poll again then.
    DueAt(Instant),
    /// The worker sends nothing more.
    Done,
}

/// The sequence of requests of one worker, ending at the request limit or
/// the deadline.
#[derive(Debug)]
pub struct Pacer<'a> {
    pacing: &'a Pacing,
    worker: u64,
    /// Number of this worker's open-loop requests started so far.
    started: u64,
    limit: u64,
    deadline: Instant,
    missed: u64,
    /// Whether the next open-loop request was returned as
    /// [`NextSlot::DueAt`]. The worker then starts it even when it wakes
    /// after the deadline, because the request fell due before it.
    waiting: bool,
}

impl<'a> Pacer<'a> {
    /// Creates the pacer of `worker` for a phase of at most `limit` requests
    /// that starts no request at or after `deadline`.
    pub fn new(pacing: &'a Pacing, worker: u64, limit: u64, deadline: Instant) -> Self {
        Self {
            pacing,
            worker,
            started: 0,
            limit,
            deadline,
            missed: 0,
            waiting: false,
        }
    }

    /// Waits until the next request is due and returns it, or returns
    /// `None` when the worker is done.
    pub fn next_slot(&mut self) -> Option<Slot> {
        loop {
            let now = Instant::now();
            match self.poll_slot(now) {
                NextSlot::Ready(slot) => return Some(slot),
                NextSlot::DueAt(due) => thread::sleep(due.saturating_duration_since(now)),
                NextSlot::Done => return None,
            }
        }
    }

    /// Returns the request to send at `now`, the due time of the next one,
    /// or that the worker is done. It does not sleep, so an event loop can
    /// wait for the due time among its other work.
    pub fn poll_slot(&mut self, now: Instant) -> NextSlot {
        match self.pacing {
            Pacing::Closed { next_index } => {
                if now >= self.deadline {
                    return NextSlot::Done;
                }
                let index = next_index.fetch_add(1, Ordering::Relaxed);
                if index >= self.limit {
                    return NextSlot::Done;
                }
                NextSlot::Ready(Slot {
                    index,
                    origin: now,
                    start_lag: None,
                })
            }
            Pacing::Open { schedule, workers } => self.poll_open_slot(schedule, *workers, now),
        }
    }

    fn poll_open_slot(&mut self, schedule: &Schedule, workers: u64, now: Instant) -> NextSlot {
        let index = self.worker + self.started * workers;
        if index >= self.limit {
            return NextSlot::Done;
        }
        let due = schedule.due(index);
        if due >= self.deadline {
            return NextSlot::Done;
        }
        if now >= self.deadline && !self.waiting {
            self.missed = self.count_missed(schedule, workers);
            return NextSlot::Done;
        }
        if due > now {
            self.waiting = true;
            return NextSlot::DueAt(due);
        }
        self.waiting = false;
        self.started += 1;
        NextSlot::Ready(Slot {
            index,
            origin: due,
            start_lag: Some(now.saturating_duration_since(due)),
        })
    }

    /// Counts this worker's requests that fell due before the deadline but
    /// were never started, because earlier requests took too long.
    fn count_missed(&self, schedule: &Schedule, workers: u64) -> u64 {
        let window = self.deadline.saturating_duration_since(schedule.start);
        let end = due_before(window, schedule.rate_per_s).min(self.limit);
        owned_below(self.worker, workers, end).saturating_sub(self.started)
    }

    /// Returns the number of due requests that the worker never started.
    pub fn missed(&self) -> u64 {
        self.missed
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::{NextSlot, Pacer, Pacing, Schedule, due_before, due_offset, owned_below};

    #[test]
    fn due_times_are_evenly_spaced() {
        assert_eq!(due_offset(0, 1000.0), Duration::ZERO);
        assert_eq!(due_offset(1, 1000.0), Duration::from_millis(1));
        assert_eq!(due_offset(3000, 1000.0), Duration::from_secs(3));
        assert_eq!(due_offset(1, 4.0), Duration::from_millis(250));
        let start = Instant::now();
        let schedule = Schedule::new(start, 200.0);
        assert_eq!(schedule.due(10) - start, Duration::from_millis(50));
    }

    #[test]
    fn due_before_counts_strictly_earlier_requests() {
        // At 10/s, requests 0..=9 are due before 1 s, and request 10 at 1 s.
        assert_eq!(due_before(Duration::from_secs(1), 10.0), 10);
        assert_eq!(due_before(Duration::from_millis(1001), 10.0), 11);
        assert_eq!(due_before(Duration::ZERO, 10.0), 0);
        assert_eq!(due_before(Duration::from_millis(1), 10.0), 1);
    }

    #[test]
    fn workers_split_indices_round_robin() {
        // Indices below 10 for 4 workers: 0 4 8 | 1 5 9 | 2 6 | 3 7.
        let counts: Vec<u64> = (0..4).map(|w| owned_below(w, 4, 10)).collect();
        assert_eq!(counts, [3, 3, 2, 2]);
        assert_eq!(counts.iter().sum::<u64>(), 10);
        assert_eq!(owned_below(5, 4, 3), 0);
        assert_eq!(owned_below(0, 1, 7), 7);
    }

    #[test]
    fn open_pacer_takes_own_indices_until_limit() {
        let start = Instant::now();
        // A high rate keeps the sleeps short.
        let pacing = Pacing::new(Some(1_000_000.0), start, 3);
        let deadline = start + Duration::from_secs(60);
        let mut pacer = Pacer::new(&pacing, 1, 10, deadline);
        let mut indices = Vec::new();
        while let Some(slot) = pacer.next_slot() {
            assert!(slot.start_lag.is_some());
            assert!(slot.origin >= start);
            indices.push(slot.index);
        }
        assert_eq!(indices, [1, 4, 7]);
        assert_eq!(pacer.missed(), 0);
    }

    #[test]
    fn open_pacer_counts_missed_slots_at_deadline() {
        // Everything was due long ago and the deadline has passed, so the
        // worker starts nothing and misses its share of the due requests.
        let start = Instant::now() - Duration::from_secs(10);
        let pacing = Pacing::new(Some(10.0), start, 2);
        let deadline = start + Duration::from_secs(1);
        let mut pacer = Pacer::new(&pacing, 0, 1000, deadline);
        assert!(pacer.next_slot().is_none());
        // Requests 0..=9 were due before the deadline; worker 0 owns 0 2 4 6 8.
        assert_eq!(pacer.missed(), 5);
    }

    #[test]
    fn closed_pacer_shares_one_counter() {
        let pacing = Pacing::new(None, Instant::now(), 2);
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut first = Pacer::new(&pacing, 0, 3, deadline);
        let mut second = Pacer::new(&pacing, 1, 3, deadline);
        let a = first.next_slot().unwrap();
        let b = second.next_slot().unwrap();
        let c = first.next_slot().unwrap();
        assert_eq!([a.index, b.index, c.index], [0, 1, 2]);
        assert!(a.start_lag.is_none());
        assert!(second.next_slot().is_none());
        assert_eq!(second.missed(), 0);
    }

    #[test]
    fn closed_pacer_stops_at_deadline() {
        let pacing = Pacing::new(None, Instant::now(), 1);
        let mut pacer = Pacer::new(&pacing, 0, 100, Instant::now());
        assert!(pacer.next_slot().is_none());
    }

    #[test]
    fn open_poll_waits_for_due_time() {
        let start = Instant::now();
        let pacing = Pacing::new(Some(10.0), start, 2);
        let deadline = start + Duration::from_secs(60);
        let mut pacer = Pacer::new(&pacing, 1, 100, deadline);
        // Worker 1 owns request 1, due 100 ms after the start.
        let due = start + Duration::from_millis(100);
        assert!(matches!(pacer.poll_slot(start), NextSlot::DueAt(at) if at == due));

        let late = due + Duration::from_millis(3);
        let NextSlot::Ready(slot) = pacer.poll_slot(late) else {
            panic!("request 1 was not ready at its due time");
        };
        assert_eq!(slot.index, 1);
        assert_eq!(slot.origin, due);
        assert_eq!(slot.start_lag, Some(Duration::from_millis(3)));
        // Request 3 is next, due at 300 ms.
        let next_due = start + Duration::from_millis(300);
        assert!(matches!(pacer.poll_slot(late), NextSlot::DueAt(at) if at == next_due));
    }

    #[test]
    fn open_poll_starts_awaited_request_after_deadline() {
        let start = Instant::now();
        let pacing = Pacing::new(Some(10.0), start, 1);
        let deadline = start + Duration::from_millis(150);
        let mut pacer = Pacer::new(&pacing, 0, 100, deadline);
        assert!(matches!(pacer.poll_slot(start), NextSlot::Ready(slot) if slot.index == 0));
        assert!(matches!(pacer.poll_slot(start), NextSlot::DueAt(_)));

        // The wakeup for request 1 (due at 100 ms) comes after the deadline,
        // and the request still starts because it fell due before it.
        let woken = start + Duration::from_millis(160);
        assert!(matches!(pacer.poll_slot(woken), NextSlot::Ready(slot) if slot.index == 1));
        // Request 2 is due at 200 ms, after the deadline.
        assert!(matches!(pacer.poll_slot(woken), NextSlot::Done));
        assert_eq!(pacer.missed(), 0);
    }

    #[test]
    fn open_poll_counts_missed_slots_at_deadline() {
        let start = Instant::now();
        let pacing = Pacing::new(Some(10.0), start, 1);
        let deadline = start + Duration::from_secs(1);
        let mut pacer = Pacer::new(&pacing, 0, 100, deadline);
        assert!(matches!(pacer.poll_slot(start), NextSlot::Ready(_)));
        // A request that took past the deadline leaves requests 1..=9 unsent.
        let late = deadline + Duration::from_millis(1);
        assert!(matches!(pacer.poll_slot(late), NextSlot::Done));
        assert_eq!(pacer.missed(), 9);
    }

    #[test]
    fn closed_poll_starts_at_poll_time() {
        let start = Instant::now();
        let pacing = Pacing::new(None, start, 1);
        let deadline = start + Duration::from_secs(1);
        let mut pacer = Pacer::new(&pacing, 0, 2, deadline);
        let at = start + Duration::from_millis(5);
        let NextSlot::Ready(slot) = pacer.poll_slot(at) else {
            panic!("closed-loop request 0 was not ready");
        };
        assert_eq!(slot.origin, at);
        assert!(matches!(pacer.poll_slot(deadline), NextSlot::Done));
    }
}
