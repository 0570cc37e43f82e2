//! A tokio driver for a [`Node`]: one task owns the UDP socket, the node and the clock, and a
//! cheap, cloneable [`Dht`] handle sends it commands and awaits their outcomes.
//!
//! ```text
//!   Dht (handle) ──commands (bounded mpsc)──▶ ┌──────────── task ────────────┐
//!        ▲                                    │ select! { command,           │
//!        └──── oneshot / peer batches ─────── │           datagram received, │ ◀──▶ UdpSocket
//!                                             │           node deadline }    │
//!                                             │ then: events → waiters,      │
//!                                             │       transmits → socket     │
//!                                             └──────────────────────────────┘
//! ```
//!
//! The task never waits on a handle: answers go through oneshot channels and peer batches
//! through `try_send`, so a handle dropped (or a stream left unread) in the middle of a request
//! cannot wedge it. The task ends on [`Dht::shutdown`] or when every handle is dropped.
//! Lookups asked for while the node runs as many as it may ([`NodeConfig::max_lookups`]) wait
//! their turn in the task (up to 256; beyond that they fail with [`DhtError::Busy`]).
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use tessera_dht::driver::Dht;
//! use tessera_dht::{Id, NodeConfig};
//!
//! let dht = Dht::bind("0.0.0.0:6881".parse()?, NodeConfig::default()).await?;
//! let routers = tokio::net::lookup_host("router.bittorrent.com:6881").await?;
//! dht.bootstrap(routers.collect()).await?;
//! let info_hash = Id::from_hex("0123456789abcdef0123456789abcdef01234567").ok_or("hex")?;
//! let mut batches = dht.get_peers_stream(info_hash).await?;
//! while let Some(peers) = batches.recv().await {
//!     println!("{peers:?}");
//! }
//! # Ok(())
//! # }
//! ```
//!
//! To keep the routing table across restarts, store [`Dht::save`]'s bytes; on the next start
//! read them with [`Node::load`], put the id in [`NodeConfig::id`] and hand the contacts to
//! [`Dht::add_node`] (or their addresses to [`Dht::bootstrap`]).

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::bep44::{ItemError, MutableItem};
use crate::id::{Contact, Id};
use crate::node::{Event, FoundItem, LookupId, Node, NodeConfig, NodeStats};

/// Size of the receive buffer: one byte more than the largest datagram we accept, so that a
/// longer one arrives truncated to a length the decoder refuses (rather than cut to a length
/// it would take).
const RECV_BUFFER: usize = crate::krpc::MAX_DATAGRAM + 1;
/// Commands queued from the handles before `send` waits.
const COMMAND_QUEUE: usize = 256;
/// Peer batches queued on a [`Dht::get_peers_stream`] receiver before the task holds them back.
const STREAM_QUEUE: usize = 64;
/// Lookups held back while the node runs as many as it may, before new ones are refused.
const MAX_DEFERRED: usize = 256;
/// Least time between two calls of `handle_timeout`, so that a deadline the node does not
/// clear cannot make the task spin.
const MIN_TIMER_STEP: Duration = Duration::from_millis(1);

/// Why a request to the DHT failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DhtError {
    /// The driver task has stopped (shut down, or every handle was dropped).
    #[error("the DHT driver has stopped")]
    Stopped,
    /// Too many lookups are running or waiting to run.
    #[error("too many DHT lookups running")]
    Busy,
    /// The item to store was refused before anything was sent.
    #[error("invalid item: {0}")]
    Item(#[from] ItemError),
}

type Reply<T> = oneshot::Sender<Result<T, DhtError>>;

/// A lookup to start on the node.
enum Request {
    FindNode(Id),
    GetPeers(Id),
    Announce(Id, Option<u16>, bool),
    GetImmutable(Id),
    GetMutable([u8; 32], Vec<u8>),
    PutImmutable(Vec<u8>),
    PutMutable(MutableItem),
}

/// Who waits for a lookup, and for what.
enum Waiter {
    Nodes(Reply<Vec<Contact>>),
    Peers(Reply<Vec<SocketAddr>>),
    PeerStream(PeerStream),
    Stored(Reply<usize>),
    Put(Id, Reply<(Id, usize)>),
    Immutable(Reply<Option<Vec<u8>>>),
    Mutable(Reply<Option<MutableItem>>),
}

