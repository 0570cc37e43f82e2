//! The choker: which interested peers we upload to.
//!
//! Every [`rechoke_interval`](ChokerConfig::rechoke_interval) the driver calls
//! [`Choker::rechoke`] with every connected peer; it answers with the peers to unchoke, and
//! every other peer is choked. Only interested peers that are not seeds are ever unchoked, never
//! more than [`upload_slots`](ChokerConfig::upload_slots), and if no more peers are interested
//! than there are slots, all of them are.
//!
//! **Leeching** (tit-for-tat, BEP 3): `upload_slots - 1` regular slots go to the peers that
//! rank highest with the [`UnchokeHook`] (the incentive layer: payments, credit), then to the
//! peers we download from fastest. One *optimistic* slot goes to a random choked interested
//! peer and moves on every [`optimistic_rounds`](ChokerConfig::optimistic_rounds) rounds (or at
//! once if its peer left, lost interest or earned a regular slot); peers connected for less than
//! three rechoke intervals are three times as likely to get it, as in the original client, so
//! newcomers with nothing to trade get their first pieces.
//!
//! **Seeding** (round robin, like libtorrent's `round_robin` seed choker): hook-ranked peers
//! first; then each unchoked peer keeps its slot for a *turn* of `optimistic_rounds` rounds;
//! the slots left go to the peers that have waited longest since they were last choked (or
//! since they appeared), the fastest uploads first among equals. A peer whose turn is over
//! stays unchoked only while nobody is waiting, so every interested peer gets a turn, and the
//! peers we upload to fastest win ties.
//!
//! Candidates are taken in [`PeerKey`] order (duplicates after the first are ignored) and
//! ties are broken by a PRNG seeded from [`ChokerConfig::seed`]: the same calls give the same
//! answers. A round costs O(c log c) for `c` candidates; the choker keeps O(c) state.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::Duration;

use crate::picker::{mix64, SplitMix64};
use crate::PeerKey;

/// How a [`Choker`] behaves.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ChokerConfig {
    /// Peers unchoked at once, the optimistic one included (default 4).
    pub upload_slots: usize,
    /// How often the driver calls [`Choker::rechoke`] (default 10 s). The choker reads no clock;
    /// it uses this only to tell newcomers (connected for less than three intervals).
    pub rechoke_interval: Duration,
    /// Rounds an optimistic unchoke (leeching) or a turn (seeding) lasts (default 3; 0 counts
    /// as 1).
    pub optimistic_rounds: u32,
    /// Seed of the random choices.
    pub seed: u64,
}

impl Default for ChokerConfig {
    fn default() -> Self {
        ChokerConfig {
            upload_slots: 4,
            rechoke_interval: Duration::from_secs(10),
            optimistic_rounds: 3,
            seed: 0,
        }
    }
}

/// One connected peer as the choker sees it.
#[derive(Debug, Clone)]
pub struct ChokeCandidate {
    /// The peer.
    pub peer: PeerKey,
    /// The peer is interested in us.
    pub interested: bool,
    /// We currently unchoke it.
    pub unchoked: bool,
    /// Bytes per second we receive from it.
    pub download_rate: u64,
    /// Bytes per second we send it.
    pub upload_rate: u64,
    /// How long it has been connected.
    pub connected_for: Duration,
    /// It has every piece.
    pub is_seed: bool,
}

/// Hook for the incentive layer: it may rank peers (for example by payments).
pub trait UnchokeHook: Send {
    /// The peer's rank: higher is unchoked first; `None` means no opinion (the peer is then
    /// ranked after every ranked peer, by rate).
    fn rank(&mut self, peer: PeerKey) -> Option<i64>;
}

/// What the choker remembers of a peer between rounds.
#[derive(Debug, Clone, Copy)]
struct Memo {
    /// Round the peer first appeared.
    first_seen: u64,
    /// Round our current unchoke of it began, if we unchoke it.
    unchoked_since: Option<u64>,
    /// Round we last choked it after an unchoke.
    last_choked: Option<u64>,
}

