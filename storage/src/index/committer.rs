//! Group commit: one thread applies queued index writes in shared transactions.
//!
//! Every write is durable (`Durability::Immediate`: one fsync per commit). Serialising
//! writers each with its own fsync caps small-object PUTs at the disk's fsync rate, so
//! the committer takes every write queued while the previous commit was syncing and
//! applies them, in arrival order, in one transaction with one fsync. Callers still get
//! their answer only after the commit that contains their write is durable.
//!
//! A write that fails (a precondition, a missing bucket …) must not take its batch
//! down with it, and must leave no partial effect. So a batch in which any write fails
//! is aborted and its writes are replayed one transaction each: the failing write fails
//! alone and the others commit. Writes are therefore `Fn` (they may run twice), and
//! their effects are only ever those of their successful run.

use std::any::Any;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;

use redb::{Database, WriteTransaction};
use tokio::sync::oneshot;

use crate::error::{Error, Result};

/// Most writes one transaction takes.
const MAX_BATCH: usize = 256;

type Outcome = Result<Box<dyn Any + Send>>;
type Op = Box<dyn Fn(&WriteTransaction) -> Outcome + Send>;

struct Job {
    op: Op,
    reply: oneshot::Sender<Outcome>,
}

/// Counters of the committer, for metrics and tests.
#[derive(Debug, Default)]
pub struct CommitCounters {
    /// Writes submitted and answered.
    pub writes: AtomicU64,
    /// Transactions committed.
    pub commits: AtomicU64,
    /// Batches aborted because one write failed, then replayed one write at a time.
    pub replayed_batches: AtomicU64,
}

/// Handle to the committer thread; dropping it drains the queue and joins the thread.
#[derive(Debug)]
pub(super) struct Committer {
    tx: Option<mpsc::Sender<Job>>,
    thread: Option<JoinHandle<()>>,
    pub(super) counters: Arc<CommitCounters>,
}

impl Committer {
    pub(super) fn start(db: Arc<Database>) -> Self {
        let (tx, rx) = mpsc::channel::<Job>();
        let counters = Arc::new(CommitCounters::default());
        let c = Arc::clone(&counters);
        let thread = std::thread::Builder::new()
            .name("s3dedup-commit".into())
            .spawn(move || run(&db, &rx, &c))
            .expect("spawn committer thread");
        Committer {
            tx: Some(tx),
            thread: Some(thread),
            counters,
        }
    }

    /// Queues a write; the receiver resolves once it is durable (or failed).
    pub(super) fn submit<T, F>(&self, op: F) -> impl Future<Output = Result<T>> + use<T, F>
    where
        T: Send + 'static,
        F: Fn(&WriteTransaction) -> Result<T> + Send + 'static,
    {
        let (reply, rx) = oneshot::channel();
        let job = Job {
            op: Box::new(move |txn| op(txn).map(|v| Box::new(v) as Box<dyn Any + Send>)),
            reply,
        };
        let sent = self.tx.as_ref().is_some_and(|tx| tx.send(job).is_ok());
        async move {
            if !sent {
                return Err(Error::Internal("index committer has stopped".into()));
            }
            let out = rx
                .await
                .map_err(|_| Error::Internal("index committer dropped a write".into()))??;
            Ok(*out
                .downcast::<T>()
                .expect("the committer returns the type the op produced"))
        }
    }
}

impl Drop for Committer {
    fn drop(&mut self) {
        drop(self.tx.take());
        if let Some(t) = self.thread.take() {
            // The database must be closed before a reopen of the same file can succeed.
            let _ = t.join();
        }
    }
}

fn run(db: &Database, rx: &mpsc::Receiver<Job>, counters: &CommitCounters) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(j) => batch.push(j),
                Err(_) => break,
            }
        }
        counters
            .writes
            .fetch_add(batch.len() as u64, Ordering::Relaxed);
        if batch.len() > 1 {
            if commit_batch(db, &mut batch, counters) {
                continue;
            }
            counters.replayed_batches.fetch_add(1, Ordering::Relaxed);
        }
        for job in batch {
            let out = commit_one(db, &job.op);
            if out.is_ok() {
                counters.commits.fetch_add(1, Ordering::Relaxed);
            }
            let _ = job.reply.send(out);
        }
    }
}