/// The sending side of a [`Dht::get_peers_stream`], with the peers it could not take yet.
struct PeerStream {
    tx: mpsc::Sender<Vec<SocketAddr>>,
    held: Vec<SocketAddr>,
}

impl PeerStream {
    /// Hands `peers` (after any held back) to the receiver, holding them back if it is full.
    fn push(&mut self, peers: Vec<SocketAddr>) {
        self.held.extend(peers);
        if self.held.is_empty() {
            return;
        }
        match self.tx.try_send(std::mem::take(&mut self.held)) {
            Ok(()) | Err(mpsc::error::TrySendError::Closed(_)) => {}
            Err(mpsc::error::TrySendError::Full(back)) => self.held = back,
        }
    }

    /// Ends the stream; peers still held back are delivered by a task of their own.
    fn finish(mut self) {
        self.push(Vec::new());
        if !self.held.is_empty() {
            let PeerStream { tx, held } = self;
            tokio::spawn(async move {
                let _ = tx.send(held).await;
            });
        }
    }
}

enum Command {
    Bootstrap(Vec<SocketAddr>),
    AddNode(SocketAddr),
    Lookup(Request, Waiter),
    Contacts(oneshot::Sender<Vec<Contact>>),
    Stats(oneshot::Sender<NodeStats>),
    External(oneshot::Sender<Option<IpAddr>>),
    Save(oneshot::Sender<Vec<u8>>),
    Shutdown(oneshot::Sender<()>),
}

/// A handle on a DHT node running on tokio. Cheap to clone; every clone drives the same node.
/// The node stops on [`shutdown`](Self::shutdown) or when the last handle is dropped.
#[derive(Clone, Debug)]
pub struct Dht {
    tx: mpsc::Sender<Command>,
    local_addr: SocketAddr,
    id: Id,
}

impl Dht {
    /// Binds a UDP socket on `addr` (port 0 picks one) and [`start`](Self::start)s a node on it.
    ///
    /// # Errors
    /// Binding failed.
    ///
    /// # Panics
    /// Outside a tokio runtime.
    pub async fn bind(addr: SocketAddr, config: NodeConfig) -> std::io::Result<Dht> {
        Dht::start(UdpSocket::bind(addr).await?, config)
    }

    /// Starts a node with `config` on `socket`, on a task of the current tokio runtime.
    ///
    /// # Errors
    /// The socket's local address cannot be read.
    ///
    /// # Panics
    /// Outside a tokio runtime.
    pub fn start(socket: UdpSocket, config: NodeConfig) -> std::io::Result<Dht> {
        let local_addr = socket.local_addr()?;
        let node = Node::new(config, Instant::now().into_std());
        let id = node.id();
        let (tx, rx) = mpsc::channel(COMMAND_QUEUE);
        tokio::spawn(run(socket, node, rx));
        Ok(Dht { tx, local_addr, id })
    }

    /// The address the socket is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The node's id.
    pub fn id(&self) -> Id {
        self.id
    }

    async fn send(&self, command: Command) -> Result<(), DhtError> {
        self.tx.send(command).await.map_err(|_| DhtError::Stopped)
    }

    async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, DhtError> {
        let (tx, rx) = oneshot::channel();
        self.send(make(tx)).await?;
        rx.await.map_err(|_| DhtError::Stopped)
    }

    async fn lookup<T>(
        &self,
        lookup: Request,
        waiter: impl FnOnce(Reply<T>) -> Waiter,
    ) -> Result<T, DhtError> {
        let (tx, rx) = oneshot::channel();
        self.send(Command::Lookup(lookup, waiter(tx))).await?;
        rx.await.map_err(|_| DhtError::Stopped)?
    }

    /// Joins the network through `addrs` (nodes whose ids are unknown, such as the well-known
    /// routers): asks them for our neighbours and looks ourselves up. While the table stays
    /// nearly empty the node asks them again now and then.
    ///
    /// # Errors
    /// [`DhtError::Stopped`].
    pub async fn bootstrap(&self, addrs: Vec<SocketAddr>) -> Result<(), DhtError> {
        self.send(Command::Bootstrap(addrs)).await
    }

