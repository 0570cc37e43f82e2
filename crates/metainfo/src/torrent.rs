//! torrent (in progress)
