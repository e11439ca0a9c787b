//! `stampede export-catalog`: the campaigns not yet ended as static JSON files, for a CDN
//! or web server to serve in front of the api (contract: "Behaviour events and the
//! funnel", last bullet). Clients read the files and fall back to the api on a miss.
//!
//! What `--out DIR` holds:
//! - `campaigns.json`: `{"version": "<hex>", "campaigns": [Campaign, ...]}`, every
//!   scheduled, active and sold-out campaign, newest first (as `GET /v1/campaigns`).
//!   `version` is the SHA-256 (hex) of the same body without it (`{"campaigns":[...]}`):
//!   it changes when anything listed does, and two exports of the same state agree.
//! - `campaigns/{id}.json`: each listed campaign's Campaign object, the bytes
//!   `GET /v1/campaigns/{id}` serves ([`views::campaign_at`], serialized the same way).
//!   The index embeds the same bytes, so the two never disagree.
//!
//! Where the figures come from ([`Source`]):
//! - With Redis, from the store, read the way the api reads them ([`Engine::campaigns`]),
//!   but with no hot cache in between: every poll reads each campaign's counters once.
//! - Embedded, the store is inside the `stampede serve` process, out of this one's reach,
//!   so the figures come from the database ([`Database::settled_counters`]): `remaining`
//!   is the total minus the units persisted claims hold, and lags the truth by the queue
//!   backlog (claims accepted but not yet written, normally well under a second).
//!
//! Writing ([`OutDir`]): a file is replaced atomically: its bytes go to a temporary file
//! in the same directory, which is fsynced and renamed over the old one (then the
//! directory is fsynced), so a reader sees the old file or the new one, never part of
//! one. A file whose bytes did not change is left alone (its modification time, and so a
//! web server's `ETag`, stay). The campaigns' files are written before the index and the
//! files of campaigns no longer listed removed after it, so each id the index lists has
//! its file. One exporter per directory: two would fight over the files.
//!
//! `--watch` ([`run`]) exports every [`POLL_EVERY`] until `shutdown`. A failed poll (the
//! database or Redis away) is logged and retried; the files stay as they were.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use sha2::{Digest, Sha256};
use stampede_engine::campaign::{Campaign, CampaignStatus, LiveCounters};
use stampede_engine::clock::now_ms;
use stampede_engine::db::Database;
use stampede_engine::service::Engine;
use stampede_engine::EngineError;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::{startup, views};

/// How often `--watch` reads the campaigns. A change reaches the files within this plus
/// one read of every campaign: inside the contract's second.
pub const POLL_EVERY: Duration = Duration::from_millis(250);

/// The index's file name in `--out`; the campaigns' files are in [`CAMPAIGNS_DIR`].
pub const INDEX: &str = "campaigns.json";
pub const CAMPAIGNS_DIR: &str = "campaigns";

/// Exports the catalog into `out` once, or with `watch` until `shutdown` is cancelled.
/// `out` is checked before anything is connected, so a bad one fails at once.
pub async fn run(
    config: &Config,
    out: &Path,
    watch: bool,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    config.validate().map_err(anyhow::Error::msg)?;
    let mut dir = OutDir::open(out)?;
    let source = Source::open(config).await?;
    let result = if watch {
        keep_exporting(&source, &mut dir, &shutdown).await;
        Ok(())
    } else {
        // Cancelling mid-export is safe: the files are written after its last await.
        tokio::select! {
            done = export(&source, &mut dir) => done.map(|(catalog, changes)| {
                println!(
                    "{}: {} campaigns, version {} (files: {} written, {} removed)",
                    out.join(INDEX).display(),
                    catalog.campaigns.len(),
                    catalog.version,
                    changes.written,
                    changes.removed,
                );
            }),
            _ = shutdown.cancelled() => Ok(()),
        }
    };
    source.close().await;
    result
}

/// Reads the campaigns, renders them and writes what changed.
async fn export(source: &Source, dir: &mut OutDir) -> anyhow::Result<(Catalog, Changes)> {
    let live = source.campaigns().await.context("reading the campaigns")?;
    let catalog = Catalog::render(&live, now_ms()).context("rendering the catalog")?;
    let changes = dir.write(&catalog)?;
    Ok((catalog, changes))
}