    /// Pings `addr`; it joins the routing table if it answers.
    ///
    /// # Errors
    /// [`DhtError::Stopped`].
    pub async fn add_node(&self, addr: SocketAddr) -> Result<(), DhtError> {
        self.send(Command::AddNode(addr)).await
    }

    /// Looks up the nodes closest to `target`; returns those that answered, closest first.
    ///
    /// # Errors
    /// [`DhtError::Stopped`] or [`DhtError::Busy`].
    pub async fn find_node(&self, target: Id) -> Result<Vec<Contact>, DhtError> {
        self.lookup(Request::FindNode(target), Waiter::Nodes).await
    }

    /// Looks up the peers of `info_hash`; returns every peer found once the lookup is done.
    ///
    /// # Errors
    /// [`DhtError::Stopped`] or [`DhtError::Busy`].
    pub async fn get_peers(&self, info_hash: Id) -> Result<Vec<SocketAddr>, DhtError> {
        self.lookup(Request::GetPeers(info_hash), Waiter::Peers)
            .await
    }

    /// Looks up the peers of `info_hash` and hands them over in batches as they arrive (each
    /// peer once); the receiver ends when the lookup is done. Unread batches are held in
    /// the task, not dropped (a lookup keeps at most 1000 peers), and dropping the receiver
    /// does not stop the lookup.
    ///
    /// # Errors
    /// [`DhtError::Stopped`].
    pub async fn get_peers_stream(
        &self,
        info_hash: Id,
    ) -> Result<mpsc::Receiver<Vec<SocketAddr>>, DhtError> {
        let (tx, rx) = mpsc::channel(STREAM_QUEUE);
        let stream = PeerStream {
            tx,
            held: Vec::new(),
        };
        self.send(Command::Lookup(
            Request::GetPeers(info_hash),
            Waiter::PeerStream(stream),
        ))
        .await?;
        Ok(rx)
    }

    /// Looks up `info_hash` and announces us to the closest nodes as a peer on TCP `port`, or
    /// on the UDP port of this node when `port` is `None` (BEP 5's `implied_port`); `seed`
    /// says we have the whole torrent (BEP 33). Returns how many nodes took the announce.
    ///
    /// # Errors
    /// [`DhtError::Stopped`] or [`DhtError::Busy`].
    pub async fn announce(
        &self,
        info_hash: Id,
        port: Option<u16>,
        seed: bool,
    ) -> Result<usize, DhtError> {
        self.lookup(Request::Announce(info_hash, port, seed), Waiter::Stored)
            .await
    }

    /// BEP 44: stores the raw bencoded `value` as an immutable item on the closest nodes.
    /// Returns its target (the SHA-1 of `value`) and how many nodes stored it.
    ///
    /// # Errors
    /// [`DhtError::Item`] if the value is not one bencoded value of at most 1000 bytes;
    /// [`DhtError::Stopped`] or [`DhtError::Busy`].
    pub async fn put_immutable(&self, value: Vec<u8>) -> Result<(Id, usize), DhtError> {
        crate::bep44::check_value(&value)?;
        let target = crate::bep44::immutable_target(&value);
        self.lookup(Request::PutImmutable(value), |tx| Waiter::Put(target, tx))
            .await
    }

    /// BEP 44: looks up the immutable item stored under `target`; returns its raw bencoded
    /// value (checked against the target) if a node had it.
    ///
    /// # Errors
    /// [`DhtError::Stopped`] or [`DhtError::Busy`].
    pub async fn get_immutable(&self, target: Id) -> Result<Option<Vec<u8>>, DhtError> {
        self.lookup(Request::GetImmutable(target), Waiter::Immutable)
            .await
    }

    /// BEP 44: stores a signed mutable item on the closest nodes. Returns its target and how
    /// many nodes stored it.
    ///
    /// # Errors
    /// [`DhtError::Item`] if the item does not verify; [`DhtError::Stopped`] or
    /// [`DhtError::Busy`].
    pub async fn put_mutable(&self, item: MutableItem) -> Result<(Id, usize), DhtError> {
        item.verify()?;
        let target = item.target();
        self.lookup(Request::PutMutable(item), |tx| Waiter::Put(target, tx))
            .await
    }

