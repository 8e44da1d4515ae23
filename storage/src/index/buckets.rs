//! Buckets: create, delete (aborting the uploads in it), look up, list.

use redb::{ReadableDatabase, ReadableTable};

use super::multipart::abort_in;
use super::objects::bucket_must_exist;
use super::{BUCKETS, Index, OBJECTS, UPLOADS_BY_KEY, journal, now_ms};
use crate::error::{Error, Result};
use crate::journal::entry::Change;
use crate::lock::LockConfig;
use crate::records::BucketRecord;
use crate::versions::Versioning;

impl Index {
    /// Creates a bucket; with `lock`, with object lock enabled (and so versioning).
    ///
    /// # Errors
    /// [`Error::BucketExists`].
    pub(crate) fn create_bucket(
        &self,
        name: &str,
        owner: &str,
        lock: bool,
    ) -> impl Future<Output = Result<()>> + use<> {
        let (name, owner) = (name.to_owned(), owner.to_owned());
        let created_ms = now_ms();
        self.committer.submit(move |txn| {
            let (name, owner) = (name.as_str(), owner.as_str());
            let mut t = txn.open_table(BUCKETS)?;
            if t.get(name)?.is_some() {
                return Err(Error::BucketExists(name.to_owned()));
            }
            let rec = BucketRecord {
                created_ms,
                owner: owner.to_owned(),
                versioning: if lock {
                    Versioning::Enabled
                } else {
                    Versioning::Unversioned
                },
                lock: LockConfig {
                    enabled: lock,
                    default: None,
                },
            };
            t.insert(name, rec.encode().as_slice())?;
            drop(t);
            let name = name.to_owned();
            journal::append(txn, vec![Change::Bucket { name, record: rec }])
        })
    }

    /// Deletes an empty bucket; in-progress multipart uploads in it are aborted in the
    /// same transaction (their references released).
    ///
    /// # Errors
    /// [`Error::NoSuchBucket`], [`Error::BucketNotEmpty`].
    pub(crate) fn delete_bucket(&self, name: &str) -> impl Future<Output = Result<()>> + use<> {
        let name = name.to_owned();
        self.committer.submit(move |txn| {
            let name = name.as_str();
            bucket_must_exist(txn, name)?;
            let has_object = txn
                .open_table(OBJECTS)?
                .range((name, "")..)?
                .next()
                .transpose()?
                .is_some_and(|(k, _)| k.value().0 == name);
            if has_object || super::versions::bucket_has_versions(txn, name)? {
                return Err(Error::BucketNotEmpty(name.to_owned()));
            }
            let uploads: Vec<String> = {
                let t = txn.open_table(UPLOADS_BY_KEY)?;
                let mut ids = Vec::new();
                for r in t.range((name, "", "")..)? {
                    let (k, _) = r?;
                    let (b, _, id) = k.value();
                    if b != name {
                        break;
                    }
                    ids.push(id.to_owned());
                }
                ids
            };
            for id in uploads {
                abort_in(txn, &id)?;
            }
            super::configs::remove_all(txn, name)?;
            txn.open_table(BUCKETS)?.remove(name)?;
            let name = name.to_owned();
            journal::append(txn, vec![Change::BucketGone { name }])
        })
    }

    /// A bucket's record.
    ///
    /// # Errors
    /// [`Error::Index`].
    pub(crate) fn bucket(&self, name: &str) -> Result<Option<BucketRecord>> {
        let txn = self.db.begin_read()?;
        txn.open_table(BUCKETS)?
            .get(name)?
            .map(|v| BucketRecord::decode(v.value()))
            .transpose()
    }

    /// All buckets in name order.
    ///
    /// # Errors
    /// [`Error::Index`].
    pub(crate) fn buckets(&self) -> Result<Vec<(String, BucketRecord)>> {
        let txn = self.db.begin_read()?;
        let t = txn.open_table(BUCKETS)?;
        t.iter()?
            .map(|r| {
                let (k, v) = r?;
                Ok((k.value().to_owned(), BucketRecord::decode(v.value())?))
            })
            .collect()
    }
}