/// `--watch`: exports every [`POLL_EVERY`] until `shutdown`. A failure is logged when it
/// starts and when it ends, not at every poll.
async fn keep_exporting(source: &Source, dir: &mut OutDir, shutdown: &CancellationToken) {
    let mut failing = false;
    loop {
        // Cancelling mid-export is safe: the files are written after its last await.
        tokio::select! {
            done = export(source, dir) => match done {
                Ok((catalog, changes)) => {
                    if std::mem::take(&mut failing) {
                        tracing::info!("catalog export works again");
                    }
                    if changes != Changes::default() {
                        tracing::info!(
                            campaigns = catalog.campaigns.len(),
                            version = %catalog.version,
                            written = changes.written,
                            removed = changes.removed,
                            "catalog updated"
                        );
                    }
                }
                Err(e) if failing => {
                    tracing::debug!(error = format!("{e:#}"), "catalog export still failing");
                }
                Err(e) => {
                    failing = true;
                    tracing::warn!(
                        error = format!("{e:#}"),
                        "catalog export failed; trying again at every poll"
                    );
                }
            },
            _ = shutdown.cancelled() => return,
        }
        tokio::select! {
            _ = tokio::time::sleep(POLL_EVERY) => {}
            _ = shutdown.cancelled() => return,
        }
    }
}

/// Where the campaigns and their counters are read (see the module doc).
pub enum Source {
    /// Redis: the engine, its store read on every poll.
    Store(Arc<Engine>),
    /// Embedded: the database alone.
    Database(Database),
}

impl Source {
    /// Connects to what `config` names, as the other commands do (migrations included).
    pub async fn open(config: &Config) -> anyhow::Result<Source> {
        if config.redis_target().is_none() {
            let db = Database::connect(&config.database_url, config.db_connections)
                .await
                .context("opening the database")?;
            db.migrate().await.context("applying database migrations")?;
            return Ok(Source::Database(db));
        }
        // No hot cache: it would add its TTL to how late a change reaches the files, and
        // one process polling needs no shield for the store.
        let mut config = config.clone();
        config.cache_ttl_ms = 0;
        Ok(Source::Store(startup::build_engine(&config).await?))
    }

    /// The campaigns whose end is still ahead, newest first, with their counters. With
    /// Redis, a campaign whose live state the store lost is left out (the api answers
    /// `503` for it until it is rebuilt).
    pub async fn campaigns(&self) -> Result<Vec<(Arc<Campaign>, LiveCounters)>, EngineError> {
        match self {
            Source::Store(engine) => Ok(engine
                .campaigns(false, i64::MAX)
                .await?
                .into_iter()
                .map(|(c, k, _)| (c, k))
                .collect()),
            Source::Database(db) => {
                let mut out = Vec::new();
                for c in db.campaigns(now_ms(), i64::MAX).await? {
                    let k = db.settled_counters(&c).await?;
                    out.push((Arc::new(c), k));
                }
                Ok(out)
            }
        }
    }

    async fn close(&self) {
        match self {
            Source::Store(engine) => engine.db.close().await,
            Source::Database(db) => db.close().await,
        }
    }
}

/// Every file of one export, rendered at one instant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Catalog {
    pub version: String,
    /// The bytes of `campaigns.json`.
    pub index: Vec<u8>,
    /// The bytes of `campaigns/{id}.json`, by id.
    pub campaigns: BTreeMap<u64, Vec<u8>>,
}