    /// BEP 44: looks up the mutable item of public `key` and `salt` (empty for none); returns
    /// the newest verified version found.
    ///
    /// # Errors
    /// [`DhtError::Stopped`] or [`DhtError::Busy`].
    pub async fn get_mutable(
        &self,
        key: [u8; 32],
        salt: &[u8],
    ) -> Result<Option<MutableItem>, DhtError> {
        self.lookup(Request::GetMutable(key, salt.to_vec()), Waiter::Mutable)
            .await
    }

    /// The live contacts of both routing tables (IPv4 first).
    ///
    /// # Errors
    /// [`DhtError::Stopped`].
    pub async fn contacts(&self) -> Result<Vec<Contact>, DhtError> {
        self.ask(Command::Contacts).await
    }

    /// Number of live contacts in both routing tables.
    ///
    /// # Errors
    /// [`DhtError::Stopped`].
    pub async fn table_size(&self) -> Result<usize, DhtError> {
        Ok(self.contacts().await?.len())
    }

    /// Waits until the routing tables hold at least `n` live contacts, checking every 50 ms
    /// for at most `limit`. True if they do; false on timeout or once the node has stopped.
    pub async fn wait_for_contacts(&self, n: usize, limit: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            match self.table_size().await {
                Ok(size) if size >= n => return true,
                Ok(_) if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                _ => return false,
            }
        }
    }

    /// The node's counters.
    ///
    /// # Errors
    /// [`DhtError::Stopped`].
    pub async fn stats(&self) -> Result<NodeStats, DhtError> {
        self.ask(Command::Stats).await
    }

    /// Our external address, once enough answers agree on it (BEP 42's `ip` field).
    ///
    /// # Errors
    /// [`DhtError::Stopped`].
    pub async fn external_address(&self) -> Result<Option<IpAddr>, DhtError> {
        self.ask(Command::External).await
    }

    /// Our id and routing table, to restart from ([`Node::save`]; read with [`Node::load`]).
    ///
    /// # Errors
    /// [`DhtError::Stopped`].
    pub async fn save(&self) -> Result<Vec<u8>, DhtError> {
        self.ask(Command::Save).await
    }

    /// Stops the node and waits until its task has ended and the socket is closed. Requests
    /// still waiting fail with [`DhtError::Stopped`]. Calling it again is harmless.
    pub async fn shutdown(&self) {
        let _ = self.ask(Command::Shutdown).await;
    }
}

/// The task's state besides the socket.
struct Task {
    node: Node,
    waiters: HashMap<LookupId, Waiter>,
    /// Lookups the node had no room for yet, started as others finish.
    deferred: VecDeque<(Request, Waiter)>,
    external: Option<IpAddr>,
}

/// The node's clock: tokio's, so that a paused test clock pauses the node too.
fn now() -> std::time::Instant {
    Instant::now().into_std()
}

async fn run(socket: UdpSocket, node: Node, mut commands: mpsc::Receiver<Command>) {
    let mut task = Task {
        node,
        waiters: HashMap::new(),
        deferred: VecDeque::new(),
        external: None,
    };
    let mut buf = vec![0u8; RECV_BUFFER];
    let mut last_timeout = Instant::now();
    let mut stopped: Option<oneshot::Sender<()>> = None;
    loop {
        let deadline = task
            .node
            .poll_timeout()
            .map_or(Instant::now() + Duration::from_secs(60), Instant::from_std)
            .max(last_timeout + MIN_TIMER_STEP);
        tokio::select! {
            command = commands.recv() => match command {
                None => break,
                Some(Command::Shutdown(done)) => {
                    stopped = Some(done);
                    break;
                }
                Some(command) => task.command(command),
            },
            received = socket.recv_from(&mut buf) => {
                // Errors (an ICMP error reported on some systems, say) concern one datagram.
                if let Ok((len, from)) = received {
                    if let Some(bytes) = buf.get(..len) {
                        task.node.handle_datagram(now(), from, bytes);
                    }
                }
            }
            () = tokio::time::sleep_until(deadline) => {
                last_timeout = Instant::now();
                task.node.handle_timeout(last_timeout.into_std());
            }
        }
        // Events first: a finished lookup may start one held back, which has queries to send.
        task.route_events();
        while let Some(transmit) = task.node.poll_transmit() {
            // A datagram that cannot be sent is lost, as UDP datagrams may be.
            let _ = socket.send_to(&transmit.payload, transmit.to).await;
        }
    }
    // Every waiter and stream ends here: their senders are dropped with the task.
    drop(task);
    drop(socket);
    if let Some(done) = stopped {
        let _ = done.send(());
    }
}

