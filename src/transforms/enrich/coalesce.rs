//! Coalescing: the ids many events need, grouped per endpoint into calls of at most `max_ids`, each id asked
//! for once per call; and the bookkeeping that fans each call's answer back to every event waiting for it.
//!
//! Pure and synchronous (time is passed in), so the property tests drive it directly: the enrich worker only
//! adds events, sends the calls [`Tracker::due`] hands out, and reports their answers.
//!
//! A want joins a call that has not been sent yet. Once the call is sent, a later event needing the same id gets
//! a new call: its webhook may describe a change made after the first call was answered.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::time::Duration;

use serde_json::Value;

use super::plan::{Endpoint, Want};

/// One API call to make: its endpoint and the wants it answers (one for single-resource endpoints, up to
/// `max_ids` for bulk ones).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    /// Where.
    pub endpoint: Endpoint,
    /// What (distinct).
    pub wants: Vec<Want>,
}

/// Why a call finally failed (after its retries).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// What went wrong, for the dead letter.
    pub reason: String,
    /// Attempts made.
    pub attempts: u32,
    /// The last answer's `request-id`.
    pub request_id: Option<String>,
}

/// The answer of a call.
#[derive(Debug, Clone)]
pub enum Answer {
    /// The records found, by want id; an id absent from the map no longer exists.
    Found(HashMap<String, Vec<Value>>),
    /// The call failed for good.
    Failed(Failure),
}

/// An event whose wants are all answered.
#[derive(Debug, Clone, PartialEq)]
pub enum Done {
    /// Every want answered: the records in the order of the event's wants, and the ids that no longer exist.
    Enriched {
        /// Full records.
        resources: Vec<Value>,
        /// Ids missing from the answers.
        missing: Vec<String>,
    },
    /// A call it needed failed for good: the event goes to the dead letters.
    Failed(Failure),
}

#[derive(Debug, Clone)]
enum Slot {
    Waiting,
    Found(Vec<Value>),
    Missing,
}

#[derive(Debug)]
struct Tracked {
    wants: Vec<Want>,
    slots: Vec<Slot>,
    outstanding: usize,
    failure: Option<Failure>,
}

/// Waiters of one not-yet-answered want: `(seq, slot index)`.
type Waiters = Vec<(u64, usize)>;

#[derive(Debug, Default)]
struct Queue {
    ids: Vec<Want>,
    since: Duration,
}

/// Events in flight, the wants they wait for, and the calls not yet sent.
#[derive(Debug)]
pub struct Tracker {
    max_ids: usize,
    max_wait: Duration,
    events: BTreeMap<u64, Tracked>,
    /// Wants not yet sent, with their waiters; a new event needing one joins it.
    queued: HashMap<Want, Waiters>,
    /// Wants sent and not yet answered, with their waiters, per call generation.
    sent: HashMap<(Want, u64), Waiters>,
    bulk: BTreeMap<Endpoint, Queue>,
    singles: VecDeque<Want>,
    generation: u64,
    waiting_wants: usize,
    done: Vec<(u64, Done)>,
}

/// A call handed out by [`Tracker::due`], to be answered with [`Tracker::answer`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ticket {
    /// The call.
    pub call: Call,
    generation: u64,
}

impl Tracker {
    /// Calls of at most `max_ids` ids, a partial bulk call waiting at most `max_wait` for more.
    pub fn new(max_ids: usize, max_wait: Duration) -> Self {
        Self {
            max_ids: max_ids.max(1),
            max_wait,
            events: BTreeMap::new(),
            queued: HashMap::new(),
            sent: HashMap::new(),
            bulk: BTreeMap::new(),
            singles: VecDeque::new(),
            generation: 0,
            waiting_wants: 0,
            done: Vec::new(),
        }
    }

    /// Events added and not yet taken with [`Tracker::take_done`].
    pub fn in_flight(&self) -> usize {
        self.events.len() + self.done.len()
    }

    /// Wants of in-flight events still waiting for an answer.
    pub fn waiting_wants(&self) -> usize {
        self.waiting_wants
    }