/// Tries the whole batch in one transaction. Returns false (and has sent nothing) when
/// a write failed, so the caller replays them one by one.
fn commit_batch(db: &Database, batch: &mut Vec<Job>, counters: &CommitCounters) -> bool {
    let txn = match super::begin_write(db) {
        Ok(t) => t,
        Err(e) => {
            fail_all(batch, &e);
            return true;
        }
    };
    let mut outs = Vec::with_capacity(batch.len());
    for job in batch.iter() {
        match (job.op)(&txn) {
            Ok(v) => outs.push(v),
            Err(_) => return false, // txn dropped: aborted
        }
    }
    match txn.commit() {
        Ok(()) => {
            // Counted before anyone is answered, so an answered caller sees the count.
            counters.commits.fetch_add(1, Ordering::Relaxed);
            for (job, out) in batch.drain(..).zip(outs) {
                let _ = job.reply.send(Ok(out));
            }
        }
        Err(e) => fail_all(batch, &Error::from(e)),
    }
    true
}

fn commit_one(db: &Database, op: &Op) -> Outcome {
    let txn = super::begin_write(db)?;
    let out = op(&txn)?;
    txn.commit()?;
    Ok(out)
}

fn fail_all(batch: &mut Vec<Job>, e: &Error) {
    tracing::error!(error = %e, writes = batch.len(), "index commit failed");
    for job in batch.drain(..) {
        let _ = job
            .reply
            .send(Err(Error::Internal(format!("index commit failed: {e}"))));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use redb::{ReadableDatabase, TableDefinition};

    const T: TableDefinition<u64, u64> = TableDefinition::new("t");

    /// Submits a write that holds the committer until released, and waits until the
    /// committer is inside it: everything submitted meanwhile queues into one batch.
    async fn hold(
        c: &Committer,
    ) -> (
        impl Future<Output = Result<()>>,
        std::sync::mpsc::Sender<()>,
    ) {
        let (started_tx, started_rx) = tokio::sync::oneshot::channel::<()>();
        let started_tx = std::sync::Mutex::new(Some(started_tx));
        let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
        let go_rx = std::sync::Mutex::new(go_rx);
        let held = c.submit(move |_| {
            if let Some(tx) = started_tx.lock().unwrap().take() {
                let _ = tx.send(());
            }
            let _ = go_rx.lock().unwrap().recv();
            Ok(())
        });
        started_rx.await.unwrap();
        (held, go_tx)
    }

    #[tokio::test]
    async fn queued_writes_batch_and_a_failure_is_replayed_alone() {
        let dir = tempfile::tempdir().unwrap();
        let db = Arc::new(Database::create(dir.path().join("db")).unwrap());
        let c = Committer::start(Arc::clone(&db));
        let (held, go) = hold(&c).await;
        let mut rest = Vec::new();
        for i in 1..=10u64 {
            rest.push(c.submit(move |txn| {
                if i == 7 {
                    // Write, then fail: the write must not survive.
                    txn.open_table(T)?.insert(700, 700)?;
                    return Err(Error::PreconditionFailed);
                }
                txn.open_table(T)?.insert(i, i * 10)?;
                Ok(i)
            }));
        }
        go.send(()).unwrap();
        held.await.unwrap();
        for (n, f) in rest.into_iter().enumerate() {
            let i = n as u64 + 1;
            match f.await {
                Ok(v) => assert_eq!(v, i),
                Err(Error::PreconditionFailed) => assert_eq!(i, 7),
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!(c.counters.writes.load(Ordering::Relaxed), 11);
        assert_eq!(c.counters.replayed_batches.load(Ordering::Relaxed), 1);
        // The held write alone, then the ten replayed one by one with 9 successes.
        assert_eq!(c.counters.commits.load(Ordering::Relaxed), 1 + 9);
        {
            let r = db.begin_read().unwrap();
            let t = r.open_table(T).unwrap();
            assert!(t.get(700).unwrap().is_none());
            assert!(t.get(7).unwrap().is_none());
            assert_eq!(t.get(10).unwrap().unwrap().value(), 100);
        }

        // A batch without failures commits once.
        let (held, go) = hold(&c).await;
        let batch: Vec<_> = (20..30u64)
            .map(|i| c.submit(move |txn| Ok(txn.open_table(T)?.insert(i, i)?.is_none())))
            .collect();
        go.send(()).unwrap();
        held.await.unwrap();
        for f in batch {
            assert!(f.await.unwrap());
        }
        assert_eq!(c.counters.commits.load(Ordering::Relaxed), 10 + 1 + 1);
    }
}