impl Task {
    fn command(&mut self, command: Command) {
        let now = now();
        match command {
            Command::Bootstrap(addrs) => self.node.bootstrap(now, &addrs),
            Command::AddNode(addr) => self.node.add_node(now, addr),
            Command::Lookup(lookup, waiter) => {
                if let Some((lookup, waiter)) = self.start(lookup, waiter) {
                    if self.deferred.len() < MAX_DEFERRED {
                        self.deferred.push_back((lookup, waiter));
                    } else {
                        waiter.fail(DhtError::Busy);
                    }
                }
            }
            Command::Contacts(reply) => {
                let contacts = self
                    .node
                    .table()
                    .contacts()
                    .chain(self.node.table6().contacts())
                    .collect();
                let _ = reply.send(contacts);
            }
            Command::Stats(reply) => {
                let _ = reply.send(self.node.stats());
            }
            Command::External(reply) => {
                let _ = reply.send(self.external);
            }
            Command::Save(reply) => {
                let _ = reply.send(self.node.save());
            }
            // Handled by the loop.
            Command::Shutdown(_) => {}
        }
    }

    /// Starts a lookup; gives it back if the node runs as many lookups as it may.
    fn start(&mut self, lookup: Request, waiter: Waiter) -> Option<(Request, Waiter)> {
        let now = now();
        let started = match &lookup {
            Request::FindNode(target) => self.node.find_node(now, *target),
            Request::GetPeers(info_hash) => self.node.get_peers(now, *info_hash),
            Request::Announce(info_hash, port, seed) => {
                self.node.announce(now, *info_hash, *port, *seed)
            }
            Request::GetImmutable(target) => self.node.get_immutable(now, *target),
            Request::GetMutable(key, salt) => self.node.get_mutable(now, *key, salt),
            Request::PutImmutable(value) => match self.node.put_immutable(now, value.clone()) {
                Ok((id, _)) => id,
                Err(e) => {
                    waiter.fail(e.into());
                    return None;
                }
            },
            Request::PutMutable(item) => match self.node.put_mutable(now, item.clone()) {
                Ok((id, _)) => id,
                Err(e) => {
                    waiter.fail(e.into());
                    return None;
                }
            },
        };
        match started {
            Some(id) => {
                self.waiters.insert(id, waiter);
                None
            }
            None => Some((lookup, waiter)),
        }
    }

    fn route_events(&mut self) {
        while let Some(event) = self.node.poll_event() {
            match event {
                Event::PeersFound { lookup, peers, .. } => {
                    if let Some(Waiter::PeerStream(stream)) = self.waiters.get_mut(&lookup) {
                        stream.push(peers);
                    }
                }
                Event::LookupDone {
                    lookup,
                    closest,
                    peers,
                    item,
                    stored,
                    ..
                } => {
                    if let Some(waiter) = self.waiters.remove(&lookup) {
                        waiter.done(closest, peers, item, stored);
                    }
                    self.start_deferred();
                }
                Event::ExternalAddress(ip) => self.external = Some(ip),
            }
        }
    }

    /// Starts the lookups held back, as long as the node takes them.
    fn start_deferred(&mut self) {
        while let Some((lookup, waiter)) = self.deferred.pop_front() {
            if let Some(back) = self.start(lookup, waiter) {
                self.deferred.push_front(back);
                break;
            }
        }
    }
}

impl Waiter {
    fn fail(self, error: DhtError) {
        match self {
            Waiter::Nodes(tx) => {
                let _ = tx.send(Err(error));
            }
            Waiter::Peers(tx) => {
                let _ = tx.send(Err(error));
            }
            Waiter::Stored(tx) => {
                let _ = tx.send(Err(error));
            }
            Waiter::Put(_, tx) => {
                let _ = tx.send(Err(error));
            }
            Waiter::Immutable(tx) => {
                let _ = tx.send(Err(error));
            }
            Waiter::Mutable(tx) => {
                let _ = tx.send(Err(error));
            }
            // The stream just ends.
            Waiter::PeerStream(_) => {}
        }
    }

