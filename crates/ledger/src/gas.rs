//! The gas schedule and the per-transaction meter.

use serde::{Deserialize, Serialize};

use crate::error::ContractError;

/// What each operation costs, in gas. Part of the chain's parameters, fixed at genesis, so every
/// node charges the same.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GasSchedule {
    /// Every transaction.
    pub tx_base: u64,
    /// Per byte of the encoded transaction.
    pub tx_byte: u64,
    /// Reading a storage slot or an account.
    pub read: u64,
    /// Per byte read.
    pub read_byte: u64,
    /// Writing (or deleting) a storage slot or an account.
    pub write: u64,
    /// Per byte written.
    pub write_byte: u64,
    /// Verifying one signature inside a call.
    pub verify_signature: u64,
    /// Hashing: per call.
    pub hash: u64,
    /// Hashing: per 64 bytes.
    pub hash_block: u64,
    /// Emitting an event.
    pub event: u64,
    /// Per byte of event data.
    pub event_byte: u64,
}

impl Default for GasSchedule {
    fn default() -> Self {
        GasSchedule {
            tx_base: 1_000,
            tx_byte: 4,
            read: 100,
            read_byte: 1,
            write: 400,
            write_byte: 8,
            verify_signature: 3_000,
            hash: 30,
            hash_block: 6,
            event: 100,
            event_byte: 2,
        }
    }
}

/// Gas used so far by one transaction against its limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GasMeter {
    limit: u64,
    used: u64,
}

impl GasMeter {
    /// A meter allowing `limit` gas.
    pub fn new(limit: u64) -> GasMeter {
        GasMeter { limit, used: 0 }
    }

    /// Charges `amount`.
    ///
    /// # Errors
    /// [`ContractError::OutOfGas`] if that would exceed the limit; the meter is then full.
    pub fn charge(&mut self, amount: u64) -> Result<(), ContractError> {
        match self.used.checked_add(amount) {
            Some(used) if used <= self.limit => {
                self.used = used;
                Ok(())
            }
            _ => {
                self.used = self.limit;
                Err(ContractError::OutOfGas)
            }
        }
    }

    /// Gas used.
    pub fn used(&self) -> u64 {
        self.used
    }

    /// The limit.
    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// Gas left.
    pub fn remaining(&self) -> u64 {
        self.limit.saturating_sub(self.used)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meter_stops_at_limit() {
        let mut m = GasMeter::new(10);
        assert_eq!(m.charge(4), Ok(()));
        assert_eq!(m.remaining(), 6);
        assert_eq!(m.charge(7), Err(ContractError::OutOfGas));
        assert_eq!(m.used(), 10);
        assert_eq!(m.charge(u64::MAX), Err(ContractError::OutOfGas));
    }
}
