//! The admin API's bearer token: from the settings (`admin_token`,
//! `S3DEDUP_ADMIN_TOKEN`), else kept in `<data_dir>/admin-token` (mode 0600), created
//! at the server's first start. The CLI reads it the same way.

use std::path::{Path, PathBuf};

use crate::config::Secret;

/// Name of the token file in the data directory.
pub const TOKEN_FILE: &str = "admin-token";
/// The environment variable that carries a token (the server's setting and the CLI's).
pub const TOKEN_ENV: &str = "S3DEDUP_ADMIN_TOKEN";

/// The token file could not be read or written.
#[derive(Debug, thiserror::Error)]
#[error("admin token at {path}: {source}")]
pub struct TokenError {
    /// The file.
    pub path: PathBuf,
    /// Why.
    pub source: std::io::Error,
}

/// The server's token: `configured`, else the data dir's file, created if missing.
///
/// # Errors
/// [`TokenError`] when the file cannot be read or created.
pub fn server_token(configured: Option<&Secret>, data_dir: &Path) -> Result<Secret, TokenError> {
    if let Some(t) = configured {
        return Ok(t.clone());
    }
    let path = data_dir.join(TOKEN_FILE);
    let err = |source| TokenError {
        path: path.clone(),
        source,
    };
    match read_token(&path) {
        Ok(t) => Ok(t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            use rand::Rng;
            const ANY: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
            let mut rng = rand::rng();
            let token: String = (0..43)
                .map(|_| char::from(ANY[rng.random_range(0..ANY.len())]))
                .collect();
            std::fs::create_dir_all(data_dir).map_err(err)?;
            crate::credentials::write_private(&path, format!("{token}\n").as_bytes())
                .map_err(err)?;
            Ok(Secret::new(token))
        }
        Err(e) => Err(err(e)),
    }
}

/// The CLI's token: `S3DEDUP_ADMIN_TOKEN`, else `<data_dir>/admin-token`.
///
/// # Errors
/// [`TokenError`] when neither gives one.
pub fn client_token(data_dir: &Path) -> Result<Secret, TokenError> {
    if let Some(t) = std::env::var(TOKEN_ENV).ok().filter(|t| !t.is_empty()) {
        return Ok(Secret::new(t));
    }
    let path = data_dir.join(TOKEN_FILE);
    read_token(&path).map_err(|source| TokenError { path, source })
}

fn read_token(path: &Path) -> std::io::Result<Secret> {
    let text = std::fs::read_to_string(path)?;
    let t = text.trim();
    if t.is_empty() {
        return Err(std::io::Error::other("the file is empty"));
    }
    Ok(Secret::new(t))
}

/// Compares a presented token with the expected one in constant time.
pub fn token_matches(expected: &Secret, presented: &str) -> bool {
    let (a, b) = (expected.expose().as_bytes(), presented.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_once_privately_and_read_back() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let first = server_token(None, dir.path()).unwrap();
        let mode = std::fs::metadata(dir.path().join(TOKEN_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let again = server_token(None, dir.path()).unwrap();
        assert_eq!(first, again);
        assert!(token_matches(&first, first.expose()));
        assert!(!token_matches(&first, "wrong"));
        let configured = Secret::new("a-configured-token-xyz");
        assert_eq!(
            server_token(Some(&configured), dir.path()).unwrap(),
            configured
        );
    }
}
