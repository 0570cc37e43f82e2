//! The iterative lookup state machine (`find_node`, `get_peers`, BEP 44 `get`).
//!
//! A [`Lookup`] keeps a candidate set sorted by XOR distance to the target. It asks the
//! closest candidates not yet queried, `alpha` at a time, adds the nodes each answer returns,
//! and stops when the `k` closest candidates it knows have all answered (failed ones are
//! skipped, so the next closest take their place) with nothing in flight that could still
//! change them — or when it has sent [`LookupConfig::max_queries`] queries.
//!
//! It is pure logic: the caller sends the queries [`Lookup::next_queries`] hands out, and
//! reports answers ([`Lookup::on_response`]), errors ([`Lookup::on_failure`]) and the passing
//! of time ([`Lookup::handle_timeout`] at [`Lookup::poll_timeout`]). Payloads (peers, values,
//! tokens) are the caller's business; the lookup only needs the returned nodes.
//!
//! As in libtorrent, a query that has not been answered after
//! [`LookupConfig::slow_timeout`] stops counting against `alpha` (another query is started)
//! but is still waited for until [`LookupConfig::query_timeout`].

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::id::{Contact, Id};
use crate::routing::{is_local_ip, is_valid_addr};

/// Tuning of a [`Lookup`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LookupConfig {
    /// Queries in flight at once (not counting slow ones). Values below 1 are treated as 1.
    pub alpha: usize,
    /// How many of the closest nodes must answer (BEP 5: 8). Values below 1 are treated as 1.
    pub k: usize,
    /// A query unanswered for this long has failed.
    pub query_timeout: Duration,
    /// A query unanswered for this long no longer counts against `alpha`.
    pub slow_timeout: Duration,
    /// Most queries one lookup sends.
    pub max_queries: usize,
    /// Most candidates kept (the farthest are dropped; queries in flight are always kept).
    pub max_candidates: usize,
    /// Our own id, never added as a candidate.
    pub own_id: Option<Id>,
    /// One candidate per IP address (libtorrent's `restrict_search_ips`). When `false`,
    /// loopback, private and link-local addresses may appear with several ports; public
    /// addresses are still limited to one candidate each.
    pub restrict_ips: bool,
}

impl Default for LookupConfig {
    fn default() -> Self {
        LookupConfig {
            alpha: 3,
            k: 8,
            query_timeout: Duration::from_secs(2),
            slow_timeout: Duration::from_secs(1),
            max_queries: 200,
            max_candidates: 64,
            own_id: None,
            restrict_ips: true,
        }
    }
}

/// Counters of a [`Lookup`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct LookupStats {
    /// Queries handed out by [`Lookup::next_queries`].
    pub queries_sent: usize,
    /// Answers accepted (including late ones, after a timeout).
    pub responses: usize,
    /// Queries that failed (errors and timeouts).
    pub failures: usize,
    /// Sequential round trips: one more than the largest depth of a node that answered,
    /// where the seeds are at depth 0 and a node learnt from an answer of a node at depth `d`
    /// is at depth `d + 1`. 0 while nobody has answered.
    pub hops: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Not queried yet.
    Fresh,
    /// Queried, no answer yet; the deadline is in milliseconds since the lookup started.
    InFlight { deadline: u32, slow: bool },
    /// Answered.
    Responded,
    /// Timed out or answered with an error.
    Failed,
}

/// A candidate: 64 bytes (the distance to the target is recomputed when needed).
#[derive(Clone, Copy, Debug)]
struct Candidate {
    contact: Contact,
    state: State,
    depth: u16,
}

/// One iterative lookup towards a target id.
///
/// Memory: one vector of at most about [`LookupConfig::max_candidates`] candidates of 64
/// bytes (4 KB with the defaults), allocated once.
#[derive(Clone, Debug)]
pub struct Lookup {
    target: Id,
    config: LookupConfig,
    start: Instant,
    /// Sorted by distance to the target; ids and addresses unique.
    candidates: Vec<Candidate>,
    stats: LookupStats,
}

fn millis(d: Duration) -> u32 {
    u32::try_from(d.as_millis()).unwrap_or(u32::MAX)
}

impl Lookup {
    /// A lookup for `target`, starting from `seeds` (typically the routing table's closest
    /// nodes, or bootstrap routers whose ids are unknown: any placeholder id will do, the
    /// id an answer carries replaces it).
    pub fn new(target: Id, seeds: Vec<Contact>, mut config: LookupConfig, now: Instant) -> Lookup {
        config.alpha = config.alpha.max(1);
        config.k = config.k.max(1);
        config.max_candidates = config.max_candidates.max(config.k);
        let mut lookup = Lookup {
            target,
            candidates: Vec::with_capacity(config.max_candidates.min(1024) + 1),
            config,
            start: now,
            stats: LookupStats::default(),
        };
        for seed in seeds {
            lookup.add(seed, 0);
        }
        lookup
    }

