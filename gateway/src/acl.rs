//! Bucket access control lists and bucket ownership controls.
//!
//! A bucket ACL is a list of grants (grantee × permission). Grantees are tenants by
//! canonical id, everyone (`AllUsers`, unsigned requests included) or every signed
//! request (`AuthenticatedUsers`). What each permission lets a grantee do on the bucket
//! is [`bucket_permission`]'s table (S3's ACL-to-action mapping); the owner may always do
//! everything, and an explicit Deny in the bucket policy beats any grant (see
//! `crate::authz`). With the bucket's ownership controls at `BucketOwnerEnforced`, ACLs
//! are off: none is evaluated, and only ACLs that grant nothing beyond the owner are
//! accepted.
//!
//! Object ACLs are kept per object version (storage's `LockRecord::acl`, this stored
//! form): READ lets a grantee GET/HEAD that version, READ_ACP and WRITE_ACP read and
//! write its ACL. Every object is owned by its bucket's owner (as with S3's
//! BucketOwnerPreferred / BucketOwnerEnforced), who may always do everything.
//!
//! Stored form (a bucket document, sealed with its version and CRC by the store): the
//! line `s3dedup-acl 1`, then one line per grant, `PERMISSION KIND VALUE` (kind `id`
//! with a canonical id, `group` with `all` or `authenticated`).

use s3s::dto;

/// Who asks, as an ACL sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requester<'a> {
    /// A signed request of the tenant with this canonical id.
    Tenant(&'a str),
    /// An unsigned request.
    Anonymous,
}

/// The URI of the group of everyone.
pub const ALL_USERS: &str = "http://acs.amazonaws.com/groups/global/AllUsers";
/// The URI of the group of every signed request.
pub const AUTHENTICATED_USERS: &str = "http://acs.amazonaws.com/groups/global/AuthenticatedUsers";

/// Who a grant is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Grantee {
    /// A tenant, by canonical id (lowercase hex).
    Canonical(String),
    /// Everyone, unsigned requests included.
    AllUsers,
    /// Every signed request.
    AuthenticatedUsers,
}

/// What a grant allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    /// List the bucket.
    Read,
    /// Create, overwrite and delete its objects.
    Write,
    /// Read its ACL.
    ReadAcp,
    /// Write its ACL.
    WriteAcp,
    /// All of the above.
    FullControl,
}

impl Permission {
    const ALL: [Permission; 5] = [
        Permission::Read,
        Permission::Write,
        Permission::ReadAcp,
        Permission::WriteAcp,
        Permission::FullControl,
    ];

    /// The S3 name.
    pub fn as_str(self) -> &'static str {
        match self {
            Permission::Read => "READ",
            Permission::Write => "WRITE",
            Permission::ReadAcp => "READ_ACP",
            Permission::WriteAcp => "WRITE_ACP",
            Permission::FullControl => "FULL_CONTROL",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == s)
    }

    /// Whether a grant of `self` covers `needed`.
    fn covers(self, needed: Permission) -> bool {
        self == needed || self == Permission::FullControl
    }
}

/// One grant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// Who.
    pub grantee: Grantee,
    /// What.
    pub permission: Permission,
}

/// Why an ACL was refused; each maps to its S3 error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AclError {
    /// `MalformedACLError`.
    Malformed(String),
    /// `UnresolvableGrantByEmailAddress`: grants by e-mail address are not supported.
    ByEmail,
    /// `InvalidArgument`: a canonical id no tenant has.
    UnknownId(String),
    /// `InvalidRequest`: a canned ACL and explicit grants in one request.
    Both,
    /// `InvalidArgument`: a canned ACL S3 does not know.
    UnknownCanned(String),
    /// `NotImplemented`: a canned ACL S3 knows and s3dedup does not give a meaning.
    UnsupportedCanned(String),
}

impl AclError {
    /// The S3 error.
    pub fn to_s3(&self) -> s3s::S3Error {
        use s3s::{S3Error, S3ErrorCode};
        let (code, msg) = match self {
            AclError::Malformed(m) => (
                S3ErrorCode::MalformedACLError,
                format!("The XML you provided was not well-formed or did not validate against our published schema: {m}"),
            ),
            AclError::ByEmail => (
                S3ErrorCode::UnresolvableGrantByEmailAddress,
                "Grants by e-mail address are not supported: grant by canonical id (s3dedup admin tenant list --json)".into(),
            ),
            AclError::UnknownId(id) => (
                S3ErrorCode::InvalidArgument,
                format!("Invalid id: no tenant has canonical id {id:?}"),
            ),
            AclError::Both => (
                S3ErrorCode::InvalidRequest,
                "Specifying both Canned ACLs and Header Grants (or a body) is not allowed".into(),
            ),
            AclError::UnknownCanned(name) => (
                S3ErrorCode::InvalidArgument,
                format!("Invalid x-amz-acl {name:?}: private, public-read, public-read-write, authenticated-read, bucket-owner-read or bucket-owner-full-control"),
            ),
            AclError::UnsupportedCanned(name) => (
                S3ErrorCode::NotImplemented,
                format!("The canned ACL {name:?} is not supported (there is no log delivery or EC2 group here)"),
            ),
        };
        S3Error::with_message(code, msg)
    }
}