impl Catalog {
    /// The catalog of `live` (newest first) as it is at `now_ms`: the campaigns that have
    /// not ended by then (a close or the clock may have ended one the source listed).
    pub fn render(
        live: &[(Arc<Campaign>, LiveCounters)],
        now_ms: i64,
    ) -> serde_json::Result<Catalog> {
        let mut campaigns = BTreeMap::new();
        let mut list = b"[".to_vec();
        for (c, k) in live {
            if c.live_status(now_ms, k) == CampaignStatus::Ended {
                continue;
            }
            let bytes = serde_json::to_vec(&views::campaign_at(c, k, now_ms))?;
            if !campaigns.is_empty() {
                list.push(b',');
            }
            list.extend_from_slice(&bytes);
            campaigns.insert(c.id, bytes);
        }
        list.push(b']');
        let mut unversioned = Sha256::new();
        unversioned.update(b"{\"campaigns\":");
        unversioned.update(&list);
        unversioned.update(b"}");
        let version = hex::encode(unversioned.finalize());
        // The version is hex, so it needs no escaping.
        let mut index = format!("{{\"version\":\"{version}\",\"campaigns\":").into_bytes();
        index.extend_from_slice(&list);
        index.push(b'}');
        Ok(Catalog {
            version,
            index,
            campaigns,
        })
    }
}

/// What one write changed: files replaced (the index counts) and files removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Changes {
    pub written: usize,
    pub removed: usize,
}

/// The `--out` directory, and what its files hold.
pub struct OutDir {
    root: PathBuf,
    campaigns_dir: PathBuf,
    /// The bytes of the index and of each campaign's file as they are on disk: read at
    /// [`OutDir::open`], then what this process wrote. A file is written only when its
    /// bytes change, and a campaign's file left by an earlier run is removed when the
    /// campaign is no longer listed.
    index: Option<Vec<u8>>,
    files: BTreeMap<u64, Vec<u8>>,
}

impl OutDir {
    /// Opens `root` for the export (creating it when missing) and checks that both it
    /// and its `campaigns/` take new files.
    pub fn open(root: &Path) -> anyhow::Result<OutDir> {
        if root.exists() && !root.is_dir() {
            bail!("--out {}: not a directory", root.display());
        }
        let campaigns_dir = root.join(CAMPAIGNS_DIR);
        fs::create_dir_all(&campaigns_dir).with_context(|| {
            format!(
                "--out {}: cannot create {}",
                root.display(),
                campaigns_dir.display()
            )
        })?;
        for dir in [root, &campaigns_dir] {
            writable(dir).with_context(|| {
                format!(
                    "--out {}: cannot write in {}",
                    root.display(),
                    dir.display()
                )
            })?;
        }
        let index = match fs::read(root.join(INDEX)) {
            Ok(bytes) => Some(bytes),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => {
                return Err(e).with_context(|| format!("reading {}", root.join(INDEX).display()))
            }
        };
        let mut files = BTreeMap::new();
        let entries = fs::read_dir(&campaigns_dir)
            .with_context(|| format!("reading {}", campaigns_dir.display()))?;
        for entry in entries {
            let path = entry
                .with_context(|| format!("reading {}", campaigns_dir.display()))?
                .path();
            // Only the files this command names (`17.json`); anything else is left alone.
            let Some(id) = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(campaign_file_id)
            else {
                continue;
            };
            let bytes = fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
            files.insert(id, bytes);
        }
        Ok(OutDir {
            root: root.to_path_buf(),
            campaigns_dir,
            index,
            files,
        })
    }

    /// Brings the files to `catalog`: the campaigns' changed files, then the index if
    /// it changed, then the removal of campaigns no longer listed.
    pub fn write(&mut self, catalog: &Catalog) -> anyhow::Result<Changes> {
        let mut changes = Changes::default();
        for (id, bytes) in &catalog.campaigns {
            if self.files.get(id) != Some(bytes) {
                replace(&self.campaigns_dir, &format!("{id}.json"), bytes)?;
                self.files.insert(*id, bytes.clone());
                changes.written += 1;
            }
        }
        if changes.written > 0 {
            sync_dir(&self.campaigns_dir)?;
        }
        if self.index.as_ref() != Some(&catalog.index) {
            replace(&self.root, INDEX, &catalog.index)?;
            sync_dir(&self.root)?;
            self.index = Some(catalog.index.clone());
            changes.written += 1;
        }
        let gone: Vec<u64> = self
            .files
            .keys()
            .filter(|id| !catalog.campaigns.contains_key(id))
            .copied()
            .collect();
        for id in gone {
            let path = self.campaigns_dir.join(format!("{id}.json"));
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e).with_context(|| format!("removing {}", path.display())),
            }
            self.files.remove(&id);
            changes.removed += 1;
        }
        if changes.removed > 0 {
            sync_dir(&self.campaigns_dir)?;
        }
        Ok(changes)
    }
}

