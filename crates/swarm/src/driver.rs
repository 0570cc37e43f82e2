//! A tokio driver for a [`Session`]: it owns the sockets and the clock, and runs storage work
//! (block reads, hash checks, writes, resume records) on its own threads so that the async
//! runtime never blocks on a disk.
//!
//! Each connection gets a reader task and a writer task. The session lives behind a mutex that
//! is held only while it digests input, never across an `.await` or a disk access.

use std::collections::{HashMap, VecDeque};
use std::io::IoSlice;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use tessera_metainfo::Metainfo;
use tessera_store::{read_block, write_block, Backend, Layout, ResumeWriter, StoreError, Verifier};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::task::AbortHandle;

use crate::{Direction, Event, PeerKey, Session};

/// Where a torrent's data lives, opened by the driver's caller once the torrent is known.
pub struct Storage {
    /// The files.
    pub backend: Arc<dyn Backend>,
    /// The resume record to keep up to date as pieces are verified, if any.
    pub resume: Option<ResumeWriter>,
}

impl std::fmt::Debug for Storage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Storage")
            .field("resume", &self.resume.is_some())
            .finish_non_exhaustive()
    }
}

impl Storage {
    /// An [`OpenStorage`] that hands over this storage, already opened for a torrent known
    /// in advance (a .torrent file rather than a magnet link).
    pub fn into_opener(self) -> OpenStorage {
        let mut storage = Some(self);
        Box::new(move |_, _| {
            storage
                .take()
                .ok_or_else(|| DriverError::Io(std::io::Error::other("storage opened twice")))
        })
    }
}

/// Opens the storage for a torrent (called once, as soon as the torrent is known: at once for
/// a .torrent file, after the metadata exchange for a magnet link).
pub type OpenStorage =
    Box<dyn FnOnce(&Arc<Metainfo>, &Arc<Layout>) -> Result<Storage, DriverError> + Send>;

/// Settings of a [`Driver`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct DriverConfig {
    /// Threads that read, hash and write pieces.
    pub disk_threads: usize,
    /// Pieces kept in memory after being read for a peer, so that the other blocks of the
    /// same piece are served without touching the disk again.
    pub read_cache_pieces: usize,
    /// How often the resume record is brought up to date (files synced first) while pieces
    /// are being verified, on a thread of its own so that syncing never holds up the
    /// download. [`Driver::flush`] does it at once.
    pub resume_interval: Duration,
    /// Time allowed to establish an outgoing TCP connection.
    pub connect_timeout: Duration,
}

impl Default for DriverConfig {
    fn default() -> Self {
        DriverConfig {
            disk_threads: std::thread::available_parallelism().map_or(2, |n| n.get().clamp(2, 8)),
            read_cache_pieces: 32,
            resume_interval: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(5),
        }
    }
}

/// A snapshot of a running torrent, for progress displays.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Progress {
    /// Verified pieces.
    pub pieces: u32,
    /// Pieces in the torrent (0 until the metadata is known).
    pub total_pieces: u32,
    /// Payload bytes downloaded.
    pub downloaded: u64,
    /// Payload bytes uploaded.
    pub uploaded: u64,
    /// Connected peers.
    pub peers: usize,
    /// Peers that completed a handshake since the start.
    pub peers_seen: u32,
    /// Pieces that failed their hash check.
    pub hash_failures: u32,
}

