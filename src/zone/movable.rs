//! The zone's registry of live movable blocks (what page migration scans a pfn range with):
//! state owned by the zone, used by `migrate`, which holds the protocol.

use crate::sync::atomic::{AtomicU8, AtomicU64};
use crate::sync::{Arc, Mutex};
use crate::types::{Order, Pfn};
use crossbeam_utils::CachePadded;
use std::collections::HashMap;

const SHARDS: usize = 64;

/// The shared state of one movable block.
pub(crate) struct MovableSlot {
    /// The block's current head pfn (changed by a migration).
    pub(crate) pfn: AtomicU64,
    pub(crate) order: Order,
    /// A compound page (allocated with `__GFP_COMP`: a transparent huge page). 3.17's
    /// `isolate_migratepages_range` skips it (`PageTransHuge`), so `alloc_contig_range` never
    /// migrates it; compaction skips every block above order 0 anyway.
    pub(crate) compound: bool,
    /// The pin state (`migrate`'s protocol: unpinned, pinned, migrating, freed).
    pub(crate) pin: AtomicU8,
}

/// One shard of the registry: head pfn → slot.
type Shard = CachePadded<Mutex<HashMap<u64, Arc<MovableSlot>>>>;

/// The zone's registry: current head pfn → slot, sharded by pfn.
pub(crate) struct MovableRegistry {
    shards: Box<[Shard]>,
}

impl MovableRegistry {
    pub(crate) fn new() -> Self {
        MovableRegistry {
            shards: (0..SHARDS)
                .map(|_| CachePadded::new(Mutex::new(HashMap::new())))
                .collect(),
        }
    }

    #[inline]
    fn shard(&self, pfn: Pfn) -> &Mutex<HashMap<u64, Arc<MovableSlot>>> {
        &self.shards[(pfn.0 as usize >> 3) % SHARDS]
    }

    pub(crate) fn insert(&self, pfn: Pfn, slot: Arc<MovableSlot>) {
        self.shard(pfn).lock().insert(pfn.0, slot);
    }

    pub(crate) fn remove(&self, pfn: Pfn) {
        self.shard(pfn).lock().remove(&pfn.0);
    }

    pub(crate) fn get(&self, pfn: Pfn) -> Option<Arc<MovableSlot>> {
        self.shard(pfn).lock().get(&pfn.0).cloned()
    }

    /// Live movable blocks.
    pub(crate) fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().len()).sum()
    }
}
