//! The data subject in audit records: a keyed HMAC of the BSN, never the BSN itself.
//!
//! The key lives in its own file (`audit.subject_key`), outside the audit directory, so a copy
//! of the log shipped elsewhere (a SIEM, a backup) does not let anyone find a person in it —
//! without the key, 10⁹ possible BSNs are no protection against a plain hash. The gateway makes
//! the key on first start. `audit query` needs the same key to answer a citizen's request; the
//! audit directory's manifest says where it lives and which key (by id) wrote the records.

use anyhow::{Context as _, Result};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::path::{Path, PathBuf};

/// `dpl.core.data_subject_id_type` of a BSN.
pub const BSN_TYPE: &str = "BSN";

/// The key that turns a BSN into `dpl.core.data_subject_id`.
#[derive(Clone)]
pub struct SubjectKey {
    key: Vec<u8>,
}

impl std::fmt::Debug for SubjectKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SubjectKey({})", self.id())
    }
}

impl SubjectKey {
    pub fn from_bytes(key: &[u8]) -> Result<Self> {
        anyhow::ensure!(
            key.len() >= 32,
            "the audit subject key is shorter than 32 bytes"
        );
        Ok(Self { key: key.to_vec() })
    }

    /// Reads the key file (hex, as the gateway writes it).
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the audit subject key {}", path.display()))?;
        let bytes = hex::decode(text.trim()).with_context(|| {
            format!(
                "{}: expected the key as hex (64 or more hex digits)",
                path.display()
            )
        })?;
        Self::from_bytes(&bytes).with_context(|| path.display().to_string())
    }

    /// Reads the key file, or creates it (mode 0600) with a fresh random key.
    pub fn load_or_create(path: &Path) -> Result<Self> {
        if path.exists() {
            return Self::load(path);
        }
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        crate::secrets::write_new_secret(path).context("cannot create the audit subject key")?;
        tracing::info!(path = %path.display(), "created a new audit subject key");
        Self::load(path)
    }

    fn mac(&self) -> Hmac<Sha256> {
        // HMAC accepts keys of any length.
        Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes any key length")
    }

    /// `dpl.core.data_subject_id` of a BSN (hex HMAC-SHA256 over `BSN:<digits>`).
    pub fn subject_id(&self, bsn: &str) -> String {
        let mut mac = self.mac();
        mac.update(BSN_TYPE.as_bytes());
        mac.update(b":");
        mac.update(bsn.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    /// A short public id of the key, so a query with the wrong key is told so.
    pub fn id(&self) -> String {
        let mut mac = self.mac();
        mac.update(b"doelpoort audit subject key id");
        hex::encode(&mac.finalize().into_bytes()[..8])
    }
}

/// `manifest.json` in the audit directory: what wrote this log and where its key is.
#[derive(Debug, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct Manifest {
    pub format: String,
    pub instance: String,
    /// Absolute path of the subject key file (the path, never the key).
    pub subject_key_file: PathBuf,
    pub subject_key_id: String,
}

pub const MANIFEST: &str = "manifest.json";
pub const FORMAT: &str = "doelpoort-audit/1";

impl Manifest {
    pub fn read(dir: &Path) -> Result<Self> {
        let path = dir.join(MANIFEST);
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        serde_json::from_str(&text).with_context(|| format!("{}: not a manifest", path.display()))
    }

    /// Writes the manifest atomically (temp file + rename) when it changed.
    pub fn store(&self, dir: &Path) -> Result<()> {
        if Self::read(dir).ok().as_ref() == Some(self) {
            return Ok(());
        }
        let text = serde_json::to_string_pretty(self)? + "\n";
        super::segment::write_atomically(&dir.join(MANIFEST), text.as_bytes())
    }
}

/// The key for querying `dir`: `explicit` if given, else the file the manifest names; checked
/// against the manifest's key id so a wrong key is an error, not an empty answer.
pub fn key_for_query(dir: &Path, explicit: Option<&Path>) -> Result<SubjectKey> {
    let manifest = Manifest::read(dir).ok();
    let path = match (explicit, &manifest) {
        (Some(path), _) => path.to_path_buf(),
        (None, Some(m)) => m.subject_key_file.clone(),
        (None, None) => anyhow::bail!(
            "{} has no manifest.json naming its subject key; pass --key-file",
            dir.display()
        ),
    };
    let key = SubjectKey::load(&path)?;
    if let Some(m) = &manifest {
        anyhow::ensure!(
            m.subject_key_id == key.id(),
            "{} is not the key this log was written with (key id {} ≠ {})",
            path.display(),
            key.id(),
            m.subject_key_id
        );
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subject_ids_are_keyed_and_stable() {
        let a = SubjectKey::from_bytes(&[1; 32]).unwrap();
        let b = SubjectKey::from_bytes(&[2; 32]).unwrap();
        assert_eq!(a.subject_id("999990019"), a.subject_id("999990019"));
        assert_ne!(a.subject_id("999990019"), b.subject_id("999990019"));
        assert_ne!(a.subject_id("999990019"), a.subject_id("999990020"));
        assert!(!a.subject_id("999990019").contains("999990019"));
        assert_eq!(a.subject_id("999990019").len(), 64);
        assert!(SubjectKey::from_bytes(&[0; 16]).is_err());
    }

    #[test]
    fn key_file_is_created_once_and_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/subject.key");
        let made = SubjectKey::load_or_create(&path).unwrap();
        let again = SubjectKey::load_or_create(&path).unwrap();
        assert_eq!(made.id(), again.id());
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
