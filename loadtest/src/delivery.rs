//! Matching of the events that `fanout` members saw in their syncs against
//! the sends that returned them, by event ID.

use std::{
    collections::{HashMap, HashSet},
    time::Instant,
};

use hdrhistogram::Histogram;

use crate::report::{DeliveryReport, Latency, new_latency_histogram, record_latency};

/// A send that returned an event ID.
#[derive(Debug, Clone)]
pub struct SentEvent {
    pub event_id: String,
    /// When the send was due on the sender's schedule.
    pub scheduled_at: Instant,
    /// When the sender had read the 200 response.
    pub acknowledged_at: Instant,
}

/// An event of the sender that a member's sync returned.
#[derive(Debug, Clone)]
pub struct Arrival {
    pub event_id: String,
    /// When the member had read the sync response.
    pub at: Instant,
}

/// Deliveries counted over all (message, member) pairs.
#[derive(Debug, Clone)]
pub struct DeliveryTally {
    /// Time from acknowledgement to arrival, in microseconds.
    pub latency_us: Histogram<u64>,
    /// Time from the send's due time to arrival, in microseconds.
    pub from_schedule_us: Histogram<u64>,
    pub expected: u64,
    pub delivered: u64,
    pub duplicates: u64,
    pub unmatched: u64,
    pub before_acknowledgement: u64,
}

impl DeliveryTally {
    pub fn missing(&self) -> u64 {
        self.expected - self.delivered
    }

    /// Builds the report section; `limited_timelines` comes from the members.
    pub fn to_report(&self, members: u64, messages_sent: u64, limited: u64) -> DeliveryReport {
        DeliveryReport {
            members,
            messages_sent,
            expected: self.expected,
            delivered: self.delivered,
            missing: self.missing(),
            duplicates: self.duplicates,
            unmatched: self.unmatched,
            before_send_response: self.before_acknowledgement,
            limited_timelines: limited,
            latency: Latency::from_histogram(&self.latency_us),
            latency_from_send_start: Latency::from_histogram(&self.from_schedule_us),
        }
    }
}

/// Matches each member's arrivals to the sent events. The first arrival of
/// an event at a member counts as its delivery, and later ones as
/// duplicates. An arrival before the acknowledgement is recorded as zero
/// latency and counted, because the sender cannot read its response before
/// the server has stored the event.
pub fn match_deliveries(sent: &[SentEvent], members: &[Vec<Arrival>]) -> DeliveryTally {
    let by_id: HashMap<&str, &SentEvent> = sent
        .iter()
        .map(|event| (event.event_id.as_str(), event))
        .collect();
    let mut tally = DeliveryTally {
        latency_us: new_latency_histogram(),
        from_schedule_us: new_latency_histogram(),
        expected: (by_id.len() * members.len()) as u64,
        delivered: 0,
        duplicates: 0,
        unmatched: 0,
        before_acknowledgement: 0,
    };
    for arrivals in members {
        let mut seen = HashSet::with_capacity(arrivals.len());
        for arrival in arrivals {
            let Some(event) = by_id.get(arrival.event_id.as_str()) else {
                tally.unmatched += 1;
                continue;
            };
            if !seen.insert(arrival.event_id.as_str()) {
                tally.duplicates += 1;
                continue;
            }
            tally.delivered += 1;
            let latency = arrival.at.checked_duration_since(event.acknowledged_at);
            if latency.is_none() {
                tally.before_acknowledgement += 1;
            }
            record_latency(&mut tally.latency_us, latency.unwrap_or_default());
            let from_schedule = arrival.at.saturating_duration_since(event.scheduled_at);
            record_latency(&mut tally.from_schedule_us, from_schedule);
        }
    }
    tally
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::{Arrival, SentEvent, match_deliveries};

    /// Returns a send that was due 1 ms before its acknowledgement at `ms`.
    fn sent(base: Instant, id: &str, ms: u64) -> SentEvent {
        SentEvent {
            event_id: id.to_owned(),
            scheduled_at: base + Duration::from_millis(ms - 1),
            acknowledged_at: base + Duration::from_millis(ms),
        }
    }

    fn arrival(base: Instant, id: &str, ms: u64) -> Arrival {
        Arrival {
            event_id: id.to_owned(),
            at: base + Duration::from_millis(ms),
        }
    }

    #[test]
    fn all_delivered_latencies_from_acknowledgement() {
        let base = Instant::now();
        let events = [sent(base, "$a", 10), sent(base, "$b", 20)];
        let members = [
            vec![arrival(base, "$a", 12), arrival(base, "$b", 25)],
            vec![arrival(base, "$b", 21), arrival(base, "$a", 40)],
        ];
        let tally = match_deliveries(&events, &members);
        assert_eq!(tally.expected, 4);
        assert_eq!(tally.delivered, 4);
        assert_eq!(tally.missing(), 0);
        assert_eq!(tally.latency_us.len(), 4);
        // 2, 5, 1 and 30 ms, and 1 ms more from the due times.
        assert_eq!(tally.latency_us.max() / 1000, 30);
        assert_eq!(tally.latency_us.min() / 1000, 1);
        assert_eq!(tally.from_schedule_us.max() / 1000, 31);
        assert_eq!(tally.from_schedule_us.min() / 1000, 2);
    }

    #[test]
    fn missing_duplicate_and_unmatched_are_counted() {
        let base = Instant::now();
        let events = [sent(base, "$a", 10), sent(base, "$b", 20)];
        let members = [
            vec![
                arrival(base, "$a", 11),
                arrival(base, "$a", 15),
                arrival(base, "$zzz", 16),
            ],
            Vec::new(),
        ];
        let tally = match_deliveries(&events, &members);
        assert_eq!(tally.expected, 4);
        assert_eq!(tally.delivered, 1);
        assert_eq!(tally.missing(), 3);
        assert_eq!(tally.duplicates, 1);
        assert_eq!(tally.unmatched, 1);
        let report = tally.to_report(2, 2, 5);
        assert_eq!(report.missing, 3);
        assert_eq!(report.limited_timelines, 5);
    }

    #[test]
    fn arrival_before_acknowledgement_is_zero_latency() {
        let base = Instant::now();
        let events = [sent(base, "$a", 10)];
        let members = [vec![arrival(base, "$a", 9)]];
        let tally = match_deliveries(&events, &members);
        assert_eq!(tally.delivered, 1);
        assert_eq!(tally.before_acknowledgement, 1);
        assert_eq!(tally.latency_us.max(), 1);
        // The arrival came exactly at the due time.
        assert_eq!(tally.from_schedule_us.max(), 1);
    }

    #[test]
    fn nothing_sent_expects_nothing() {
        let base = Instant::now();
        let tally = match_deliveries(&[], &[vec![arrival(base, "$x", 1)]]);
        assert_eq!(tally.expected, 0);
        assert_eq!(tally.missing(), 0);
        assert_eq!(tally.unmatched, 1);
        assert!(tally.to_report(1, 0, 0).latency.is_none());
    }
}