/// The campaign id a file name of the form `{id}.json` names (`17.json`, not `017.json`).
fn campaign_file_id(name: &str) -> Option<u64> {
    let id: u64 = name.strip_suffix(".json")?.parse().ok()?;
    (name == format!("{id}.json")).then_some(id)
}

/// The temporary file `name` is written to before it replaces `name`: in the same
/// directory (a rename within one file system is atomic), hidden, and named after this
/// process so that two processes never write into one temporary file.
fn temporary(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!(".{name}.{}.tmp", std::process::id()))
}

/// Replaces `dir/name` with `bytes` atomically (see the module doc).
fn replace(dir: &Path, name: &str, bytes: &[u8]) -> anyhow::Result<()> {
    let tmp = temporary(dir, name);
    let written = (|| -> io::Result<()> {
        let mut file = File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&tmp, dir.join(name))
    })();
    if written.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    written.with_context(|| format!("writing {}", dir.join(name).display()))
}

/// Makes the renames and removals in `dir` durable.
fn sync_dir(dir: &Path) -> anyhow::Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("syncing the directory {}", dir.display()))
}

/// Whether a file can be created in `dir` (created and removed at once).
fn writable(dir: &Path) -> io::Result<()> {
    let probe = temporary(dir, "write-check");
    File::create(&probe)?;
    fs::remove_file(&probe)
}

#[cfg(test)]
mod tests {
    use super::*;
    use stampede_engine::campaign::CampaignKind;

    fn campaign(id: u64, starts_at_ms: i64) -> Arc<Campaign> {
        Arc::new(Campaign {
            id,
            kind: CampaignKind::FlashSale,
            name: format!("sale {id}"),
            total: 10,
            per_user_limit: 1,
            price_cents: 100,
            total_cents: 0,
            min_cents: 0,
            split_seed: 0,
            starts_at_ms,
            ends_at_ms: 10_000,
            created_at_ms: 0,
            ticket_required: false,
            ticket_lead_secs: 5,
            buckets: 1,
            payment_window_secs: None,
        })
    }

    fn counters(remaining: u64) -> LiveCounters {
        LiveCounters {
            remaining,
            claims: 10 - remaining,
            sold: 10 - remaining,
            cents: 0,
            ends_at_ms: 10_000,
        }
    }

    /// A fresh directory under the system's temporary one, removed when dropped.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new() -> Scratch {
            use rand::RngCore;
            let dir = std::env::temp_dir().join(format!(
                "stampede-catalog-unit-{:016x}",
                rand::rng().next_u64()
            ));
            fs::create_dir_all(&dir).expect("scratch dir");
            Scratch(dir)
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn the_index_embeds_each_campaigns_file_and_its_version_follows_the_contents() {
        let live = vec![
            (campaign(2, 1_000), counters(4)),
            (campaign(1, 5_000), counters(10)),
        ];
        let catalog = Catalog::render(&live, 2_000).expect("render");
        let index: serde_json::Value = serde_json::from_slice(&catalog.index).expect("json");
        assert_eq!(index["version"], catalog.version.as_str());
        let listed = index["campaigns"].as_array().expect("campaigns");
        assert_eq!(listed.len(), 2);
        for (entry, id) in listed.iter().zip([2u64, 1]) {
            let file: serde_json::Value =
                serde_json::from_slice(&catalog.campaigns[&id]).expect("json");
            assert_eq!(entry, &file);
        }
        assert_eq!(listed[0]["status"], "active");
        assert_eq!(listed[1]["status"], "scheduled");
        // The version is that of the body without it.
        let unversioned =
            serde_json::to_vec(&serde_json::json!({ "campaigns": listed })).expect("json");
        assert_eq!(catalog.version, hex::encode(Sha256::digest(&unversioned)));

        assert_eq!(
            Catalog::render(&live, 2_500).expect("render"),
            catalog,
            "nothing changed"
        );
        let sold = vec![
            (campaign(2, 1_000), counters(3)),
            (campaign(1, 5_000), counters(10)),
        ];
        assert_ne!(
            Catalog::render(&sold, 2_000).expect("render").version,
            catalog.version
        );
        let started = Catalog::render(&live, 5_000).expect("render");
        assert_ne!(
            started.version, catalog.version,
            "the scheduled one turned active"
        );
    }

