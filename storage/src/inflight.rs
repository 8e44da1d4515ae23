//! What in-process work holds that GC must not take (DESIGN.md, "Garbage collection").
//!
//! The index knows only committed state; three things live between an ingest's first
//! byte and its commit, or between a read's plan and its last byte, and GC must see them:
//!
//! - **Pins.** An ingest that decides a chunk need not be written (the index has it)
//!   pins it *before* looking it up, and keeps the pin until its commit has run. GC
//!   removes a chunk only if it can *doom* it: not pinned at that moment, and from then
//!   until GC's transaction is durable no new pin is granted (a doomed chunk is not
//!   reusable: the ingest writes it again). So an ingest either pinned first (GC skips
//!   the chunk) or looks it up after it was doomed or removed (and stores it anew):
//!   a commit never references a chunk GC removed, and no upload gets a 503 for it.
//! - **Packs being written.** A pack is registered here before its blob is created and
//!   released only after the commit that records it, or after it was recorded as an
//!   orphan. The sweep of packs the index does not know skips these (it snapshots this
//!   set *before* reading the index, so a pack committed in between is seen as known).
//! - **Read leases.** A read takes a lease (a sequence number) *before* its read
//!   transaction and holds it until its body is dropped. A pack that stopped holding
//!   live chunks in a transaction is deleted only after every lease taken before that
//!   transaction was durable has ended: no in-flight read can still use an old
//!   location. Leases die with the process, so a pack marked deleting by an earlier
//!   process may go at once.
//!
//! Only the process holding the index (the gateway, or offline `s3dedup gc`) can
//! ingest, read or collect, so in-memory state is enough.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::id::ChunkId;

#[derive(Debug, Default)]
struct State {
    pins: HashMap<ChunkId, u32>,
    doomed: HashSet<ChunkId>,
    writing: HashSet<u128>,
}

#[derive(Debug, Default)]
struct Leases {
    next: u64,
    active: BTreeMap<u64, u32>,
}

