//! Entry points for the fuzz targets in `fuzz/`: each decodes untrusted bytes the way the
//! ledger does and checks that whatever decodes re-encodes to the same bytes. None may panic,
//! hang or allocate without bound.

use crate::block::Block;
use crate::cheque::SignedCheque;
use crate::tx::SignedTransaction;

/// A transaction from the network: decode, re-encode, check the signature.
pub fn transaction(data: &[u8]) {
    if let Ok(stx) = SignedTransaction::decode(data) {
        assert_eq!(
            stx.as_bytes(),
            data,
            "a decoded transaction re-encodes as read"
        );
        let again = SignedTransaction::with_signature(stx.tx().clone(), *stx.signature());
        assert_eq!(again.as_ref().map(SignedTransaction::hash), Ok(stx.hash()));
        let _ = stx.verify();
    }
}

/// A block from the network or the block log: decode, re-encode, check its transaction root.
pub fn block(data: &[u8]) {
    if let Ok(block) = Block::decode(data) {
        assert_eq!(
            block.encode().ok().as_deref(),
            Some(data),
            "canonical block"
        );
        let _ = block.check_tx_root();
    }
}

/// A cheque from a peer: decode, re-encode, recover its signer.
pub fn cheque(data: &[u8]) {
    if let Ok(cheque) = SignedCheque::decode(data) {
        assert_eq!(
            cheque.encode().ok().as_deref(),
            Some(data),
            "canonical cheque"
        );
        let _ = cheque.recover_payer();
    }
}
