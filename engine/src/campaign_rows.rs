//! The campaign rows this process has read, by id: the first lookup of every claim and
//! every campaign read.
//!
//! Rows change rarely (a close, a rebuild, a first read), and are looked up on every
//! request. One shared cache (quick_cache, bounded) holds them; a lookup there writes its
//! shard's lock word and the row's reference count, two lines that both runtime workers
//! then write on every request (`crate::striped` says why that costs). So each thread
//! also keeps copies of its own: its own allocations, whose reference counts only it
//! touches in the common case. The copies are good while the shared cache is unchanged:
//! every insert and removal bumps a generation, which a lookup only reads, and a thread
//! that sees it move drops its copies and takes them again from the shared cache.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::campaign::Campaign;
use crate::striped::PerThread;

/// Rows a thread keeps copies of at most; past it, it starts again from none.
const COPIES_PER_THREAD: usize = 1_024;

pub struct CampaignRows {
    shared: quick_cache::sync::Cache<u64, Arc<Campaign>>,
    /// Bumped after every change of `shared`.
    generation: AtomicU64,
    copies: PerThread<Copies>,
}

/// One thread's copies (only its own thread touches them), and the generation they
/// were taken at.
#[derive(Default)]
struct Copies(RefCell<Taken>);

#[derive(Default)]
struct Taken {
    generation: u64,
    rows: HashMap<u64, Arc<Campaign>, foldhash::fast::RandomState>,
}

impl CampaignRows {
    /// Keeps at most `capacity` rows (quick_cache's CLOCK-Pro eviction past it).
    pub fn new(capacity: usize) -> Self {
        CampaignRows {
            shared: quick_cache::sync::Cache::new(capacity),
            generation: AtomicU64::new(0),
            copies: PerThread::default(),
        }
    }

    /// The row, if this process has it.
    pub fn get(&self, id: u64) -> Option<Arc<Campaign>> {
        // Read before the shared cache: a change after this read moves the generation
        // past what the copy below is filed under, so the copy is dropped at once.
        let generation = self.generation.load(Ordering::Acquire);
        // Never borrowed twice (nothing here calls back); a failed borrow would only
        // mean reading the shared cache.
        let copies = &self.copies.local().0;
        if let Ok(taken) = copies.try_borrow() {
            if taken.generation == generation {
                if let Some(c) = taken.rows.get(&id) {
                    return Some(c.clone());
                }
            }
        }
        let row = self.shared.get(&id)?;
        if let Ok(mut taken) = copies.try_borrow_mut() {
            if taken.generation != generation || taken.rows.len() >= COPIES_PER_THREAD {
                taken.rows.clear();
                taken.generation = generation;
            }
            taken.rows.insert(id, Arc::new(Campaign::clone(&row)));
        }
        Some(row)
    }

    pub fn insert(&self, id: u64, row: Arc<Campaign>) {
        self.shared.insert(id, row);
        self.generation.fetch_add(1, Ordering::Release);
    }

    pub fn remove(&self, id: u64) {
        self.shared.remove(&id);
        self.generation.fetch_add(1, Ordering::Release);
    }

    /// Whether the shared cache has the row (no copy is taken).
    pub fn contains(&self, id: u64) -> bool {
        self.shared.contains_key(&id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: u64, name: &str) -> Arc<Campaign> {
        Arc::new(Campaign {
            name: name.into(),
            ..Campaign::for_tests(id, 0, 1)
        })
    }

    /// The row's name as a new thread (no copies yet) sees it.
    fn name_on_another_thread(rows: &Arc<CampaignRows>, id: u64) -> Option<String> {
        let rows = rows.clone();
        std::thread::spawn(move || rows.get(id).map(|c| c.name.clone()))
            .join()
            .expect("thread")
    }

    #[test]
    fn a_change_reaches_every_thread_that_kept_a_copy() {
        let rows = Arc::new(CampaignRows::new(100));
        rows.insert(1, row(1, "first"));
        let name = |rows: &CampaignRows| rows.get(1).map(|c| c.name.clone());
        // Copies taken here and on another thread.
        assert_eq!(name(&rows), Some("first".into()));
        assert_eq!(name(&rows), Some("first".into()));
        let other = name_on_another_thread(&rows, 1);
        assert_eq!(other, Some("first".into()));
        // A copy is the row's value, not the shared allocation.
        let copy = rows.get(1).expect("kept");
        let shared = rows.shared.get(&1).expect("shared");
        assert!(!Arc::ptr_eq(&copy, &shared));
        assert_eq!(*copy, *shared);
        // A new row, then none: each thread sees the change on its next lookup.
        rows.insert(1, row(1, "second"));
        assert_eq!(name(&rows), Some("second".into()));
        let seen = name_on_another_thread(&rows, 1);
        assert_eq!(seen, Some("second".into()));
        rows.remove(1);
        assert_eq!(name(&rows), None);
        assert!(!rows.contains(1));
    }

    #[test]
    fn a_thread_keeping_a_copy_sees_a_change_made_by_another() {
        let rows = Arc::new(CampaignRows::new(100));
        rows.insert(7, row(7, "old"));
        let (ready, copied) = std::sync::mpsc::channel::<()>();
        let (go, wait) = std::sync::mpsc::channel::<()>();
        let (done, seen) = std::sync::mpsc::channel::<Option<String>>();
        let reader = {
            let rows = rows.clone();
            std::thread::spawn(move || {
                // A copy kept on this thread...
                assert_eq!(rows.get(7).map(|c| c.name.clone()), Some("old".into()));
                ready.send(()).expect("ready");
                wait.recv().expect("go");
                // ...is not what it answers after the change.
                done.send(rows.get(7).map(|c| c.name.clone()))
                    .expect("send");
            })
        };
        copied.recv().expect("copied");
        rows.insert(7, row(7, "new"));
        go.send(()).expect("go");
        assert_eq!(seen.recv().expect("seen"), Some("new".into()));
        reader.join().expect("reader");
    }
}