/// Why a driver stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DriverError {
    /// Storage failed: the download cannot continue.
    #[error("storage: {0}")]
    Storage(#[from] StoreError),
    /// The resume record could not be written.
    #[error("resume record: {0}")]
    Resume(String),
    /// A socket operation failed.
    #[error("network: {0}")]
    Io(#[from] std::io::Error),
}

enum Job {
    Read {
        peer: PeerKey,
        request: tessera_wire::BlockRequest,
    },
    Verify {
        piece: u32,
        data: Bytes,
    },
}

struct Disk {
    meta: Arc<Metainfo>,
    layout: Arc<Layout>,
    backend: Arc<dyn Backend>,
    resume: Mutex<Option<ResumeWriter>>,
    /// Writes to one file take its inode lock in the kernel: we queue on our own lock instead
    /// of spinning on that one, and the other disk threads keep hashing meanwhile.
    write_lock: Mutex<()>,
    /// Pieces written since the last resume commit (kept apart from the writer, whose lock
    /// is held while files sync).
    newly_verified: Mutex<Vec<u32>>,
    cache: Mutex<VecDeque<(u32, Bytes)>>,
}

/// One connection's tasks and their wake-ups.
struct PeerTasks {
    /// Wakes the writer: bytes are queued.
    writer: Arc<Notify>,
    tasks: Vec<AbortHandle>,
}

struct Inner {
    session: Mutex<Session>,
    config: DriverConfig,
    runtime: tokio::runtime::Handle,
    wakers: Mutex<HashMap<PeerKey, PeerTasks>>,
    disk: RwLock<Option<Arc<Disk>>>,
    open: Mutex<Option<OpenStorage>>,
    jobs: Mutex<Option<mpsc::Sender<Job>>>,
    finished: AtomicBool,
    done: Notify,
    error: Mutex<Option<String>>,
    pending_verify: AtomicU64,
    started: Instant,
}

/// Runs a [`Session`] on tokio. Cheap to clone; every clone drives the same session.
#[derive(Clone)]
pub struct Driver {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Driver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Driver")
            .field("progress", &self.progress())
            .finish()
    }
}

impl Driver {
    /// Starts driving `session` on the current tokio runtime. `open` is called for the
    /// torrent's storage as soon as the torrent is known.
    ///
    /// # Errors
    /// Opening the storage failed.
    ///
    /// # Panics
    /// Outside a tokio runtime.
    pub fn start(
        session: Session,
        open: OpenStorage,
        config: DriverConfig,
    ) -> Result<Self, DriverError> {
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        let finished = session.is_finished();
        let inner = Arc::new(Inner {
            session: Mutex::new(session),
            config: config.clone(),
            runtime: tokio::runtime::Handle::current(),
            wakers: Mutex::new(HashMap::new()),
            disk: RwLock::new(None),
            open: Mutex::new(Some(open)),
            jobs: Mutex::new(Some(tx)),
            finished: AtomicBool::new(finished),
            done: Notify::new(),
            error: Mutex::new(None),
            pending_verify: AtomicU64::new(0),
            started: Instant::now(),
        });
        let known = {
            let s = lock(&inner.session);
            s.metainfo().cloned().zip(s.layout().cloned())
        };
        if let Some((meta, layout)) = known {
            open_storage(&inner, &meta, &layout)?;
        }
        for _ in 0..config.disk_threads.max(1) {
            let inner = Arc::clone(&inner);
            let rx = Arc::clone(&rx);
            std::thread::Builder::new()
                .name("tessera-disk".into())
                .spawn(move || disk_thread(&inner, &rx))?;
        }
        let timer = Arc::clone(&inner);
        tokio::spawn(async move { timer_task(timer).await });
        let weak = Arc::downgrade(&inner);
        std::thread::Builder::new()
            .name("tessera-resume".into())
            .spawn(move || resume_thread(&weak))?;
        Ok(Driver { inner })
    }

    /// Accepts connections on `addr`; returns the address actually bound (port 0 picks one).
    ///
    /// # Errors
    /// Binding failed.
    pub async fn listen(&self, addr: SocketAddr) -> Result<SocketAddr, DriverError> {
        let listener = TcpListener::bind(addr).await?;
        let local = listener.local_addr()?;
        lock(&self.inner.session).set_listen_port(Some(local.port()));
        let inner = Arc::clone(&self.inner);
        tokio::spawn(async move {
            loop {
                match listener.accept().await {
                    Ok((stream, from)) => start_peer(&inner, stream, from, Direction::Incoming),
                    Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                }
            }
        });
        Ok(local)
    }