/// A bucket's ACL (the owner is the bucket's; it is not repeated here).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Acl {
    /// The grants, in the order given.
    pub grants: Vec<Grant>,
}

const HEADER: &str = "s3dedup-acl 1";

impl Acl {
    /// The ACL of a canned name, for a bucket owned by `owner_id`. The object-only names
    /// `bucket-owner-read` and `bucket-owner-full-control` mean `private` on a bucket (as
    /// S3 ignores them there).
    ///
    /// # Errors
    /// [`AclError::UnknownCanned`], [`AclError::UnsupportedCanned`].
    pub fn canned(name: &str, owner_id: &str) -> Result<Self, AclError> {
        let mut grants = vec![Grant {
            grantee: Grantee::Canonical(owner_id.to_ascii_lowercase()),
            permission: Permission::FullControl,
        }];
        let extra: &[(Grantee, Permission)] = match name {
            "private" | "bucket-owner-read" | "bucket-owner-full-control" => &[],
            "public-read" => &[(Grantee::AllUsers, Permission::Read)],
            "public-read-write" => &[
                (Grantee::AllUsers, Permission::Read),
                (Grantee::AllUsers, Permission::Write),
            ],
            "authenticated-read" => &[(Grantee::AuthenticatedUsers, Permission::Read)],
            "log-delivery-write" | "aws-exec-read" => {
                return Err(AclError::UnsupportedCanned(name.to_owned()));
            }
            other => return Err(AclError::UnknownCanned(other.to_owned())),
        };
        grants.extend(extra.iter().map(|(g, p)| Grant {
            grantee: g.clone(),
            permission: *p,
        }));
        Ok(Acl { grants })
    }

