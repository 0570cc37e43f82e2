//! Tessera's main demo, on embedded defaults: no arguments, nothing to set up.
//!
//! ```text
//! cargo run --release --example demo
//! ```
//!
//! It makes sample content in a temporary directory, creates a hybrid (v1 + v2) torrent from it
//! with hashing on all cores, reads the torrent back, checks that what it reads is what it wrote,
//! and prints the summary and the magnet link. Then it runs a swarm on 127.0.0.1: a seeder
//! serving the content and two downloaders of our own that fetch it from the seeder and from
//! each other over TCP, verifying every piece (SHA-1 and SHA-256 merkle) before writing it,
//! with a progress line and a summary, and finally a parallel recheck of what landed on disk.
//! Last, it settles the transfer on the incentive ledger (a single-node sequencer in the same
//! temporary directory): the creator registers the torrent's info hashes with a price and a
//! royalty, the downloaders fund chequebooks and hand the seeder one off-chain cheque per
//! verified piece, the seeder cashes the latest cheque from each, the royalty goes to the
//! creator, and the chain is replayed and checked from genesis. (Every piece is paid to the
//! seeder here; paying whichever peer served it is the swarm's job once payments are wired
//! into the engine.) The DHT will extend this same demo.

use std::error::Error;
use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tessera::metainfo::{Magnet, Metainfo, TorrentBuilder, TorrentVersion};
use tessera::store::{recheck, Bitfield, FileBackend, FileBackendOptions, Layout, RecheckOptions};
use tessera::swarm::driver::{default_resume_path, open_dir, Driver, DriverConfig, Storage};
use tessera::swarm::{Session, SessionConfig};

/// Sample content: (relative path, length). Odd sizes on purpose, so that the hybrid torrent
/// needs BEP 47 padding; one empty file, which v2 lists without a merkle root.
const SAMPLE: &[(&str, usize)] = &[
    ("album/01 - overture.flac", 5_242_880 + 12_345),
    ("album/02 - allegro.flac", 3_000_001),
    ("album/cover.jpg", 262_144),
    ("album/notes/credits.txt", 1_234),
    ("album/notes/empty.txt", 0),
];

/// Deterministic pseudo-random bytes (xorshift), so the demo's info hashes are reproducible.
fn sample_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

fn write_sample(root: &Path) -> Result<u64, Box<dyn Error>> {
    let mut total = 0;
    for (i, (rel, len)) in SAMPLE.iter().enumerate() {
        let path = root.join(rel);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(&path, sample_bytes(i as u64 + 1, *len))?;
        total += *len as u64;
    }
    Ok(total)
}

fn run() -> Result<(), Box<dyn Error>> {
    let tmp = tempfile::tempdir()?;
    let content = tmp.path().join("album");
    let total = write_sample(tmp.path())?;
    println!(
        "sample content: {} files, {total} bytes in {}",
        SAMPLE.len(),
        content.display()
    );

    let started = Instant::now();
    let created = TorrentBuilder::new(&content)
        .version(TorrentVersion::Hybrid)
        .tracker("udp://tracker.example:6969/announce")
        .web_seed("https://seed.example/files/")
        .comment("Tessera demo content")
        .build()?;
    let elapsed = started.elapsed();
    let torrent_path = tmp.path().join("album.torrent");
    std::fs::write(&torrent_path, &created.bytes)?;
    println!(
        "created {} ({} bytes) in {:.1} ms: {:.0} MB/s hashed",
        torrent_path.display(),
        created.bytes.len(),
        elapsed.as_secs_f64() * 1e3,
        total as f64 / elapsed.as_secs_f64().max(1e-9) / 1e6
    );

    // Read it back from disk, as any other user of the file would.
    let meta = Metainfo::from_bytes(std::fs::read(&torrent_path)?)?;
    if meta.info_hashes() != created.info_hashes {
        return Err("info hashes read back differ from those created".into());
    }
    let content_bytes: u64 = meta
        .files()
        .iter()
        .filter(|f| !f.attributes.padding)
        .map(|f| f.length)
        .sum();
    if content_bytes != total {
        return Err(format!("read back {content_bytes} bytes of content, wrote {total}").into());
    }

    let hashes = meta.info_hashes();
    println!();
    println!("name:         {}", meta.name());
    println!("version:      {}", meta.version());
    if let Some(h) = hashes.v1 {
        println!("info hash v1: {h}");
    }
    if let Some(h) = hashes.v2 {
        println!("info hash v2: {h}");
    }
    println!(
        "pieces:       {} × {} KiB",
        meta.num_pieces(),
        meta.piece_length() / 1024
    );
    println!("files:");
    for f in meta.files() {
        let note = if f.attributes.padding {
            "  (BEP 47 padding)"
        } else {
            ""
        };
        println!("  {:>10}  {}{note}", f.length, f.path);
    }
    for tier in meta.trackers() {
        println!("trackers:     {}", tier.join(", "));
    }
    for w in meta.web_seeds() {
        println!("web seed:     {w}");
    }

    let magnet = Magnet::from_metainfo(&meta);
    let uri = magnet.to_uri();
    if Magnet::parse(&uri)?.info_hashes != hashes {
        return Err("magnet link does not carry the info hashes".into());
    }
    println!();
    println!("magnet:       {uri}");

    let pieces = swarm(&meta, tmp.path(), tmp.path())?;
    settle(&meta, &pieces, &tmp.path().join("ledger"))?;
    Ok(())
}