    /// Finds peers for this torrent in the Mainline DHT and connects to them; with
    /// `announce_port`, also announces us (as a seed once the download is complete) on that
    /// TCP port. Repeats every `interval` until [`Driver::shutdown`]. A hybrid torrent is
    /// looked up under both its v1 and its truncated v2 info hash (BEP 52).
    pub fn discover_with_dht(
        &self,
        dht: tessera_dht::driver::Dht,
        announce_port: Option<u16>,
        interval: Duration,
    ) {
        let targets: Vec<tessera_dht::Id> = lock(&self.inner.session)
            .info_hashes()
            .swarm_hashes()
            .map(|h| tessera_dht::Id(h.0))
            .collect();
        let weak = Arc::downgrade(&self.inner);
        self.inner.runtime.spawn(async move {
            // Addresses already handed to the swarm, bounded; forgotten when full.
            let mut tried = std::collections::HashSet::new();
            // Give the DHT a moment to join before the first lookup.
            dht.wait_for_contacts(1, Duration::from_secs(5)).await;
            loop {
                for target in &targets {
                    if let Ok(mut found) = dht.get_peers_stream(*target).await {
                        while let Some(batch) = found.recv().await {
                            let Some(inner) = weak.upgrade() else { return };
                            if lock(&inner.jobs).is_none() {
                                return;
                            }
                            for peer in batch {
                                if tried.len() >= 4096 {
                                    tried.clear();
                                }
                                if tried.insert(peer) {
                                    spawn_connect(&inner, peer);
                                }
                            }
                        }
                    }
                    if let Some(port) = announce_port {
                        let seed = weak
                            .upgrade()
                            .is_some_and(|inner| inner.finished.load(Ordering::Acquire));
                        let _ = dht.announce(*target, Some(port), seed).await;
                    }
                }
                // While no peer is connected, ask again soon: announces reach the DHT over time.
                let idle = weak
                    .upgrade()
                    .is_some_and(|inner| lock(&inner.session).peer_count() == 0);
                let wait = if idle {
                    interval.min(Duration::from_secs(2))
                } else {
                    interval
                };
                tokio::time::sleep(wait).await;
                match weak.upgrade() {
                    Some(inner) if lock(&inner.jobs).is_some() => {}
                    _ => return,
                }
            }
        });
    }

    /// Connects to a peer in the background.
    pub fn connect(&self, addr: SocketAddr) {
        spawn_connect(&self.inner, addr);
    }

    /// Where the torrent stands.
    pub fn progress(&self) -> Progress {
        let s = lock(&self.inner.session);
        let stats = s.stats();
        Progress {
            pieces: s.have().map_or(0, |h| h.count()),
            total_pieces: s.layout().map_or(0, |l| l.num_pieces()),
            downloaded: stats.downloaded,
            uploaded: stats.uploaded,
            peers: s.peer_count(),
            peers_seen: stats.peers_seen,
            hash_failures: stats.hash_failures,
        }
    }

    /// The torrent, once known.
    pub fn metainfo(&self) -> Option<Arc<Metainfo>> {
        lock(&self.inner.session).metainfo().cloned()
    }

    /// Time since the driver started.
    pub fn elapsed(&self) -> Duration {
        self.inner.started.elapsed()
    }

    /// Waits until every wanted piece is verified and written to the store (handed to the
    /// operating system; call [`flush`](Self::flush) to make it durable and recorded).
    ///
    /// # Errors
    /// A storage error stopped the download.
    pub async fn finished(&self) -> Result<(), DriverError> {
        loop {
            let notified = self.inner.done.notified();
            if let Some(e) = lock(&self.inner.error).clone() {
                return Err(DriverError::Resume(e));
            }
            if self.inner.finished.load(Ordering::Acquire)
                && self.inner.pending_verify.load(Ordering::Acquire) == 0
            {
                return Ok(());
            }
            notified.await;
        }
    }