/// The choker. See the [module documentation](self).
pub struct Choker {
    config: ChokerConfig,
    hook: Option<Box<dyn UnchokeHook>>,
    rng: SplitMix64,
    round: u64,
    optimistic: Option<PeerKey>,
    /// Rounds the current optimistic unchoke has lasted.
    optimistic_age: u32,
    memo: BTreeMap<PeerKey, Memo>,
}

impl fmt::Debug for Choker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Choker")
            .field("config", &self.config)
            .field("hook", &self.hook.is_some())
            .field("round", &self.round)
            .field("optimistic", &self.optimistic)
            .field("optimistic_age", &self.optimistic_age)
            .finish_non_exhaustive()
    }
}

/// A candidate that may be unchoked, with what the round needs to know of it.
struct Eligible<'a> {
    c: &'a ChokeCandidate,
    rank: Option<i64>,
    tie: u64,
}

impl Eligible<'_> {
    /// Sort key of the hook: ranked peers first, highest rank first.
    fn hook_key(&self) -> (bool, Reverse<i64>) {
        (self.rank.is_none(), Reverse(self.rank.unwrap_or(0)))
    }
}

impl Choker {
    /// A choker with no hook.
    pub fn new(config: ChokerConfig) -> Self {
        Choker {
            rng: SplitMix64::new(config.seed),
            config,
            hook: None,
            round: 0,
            optimistic: None,
            optimistic_age: 0,
            memo: BTreeMap::new(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &ChokerConfig {
        &self.config
    }

    /// Installs (or with `None` removes) the incentive layer's hook.
    pub fn set_hook(&mut self, hook: Option<Box<dyn UnchokeHook>>) {
        self.hook = hook;
    }

    /// The peer holding the optimistic slot after the last leeching round, if any.
    pub fn optimistic(&self) -> Option<PeerKey> {
        self.optimistic
    }

    /// Rounds run so far.
    pub fn rounds(&self) -> u64 {
        self.round
    }

    /// One rechoke round. Clears `out` and writes to it the peers that should be unchoked after
    /// this round (all others choked), in no particular order. `seeding` selects the seed-mode
    /// policy.
    pub fn rechoke(
        &mut self,
        seeding: bool,
        candidates: &[ChokeCandidate],
        out: &mut Vec<PeerKey>,
    ) {
        out.clear();
        let round = self.round;
        self.round += 1;

        let mut sorted: Vec<&ChokeCandidate> = candidates.iter().collect();
        sorted.sort_by_key(|c| c.peer);
        sorted.dedup_by_key(|c| c.peer);
        let present: BTreeSet<PeerKey> = sorted.iter().map(|c| c.peer).collect();
        self.memo.retain(|k, _| present.contains(k));
        for c in &sorted {
            self.memo.entry(c.peer).or_insert(Memo {
                first_seen: round,
                unchoked_since: None,
                last_choked: None,
            });
        }

        let tie = self.rng.next_u64();
        let mut eligible: Vec<Eligible<'_>> = Vec::new();
        for c in sorted.into_iter().filter(|c| c.interested && !c.is_seed) {
            let rank = self.hook.as_mut().and_then(|h| h.rank(c.peer));
            let tie = mix64(tie ^ u64::from(c.peer.0));
            eligible.push(Eligible { c, rank, tie });
        }

        let slots = self.config.upload_slots;
        if eligible.len() <= slots {
            out.extend(eligible.iter().map(|e| e.c.peer));
            if self.optimistic.is_some_and(|o| !out.contains(&o)) {
                self.optimistic = None;
            }
        } else if seeding {
            self.optimistic = None;
            self.seed_round(round, &mut eligible, out);
        } else {
            self.leech_round(&mut eligible, out);
        }

        let unchoked: BTreeSet<PeerKey> = out.iter().copied().collect();
        for (peer, m) in &mut self.memo {
            if unchoked.contains(peer) {
                m.unchoked_since.get_or_insert(round);
            } else if m.unchoked_since.take().is_some() {
                m.last_choked = Some(round);
            }
        }
    }

    /// Tit-for-tat plus one optimistic slot.
    fn leech_round(&mut self, eligible: &mut [Eligible<'_>], out: &mut Vec<PeerKey>) {
        let slots = self.config.upload_slots;
        if slots == 0 {
            self.optimistic = None;
            return;
        }
        eligible.sort_by_key(|e| {
            (
                e.hook_key(),
                Reverse(e.c.download_rate),
                !e.c.unchoked,
                e.tie,
            )
        });
        let (regular, rest) = eligible.split_at(slots.saturating_sub(1).min(eligible.len()));
        out.extend(regular.iter().map(|e| e.c.peer));

        let rounds = self.config.optimistic_rounds.max(1);
        let keep = self
            .optimistic
            .filter(|o| self.optimistic_age < rounds && rest.iter().any(|e| e.c.peer == *o));
        if let Some(o) = keep {
            self.optimistic_age += 1;
            out.push(o);
            return;
        }
        // A new optimistic peer: a choked one if any (never the one just rotated out while
        // there is another choice), newcomers weighted three to one.
        let previous = self.optimistic;
        let mut pool: Vec<&Eligible<'_>> = rest
            .iter()
            .filter(|e| !e.c.unchoked && Some(e.c.peer) != previous)
            .collect();
        if pool.is_empty() {
            pool = rest.iter().filter(|e| Some(e.c.peer) != previous).collect();
        }
        if pool.is_empty() {
            pool = rest.iter().collect();
        }
        let newcomer = self.config.rechoke_interval.saturating_mul(3);
        let weight = |e: &Eligible<'_>| if e.c.connected_for < newcomer { 3 } else { 1 };
        let total: u64 = pool.iter().map(|e| weight(e)).sum();
        let mut x = self.rng.below(total);
        let mut chosen = None;
        for e in pool {
            let w = weight(e);
            if x < w {
                chosen = Some(e.c.peer);
                break;
            }
            x -= w;
        }
        self.optimistic = chosen;
        self.optimistic_age = 1;
        out.extend(chosen);
    }

    /// Round robin among interested peers, hook first.
    fn seed_round(&mut self, round: u64, eligible: &mut [Eligible<'_>], out: &mut Vec<PeerKey>) {
        let turn = u64::from(self.config.optimistic_rounds.max(1));
        let memo = &self.memo;
        eligible.sort_by_key(|e| {
            let m = memo.get(&e.c.peer);
            let since = m.and_then(|m| m.unchoked_since);
            let in_turn = since.is_some_and(|s| round.saturating_sub(s) < turn);
            // Peers unchoked right now are not waiting at all.
            let waiting_since = match (since, m) {
                (Some(_), _) | (None, None) => round,
                (None, Some(m)) => m.last_choked.unwrap_or(m.first_seen),
            };
            (
                e.hook_key(),
                !in_turn,
                if in_turn { 0 } else { waiting_since },
                Reverse(e.c.upload_rate),
                e.tie,
            )
        });
        out.extend(
            eligible
                .iter()
                .take(self.config.upload_slots)
                .map(|e| e.c.peer),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const OLD: Duration = Duration::from_secs(600);

    fn cand(peer: u32, down: u64, up: u64) -> ChokeCandidate {
        ChokeCandidate {
            peer: PeerKey(peer),
            interested: true,
            unchoked: false,
            download_rate: down,
            upload_rate: up,
            connected_for: OLD,
            is_seed: false,
        }
    }

    fn choker(seed: u64) -> Choker {
        Choker::new(ChokerConfig {
            seed,
            ..ChokerConfig::default()
        })
    }

    /// Runs a round and applies its answer to the candidates, as a driver would.
    fn round(ch: &mut Choker, seeding: bool, cands: &mut [ChokeCandidate]) -> BTreeSet<PeerKey> {
        let mut out = vec![PeerKey(999)];
        ch.rechoke(seeding, cands, &mut out);
        let set: BTreeSet<PeerKey> = out.iter().copied().collect();
        assert_eq!(set.len(), out.len(), "duplicate in {out:?}");
        assert!(set.len() <= ch.config().upload_slots);
        for c in cands.iter_mut() {
            c.unchoked = set.contains(&c.peer);
        }
        set
    }

    fn keys(ks: &[u32]) -> BTreeSet<PeerKey> {
        ks.iter().map(|&k| PeerKey(k)).collect()
    }

    struct Ranks(BTreeMap<PeerKey, i64>);

    impl UnchokeHook for Ranks {
        fn rank(&mut self, peer: PeerKey) -> Option<i64> {
            self.0.get(&peer).copied()
        }
    }

    #[test]
    fn defaults() {
        let c = ChokerConfig::default();
        assert_eq!(c.upload_slots, 4);
        assert_eq!(c.rechoke_interval, Duration::from_secs(10));
        assert_eq!(c.optimistic_rounds, 3);
        let ch = choker(0);
        assert_eq!(ch.rounds(), 0);
        assert!(format!("{ch:?}").contains("Choker"));
    }

    #[test]
    fn tit_for_tat_picks_the_fastest() {
        let mut ch = choker(1);
        let mut cands: Vec<ChokeCandidate> =
            (0..10).map(|i| cand(i, u64::from(i) * 1000, 0)).collect();
        cands.reverse();
        for _ in 0..10 {
            let set = round(&mut ch, false, &mut cands);
            assert_eq!(set.len(), 4);
            assert!(set.is_superset(&keys(&[9, 8, 7])), "{set:?}");
            let opt = ch.optimistic().unwrap();
            assert!(opt.0 < 7 && set.contains(&opt));
        }
    }

    #[test]
    fn only_interested_non_seeds_and_all_when_few() {
        let mut cands: Vec<ChokeCandidate> = (0..10).map(|i| cand(i, 5000, 5000)).collect();
        for c in &mut cands[3..] {
            c.interested = false;
        }
        cands[0].is_seed = true;
        cands.push(cand(1, 0, 0)); // a duplicate key: ignored
        for seeding in [false, true] {
            let mut ch = choker(2);
            assert_eq!(round(&mut ch, seeding, &mut cands), keys(&[1, 2]));
        }
        let mut ch = Choker::new(ChokerConfig {
            upload_slots: 0,
            ..ChokerConfig::default()
        });
        assert!(round(&mut ch, false, &mut cands).is_empty());
        assert!(round(&mut ch, true, &mut cands).is_empty());
        let mut ch = choker(3);
        let mut none: Vec<ChokeCandidate> = Vec::new();
        assert!(round(&mut ch, false, &mut none).is_empty());
    }

    #[test]
    fn one_slot_is_the_optimistic_one() {
        let mut ch = Choker::new(ChokerConfig {
            upload_slots: 1,
            ..ChokerConfig::default()
        });
        let mut cands: Vec<ChokeCandidate> = (0..5).map(|i| cand(i, u64::from(i), 0)).collect();
        let set = round(&mut ch, false, &mut cands);
        assert_eq!(set.len(), 1);
        assert_eq!(set.first().copied(), ch.optimistic());
    }

    #[test]
    fn optimistic_rotates_every_n_rounds_over_different_peers() {
        let mut ch = choker(4);
        let mut cands: Vec<ChokeCandidate> = (0..10)
            .map(|i| cand(i, if i < 3 { 10_000 + u64::from(i) } else { 0 }, 0))
            .collect();
        let mut history = Vec::new();
        for _ in 0..30 {
            let set = round(&mut ch, false, &mut cands);
            let opt = ch.optimistic().unwrap();
            assert!(set.contains(&opt) && opt.0 >= 3);
            history.push(opt);
        }
        for r in 1..30 {
            assert_eq!(
                history[r] != history[r - 1],
                r % 3 == 0,
                "round {r}: {history:?}"
            );
        }
        let distinct: BTreeSet<PeerKey> = history.iter().copied().collect();
        assert!(distinct.len() >= 5, "{distinct:?}");
    }

    #[test]
    fn optimistic_replaced_when_it_leaves_or_is_promoted() {
        let mut ch = choker(5);
        let mut cands: Vec<ChokeCandidate> = (0..8)
            .map(|i| cand(i, if i < 3 { 10_000 } else { 0 }, 0))
            .collect();
        round(&mut ch, false, &mut cands);
        let first = ch.optimistic().unwrap();
        cands.retain(|c| c.peer != first);
        round(&mut ch, false, &mut cands);
        let second = ch.optimistic().unwrap();
        assert_ne!(first, second);
        // The optimistic peer turns out fast: it takes a regular slot and a new one is drawn.
        for c in &mut cands {
            if c.peer == second {
                c.download_rate = 50_000;
            }
        }
        let set = round(&mut ch, false, &mut cands);
        let third = ch.optimistic().unwrap();
        assert!(set.contains(&second) && set.contains(&third) && third != second);
        // It loses interest: replaced at once.
        for c in &mut cands {
            if c.peer == third {
                c.interested = false;
            }
        }
        let set = round(&mut ch, false, &mut cands);
        assert!(!set.contains(&third));
        assert_ne!(ch.optimistic(), Some(third));
        assert_eq!(set.len(), 4);
    }

    #[test]
    fn newcomers_are_three_times_as_likely() {
        let mut ch = Choker::new(ChokerConfig {
            optimistic_rounds: 1,
            seed: 6,
            ..ChokerConfig::default()
        });
        let mut cands: Vec<ChokeCandidate> = (0..19)
            .map(|i| {
                let mut c = cand(i, if i < 3 { 10_000 } else { 0 }, 0);
                if i >= 11 {
                    c.connected_for = Duration::from_secs(29);
                }
                c
            })
            .collect();
        let (mut new, mut old) = (0u32, 0u32);
        for _ in 0..4000 {
            round(&mut ch, false, &mut cands);
            match ch.optimistic().unwrap().0 {
                11.. => new += 1,
                3..=10 => old += 1,
                k => panic!("optimistic went to regular peer {k}"),
            }
        }
        let ratio = f64::from(new) / f64::from(old);
        assert!((2.4..3.8).contains(&ratio), "newcomers {new}, others {old}");
    }

    #[test]
    fn hook_takes_precedence_over_rates() {
        let mut ch = choker(7);
        ch.set_hook(Some(Box::new(Ranks(BTreeMap::from([
            (PeerKey(0), 5),
            (PeerKey(1), 10),
            (PeerKey(2), -3),
        ])))));
        let mut cands: Vec<ChokeCandidate> = (0..10)
            .map(|i| cand(i, u64::from(i) * 1000, u64::from(i) * 1000))
            .collect();
        for _ in 0..6 {
            let set = round(&mut ch, false, &mut cands);
            assert!(set.is_superset(&keys(&[0, 1, 2])), "{set:?}");
            assert!(!set.contains(&PeerKey(9)) || ch.optimistic() == Some(PeerKey(9)));
        }
        let mut seeding = choker(8);
        seeding.set_hook(Some(Box::new(Ranks(BTreeMap::from([(PeerKey(0), 1)])))));
        for _ in 0..10 {
            assert!(round(&mut seeding, true, &mut cands).contains(&PeerKey(0)));
        }
        ch.set_hook(None);
        let set = round(&mut ch, false, &mut cands);
        assert!(set.is_superset(&keys(&[9, 8, 7])));
    }

    #[test]
    fn seed_mode_prefers_fast_uploads_and_rotates() {
        let mut ch = choker(9);
        let mut cands: Vec<ChokeCandidate> =
            (0..10).map(|i| cand(i, 0, u64::from(i) * 1000)).collect();
        cands[0].interested = false;
        let first = round(&mut ch, true, &mut cands);
        assert_eq!(first, keys(&[9, 8, 7, 6]));
        let mut seen = first.clone();
        let mut turns: BTreeMap<PeerKey, u32> = BTreeMap::new();
        for _ in 0..24 {
            let set = round(&mut ch, true, &mut cands);
            assert_eq!(set.len(), 4);
            for k in &set {
                *turns.entry(*k).or_default() += 1;
            }
            seen.extend(set);
        }
        assert_eq!(seen, keys(&[1, 2, 3, 4, 5, 6, 7, 8, 9]));
        // Round robin: nobody hogs the slots (24 rounds x 4 slots over 9 peers, 10.7 each on
        // average); ties go to the faster uploads.
        assert!(turns.values().all(|&t| (6..=14).contains(&t)), "{turns:?}");
        assert!(turns[&PeerKey(9)] >= turns[&PeerKey(1)], "{turns:?}");
    }

    #[test]
    fn deterministic_given_the_seed_whatever_the_candidate_order() {
        let run = |seed: u64, reverse: bool| {
            let mut ch = choker(seed);
            let mut cands: Vec<ChokeCandidate> = (0..12)
                .map(|i| cand(i, u64::from(i % 3), u64::from(i % 4)))
                .collect();
            if reverse {
                cands.reverse();
            }
            (0..40)
                .map(|r| round(&mut ch, r % 10 > 6, &mut cands))
                .collect::<Vec<_>>()
        };
        assert_eq!(run(10, false), run(10, false));
        assert_eq!(run(10, false), run(10, true));
        assert_ne!(run(10, false), run(11, false));
    }

    fn candidate() -> impl Strategy<Value = ChokeCandidate> {
        (
            0u32..12,
            any::<bool>(),
            any::<bool>(),
            0u64..5,
            0u64..5,
            0u64..100,
            any::<bool>(),
        )
            .prop_map(|(peer, interested, unchoked, down, up, secs, is_seed)| {
                ChokeCandidate {
                    peer: PeerKey(peer),
                    interested,
                    unchoked,
                    download_rate: down,
                    upload_rate: up,
                    connected_for: Duration::from_secs(secs),
                    is_seed,
                }
            })
    }

    proptest! {
        #[test]
        fn never_unchokes_the_uninterested_nor_too_many(
            seed in any::<u64>(),
            slots in 0usize..6,
            rounds in 0u32..4,
            hook in any::<bool>(),
            steps in proptest::collection::vec(
                (any::<bool>(), proptest::collection::vec(candidate(), 0..14)), 1..20),
        ) {
            let mut ch = Choker::new(ChokerConfig {
                upload_slots: slots,
                optimistic_rounds: rounds,
                seed,
                ..ChokerConfig::default()
            });
            if hook {
                ch.set_hook(Some(Box::new(Ranks(BTreeMap::from([(PeerKey(1), 1), (PeerKey(2), -1)])))));
            }
            for (seeding, cands) in steps {
                let mut out = Vec::new();
                ch.rechoke(seeding, &cands, &mut out);
                let set: BTreeSet<PeerKey> = out.iter().copied().collect();
                prop_assert_eq!(set.len(), out.len());
                prop_assert!(out.len() <= slots);
                let mut first: BTreeMap<PeerKey, &ChokeCandidate> = BTreeMap::new();
                for c in &cands {
                    first.entry(c.peer).or_insert(c);
                }
                let eligible: BTreeSet<PeerKey> = first
                    .values()
                    .filter(|c| c.interested && !c.is_seed)
                    .map(|c| c.peer)
                    .collect();
                prop_assert!(set.is_subset(&eligible));
                prop_assert_eq!(out.len(), eligible.len().min(slots));
                prop_assert!(ch.memo.len() <= first.len());
            }
        }
    }
}