    /// The ACL of `x-amz-grant-*` headers (`id="…"`, `uri="…"` lists), `None` when none
    /// is given.
    ///
    /// # Errors
    /// [`AclError`] for a grantee that is malformed, by e-mail, or unknown to
    /// `known_id`.
    pub fn from_headers(
        headers: [(Permission, Option<&str>); 5],
        known_id: &dyn Fn(&str) -> bool,
    ) -> Result<Option<Self>, AclError> {
        let mut grants = Vec::new();
        let mut any = false;
        for (permission, value) in headers {
            let Some(value) = value else { continue };
            any = true;
            for item in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                let (kind, v) = item.split_once('=').ok_or_else(|| {
                    AclError::Malformed(format!("grant {item:?} is not type=\"value\""))
                })?;
                let v = v.trim().trim_matches('"');
                let grantee = match kind.trim().to_ascii_lowercase().as_str() {
                    "id" => canonical(v, known_id)?,
                    "uri" => group(v)?,
                    "emailaddress" => return Err(AclError::ByEmail),
                    other => {
                        return Err(AclError::Malformed(format!(
                            "unknown grantee type {other:?} (id, uri)"
                        )));
                    }
                };
                grants.push(Grant {
                    grantee,
                    permission,
                });
            }
        }
        Ok(any.then_some(Acl { grants }))
    }

    /// The ACL of an `AccessControlPolicy` body.
    ///
    /// # Errors
    /// [`AclError`] for a grant without grantee or permission, an unknown permission or
    /// group, a grant by e-mail, or a canonical id unknown to `known_id`.
    pub fn from_policy(
        p: &dto::AccessControlPolicy,
        known_id: &dyn Fn(&str) -> bool,
    ) -> Result<Self, AclError> {
        if p.owner.as_ref().and_then(|o| o.id.as_deref()).is_none() {
            return Err(AclError::Malformed(
                "the Owner element (with its ID) is missing".into(),
            ));
        }
        let mut grants = Vec::new();
        for g in p.grants.iter().flatten() {
            let grantee = g
                .grantee
                .as_ref()
                .ok_or_else(|| AclError::Malformed("a Grant has no Grantee".into()))?;
            let permission = g
                .permission
                .as_ref()
                .ok_or_else(|| AclError::Malformed("a Grant has no Permission".into()))?;
            let permission = Permission::parse(permission.as_str()).ok_or_else(|| {
                AclError::Malformed(format!("unknown permission {:?}", permission.as_str()))
            })?;
            let grantee =
                match grantee.type_.as_str() {
                    dto::Type::CANONICAL_USER => canonical(
                        grantee.id.as_deref().ok_or_else(|| {
                            AclError::Malformed("a CanonicalUser grantee has no ID".into())
                        })?,
                        known_id,
                    )?,
                    dto::Type::GROUP => group(grantee.uri.as_deref().ok_or_else(|| {
                        AclError::Malformed("a Group grantee has no URI".into())
                    })?)?,
                    dto::Type::AMAZON_CUSTOMER_BY_EMAIL => return Err(AclError::ByEmail),
                    other => {
                        return Err(AclError::Malformed(format!(
                            "unknown grantee type {other:?} (CanonicalUser, Group)"
                        )));
                    }
                };
            grants.push(Grant {
                grantee,
                permission,
            });
        }
        Ok(Acl { grants })
    }

    /// The grants as S3 returns them.
    pub fn to_dto(&self) -> Vec<dto::Grant> {
        self.grants
            .iter()
            .map(|g| {
                let (type_, id, uri) = match &g.grantee {
                    Grantee::Canonical(id) => (dto::Type::CANONICAL_USER, Some(id.clone()), None),
                    Grantee::AllUsers => (dto::Type::GROUP, None, Some(ALL_USERS.to_owned())),
                    Grantee::AuthenticatedUsers => {
                        (dto::Type::GROUP, None, Some(AUTHENTICATED_USERS.to_owned()))
                    }
                };
                dto::Grant {
                    grantee: Some(dto::Grantee {
                        display_name: None,
                        email_address: None,
                        id,
                        type_: dto::Type::from_static(type_),
                        uri,
                    }),
                    permission: Some(dto::Permission::from(g.permission.as_str().to_owned())),
                }
            })
            .collect()
    }

    /// Whether it grants anything to everyone or to every signed request.
    pub fn is_public(&self) -> bool {
        self.grants
            .iter()
            .any(|g| !matches!(g.grantee, Grantee::Canonical(_)))
    }

    /// Whether it grants nothing to anyone but the tenant with `owner_id`.
    pub fn owner_only(&self, owner_id: &str) -> bool {
        self.grants.iter().all(
            |g| matches!(&g.grantee, Grantee::Canonical(id) if id.eq_ignore_ascii_case(owner_id)),
        )
    }

    /// Whether it grants `needed` to `who`; public grants count unless `ignore_public`
    /// (the bucket's IgnorePublicAcls).
    pub fn allows(&self, who: Requester<'_>, needed: Permission, ignore_public: bool) -> bool {
        self.grants.iter().any(|g| {
            g.permission.covers(needed)
                && match (&g.grantee, who) {
                    (Grantee::Canonical(id), Requester::Tenant(canonical_id)) => {
                        id.eq_ignore_ascii_case(canonical_id)
                    }
                    (Grantee::Canonical(_), Requester::Anonymous) => false,
                    (Grantee::AllUsers, _) => !ignore_public,
                    (Grantee::AuthenticatedUsers, who) => {
                        !ignore_public && who != Requester::Anonymous
                    }
                }
        })
    }

    /// The stored form.
    pub fn encode(&self) -> Vec<u8> {
        let mut s = format!("{HEADER}\n");
        for g in &self.grants {
            let (kind, v) = match &g.grantee {
                Grantee::Canonical(id) => ("id", id.as_str()),
                Grantee::AllUsers => ("group", "all"),
                Grantee::AuthenticatedUsers => ("group", "authenticated"),
            };
            s.push_str(&format!("{} {kind} {v}\n", g.permission.as_str()));
        }
        s.into_bytes()
    }

    /// Reads the stored form (`None`: not an ACL this version can read).
    pub fn decode(b: &[u8]) -> Option<Self> {
        let text = std::str::from_utf8(b).ok()?;
        let mut lines = text.lines();
        if lines.next()? != HEADER {
            return None;
        }
        let mut grants = Vec::new();
        for line in lines {
            let mut f = line.split(' ');
            let (p, kind, v) = (f.next()?, f.next()?, f.next()?);
            if f.next().is_some() {
                return None;
            }
            let grantee = match (kind, v) {
                ("id", id) if is_canonical(id) => Grantee::Canonical(id.to_owned()),
                ("group", "all") => Grantee::AllUsers,
                ("group", "authenticated") => Grantee::AuthenticatedUsers,
                _ => return None,
            };
            grants.push(Grant {
                grantee,
                permission: Permission::parse(p)?,
            });
        }
        Some(Acl { grants })
    }
}