    /// Syncs written data and commits the resume record.
    ///
    /// # Errors
    /// The sync or the record write failed.
    pub async fn flush(&self) -> Result<(), DriverError> {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || commit_resume(&inner))
            .await
            .map_err(|e| DriverError::Resume(e.to_string()))?
    }

    /// Closes every connection and stops the disk threads.
    pub fn shutdown(&self) {
        let wakers: Vec<_> = lock(&self.inner.wakers).drain().collect();
        for (_, peer) in wakers {
            for t in peer.tasks {
                t.abort();
            }
        }
        lock(&self.inner.jobs).take();
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn open_storage(
    inner: &Arc<Inner>,
    meta: &Arc<Metainfo>,
    layout: &Arc<Layout>,
) -> Result<(), DriverError> {
    let Some(open) = lock(&inner.open).take() else {
        return Ok(());
    };
    let storage = open(meta, layout)?;
    let disk = Disk {
        meta: Arc::clone(meta),
        layout: Arc::clone(layout),
        backend: storage.backend,
        resume: Mutex::new(storage.resume),
        write_lock: Mutex::new(()),
        newly_verified: Mutex::new(Vec::new()),
        cache: Mutex::new(VecDeque::new()),
    };
    *inner.disk.write().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(disk));
    Ok(())
}

fn fail(inner: &Inner, msg: String) {
    let mut e = lock(&inner.error);
    if e.is_none() {
        *e = Some(msg);
    }
    drop(e);
    inner.done.notify_waiters();
}

/// Carries out what the session asked for. Called with the session locked.
fn pump(inner: &Arc<Inner>, s: &mut Session) {
    while let Some(ev) = s.poll_event() {
        match ev {
            Event::Read { peer, request } => send_job(inner, Job::Read { peer, request }),
            Event::Verify { piece, data } => {
                inner.pending_verify.fetch_add(1, Ordering::AcqRel);
                send_job(inner, Job::Verify { piece, data });
            }
            Event::Finished => {
                inner.finished.store(true, Ordering::Release);
                inner.done.notify_waiters();
            }
            Event::MetadataReceived(meta) => {
                if let Some(layout) = s.layout().cloned() {
                    if let Err(e) = open_storage(inner, &meta, &layout) {
                        fail(inner, e.to_string());
                    }
                }
            }
            Event::Disconnect { peer, .. } => {
                if let Some(p) = lock(&inner.wakers).remove(&peer) {
                    for t in p.tasks {
                        t.abort();
                    }
                }
            }
            Event::PeersDiscovered(addrs) => {
                for addr in addrs {
                    spawn_connect(inner, addr);
                }
            }
            _ => {}
        }
    }
    let wakers = lock(&inner.wakers);
    while let Some(key) = s.poll_dirty() {
        if let Some(p) = wakers.get(&key) {
            p.writer.notify_one();
        }
    }
}

fn send_job(inner: &Inner, job: Job) {
    if let Some(tx) = lock(&inner.jobs).as_ref() {
        let _ = tx.send(job);
    }
}

fn spawn_connect(inner: &Arc<Inner>, addr: SocketAddr) {
    let inner2 = Arc::clone(inner);
    let timeout = inner.config.connect_timeout;
    inner.runtime.spawn(async move {
        if let Ok(Ok(stream)) = tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
            start_peer(&inner2, stream, addr, Direction::Outgoing);
        }
    });
}

fn start_peer(inner: &Arc<Inner>, stream: TcpStream, addr: SocketAddr, direction: Direction) {
    let _ = stream.set_nodelay(true);
    let key = {
        let mut s = lock(&inner.session);
        match s.add_peer(Instant::now(), addr, direction) {
            Ok(k) => k,
            Err(_) => return,
        }
    };
    let notify = Arc::new(Notify::new());
    let resume = Arc::new(Notify::new());
    let (rd, wr) = stream.into_split();
    // Register before the tasks run, so that the first pump can wake the writer.
    lock(&inner.wakers).insert(
        key,
        PeerTasks {
            writer: Arc::clone(&notify),
            tasks: Vec::new(),
        },
    );
    let reader = inner
        .runtime
        .spawn(reader_task(Arc::clone(inner), key, rd, Arc::clone(&resume)));
    let writer = inner.runtime.spawn(writer_task(
        Arc::clone(inner),
        key,
        wr,
        Arc::clone(&notify),
        resume,
    ));
    {
        let mut w = lock(&inner.wakers);
        match w.get_mut(&key) {
            Some(p) => {
                p.tasks.push(reader.abort_handle());
                p.tasks.push(writer.abort_handle());
            }
            None => {
                // Dropped in the meantime.
                reader.abort();
                writer.abort();
            }
        }
    }
    notify.notify_one();
}

