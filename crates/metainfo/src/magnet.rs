//! magnet (in progress)
