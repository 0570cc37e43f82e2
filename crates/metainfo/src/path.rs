//! path (in progress)