fn close_peer(inner: &Arc<Inner>, key: PeerKey) {
    let tasks = lock(&inner.wakers).remove(&key);
    {
        let mut s = lock(&inner.session);
        s.peer_closed(key);
        pump(inner, &mut s);
    }
    if let Some(p) = tasks {
        for t in p.tasks {
            t.abort();
        }
    }
}

async fn reader_task(
    inner: Arc<Inner>,
    key: PeerKey,
    mut rd: tokio::net::tcp::OwnedReadHalf,
    resume: Arc<Notify>,
) {
    let mut buf = BytesMut::with_capacity(256 * 1024);
    loop {
        // The peer does not read what we send: stop reading it until the writer drains.
        while !lock(&inner.session).wants_recv(key) {
            resume.notified().await;
        }
        if buf.capacity() - buf.len() < 64 * 1024 {
            buf.reserve(256 * 1024);
        }
        match rd.read_buf(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {
                let data = buf.split();
                let mut s = lock(&inner.session);
                s.handle_recv(Instant::now(), key, data);
                pump(&inner, &mut s);
            }
        }
    }
    close_peer(&inner, key);
}

async fn writer_task(
    inner: Arc<Inner>,
    key: PeerKey,
    mut wr: OwnedWriteHalf,
    notify: Arc<Notify>,
    resume: Arc<Notify>,
) {
    let mut chunks: VecDeque<Bytes> = VecDeque::new();
    loop {
        {
            let mut s = lock(&inner.session);
            while chunks.len() < 256 {
                match s.poll_transmit(key) {
                    Some(b) => chunks.push_back(b),
                    None => break,
                }
            }
            // Sending frees room in the send budget: queued requests may now be read, and
            // a paused reader may go on.
            pump(&inner, &mut s);
            resume.notify_one();
        }
        if chunks.is_empty() {
            notify.notified().await;
            continue;
        }
        while !chunks.is_empty() {
            let slices: Vec<IoSlice<'_>> =
                chunks.iter().take(64).map(|b| IoSlice::new(b)).collect();
            let mut n = match wr.write_vectored(&slices).await {
                Ok(0) | Err(_) => {
                    close_peer(&inner, key);
                    return;
                }
                Ok(n) => n,
            };
            while n > 0 {
                let Some(front) = chunks.front_mut() else {
                    break;
                };
                if n >= front.len() {
                    n -= front.len();
                    chunks.pop_front();
                } else {
                    let _ = front.split_to(n);
                    n = 0;
                }
            }
        }
    }
}

async fn timer_task(inner: Arc<Inner>) {
    loop {
        let at = lock(&inner.session).poll_timeout();
        tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await;
        let mut s = lock(&inner.session);
        s.handle_timeout(Instant::now());
        pump(&inner, &mut s);
    }
}

fn disk_thread(inner: &Arc<Inner>, rx: &Mutex<mpsc::Receiver<Job>>) {
    loop {
        let job = match lock(rx).recv() {
            Ok(j) => j,
            Err(_) => return,
        };
        let disk = inner.disk.read().unwrap_or_else(|e| e.into_inner()).clone();
        let Some(disk) = disk else {
            continue;
        };
        match job {
            Job::Read { peer, request } => {
                let data = read_cached(inner, &disk, &request);
                let mut s = lock(&inner.session);
                s.block_read(Instant::now(), peer, request, data);
                pump(inner, &mut s);
            }
            Job::Verify { piece, data } => {
                let verifier = Verifier::new(&disk.meta, &disk.layout);
                // On the wire a v2 file's last piece may run on over the padding after it:
                // only the file's bytes are hashed and written, and the padding must be zeros.
                let size = usize::try_from(disk.layout.piece_size(piece)).unwrap_or(usize::MAX);
                let (data_part, pad) = data.split_at(size.min(data.len()));
                let ok =
                    pad.iter().all(|b| *b == 0) && verifier.verify_piece(piece, data_part).is_ok();
                let mut written = ok;
                if ok {
                    let result = {
                        let _guard = lock(&disk.write_lock);
                        write_block(&*disk.backend, &disk.layout, piece, 0, data_part)
                    };
                    if let Err(e) = result {
                        written = false;
                        fail(inner, format!("writing piece {piece}: {e}"));
                    } else {
                        lock(&disk.newly_verified).push(piece);
                    }
                }
                {
                    let mut s = lock(&inner.session);
                    s.piece_checked(Instant::now(), piece, written);
                    s.recycle(data);
                    pump(inner, &mut s);
                }
                inner.pending_verify.fetch_sub(1, Ordering::AcqRel);
                inner.done.notify_waiters();
            }
        }
    }
}