/// Accounts of the settlement (test keys, derived from their index: demo only).
const CREATOR: u64 = 0;
const SEEDER: u64 = 1;
const CHAIN_ID: u64 = 1;
/// Price of the content, in tokens per KiB served, and the creator's royalty.
const PRICE_PER_KIB: u64 = 2;
const ROYALTY_BPS: u16 = 1_500;

/// Settles the swarm on the ledger: registration, deposits, cheques per verified piece,
/// cash-outs, royalties, and a replay of the chain.
fn settle(meta: &Metainfo, pieces: &[Verified], dir: &Path) -> Result<(), Box<dyn Error>> {
    use tessera::ledger::cheque::{ChequeIssuer, ChequeReceiver, ContentId};
    use tessera::ledger::contracts::{chequebook, registry, CHEQUEBOOK, REGISTRY};
    use tessera::ledger::{
        replay, Call, Genesis, Node, NodeConfig, Params, SecretKey, SignedTransaction, Transaction,
    };

    let key = SecretKey::test_account;
    let address = |i: u64| key(i).public_key().address();
    let payers: Vec<u64> = (0..pieces.len() as u64).map(|i| 2 + i).collect();
    let start = 1_000_000u64;
    let genesis = Genesis {
        chain_id: CHAIN_ID,
        time_ms: 0,
        params: Params::default(),
        accounts: [CREATOR, SEEDER]
            .iter()
            .chain(&payers)
            .map(|i| (address(*i), start))
            .collect(),
    };
    let mut node = Node::init(dir, &genesis, NodeConfig::default())?;
    let mut nonces = std::collections::HashMap::new();
    let mut tx = |from: u64, call: Call| -> Result<SignedTransaction, Box<dyn Error>> {
        let nonce = nonces.entry(from).or_insert(0u64);
        let t = Transaction {
            chain_id: CHAIN_ID,
            sender: key(from).public_key(),
            nonce: *nonce,
            gas_limit: 50_000,
            gas_price: 1,
            call,
        };
        *nonce += 1;
        Ok(SignedTransaction::sign(t, &key(from))?)
    };
    // Commits one block and returns the fee each sender paid in it.
    let commit = |node: &mut Node,
                  txs: Vec<(u64, SignedTransaction)>|
     -> Result<Vec<(u64, u64)>, Box<dyn Error>> {
        let now = node.ledger().head().time_ms + 1_000;
        let senders: Vec<u64> = txs.iter().map(|(s, _)| *s).collect();
        for r in node.submit(now, txs.into_iter().map(|(_, t)| t).collect()) {
            r?;
        }
        let block = node.produce(now)?;
        if let Some(failed) = block.receipts.iter().find(|r| r.error.is_some()) {
            return Err(format!("ledger: a transaction failed: {:?}", failed.error).into());
        }
        Ok(senders
            .into_iter()
            .zip(block.receipts.iter().map(|r| r.gas_used))
            .collect())
    };
    let mut fees = std::collections::HashMap::<u64, u64>::new();

    // The creator registers the content under both info hashes; the downloaders fund
    // chequebooks with what the whole torrent costs.
    let hashes = meta.info_hashes();
    let v1 = hashes.v1.map(|h| *h.as_bytes());
    let v2 = hashes.v2.map(|h| *h.as_bytes());
    let content = v2
        .map(ContentId::V2)
        .or(v1.map(ContentId::V1))
        .ok_or("no info hash")?;
    let price_of = |bytes: u64| bytes.div_ceil(1024) * PRICE_PER_KIB;
    let whole: u64 = (0..meta.num_pieces())
        .map(|p| price_of(meta.piece_size(p)))
        .sum();
    let register = registry::RegisterArgs {
        v1,
        v2,
        price_per_byte: 0,
        royalty_bps: ROYALTY_BPS,
    };
    let mut txs = vec![(
        CREATOR,
        tx(CREATOR, Call::new(REGISTRY, "register", &register)?)?,
    )];
    for p in &payers {
        let deposit = chequebook::DepositArgs { amount: whole };
        txs.push((*p, tx(*p, Call::new(CHEQUEBOOK, "deposit", &deposit)?)?));
    }
    for (sender, fee) in commit(&mut node, txs)? {
        *fees.entry(sender).or_default() += fee;
    }

    // Off chain: one cheque per verified piece, each for the running total; the seeder checks
    // every one (signature, chain, beneficiary, that it is newer) and keeps the latest.
    let mut receiver = ChequeReceiver::new(CHAIN_ID, address(SEEDER));
    let started = Instant::now();
    let mut cheques = 0u64;
    for (p, (_, sizes)) in payers.iter().zip(pieces) {
        let mut issuer = ChequeIssuer::new(key(*p), CHAIN_ID);
        for size in sizes {
            let cheque = issuer.pay(address(SEEDER), Some(content), price_of(*size))?;
            receiver.receive(&cheque, &key(*p).public_key())?;
            cheques += 1;
        }
    }
    let off_chain = started.elapsed();

    // On chain: the seeder cashes the latest cheque from each downloader.
    let mut txs = Vec::new();
    for p in &payers {
        let best = receiver
            .best(&address(*p), Some(content))
            .ok_or("no cheque")?;
        let cash = chequebook::CashArgs {
            cheque: best.encode()?,
        };
        txs.push((SEEDER, tx(SEEDER, Call::new(CHEQUEBOOK, "cash", &cash)?)?));
    }
    for (sender, fee) in commit(&mut node, txs)? {
        *fees.entry(sender).or_default() += fee;
    }

    // What each side gained or spent, fees aside (gas price 1: a fee is the gas used).
    let net = |i: u64| {
        let balance = node.ledger().account(&address(i)).balance;
        i128::from(balance) - i128::from(start) + i128::from(fees.get(&i).copied().unwrap_or(0))
    };
    println!();
    println!(
        "ledger:       {cheques} cheques signed and checked off chain in {:.1} ms; content registered with a {}% royalty",
        off_chain.as_secs_f64() * 1e3,
        f64::from(ROYALTY_BPS) / 100.0
    );
    for (p, (name, sizes)) in payers.iter().zip(pieces) {
        let paid = chequebook::paid(
            node.ledger().state(),
            &address(*p),
            &address(SEEDER),
            Some(&content),
        );
        println!(
            "{name}:       paid {paid} tokens for {} pieces by cheque, {} in fees",
            sizes.len(),
            fees.get(p).copied().unwrap_or(0)
        );
        if -net(*p) != i128::from(paid) {
            return Err(format!(
                "ledger: {name} spent {} but its cheques paid {paid}",
                -net(*p)
            )
            .into());
        }
    }
    println!(
        "seeder:       earned {} tokens; creator earned {} in royalties",
        net(SEEDER),
        net(CREATOR)
    );
    let paid_total: i128 = payers.iter().map(|p| -net(*p)).sum();
    if net(SEEDER) + net(CREATOR) != paid_total {
        return Err("ledger: seeder and creator income differ from what was paid".into());
    }
    let head = node.ledger().head().clone();
    drop(node);
    let report = replay(dir)?;
    if report.failure.is_some() || report.head != head || report.total_balance != report.supply {
        return Err("ledger: replay from genesis does not match".into());
    }
    println!(
        "ledger:       height {}, state root {}, replayed from genesis: ok, supply {} unchanged",
        head.height, head.state_root, report.supply
    );
    Ok(())
}