/// Pins, packs being written, read leases, and the read horizon of packs whose
/// deletion waits for reads (see the module docs).
#[derive(Debug, Default)]
pub(crate) struct Inflight {
    state: Mutex<State>,
    leases: Mutex<Leases>,
    /// Packs marked deleting in this process → the lease horizon after that commit
    /// (`None` until the commit is known durable: not deletable yet).
    retiring: Mutex<HashMap<u128, Option<u64>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding one of these leaves consistent state (single inserts).
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Inflight {
    /// Pins `id` for an ingest that wants to reuse it; `false` if GC has doomed it
    /// (the ingest must store the chunk itself).
    pub(crate) fn pin(&self, id: ChunkId) -> bool {
        let mut s = lock(&self.state);
        if s.doomed.contains(&id) {
            return false;
        }
        *s.pins.entry(id).or_insert(0) += 1;
        true
    }

    fn unpin(&self, ids: &[ChunkId]) {
        let mut s = lock(&self.state);
        for id in ids {
            if let Some(n) = s.pins.get_mut(id) {
                *n -= 1;
                if *n == 0 {
                    s.pins.remove(id);
                }
            }
        }
    }

    /// GC's claim on a chunk, inside its write transaction: `false` if an ingest holds
    /// a pin. From `true` until [`Inflight::release_doomed`], no pin is granted.
    pub(crate) fn doom(&self, id: ChunkId) -> bool {
        let mut s = lock(&self.state);
        if s.pins.contains_key(&id) {
            return false;
        }
        s.doomed.insert(id);
        true
    }

    /// Ends GC's claims once its transaction is durable (or failed).
    pub(crate) fn release_doomed(&self, ids: &[ChunkId]) {
        let mut s = lock(&self.state);
        for id in ids {
            s.doomed.remove(id);
        }
    }

    /// Registers a pack about to be written.
    pub(crate) fn begin_pack(&self, id: u128) {
        lock(&self.state).writing.insert(id);
    }

    fn end_packs(&self, ids: &[u128]) {
        let mut s = lock(&self.state);
        for id in ids {
            s.writing.remove(id);
        }
    }

    /// Packs being written now.
    pub(crate) fn packs_being_written(&self) -> HashSet<u128> {
        lock(&self.state).writing.clone()
    }

    /// Chunks pinned now (for tests and status).
    pub(crate) fn pinned(&self) -> usize {
        lock(&self.state).pins.len()
    }

    /// Takes a read lease; hold it until the read's last byte.
    pub(crate) fn read_lease(self: &Arc<Self>) -> ReadLease {
        let mut l = lock(&self.leases);
        let seq = l.next;
        l.next += 1;
        *l.active.entry(seq).or_insert(0) += 1;
        ReadLease {
            inflight: Arc::clone(self),
            seq,
        }
    }

    /// Notes, inside the transaction that marks it deleting, that `pack` must wait for
    /// reads; [`Inflight::retired_durably`] arms the wait once that commit is durable.
    pub(crate) fn retiring(&self, pack: u128) {
        lock(&self.retiring).insert(pack, None);
    }

    /// After the commit that marked `packs` deleting is durable: they wait for the
    /// reads whose leases are older than now.
    pub(crate) fn retired_durably(&self, packs: &[u128]) {
        let horizon = lock(&self.leases).next;
        let mut r = lock(&self.retiring);
        for p in packs {
            r.insert(*p, Some(horizon));
        }
    }

    /// Whether a pack marked deleting may have its blob deleted now: no read that
    /// started before its retirement is still running.
    pub(crate) fn may_delete(&self, pack: u128) -> bool {
        let horizon = match lock(&self.retiring).get(&pack) {
            None => return true, // retired by an earlier process: no reads survive
            Some(None) => return false,
            Some(Some(h)) => *h,
        };
        lock(&self.leases)
            .active
            .first_key_value()
            .is_none_or(|(&oldest, _)| oldest >= horizon)
    }

    /// Forgets a pack whose blob and record are gone.
    pub(crate) fn deleted(&self, pack: u128) {
        lock(&self.retiring).remove(&pack);
    }

    /// Reads in flight now.
    pub(crate) fn reads(&self) -> usize {
        lock(&self.leases)
            .active
            .values()
            .map(|&n| n as usize)
            .sum()
    }
}

/// A read in flight (see the module docs); dropping it ends the lease.
#[derive(Debug)]
pub(crate) struct ReadLease {
    inflight: Arc<Inflight>,
    seq: u64,
}

impl Drop for ReadLease {
    fn drop(&mut self) {
        let mut l = lock(&self.inflight.leases);
        if let Some(n) = l.active.get_mut(&self.seq) {
            *n -= 1;
            if *n == 0 {
                l.active.remove(&self.seq);
            }
        }
    }
}

/// One pin (see [`Inflight::pin`]); dropping it unpins.
#[derive(Debug)]
pub(crate) struct Pin {
    inflight: Arc<Inflight>,
    id: ChunkId,
}

impl Inflight {
    /// [`Inflight::pin`] as a guard; `None` if GC has doomed the chunk.
    pub(crate) fn pin_guard(self: &Arc<Self>, id: ChunkId) -> Option<Pin> {
        self.pin(id).then(|| Pin {
            inflight: Arc::clone(self),
            id,
        })
    }
}

impl Drop for Pin {
    fn drop(&mut self) {
        self.inflight.unpin(&[self.id]);
    }
}

/// What one ingest holds: its pins and the packs it is writing. Dropped after its
/// commit (or its orphan recording) has run.
#[derive(Debug)]
pub(crate) struct Holds {
    inflight: Arc<Inflight>,
    pins: Vec<Pin>,
    packs: Vec<u128>,
}

impl Holds {
    pub(crate) fn new(inflight: &Arc<Inflight>) -> Self {
        Holds {
            inflight: Arc::clone(inflight),
            pins: Vec::new(),
            packs: Vec::new(),
        }
    }

    /// Keeps a pin until this holder is dropped.
    pub(crate) fn keep(&mut self, pin: Pin) {
        self.pins.push(pin);
    }

    /// Registers a pack this ingest is about to write.
    pub(crate) fn pack(&mut self, id: u128) {
        self.inflight.begin_pack(id);
        self.packs.push(id);
    }
}

impl Drop for Holds {
    fn drop(&mut self) {
        self.pins.clear();
        self.inflight.end_packs(&self.packs);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pin_blocks_doom_and_doom_blocks_pins() {
        let f = Arc::new(Inflight::default());
        let (a, b) = (ChunkId([1; 32]), ChunkId([2; 32]));
        let mut h = Holds::new(&f);
        h.keep(f.pin_guard(a).expect("pin"));
        assert!(!f.doom(a), "pinned chunk doomed");
        assert!(f.doom(b));
        assert!(f.pin_guard(b).is_none(), "doomed chunk pinned");
        drop(h);
        assert!(f.doom(a), "pin outlived its holder");
        f.release_doomed(&[a, b]);
        assert!(f.pin(b));
    }

    #[test]
    fn retired_packs_wait_for_older_reads_only() {
        let f = Arc::new(Inflight::default());
        let old_read = f.read_lease();
        f.retiring(7);
        assert!(!f.may_delete(7), "deletable before its commit was durable");
        f.retired_durably(&[7]);
        let new_read = f.read_lease();
        assert!(!f.may_delete(7), "an older read is still running");
        drop(old_read);
        assert!(f.may_delete(7), "a newer read cannot use the old location");
        drop(new_read);
        assert!(f.may_delete(99), "unknown (earlier process) packs are free");
    }
}