    fn done(
        self,
        closest: Vec<Contact>,
        peers: Vec<SocketAddr>,
        item: Option<Box<FoundItem>>,
        stored: usize,
    ) {
        match self {
            Waiter::Nodes(tx) => {
                let _ = tx.send(Ok(closest));
            }
            Waiter::Peers(tx) => {
                let _ = tx.send(Ok(peers));
            }
            Waiter::PeerStream(stream) => stream.finish(),
            Waiter::Stored(tx) => {
                let _ = tx.send(Ok(stored));
            }
            Waiter::Put(target, tx) => {
                let _ = tx.send(Ok((target, stored)));
            }
            Waiter::Immutable(tx) => {
                let _ = tx.send(Ok(item.map(|i| i.value)));
            }
            Waiter::Mutable(tx) => {
                let _ = tx.send(Ok(item.and_then(|i| i.mutable)));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::panic
    )]

    use super::*;

    /// A node for a loopback network: several nodes share 127.0.0.1, and queries time out
    /// quickly.
    fn config(seed: u64) -> NodeConfig {
        let mut config = NodeConfig {
            seed,
            query_timeout: Duration::from_millis(300),
            ..NodeConfig::default()
        };
        config.routing.restrict_ips = false;
        config.lookup.restrict_ips = false;
        config.lookup.query_timeout = Duration::from_millis(300);
        config.lookup.slow_timeout = Duration::from_millis(150);
        config
    }

    async fn node(seed: u64) -> Dht {
        Dht::bind("127.0.0.1:0".parse().unwrap(), config(seed))
            .await
            .unwrap()
    }

    /// Waits (up to 10 s) until `dht` has `n` contacts.
    async fn wait_table(dht: &Dht, n: usize) {
        assert!(
            dht.wait_for_contacts(n, Duration::from_secs(10)).await,
            "table of {:?} stayed below {n}",
            dht.local_addr()
        );
    }

    #[tokio::test]
    async fn three_nodes_announce_get_peers_and_items() {
        let a = node(1).await;
        let b = node(2).await;
        let c = node(3).await;
        // Everyone from everyone: a node confirms nodes that query it by pinging them, but its
        // ping budget starts empty, and these nodes are only a few milliseconds old.
        a.bootstrap(vec![b.local_addr(), c.local_addr()])
            .await
            .unwrap();
        b.bootstrap(vec![a.local_addr(), c.local_addr()])
            .await
            .unwrap();
        c.bootstrap(vec![a.local_addr(), b.local_addr()])
            .await
            .unwrap();
        for dht in [&a, &b, &c] {
            wait_table(dht, 2).await;
        }

        let closest = b.find_node(c.id()).await.unwrap();
        assert_eq!(closest.first().map(|x| x.id), Some(c.id()));

        let info_hash = Id([0x5a; 20]);
        let stored = c.announce(info_hash, Some(1234), false).await.unwrap();
        assert_eq!(stored, 2, "a and b took c's announce");
        let peer: SocketAddr = "127.0.0.1:1234".parse().unwrap();
        assert_eq!(b.get_peers(info_hash).await.unwrap(), vec![peer]);
        let mut stream = b.get_peers_stream(info_hash).await.unwrap();
        let mut streamed = Vec::new();
        while let Some(batch) = stream.recv().await {
            streamed.extend(batch);
        }
        assert_eq!(streamed, vec![peer]);
        // implied_port: c's UDP port.
        let implied = Id([0x5b; 20]);
        assert_eq!(c.announce(implied, None, true).await.unwrap(), 2);
        assert_eq!(b.get_peers(implied).await.unwrap(), vec![c.local_addr()]);

        let value = b"5:hello".to_vec();
        let (target, stored) = a.put_immutable(value.clone()).await.unwrap();
        assert_eq!(stored, 2);
        assert_eq!(c.get_immutable(target).await.unwrap(), Some(value));
        assert_eq!(
            a.put_immutable(b"5:hell".to_vec()).await,
            Err(DhtError::Item(ItemError::InvalidValue))
        );

        let item = MutableItem::sign(&[9; 32], b"salt", 7, b"i42e");
        let (target, stored) = b.put_mutable(item.clone()).await.unwrap();
        assert_eq!((target, stored), (item.target(), 2));
        assert_eq!(a.get_mutable(item.key, b"salt").await.unwrap(), Some(item));
        assert_eq!(a.get_mutable([9; 32], b"other").await.unwrap(), None);

        let saved = a.save().await.unwrap();
        let (id, contacts) = Node::load(&saved).unwrap();
        assert_eq!(id, a.id());
        assert_eq!(contacts.len(), 2);
        assert!(a.stats().await.unwrap().queries_answered > 0);
    }

    #[tokio::test]
    async fn dropped_requests_and_unread_streams_do_not_wedge_the_task() {
        let mut cfg = config(4);
        cfg.max_lookups = 1;
        let dht = Dht::start(UdpSocket::bind("127.0.0.1:0").await.unwrap(), cfg).unwrap();
        let answering = node(5).await;
        dht.bootstrap(vec![answering.local_addr()]).await.unwrap();
        wait_table(&dht, 1).await;
        // Requests dropped before, during and after their lookups (which take about a
        // millisecond here), and streams never read.
        for i in 0..20u8 {
            let request = dht.get_peers(Id([i; 20]));
            // Dropped at once or after a moment, mid-lookup.
            let _ = tokio::time::timeout(Duration::from_millis(u64::from(i % 3)), request).await;
            let stream = dht.get_peers_stream(Id([i; 20])).await.unwrap();
            drop(stream);
        }
        // With room for one lookup at a time, the rest were held back and still run, at once
        // when the one before ends (the first test of a `poll_timeout` would be 150 ms away).
        let many: Vec<_> = (0..5u8)
            .map(|i| {
                let dht = dht.clone();
                tokio::spawn(async move { dht.find_node(Id([0x80 | i; 20])).await })
            })
            .collect();
        for handle in many {
            let closest = tokio::time::timeout(Duration::from_secs(2), handle)
                .await
                .expect("a held-back lookup finished")
                .unwrap()
                .unwrap();
            assert_eq!(closest.first().map(|c| c.id), Some(answering.id()));
        }
        assert_eq!(dht.table_size().await.unwrap(), 1);
    }

    #[tokio::test]
    async fn shutdown_and_dropping_every_handle_stop_the_task() {
        let dht = node(6).await;
        let addr = dht.local_addr();
        let other = dht.clone();
        dht.shutdown().await;
        assert_eq!(other.table_size().await, Err(DhtError::Stopped));
        assert_eq!(other.get_peers(Id([1; 20])).await, Err(DhtError::Stopped));
        dht.shutdown().await;
        // The socket is closed: its port can be bound again.
        UdpSocket::bind(addr).await.unwrap();

        let dht = node(7).await;
        let addr = dht.local_addr();
        drop(dht);
        let mut rebound = false;
        for _ in 0..100 {
            if UdpSocket::bind(addr).await.is_ok() {
                rebound = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(rebound, "the task ended and closed its socket");
    }

    #[tokio::test]
    async fn datagrams_from_anyone_are_answered_and_garbage_is_survived() {
        let dht = node(8).await;
        let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let mut buf = [0; 2048];
        // Garbage and an oversized datagram first; then a ping, which must still be answered.
        client
            .send_to(b"not bencode", dht.local_addr())
            .await
            .unwrap();
        client
            .send_to(&[b'd'; 4000], dht.local_addr())
            .await
            .unwrap();
        let ping = b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:qe";
        client.send_to(ping, dht.local_addr()).await.unwrap();
        let (len, from) = tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                let (len, from) = client.recv_from(&mut buf).await.unwrap();
                // Skip the error answers to the garbage, if any.
                if buf[..len].windows(6).any(|w| w == b"1:y1:r") {
                    return (len, from);
                }
            }
        })
        .await
        .expect("an answer to the ping");
        assert_eq!(from, dht.local_addr());
        let answer = &buf[..len];
        assert!(answer.windows(20).any(|w| w == dht.id().0), "{answer:?}");
        assert!(dht.stats().await.unwrap().malformed >= 1);
    }
}