/// Seeds the content from `seed_dir` on 127.0.0.1 and downloads it with two peers of our own
/// into fresh directories: each asks the seeder, the second the first one as well, and PEX
/// tells them about any peer they missed. Then rechecks what landed on disk.
/// A downloader's name and the sizes of the pieces it verified.
type Verified = (&'static str, Vec<u64>);

/// Returns, per downloader, the sizes of the pieces it verified.
fn swarm(meta: &Metainfo, seed_dir: &Path, work: &Path) -> Result<Vec<Verified>, Box<dyn Error>> {
    let meta = meta.clone();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let meta = Arc::new(meta);
        let layout = Layout::new(&meta)?;
        let localhost = SocketAddr::from(([127, 0, 0, 1], 0));

        // The seeder checks its data first, as the `seed` example does.
        let (have, storage) = open_dir(&meta, &layout, seed_dir, None, true)?;
        if !have.is_full() {
            return Err(format!("seeder verified {}/{} pieces", have.count(), have.len()).into());
        }
        let seeder = start(&meta, &have, storage)?;
        let seed_addr = seeder.listen(localhost).await?;
        println!();
        println!("seeder:       listening on {seed_addr}, {} pieces verified", have.count());

        let started = Instant::now();
        let mut downloaders = Vec::new();
        let mut addrs = Vec::new();
        for name in ["peer-a", "peer-b"] {
            let dir = work.join(name);
            let resume = default_resume_path(&dir, &meta);
            let (have, storage) = open_dir(&meta, &layout, &dir, Some(&resume), false)?;
            let driver = start(&meta, &have, storage)?;
            let addr = driver.listen(localhost).await?;
            driver.connect(seed_addr);
            for other in &addrs {
                driver.connect(*other);
            }
            println!("{name}:       listening on {addr}, have {}/{} pieces", have.count(), have.len());
            addrs.push(addr);
            downloaders.push((name, dir, driver));
        }

        let total = u64::from(layout.num_pieces());
        loop {
            let line: Vec<String> = downloaders
                .iter()
                .map(|(name, _, d)| {
                    let p = d.progress();
                    format!("{name} {:>3}/{total} pieces {:>2} peers", p.pieces, p.peers)
                })
                .collect();
            print!("\r              {}", line.join("   "));
            let _ = std::io::Write::flush(&mut std::io::stdout());
            if downloaders.iter().all(|(_, _, d)| d.progress().pieces == layout.num_pieces()) {
                break;
            }
            if started.elapsed() > Duration::from_secs(60) {
                return Err("the download did not finish within 60 s".into());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        println!();
        for (_, _, d) in &downloaders {
            d.finished().await?;
        }
        let elapsed = started.elapsed();

        println!();
        for (name, dir, d) in &downloaders {
            let p = d.progress();
            let report = recheck(&meta, &layout, &FileBackend::new(dir, &layout, FileBackendOptions::default())?, &RecheckOptions::default())?;
            if !report.verified.is_full() {
                return Err(format!("{name}: recheck verified {}/{} pieces", report.verified.count(), total).into());
            }
            println!(
                "{name}:       downloaded {} bytes, uploaded {} bytes, {} peers met, {} pieces verified ({} on recheck), {} hash failures",
                p.downloaded, p.uploaded, p.peers_seen, p.pieces, report.verified.count(), p.hash_failures
            );
        }
        let sp = seeder.progress();
        println!("seeder:       uploaded {} bytes to {} peers", sp.uploaded, sp.peers_seen);
        let bytes: u64 = downloaders.iter().map(|(_, _, d)| d.progress().downloaded).sum();
        println!(
            "swarm:        {bytes} bytes in {:.1} ms over TCP on 127.0.0.1 ({:.0} MB/s)",
            elapsed.as_secs_f64() * 1e3,
            bytes as f64 / elapsed.as_secs_f64().max(1e-9) / 1e6
        );
        let verified = downloaders
            .iter()
            .map(|(name, _, d)| {
                let n = d.progress().pieces;
                (*name, (0..n).map(|p| layout.piece_size(p)).collect())
            })
            .collect();
        for (_, _, d) in &downloaders {
            d.shutdown();
        }
        seeder.shutdown();
        Ok(verified)
    })
}

/// A driver for `meta` over `storage`, with `have` already verified.
fn start(
    meta: &Arc<Metainfo>,
    have: &Bitfield,
    storage: Storage,
) -> Result<Driver, Box<dyn Error>> {
    let session = Session::new(
        Arc::clone(meta),
        have,
        SessionConfig::default(),
        Instant::now(),
    )?;
    Ok(Driver::start(
        session,
        storage.into_opener(),
        DriverConfig::default(),
    )?)
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