fn commit_resume(inner: &Arc<Inner>) -> Result<(), DriverError> {
    let disk = inner.disk.read().unwrap_or_else(|e| e.into_inner()).clone();
    let Some(disk) = disk else {
        return Ok(());
    };
    let mut r = lock(&disk.resume);
    let fresh = std::mem::take(&mut *lock(&disk.newly_verified));
    if let Some(r) = r.as_mut() {
        for piece in fresh {
            r.mark_verified(piece);
        }
        r.commit(&disk.layout, &*disk.backend)
            .map_err(|e| DriverError::Resume(e.to_string()))?;
    } else {
        for file in 0..disk.layout.files().len() {
            if disk
                .layout
                .files()
                .get(file)
                .is_some_and(|f| !f.padding && f.length > 0)
            {
                disk.backend.sync(file)?;
            }
        }
    }
    Ok(())
}

/// Reads a block, keeping the whole piece in a small cache for the next blocks of it.
fn read_cached(inner: &Inner, disk: &Disk, r: &tessera_wire::BlockRequest) -> Option<Bytes> {
    let start = r.begin as usize;
    let end = start.checked_add(r.length as usize)?;
    if let Some(piece) = lock(&disk.cache)
        .iter()
        .find(|(p, _)| *p == r.index)
        .map(|(_, b)| b.clone())
    {
        return (end <= piece.len()).then(|| piece.slice(start..end));
    }
    // On the wire a piece spans the torrent's byte stream, so a v2 file's last piece runs on
    // over the padding that aligns the next file (libtorrent requests those blocks: zeros).
    let layout = &disk.layout;
    let stream_start = u64::from(r.index).checked_mul(layout.piece_length())?;
    let wire_size = layout
        .total_length()
        .checked_sub(stream_start)?
        .min(layout.piece_length());
    let wire_size = usize::try_from(wire_size).ok()?;
    let data_size = usize::try_from(layout.piece_size(r.index)).ok()?;
    if data_size == 0 || end > wire_size || data_size > wire_size {
        return None;
    }
    let mut buf = vec![0u8; wire_size];
    let len = u32::try_from(data_size).ok()?;
    read_block(
        &*disk.backend,
        layout,
        r.index,
        0,
        len,
        buf.get_mut(..data_size)?,
    )
    .ok()?;
    let piece = Bytes::from(buf);
    let mut cache = lock(&disk.cache);
    cache.push_back((r.index, piece.clone()));
    while cache.len() > inner.config.read_cache_pieces {
        cache.pop_front();
    }
    Some(piece.slice(start..end))
}

/// Where [`open_dir`] keeps a torrent's resume record by default: `DIR/.tessera/<hash>.resume`.
pub fn default_resume_path(dir: &std::path::Path, meta: &Metainfo) -> std::path::PathBuf {
    torrent_file(dir, &meta.info_hashes(), "resume")
}

/// `DIR/.tessera/<hash>.<ext>`, named by the torrent's main hash.
fn torrent_file(
    dir: &std::path::Path,
    hashes: &tessera_metainfo::InfoHashes,
    ext: &str,
) -> std::path::PathBuf {
    let stem = hashes.file_stem().unwrap_or_else(|| "torrent".to_owned());
    dir.join(".tessera").join(format!("{stem}.{ext}"))
}