    /// The target id.
    pub fn target(&self) -> Id {
        self.target
    }

    fn now_ms(&self, now: Instant) -> u32 {
        millis(now.saturating_duration_since(self.start))
    }

    fn slow_ms(&self) -> u32 {
        millis(
            self.config
                .query_timeout
                .saturating_sub(self.config.slow_timeout),
        )
    }

    /// Contacts to query now: the closest not yet queried among those that could still be
    /// part of the result, keeping at most `alpha` non-slow queries in flight. Timeouts up to
    /// `now` are processed first. The caller sends a query to each and reports the outcome.
    pub fn next_queries(&mut self, now: Instant) -> Vec<Contact> {
        self.handle_timeout(now);
        let deadline = self
            .now_ms(now)
            .saturating_add(millis(self.config.query_timeout));
        let mut out = Vec::new();
        let mut active = self
            .candidates
            .iter()
            .filter(|c| matches!(c.state, State::InFlight { slow: false, .. }))
            .count();
        let mut responded = 0;
        for c in &mut self.candidates {
            if responded >= self.config.k
                || active >= self.config.alpha
                || self.stats.queries_sent >= self.config.max_queries
            {
                break;
            }
            match c.state {
                State::Responded => responded += 1,
                State::Fresh => {
                    c.state = State::InFlight {
                        deadline,
                        slow: false,
                    };
                    active += 1;
                    self.stats.queries_sent += 1;
                    out.push(c.contact);
                }
                State::InFlight { .. } | State::Failed => {}
            }
        }
        out
    }

    fn position_of(&self, from: &Contact) -> Option<usize> {
        self.candidates
            .iter()
            .position(|c| c.contact.addr == from.addr && c.contact.id == from.id)
            .or_else(|| {
                self.candidates
                    .iter()
                    .position(|c| c.contact.addr == from.addr)
            })
    }

    fn insert_sorted(&mut self, candidate: Candidate) {
        let dist = self.target.distance(&candidate.contact.id);
        let at = self
            .candidates
            .binary_search_by(|x| self.target.distance(&x.contact.id).cmp(&dist))
            .unwrap_or_else(|i| i);
        self.candidates.insert(at, candidate);
        self.truncate();
    }

    /// `from` answered; `nodes` are the nodes it returned. Each is added to the candidates
    /// unless it is us, has an invalid address, or its id or address (IP address, see
    /// [`LookupConfig::restrict_ips`]) is already a candidate.
    ///
    /// The answer is matched to the query by address; if the answer carries another id than
    /// the candidate had (a bootstrap router, or a node that changed id), the candidate takes
    /// the new id — unless that id is us or already another candidate, in which case the
    /// query counts as failed. Answers from nodes never queried, and repeated answers, are
    /// ignored; late answers (after a timeout) are accepted.
    pub fn on_response(&mut self, from: &Contact, nodes: &[Contact], now: Instant) {
        let _ = now;
        let Some(pos) = self.position_of(from) else {
            return;
        };
        let Some(c) = self.candidates.get(pos).copied() else {
            return;
        };
        if matches!(c.state, State::Fresh | State::Responded) {
            return;
        }
        if c.contact.id != from.id {
            let clash = self.config.own_id == Some(from.id)
                || self.candidates.iter().any(|x| x.contact.id == from.id);
            if clash {
                if let Some(c) = self.candidates.get_mut(pos) {
                    if matches!(c.state, State::InFlight { .. }) {
                        c.state = State::Failed;
                        self.stats.failures += 1;
                    }
                }
                return;
            }
            self.candidates.remove(pos);
            self.insert_sorted(Candidate {
                contact: *from,
                state: State::Responded,
                depth: c.depth,
            });
        } else if let Some(c) = self.candidates.get_mut(pos) {
            c.state = State::Responded;
        }
        self.stats.responses += 1;
        self.stats.hops = self.stats.hops.max(usize::from(c.depth) + 1);
        let depth = c.depth.saturating_add(1);
        for node in nodes {
            self.add(*node, depth);
        }
    }

    /// A query to `from` failed (an error answer, or a timeout the caller detected itself).
    pub fn on_failure(&mut self, from: &Contact, now: Instant) {
        let _ = now;
        if let Some(c) = self
            .position_of(from)
            .and_then(|p| self.candidates.get_mut(p))
        {
            if matches!(c.state, State::InFlight { .. }) {
                c.state = State::Failed;
                self.stats.failures += 1;
            }
        }
    }

