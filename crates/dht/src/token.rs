//! Write tokens (BEP 5): what `get_peers` / `get` hand out and `announce_peer` / `put` must
//! return, proving the writer can receive at the address it claims.
//!
//! A token is the first 8 bytes of SHA-1(secret ‖ IP address bytes). Secrets rotate every
//! [`ROTATION_INTERVAL`]; tokens made with the current or the previous secret are accepted, so a
//! token stays valid for 5 to 10 minutes. Tokens are bound to the IP address only, not the port
//! (NATs may change the port between a `get_peers` and its `announce_peer`).
//!
//! Secrets are derived deterministically as SHA-1(seed ‖ counter), so the seed must be secret
//! and random.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use sha1::{Digest, Sha1};

/// How often the secret changes.
pub const ROTATION_INTERVAL: Duration = Duration::from_secs(5 * 60);

/// Length of a token in bytes.
pub const TOKEN_LEN: usize = 8;

/// The secrets tokens are made from: the current one and the one before it.
#[derive(Clone)]
pub struct TokenSecrets {
    seed: [u8; 32],
    counter: u64,
    current: [u8; 20],
    previous: Option<[u8; 20]>,
    last_rotation: Instant,
}

impl std::fmt::Debug for TokenSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the secrets.
        f.debug_struct("TokenSecrets")
            .field("counter", &self.counter)
            .field("last_rotation", &self.last_rotation)
            .finish_non_exhaustive()
    }
}

impl TokenSecrets {
    /// Starts from a random 32-byte `seed` at time `now`, with no previous secret.
    pub fn new(seed: [u8; 32], now: Instant) -> TokenSecrets {
        TokenSecrets {
            seed,
            counter: 0,
            current: derive(&seed, 0),
            previous: None,
            last_rotation: now,
        }
    }

    /// When the next rotation is due (a deadline for the node's timer).
    pub fn next_rotation(&self) -> Instant {
        self.last_rotation + ROTATION_INTERVAL
    }

    /// Rotates the secrets if [`ROTATION_INTERVAL`] has passed since the last rotation; after a
    /// gap of two intervals or more, both secrets are replaced. Returns whether anything changed.
    ///
    /// [`token_for`](Self::token_for) and [`check`](Self::check) call this themselves.
    pub fn rotate(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last_rotation);
        if elapsed < ROTATION_INTERVAL {
            return false;
        }
        let steps = if elapsed >= ROTATION_INTERVAL * 2 {
            2
        } else {
            1
        };
        for _ in 0..steps {
            self.counter = self.counter.wrapping_add(1);
            self.previous = Some(self.current);
            self.current = derive(&self.seed, self.counter);
        }
        // Keep rotations on the 5-minute grid unless we fell behind by more than one step.
        self.last_rotation = if steps == 1 {
            self.last_rotation + ROTATION_INTERVAL
        } else {
            now
        };
        true
    }

    /// The token for a node at `ip`, made with the current secret.
    pub fn token_for(&mut self, ip: IpAddr, now: Instant) -> [u8; TOKEN_LEN] {
        self.rotate(now);
        make_token(&self.current, ip)
    }

    /// Whether `token` is valid for a node at `ip`: made with the current or previous secret.
    pub fn check(&mut self, token: &[u8], ip: IpAddr, now: Instant) -> bool {
        self.rotate(now);
        let current = ct_eq(token, &make_token(&self.current, ip));
        let previous = self
            .previous
            .is_some_and(|prev| ct_eq(token, &make_token(&prev, ip)));
        current | previous
    }
}

/// Secret number `counter`: SHA-1(seed ‖ counter as 8 big-endian bytes).
fn derive(seed: &[u8; 32], counter: u64) -> [u8; 20] {
    let mut hasher = Sha1::new();
    hasher.update(seed);
    hasher.update(counter.to_be_bytes());
    hasher.finalize().into()
}

fn make_token(secret: &[u8; 20], ip: IpAddr) -> [u8; TOKEN_LEN] {
    let mut hasher = Sha1::new();
    hasher.update(secret);
    // A dual-stack socket reports IPv4 peers as IPv4-mapped IPv6; treat both forms alike.
    match ip {
        IpAddr::V4(v4) => hasher.update(v4.octets()),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => hasher.update(v4.octets()),
            None => hasher.update(v6.octets()),
        },
    }
    let digest = hasher.finalize();
    let mut token = [0; TOKEN_LEN];
    for (t, d) in token.iter_mut().zip(digest.iter()) {
        *t = *d;
    }
    token
}

/// Comparison whose time does not depend on where the inputs differ.
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn basic() {
        let t0 = Instant::now();
        let ip = IpAddr::V4(Ipv4Addr::new(1, 2, 3, 4));
        let mut s = TokenSecrets::new([9; 32], t0);
        let tok = s.token_for(ip, t0);
        assert!(s.check(&tok, ip, t0));
        assert!(!s.check(&tok[..7], ip, t0));
        assert!(!s.check(&[0; 8], ip, t0));
        assert!(s.check(
            &tok,
            IpAddr::V6(Ipv4Addr::new(1, 2, 3, 4).to_ipv6_mapped()),
            t0
        ));
        assert_eq!(s.next_rotation(), t0 + ROTATION_INTERVAL);
        assert!(!s.rotate(t0 + Duration::from_secs(299)));
        assert!(s.rotate(t0 + ROTATION_INTERVAL));
    }
}