/// Where a torrent first known from a magnet link keeps its metadata once received, so that a
/// restart need not ask peers again: `DIR/.tessera/<hash>.torrent`, named by the magnet's v1
/// hash if it has one, else by its v2 hash. The file is a complete torrent (for v2, with the
/// piece layers fetched from peers).
pub fn metadata_path(
    dir: &std::path::Path,
    hashes: &tessera_metainfo::InfoHashes,
) -> std::path::PathBuf {
    torrent_file(dir, hashes, "torrent")
}

/// Writes `meta` to `path` (see [`metadata_path`]) so that a crash leaves either the old file
/// or the whole new one ([`tessera_store::write_atomically`]).
///
/// # Errors
/// The directory or the file cannot be written.
pub fn save_metadata(path: &std::path::Path, meta: &Metainfo) -> Result<(), StoreError> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|source| StoreError::Io {
            path: parent.to_path_buf(),
            source,
        })?;
    }
    tessera_store::write_atomically(path, meta.as_bytes())
}

/// Reads back what [`save_metadata`] wrote: `None` if there is no file at `path`, if it is not
/// a torrent, or if its info hashes are not those of the magnet link (`hashes`; every hash the
/// link carries must match). Files over 64 MiB are not read.
pub fn load_metadata(
    path: &std::path::Path,
    hashes: &tessera_metainfo::InfoHashes,
) -> Option<Metainfo> {
    use std::io::Read;
    const LIMIT: u64 = 64 << 20;
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .ok()?
        .take(LIMIT + 1)
        .read_to_end(&mut bytes)
        .ok()?;
    if bytes.len() as u64 > LIMIT {
        return None;
    }
    let meta = Metainfo::from_bytes(bytes).ok()?;
    let have = meta.info_hashes();
    let v1_ok = hashes.v1.is_none_or(|h| have.v1 == Some(h));
    let v2_ok = hashes.v2.is_none_or(|h| have.v2 == Some(h));
    (v1_ok && v2_ok && (hashes.v1.is_some() || hashes.v2.is_some())).then_some(meta)
}

/// The file backend settings [`open_dir`] uses: the defaults, with pieces written straight to
/// the device ([`FileBackendOptions::direct_writes`](tessera_store::FileBackendOptions)),
/// since the driver writes each verified piece once, whole, and does not read it back until a
/// peer asks.
pub fn backend_options() -> tessera_store::FileBackendOptions {
    tessera_store::FileBackendOptions {
        direct_writes: true,
        ..tessera_store::FileBackendOptions::default()
    }
}

/// Opens the files of `meta` under `dir` and finds which pieces are already verified there.
///
/// With a resume record at `resume` (see [`default_resume_path`]), pieces it records in
/// unchanged files are trusted and those in changed files are read and checked again; without
/// one (or with `full_check`), everything present is checked on all cores. Returns the
/// verified pieces and the storage to hand to [`Driver::start`] (its resume writer starts
/// from what was found).
///
/// # Errors
/// The files cannot be opened or read.
pub fn open_dir(
    meta: &Metainfo,
    layout: &Layout,
    dir: &std::path::Path,
    resume: Option<&std::path::Path>,
    full_check: bool,
) -> Result<(tessera_store::Bitfield, Storage), DriverError> {
    use tessera_store::{
        load_resume, recheck, FileBackend, RecheckOptions, ResumeData, ResumeStatus,
    };
    let backend = FileBackend::new(dir, layout, backend_options())?;
    create_empty_files(&backend, layout)?;
    let data = ResumeData::new(meta, layout);
    let mut verified = tessera_store::Bitfield::new(layout.num_pieces());
    let mut trusted = false;
    if let (Some(path), false) = (resume, full_check) {
        let state = load_resume(path, meta, layout, &backend);
        if matches!(state.status, ResumeStatus::Loaded) {
            trusted = true;
            verified = state.verified;
            let verifier = Verifier::new(meta, layout);
            for piece in state.to_recheck {
                let size = usize::try_from(layout.piece_size(piece)).unwrap_or(0);
                let mut buf = vec![0u8; size];
                let len = u32::try_from(size).unwrap_or(0);
                if read_block(&backend, layout, piece, 0, len, &mut buf).is_ok()
                    && verifier.verify_piece(piece, &buf).is_ok()
                {
                    verified.set(piece, true);
                }
            }
        }
    }
    if !trusted {
        let any_data = (0..layout.files().len()).any(|f| {
            backend
                .path(f)
                .and_then(|p| std::fs::metadata(p).ok())
                .is_some_and(|m| m.len() > 0)
        });
        if any_data {
            verified = recheck(meta, layout, &backend, &RecheckOptions::default())?.verified;
        }
    }
    let writer = resume.map(|path| {
        let mut w = ResumeWriter::new(path, data);
        // Re-record what was found (fresh file states) at the first commit.
        for piece in verified.iter_ones() {
            w.mark_verified(piece);
        }
        w
    });
    if let Some(parent) = resume.and_then(|p| p.parent()) {
        std::fs::create_dir_all(parent).map_err(DriverError::Io)?;
    }
    Ok((
        verified,
        Storage {
            backend: Arc::new(backend),
            resume: writer,
        },
    ))
}