    #[test]
    fn ended_campaigns_are_left_out_and_sold_out_ones_kept() {
        let mut closed = counters(5);
        closed.ends_at_ms = 1_500;
        let live = vec![
            (campaign(3, 1_000), closed),
            (campaign(2, 1_000), counters(0)),
            (campaign(1, 1_000), counters(5)),
        ];
        let catalog = Catalog::render(&live, 2_000).expect("render");
        assert_eq!(
            catalog.campaigns.keys().copied().collect::<Vec<_>>(),
            [1, 2]
        );
        let two: serde_json::Value = serde_json::from_slice(&catalog.campaigns[&2]).expect("json");
        assert_eq!(two["status"], "sold_out");
        let empty = Catalog::render(&[], 2_000).expect("render");
        assert_eq!(
            String::from_utf8(empty.index).expect("utf-8"),
            format!("{{\"version\":\"{}\",\"campaigns\":[]}}", empty.version)
        );
    }

    #[test]
    fn only_changed_files_are_written_and_unlisted_ones_removed() {
        let scratch = Scratch::new();
        let root = scratch.0.join("out");
        let mut dir = OutDir::open(&root).expect("open");
        let live = vec![
            (campaign(2, 1_000), counters(4)),
            (campaign(1, 1_000), counters(10)),
        ];
        let first = Catalog::render(&live, 2_000).expect("render");
        assert_eq!(
            dir.write(&first).expect("write"),
            Changes {
                written: 3,
                removed: 0
            }
        );
        assert_eq!(fs::read(root.join(INDEX)).expect("index"), first.index);
        assert_eq!(
            fs::read(root.join("campaigns/2.json")).expect("file"),
            first.campaigns[&2]
        );
        assert_eq!(dir.write(&first).expect("write"), Changes::default());

        // A second run starts from what is on disk: nothing to write.
        let mut again = OutDir::open(&root).expect("open");
        assert_eq!(again.write(&first).expect("write"), Changes::default());

        fs::write(root.join("campaigns/notes.txt"), b"kept").expect("foreign file");
        let one_left = vec![(campaign(1, 1_000), counters(9))];
        let second = Catalog::render(&one_left, 2_000).expect("render");
        assert_eq!(
            again.write(&second).expect("write"),
            Changes {
                written: 2,
                removed: 1
            }
        );
        assert!(!root.join("campaigns/2.json").exists());
        assert!(
            root.join("campaigns/notes.txt").exists(),
            "other files are left alone"
        );
        let names: Vec<String> = fs::read_dir(root.join(CAMPAIGNS_DIR))
            .expect("list")
            .chain(fs::read_dir(&root).expect("list"))
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        assert!(
            names.iter().all(|n| !n.ends_with(".tmp")),
            "no temporary file left: {names:?}"
        );
    }

    #[test]
    fn an_out_that_is_a_file_is_refused_by_name() {
        let scratch = Scratch::new();
        let file = scratch.0.join("catalog");
        fs::write(&file, b"x").expect("file");
        let err = OutDir::open(&file).err().expect("refused");
        assert!(format!("{err:#}").contains("not a directory"), "{err:#}");
        let below = OutDir::open(&file.join("sub")).err().expect("refused");
        assert!(format!("{below:#}").contains("cannot create"), "{below:#}");
    }

    #[test]
    fn only_canonical_campaign_file_names_are_ours() {
        assert_eq!(campaign_file_id("17.json"), Some(17));
        for other in [
            "017.json",
            "17.json.tmp",
            ".17.json.1.tmp",
            "x.json",
            "17",
            "-1.json",
        ] {
            assert_eq!(campaign_file_id(other), None, "{other}");
        }
    }
}