fn is_canonical(id: &str) -> bool {
    id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit())
}

fn canonical(id: &str, known_id: &dyn Fn(&str) -> bool) -> Result<Grantee, AclError> {
    let id = id.to_ascii_lowercase();
    if !is_canonical(&id) || !known_id(&id) {
        return Err(AclError::UnknownId(id));
    }
    Ok(Grantee::Canonical(id))
}

fn group(uri: &str) -> Result<Grantee, AclError> {
    match uri {
        ALL_USERS => Ok(Grantee::AllUsers),
        AUTHENTICATED_USERS => Ok(Grantee::AuthenticatedUsers),
        other => Err(AclError::Malformed(format!(
            "unsupported group {other:?} ({ALL_USERS}, {AUTHENTICATED_USERS})"
        ))),
    }
}

/// The ACL permission an operation on a bucket needs, when a bucket ACL can grant it
/// (S3's mapping: READ lists, WRITE creates, overwrites and deletes objects — not
/// versions —, READ_ACP / WRITE_ACP read and write the bucket's ACL).
pub fn bucket_permission(operation: &str, versioned: bool) -> Option<Permission> {
    Some(match operation {
        "ListObjects"
        | "ListObjectsV2"
        | "ListObjectVersions"
        | "ListMultipartUploads"
        | "HeadBucket" => Permission::Read,
        "PutObject"
        | "CopyObject"
        | "CreateMultipartUpload"
        | "UploadPart"
        | "UploadPartCopy"
        | "CompleteMultipartUpload"
        | "AbortMultipartUpload" => Permission::Write,
        "DeleteObject" | "DeleteObjects" if !versioned => Permission::Write,
        "GetBucketAcl" => Permission::ReadAcp,
        "PutBucketAcl" => Permission::WriteAcp,
        _ => return None,
    })
}

/// The ACL permission an operation on an object needs, when the object's ACL can grant
/// it.
pub fn object_permission(operation: &str) -> Option<Permission> {
    Some(match operation {
        "GetObject" | "HeadObject" | "GetObjectAttributes" => Permission::Read,
        "GetObjectAcl" => Permission::ReadAcp,
        "PutObjectAcl" => Permission::WriteAcp,
        _ => return None,
    })
}

/// A bucket's object ownership setting (its ownership controls).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Ownership {
    /// ACLs are evaluated (the default here, as for S3 buckets made before 2023).
    #[default]
    ObjectWriter,
    /// ACLs are evaluated; objects belong to the bucket owner.
    BucketOwnerPreferred,
    /// ACLs are off.
    BucketOwnerEnforced,
}