/// Creates the torrent's empty files, which no piece ever writes.
///
/// # Errors
/// A file cannot be created.
pub fn create_empty_files(backend: &dyn Backend, layout: &Layout) -> Result<(), StoreError> {
    for (i, f) in layout.files().iter().enumerate() {
        if !f.padding && f.length == 0 {
            backend.set_len(i, 0)?;
        }
    }
    Ok(())
}

/// Brings the resume record up to date every [`DriverConfig::resume_interval`] while the
/// driver lives.
fn resume_thread(inner: &std::sync::Weak<Inner>) {
    loop {
        let Some(interval) = inner.upgrade().map(|i| i.config.resume_interval) else {
            return;
        };
        std::thread::sleep(interval);
        let Some(inner) = inner.upgrade() else {
            return;
        };
        if lock(&inner.jobs).is_none() {
            return;
        }
        if let Err(e) = commit_resume(&inner) {
            fail(&inner, e.to_string());
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use tessera_metainfo::{InfoHashes, Sha1Hash, TorrentBuilder, TorrentVersion};

    #[test]
    fn kept_metadata_is_found_only_under_its_own_hashes() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("content.bin");
        std::fs::write(&src, vec![7u8; 100_000]).unwrap();
        let t = TorrentBuilder::new(&src)
            .version(TorrentVersion::Hybrid)
            .build()
            .unwrap();
        let meta = Metainfo::from_bytes(t.bytes).unwrap();
        let both = meta.info_hashes();
        let v1_only = InfoHashes {
            v1: both.v1,
            v2: None,
        };
        let v2_only = InfoHashes {
            v1: None,
            v2: both.v2,
        };
        let out = tmp.path().join("out");
        let path = metadata_path(&out, &v1_only);
        assert_eq!(path, metadata_path(&out, &both));
        assert!(load_metadata(&path, &both).is_none(), "nothing kept yet");
        save_metadata(&path, &meta).unwrap();
        let back = load_metadata(&path, &both).unwrap();
        assert_eq!(back.info_hashes(), both);
        assert_eq!(back.as_bytes(), meta.as_bytes());
        assert!(load_metadata(&path, &v1_only).is_some());
        // Kept under the v1 name, it is still the v2 hash's torrent.
        assert!(load_metadata(&path, &v2_only).is_some());
        // Another torrent's hash, or a half-matching pair, finds nothing.
        let other = InfoHashes {
            v1: Some(Sha1Hash([9; 20])),
            v2: None,
        };
        assert!(load_metadata(&path, &other).is_none());
        let mixed = InfoHashes {
            v1: Some(Sha1Hash([9; 20])),
            v2: both.v2,
        };
        assert!(load_metadata(&path, &mixed).is_none());
        assert!(load_metadata(&path, &InfoHashes { v1: None, v2: None }).is_none());
        // A damaged file finds nothing either.
        std::fs::write(&path, b"d4:infod").unwrap();
        assert!(load_metadata(&path, &both).is_none());
    }
}
