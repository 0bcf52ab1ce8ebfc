//! The node's data directory: identity key, database, the files clients read, and the
//! published documents' settings (`endpoints.json`, `published.seq`).

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use atomicity_core::Keypair;
use thiserror::Error;

/// File holding the secret key (hex), mode 0600.
pub const IDENTITY_FILE: &str = "identity.key";
/// SQLite database.
pub const DB_FILE: &str = "atomicity.db";
/// The peer-facing URL of a running node.
pub const NODE_URL_FILE: &str = "node.url";
/// The local API URL of a running node.
pub const API_URL_FILE: &str = "api.url";
/// The local API bearer token, mode 0600.
pub const API_TOKEN_FILE: &str = "api.token";
/// The witness logs this node reached, one `<url> <verifier key>` a line.
pub const WITNESSES_FILE: &str = "witnesses";
/// The Paykit endpoints the user configured (JSON, see `docs/publishing.md`).
pub const ENDPOINTS_FILE: &str = "endpoints.json";
/// A bound above every seq of a published document signed so far (decimal microseconds), so
/// that seqs never go backward across restarts, even if the clock does.
pub const PUBLISHED_SEQ_FILE: &str = "published.seq";

/// A problem with the data directory.
#[derive(Debug, Error)]
pub enum DataDirError {
    /// `init` was never run here.
    #[error("{0} has no identity; run `atomicity init` first")]
    NotInitialized(PathBuf),
    /// `init` was already run here.
    #[error("{0} already has an identity; refusing to overwrite it")]
    AlreadyInitialized(PathBuf),
    /// The identity file is not a 32-byte hex secret.
    #[error("{0} is not a valid identity file")]
    BadIdentity(PathBuf),
    /// A file the node keeps does not read back (edited by hand?).
    #[error("{path}: {why}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        why: String,
    },
    /// Reading or writing failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
}

/// Paths inside one data directory.
#[derive(Clone, Debug)]
pub struct DataDir {
    root: PathBuf,
}

impl DataDir {
    /// The data directory at `root` (not created yet).
    pub fn new(root: impl Into<PathBuf>) -> DataDir {
        DataDir { root: root.into() }
    }

    /// Its root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// A file inside it.
    pub fn file(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    /// Creates the directory and a new identity. Fails if one exists.
    pub fn init(&self) -> Result<Keypair, DataDirError> {
        let path = self.file(IDENTITY_FILE);
        if path.exists() {
            return Err(DataDirError::AlreadyInitialized(self.root.clone()));
        }
        let io = |source| DataDirError::Io {
            path: self.root.clone(),
            source,
        };
        fs::create_dir_all(&self.root).map_err(io)?;
        // The directory holds the secret key and the API token: only its owner may look in.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(&self.root, fs::Permissions::from_mode(0o700)).map_err(io)?;
        }
        let key = Keypair::random();
        write_private(&path, hex::encode(key.secret_key()).as_bytes())?;
        Ok(key)
    }

    /// Reads the identity.
    pub fn identity(&self) -> Result<Keypair, DataDirError> {
        let path = self.file(IDENTITY_FILE);
        let text = match fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(DataDirError::NotInitialized(self.root.clone()));
            }
            Err(source) => return Err(DataDirError::Io { path, source }),
        };
        let bytes =
            hex::decode(text.trim()).map_err(|_| DataDirError::BadIdentity(path.clone()))?;
        let secret: [u8; 32] = bytes
            .try_into()
            .map_err(|_| DataDirError::BadIdentity(path.clone()))?;
        Ok(Keypair::from_secret_key(&secret))
    }

    /// Writes a small text file atomically (write to a temporary name, then rename).
    pub fn write_text(&self, name: &str, text: &str, private: bool) -> Result<(), DataDirError> {
        let path = self.file(name);
        let tmp = self.file(&format!(".{name}.tmp"));
        if private {
            write_private(&tmp, text.as_bytes())?;
        } else {
            fs::write(&tmp, text).map_err(|source| DataDirError::Io {
                path: tmp.clone(),
                source,
            })?;
        }
        fs::rename(&tmp, &path).map_err(|source| DataDirError::Io { path, source })
    }

    /// Reads a small text file, trimmed.
    pub fn read_text(&self, name: &str) -> Result<String, DataDirError> {
        let path = self.file(name);
        fs::read_to_string(&path)
            .map(|s| s.trim().to_string())
            .map_err(|source| DataDirError::Io { path, source })
    }

    /// Replaces a file durably: writes a temporary file, syncs it, renames it over the old one
    /// and syncs the directory, so that after a crash the file is either the old or the new one,
    /// whole.
    pub fn write_durable(&self, name: &str, bytes: &[u8]) -> Result<(), DataDirError> {
        let path = self.file(name);
        let tmp = self.file(&format!(".{name}.tmp"));
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| DataDirError::Io { path, source }
        };
        let mut file = fs::File::create(&tmp).map_err(io(&tmp))?;
        file.write_all(bytes).map_err(io(&tmp))?;
        file.sync_all().map_err(io(&tmp))?;
        drop(file);
        fs::rename(&tmp, &path).map_err(io(&path))?;
        #[cfg(unix)]
        fs::File::open(&self.root)
            .and_then(|dir| dir.sync_all())
            .map_err(io(&self.root))?;
        Ok(())
    }

    /// Reads a file; `None` if it does not exist.
    pub fn read_optional(&self, name: &str) -> Result<Option<Vec<u8>>, DataDirError> {
        let path = self.file(name);
        match fs::read(&path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(DataDirError::Io { path, source }),
        }
    }

    /// Removes the files that describe a running node.
    pub fn clear_run_files(&self) {
        for name in [NODE_URL_FILE, API_URL_FILE, API_TOKEN_FILE] {
            let _ = fs::remove_file(self.file(name));
        }
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<(), DataDirError> {
    let io = |source| DataDirError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(io)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(fs::Permissions::from_mode(0o600))
            .map_err(io)?;
    }
    file.write_all(bytes).map_err(io)?;
    file.sync_all().map_err(io)
}