    /// The lowest seq not yet taken with [`Tracker::take_done`].
    pub fn first_in_flight(&self) -> Option<u64> {
        let pending = self.events.keys().next().copied();
        let done = self.done.iter().map(|(s, _)| *s).min();
        match (pending, done) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Registers event `seq` and its wants at time `now`. An event without wants is done at once.
    pub fn add(&mut self, seq: u64, wants: Vec<Want>, now: Duration) {
        if wants.is_empty() {
            self.done.push((seq, Done::Enriched { resources: Vec::new(), missing: Vec::new() }));
            return;
        }
        for (slot, want) in wants.iter().enumerate() {
            if let Some(waiters) = self.queued.get_mut(want) {
                waiters.push((seq, slot));
                continue;
            }
            self.queued.insert(want.clone(), vec![(seq, slot)]);
            if want.endpoint.is_bulk() {
                let q = self.bulk.entry(want.endpoint).or_default();
                if q.ids.is_empty() {
                    q.since = now;
                }
                q.ids.push(want.clone());
            } else {
                self.singles.push_back(want.clone());
            }
        }
        self.waiting_wants += wants.len();
        let slots = vec![Slot::Waiting; wants.len()];
        self.events.insert(seq, Tracked { outstanding: wants.len(), wants, slots, failure: None });
    }

    /// When the oldest partial bulk call becomes due (`None`: nothing is waiting for time).
    pub fn next_deadline(&self) -> Option<Duration> {
        self.bulk.values().filter(|q| !q.ids.is_empty()).map(|q| q.since + self.max_wait).min()
    }

    /// True when calls are waiting to be sent.
    pub fn has_queued(&self) -> bool {
        !self.singles.is_empty() || self.bulk.values().any(|q| !q.ids.is_empty())
    }

    /// Up to `max_calls` calls to send now: full bulk calls first, then single-resource calls, then partial bulk
    /// calls that have waited `max_wait` (or all partial ones when `flush`).
    ///
    /// The caller passes how many calls it can start right now (free concurrency), so while calls wait for the
    /// rate limit, ids keep joining the queued ones instead of leaving in many small calls.
    pub fn due(&mut self, now: Duration, flush: bool, max_calls: usize) -> Vec<Ticket> {
        let mut out = Vec::new();
        let endpoints: Vec<Endpoint> = self.bulk.keys().copied().collect();
        for partial in [false, true] {
            for &endpoint in &endpoints {
                while out.len() < max_calls {
                    let Some(q) = self.bulk.get_mut(&endpoint) else { break };
                    let full = q.ids.len() >= self.max_ids;
                    let old = !q.ids.is_empty() && (flush || q.since + self.max_wait <= now);
                    if !(full || partial && old) {
                        break;
                    }
                    let take = q.ids.len().min(self.max_ids);
                    let wants: Vec<Want> = q.ids.drain(..take).collect();
                    q.since = now;
                    out.push(self.send(Call { endpoint, wants }));
                }
            }
            while !partial && out.len() < max_calls {
                let Some(want) = self.singles.pop_front() else { break };
                out.push(self.send(Call { endpoint: want.endpoint, wants: vec![want] }));
            }
        }
        out
    }

    fn send(&mut self, call: Call) -> Ticket {
        self.generation += 1;
        for want in &call.wants {
            let waiters = self.queued.remove(want).unwrap_or_default();
            self.sent.insert((want.clone(), self.generation), waiters);
        }
        Ticket { call, generation: self.generation }
    }

    /// Fans the answer of `ticket` out to every event waiting for it.
    pub fn answer(&mut self, ticket: &Ticket, answer: &Answer) {
        for want in &ticket.call.wants {
            let Some(waiters) = self.sent.remove(&(want.clone(), ticket.generation)) else { continue };
            for (seq, slot) in waiters {
                let Some(ev) = self.events.get_mut(&seq) else { continue };
                match answer {
                    Answer::Found(found) => {
                        ev.slots[slot] = match found.get(&want.id) {
                            Some(records) => Slot::Found(records.clone()),
                            None => Slot::Missing,
                        };
                    }
                    Answer::Failed(f) => {
                        ev.failure.get_or_insert_with(|| f.clone());
                    }
                }
                ev.outstanding -= 1;
                self.waiting_wants -= 1;
                if ev.outstanding == 0
                    && let Some(ev) = self.events.remove(&seq)
                {
                    self.done.push((seq, finish(ev)));
                }
            }
        }
    }

    /// Events finished since the last call, in seq order.
    pub fn take_done(&mut self) -> Vec<(u64, Done)> {
        let mut out = std::mem::take(&mut self.done);
        out.sort_by_key(|(seq, _)| *seq);
        out
    }
}

fn finish(ev: Tracked) -> Done {
    if let Some(f) = ev.failure {
        return Done::Failed(f);
    }
    let mut resources = Vec::new();
    let mut missing = Vec::new();
    for (want, slot) in ev.wants.into_iter().zip(ev.slots) {
        match slot {
            Slot::Found(records) => resources.extend(records),
            Slot::Missing | Slot::Waiting => missing.push(want.id),
        }
    }
    Done::Enriched { resources, missing }
}

/// Distinct ids of a call, checked: used by tests and debug assertions.
pub fn distinct(call: &Call) -> bool {
    let set: HashSet<&Want> = call.wants.iter().collect();
    set.len() == call.wants.len()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn want(endpoint: Endpoint, id: &str) -> Want {
        Want { endpoint, id: id.to_owned(), account_id: None }
    }

    fn record(id: &str) -> Value {
        serde_json::json!({ "id": id })
    }

    /// Answers like the API: every id exists except those in `gone`.
    fn answer_all(t: &mut Tracker, tickets: &[Ticket], gone: &HashSet<String>) {
        for ticket in tickets {
            let found = ticket
                .call
                .wants
                .iter()
                .filter(|w| !gone.contains(&w.id))
                .map(|w| (w.id.clone(), vec![record(&w.id)]))
                .collect();
            t.answer(ticket, &Answer::Found(found));
        }
    }

    #[test]
    fn ids_of_many_events_share_one_call_and_fan_back() {
        let mut t = Tracker::new(100, Duration::from_millis(500));
        t.add(1, vec![want(Endpoint::Contents, "a"), want(Endpoint::Contents, "b")], Duration::ZERO);
        t.add(2, vec![want(Endpoint::Contents, "b"), want(Endpoint::Contents, "c")], Duration::from_millis(10));
        assert!(t.due(Duration::from_millis(100), false, usize::MAX).is_empty(), "a partial call waits for max_wait");
        let tickets = t.due(Duration::from_millis(500), false, usize::MAX);
        assert_eq!(tickets.len(), 1);
        assert_eq!(tickets[0].call.wants.len(), 3, "b is asked for once");
        answer_all(&mut t, &tickets, &HashSet::from(["c".to_owned()]));
        let done = t.take_done();
        assert_eq!(
            done,
            vec![
                (1, Done::Enriched { resources: vec![record("a"), record("b")], missing: vec![] }),
                (2, Done::Enriched { resources: vec![record("b")], missing: vec!["c".into()] }),
            ]
        );
    }

    #[test]
    fn ids_keep_joining_while_no_call_can_start() {
        let mut t = Tracker::new(100, Duration::from_millis(500));
        t.add(1, vec![want(Endpoint::Contents, "a")], Duration::ZERO);
        assert!(t.due(Duration::from_secs(1), false, 0).is_empty(), "no free slot: nothing leaves");
        t.add(2, vec![want(Endpoint::Contents, "b")], Duration::from_secs(1));
        let tickets = t.due(Duration::from_secs(2), false, 1);
        assert_eq!(tickets.len(), 1);
        assert_eq!(tickets[0].call.wants.len(), 2);
    }

    #[test]
    fn a_want_already_sent_is_fetched_again_for_a_later_event() {
        let mut t = Tracker::new(100, Duration::ZERO);
        t.add(1, vec![want(Endpoint::Profile, "p")], Duration::ZERO);
        let first = t.due(Duration::ZERO, false, usize::MAX);
        t.add(2, vec![want(Endpoint::Profile, "p")], Duration::ZERO);
        let second = t.due(Duration::ZERO, false, usize::MAX);
        assert_eq!((first.len(), second.len()), (1, 1), "the second event may describe a newer state");
        answer_all(&mut t, &second, &HashSet::new());
        assert_eq!(t.take_done().len(), 1);
        answer_all(&mut t, &first, &HashSet::new());
        assert_eq!(t.take_done().len(), 1);
    }

    #[test]
    fn a_failed_call_fails_every_event_waiting_for_it() {
        let mut t = Tracker::new(100, Duration::ZERO);
        t.add(1, vec![want(Endpoint::Contents, "a")], Duration::ZERO);
        t.add(2, vec![want(Endpoint::Contents, "a"), want(Endpoint::Account, "acc")], Duration::ZERO);
        let tickets = t.due(Duration::ZERO, true, usize::MAX);
        let failure = Failure { reason: "500".into(), attempts: 3, request_id: Some("r".into()) };
        for ticket in &tickets {
            if ticket.call.endpoint == Endpoint::Contents {
                t.answer(ticket, &Answer::Failed(failure.clone()));
            } else {
                t.answer(ticket, &Answer::Found(HashMap::new()));
            }
        }
        assert_eq!(t.take_done(), vec![(1, Done::Failed(failure.clone())), (2, Done::Failed(failure))]);
        assert_eq!(t.in_flight(), 0);
        assert_eq!(t.waiting_wants(), 0);
    }

    proptest! {
        /// Every requested id is asked for exactly once per flush, no call is over `max_ids`, and every event
        /// gets exactly its records back, in its own order, with its missing ids.
        #[test]
        fn coalescing_is_exact(
            max_ids in 1usize..12,
            max_calls in 1usize..6,
            events in proptest::collection::vec(
                (proptest::collection::vec((0u8..3, 0u8..30), 0..25), 0u64..2_000), 1..40),
            gone in proptest::collection::hash_set(0u8..30, 0..6),
        ) {
            let endpoints = [Endpoint::Contents, Endpoint::Balances, Endpoint::Profile];
            let gone: HashSet<String> = gone.iter().map(|n| format!("id{n}")).collect();
            let mut t = Tracker::new(max_ids, Duration::from_millis(500));
            let mut expected = BTreeMap::new();
            let mut now = Duration::ZERO;
            for (seq, (wants, dt)) in events.iter().enumerate() {
                now += Duration::from_millis(*dt);
                let mut ws: Vec<Want> = Vec::new();
                for (e, n) in wants {
                    let w = want(endpoints[usize::from(*e)], &format!("id{n}"));
                    if !ws.contains(&w) { ws.push(w); }
                }
                let resources: Vec<Value> = ws.iter().filter(|w| !gone.contains(&w.id)).map(|w| record(&w.id)).collect();
                let missing: Vec<String> = ws.iter().filter(|w| gone.contains(&w.id)).map(|w| w.id.clone()).collect();
                expected.insert(seq as u64, Done::Enriched { resources, missing });
                t.add(seq as u64, ws, now);
                let tickets = t.due(now, false, max_calls);
                for ticket in &tickets {
                    prop_assert!(ticket.call.wants.len() <= max_ids);
                    prop_assert!(distinct(&ticket.call));
                }
                // Within one flush, no want is in two calls.
                let all: Vec<&Want> = tickets.iter().flat_map(|tk| tk.call.wants.iter()).collect();
                let set: HashSet<&&Want> = all.iter().collect();
                prop_assert_eq!(set.len(), all.len());
                answer_all(&mut t, &tickets, &gone);
            }
            let tickets = t.due(now, true, usize::MAX);
            answer_all(&mut t, &tickets, &gone);
            let done: BTreeMap<u64, Done> = t.take_done().into_iter().collect();
            prop_assert_eq!(done, expected);
            prop_assert_eq!(t.in_flight(), 0);
            prop_assert_eq!(t.waiting_wants(), 0);
        }
    }
}
