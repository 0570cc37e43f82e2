//! create (in progress)