    /// The earliest instant at which [`handle_timeout`](Self::handle_timeout) has something
    /// to do (a query becoming slow or timing out), or `None` with nothing in flight.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let slow_ms = self.slow_ms();
        self.candidates
            .iter()
            .filter_map(|c| match c.state {
                State::InFlight { deadline, slow } => Some(if slow {
                    deadline
                } else {
                    deadline.saturating_sub(slow_ms)
                }),
                _ => None,
            })
            .min()
            .map(|ms| self.start + Duration::from_millis(u64::from(ms)))
    }

    /// Marks queries unanswered past [`LookupConfig::query_timeout`] as failed, and those past
    /// [`LookupConfig::slow_timeout`] as slow (no longer counted against `alpha`).
    pub fn handle_timeout(&mut self, now: Instant) {
        let now_ms = self.now_ms(now);
        let slow_ms = self.slow_ms();
        for c in &mut self.candidates {
            if let State::InFlight { deadline, slow } = &mut c.state {
                if now_ms >= *deadline {
                    c.state = State::Failed;
                    self.stats.failures += 1;
                } else if now_ms >= deadline.saturating_sub(slow_ms) {
                    *slow = true;
                }
            }
        }
    }

    /// Whether the lookup is over: the `k` closest candidates that did not fail have all
    /// answered (or there are fewer candidates left, all answered) and no query that could
    /// change them is in flight; or `max_queries` were sent and nothing is in flight.
    ///
    /// Queries still in flight to candidates farther than the `k` closest answers do not
    /// keep a lookup from being done; their answers can be ignored.
    pub fn is_done(&self) -> bool {
        if self.stats.queries_sent >= self.config.max_queries {
            return !self
                .candidates
                .iter()
                .any(|c| matches!(c.state, State::InFlight { .. }));
        }
        let mut responded = 0;
        for c in &self.candidates {
            match c.state {
                State::Responded => {
                    responded += 1;
                    if responded >= self.config.k {
                        return true;
                    }
                }
                State::Failed => {}
                State::Fresh | State::InFlight { .. } => return false,
            }
        }
        true
    }

    /// The (up to) `k` closest nodes that answered, closest first.
    pub fn closest_responded(&self) -> Vec<Contact> {
        self.candidates
            .iter()
            .filter(|c| c.state == State::Responded)
            .take(self.config.k)
            .map(|c| c.contact)
            .collect()
    }

    /// Number of queries in flight (slow ones included).
    pub fn in_flight(&self) -> usize {
        self.candidates
            .iter()
            .filter(|c| matches!(c.state, State::InFlight { .. }))
            .count()
    }

    /// The counters.
    pub fn stats(&self) -> LookupStats {
        self.stats
    }

    /// Approximate heap memory of the lookup in bytes.
    pub fn heap_bytes(&self) -> usize {
        self.candidates.capacity() * std::mem::size_of::<Candidate>()
    }

    fn same_place(&self, a: &SocketAddr, b: &SocketAddr) -> bool {
        if a == b {
            return true;
        }
        a.ip() == b.ip() && (self.config.restrict_ips || !is_local_ip(a.ip()))
    }

    fn add(&mut self, contact: Contact, depth: u16) {
        if self.config.own_id == Some(contact.id) || !is_valid_addr(&contact.addr) {
            return;
        }
        if self.candidates.len() >= self.config.max_candidates {
            let dist = self.target.distance(&contact.id);
            let farthest_kept = self
                .candidates
                .last()
                .map(|c| self.target.distance(&c.contact.id));
            if farthest_kept.is_some_and(|f| f < dist) {
                return;
            }
        }
        if self
            .candidates
            .iter()
            .any(|c| c.contact.id == contact.id || self.same_place(&c.contact.addr, &contact.addr))
        {
            return;
        }
        self.insert_sorted(Candidate {
            contact,
            state: State::Fresh,
            depth,
        });
    }

    /// Drops the farthest candidates beyond `max_candidates`: unqueried or failed ones first,
    /// then answered ones; queries in flight are always kept.
    fn truncate(&mut self) {
        while self.candidates.len() > self.config.max_candidates {
            let victim = self
                .candidates
                .iter()
                .rposition(|c| matches!(c.state, State::Fresh | State::Failed))
                .or_else(|| {
                    self.candidates
                        .iter()
                        .rposition(|c| c.state == State::Responded)
                });
            let Some(i) = victim else {
                return;
            };
            self.candidates.remove(i);
        }
    }
}
