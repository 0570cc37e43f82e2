//! fuzzing (in progress)