impl Ownership {
    /// The S3 name.
    pub fn as_str(self) -> &'static str {
        match self {
            Ownership::ObjectWriter => dto::ObjectOwnership::OBJECT_WRITER,
            Ownership::BucketOwnerPreferred => dto::ObjectOwnership::BUCKET_OWNER_PREFERRED,
            Ownership::BucketOwnerEnforced => dto::ObjectOwnership::BUCKET_OWNER_ENFORCED,
        }
    }

    /// Parses the S3 name.
    pub fn parse(s: &str) -> Option<Self> {
        [
            Ownership::ObjectWriter,
            Ownership::BucketOwnerPreferred,
            Ownership::BucketOwnerEnforced,
        ]
        .into_iter()
        .find(|o| o.as_str() == s)
    }

    /// Whether ACLs are evaluated.
    pub fn acls_enabled(self) -> bool {
        self != Ownership::BucketOwnerEnforced
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OWNER: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const OTHER: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

    fn known(id: &str) -> bool {
        id == OWNER || id == OTHER
    }

    #[test]
    fn canned_acls_expand_as_s3_does() {
        let p = Acl::canned("private", OWNER).unwrap();
        assert!(p.owner_only(OWNER) && !p.is_public());
        let r = Acl::canned("public-read", OWNER).unwrap();
        assert!(r.is_public() && !r.owner_only(OWNER));
        assert_eq!(r.grants.len(), 2);
        assert_eq!(
            Acl::canned("public-read-write", OWNER)
                .unwrap()
                .grants
                .len(),
            3
        );
        let a = Acl::canned("authenticated-read", OWNER).unwrap();
        assert_eq!(a.grants[1].grantee, Grantee::AuthenticatedUsers);
        assert!(
            Acl::canned("bucket-owner-full-control", OWNER)
                .unwrap()
                .owner_only(OWNER)
        );
        assert!(matches!(
            Acl::canned("log-delivery-write", OWNER),
            Err(AclError::UnsupportedCanned(_))
        ));
        assert!(matches!(
            Acl::canned("world-writable", OWNER),
            Err(AclError::UnknownCanned(_))
        ));
    }

    #[test]
    fn grant_headers_parse_strictly() {
        let none = [(Permission::Read, None); 5];
        assert_eq!(Acl::from_headers(none, &known).unwrap(), None);
        let mut h = none;
        h[0] = (
            Permission::Read,
            Some(
                r#"id="BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB", uri="http://acs.amazonaws.com/groups/global/AllUsers""#,
            ),
        );
        let owner_grant = format!("id={OWNER}");
        h[1] = (Permission::WriteAcp, Some(&owner_grant));
        let acl = Acl::from_headers(h, &known).unwrap().unwrap();
        assert_eq!(
            acl.grants,
            [
                Grant {
                    grantee: Grantee::Canonical(OTHER.into()),
                    permission: Permission::Read
                },
                Grant {
                    grantee: Grantee::AllUsers,
                    permission: Permission::Read
                },
                Grant {
                    grantee: Grantee::Canonical(OWNER.into()),
                    permission: Permission::WriteAcp
                },
            ]
        );
        for (bad, want) in [
            (r#"emailAddress="x@example.com""#, AclError::ByEmail),
            (
                &*format!("id=\"{}\"", "c".repeat(64)),
                AclError::UnknownId("c".repeat(64)),
            ),
            ("id=\"short\"", AclError::UnknownId("short".into())),
        ] {
            let mut h = none;
            h[2] = (Permission::Write, Some(bad));
            assert_eq!(Acl::from_headers(h, &known), Err(want), "{bad}");
        }
        for bad in [
            "nonsense",
            "uri=\"http://acs.amazonaws.com/groups/s3/LogDelivery\"",
            "who=\"x\"",
        ] {
            let mut h = none;
            h[2] = (Permission::Write, Some(bad));
            assert!(
                matches!(Acl::from_headers(h, &known), Err(AclError::Malformed(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn the_stored_form_round_trips_and_its_v1_text_reads() {
        let acl = Acl::canned("public-read-write", OWNER).unwrap();
        assert_eq!(Acl::decode(&acl.encode()), Some(acl));
        // The v1 form, as written by this release: must keep reading the same.
        let v1 = format!(
            "s3dedup-acl 1\nFULL_CONTROL id {OWNER}\nREAD group all\nWRITE_ACP group authenticated\nREAD_ACP id {OTHER}\n"
        );
        let read = Acl::decode(v1.as_bytes()).unwrap();
        assert_eq!(read.encode(), v1.as_bytes());
        assert_eq!(read.grants.len(), 4);
        for bad in [
            "s3dedup-acl 2\n",
            "s3dedup-acl 1\nREAD group nobody\n",
            "s3dedup-acl 1\nREAD id x\n",
            "s3dedup-acl 1\nSEE group all\n",
            "",
        ] {
            assert_eq!(Acl::decode(bad.as_bytes()), None, "{bad:?}");
        }
    }

    #[test]
    fn grants_match_principals() {
        let tenant = Requester::Tenant;
        let acl = Acl {
            grants: vec![
                Grant {
                    grantee: Grantee::Canonical(OTHER.into()),
                    permission: Permission::Write,
                },
                Grant {
                    grantee: Grantee::AuthenticatedUsers,
                    permission: Permission::ReadAcp,
                },
                Grant {
                    grantee: Grantee::AllUsers,
                    permission: Permission::Read,
                },
            ],
        };
        assert!(acl.allows(tenant(OTHER), Permission::Write, false));
        assert!(!acl.allows(tenant(OWNER), Permission::Write, false));
        assert!(acl.allows(tenant(OWNER), Permission::ReadAcp, false));
        assert!(!acl.allows(Requester::Anonymous, Permission::ReadAcp, false));
        assert!(acl.allows(Requester::Anonymous, Permission::Read, false));
        assert!(!acl.allows(Requester::Anonymous, Permission::Read, true));
        assert!(!acl.allows(tenant(OWNER), Permission::ReadAcp, true));
        assert!(acl.allows(tenant(OTHER), Permission::Write, true));
        let full = Acl::canned("private", OTHER).unwrap();
        for p in Permission::ALL {
            assert!(full.allows(tenant(OTHER), p, true));
        }
    }
}
