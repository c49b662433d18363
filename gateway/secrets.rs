//! The gateway's own secrets: random keys made once and kept in private files (the audit
//! log's subject key, the pseudonym secret), and reading them back.

use anyhow::{Context, Result};
use std::path::Path;

/// Writes a new random 32-byte secret (hex) to `path`, readable by the owner only.
pub fn write_new_secret(path: &Path) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    // Created private (never readable by others, not even briefly) and never over an existing
    // secret: replacing one would silently change every pseudonym or subject id.
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    file.write_all(hex::encode(random_secret()?).as_bytes())?;
    file.sync_all()
        .with_context(|| format!("cannot write {}", path.display()))
}

/// 32 random bytes from the operating system's generator (ring's `SystemRandom`, the same
/// source the TLS stack draws its keys from). A secret must not be made without it.
pub fn random_secret() -> Result<[u8; 32]> {
    use ring::rand::SecureRandom as _;
    let mut out = [0u8; 32];
    ring::rand::SystemRandom::new()
        .fill(&mut out)
        .map_err(|_| anyhow::anyhow!("the operating system's random generator failed"))?;
    Ok(out)
}

/// The secret pseudonyms are derived from: the configured file, or a random one.
pub fn pseudonym_secret(path: Option<&Path>) -> Result<Vec<u8>> {
    let Some(path) = path else {
        tracing::warn!("no pseudonym_secret configured: pseudonyms will change at every restart");
        return Ok(random_secret()?.to_vec());
    };
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the pseudonym secret {}", path.display()))?;
    let bytes = hex::decode(text.trim()).unwrap_or_else(|_| text.trim().as_bytes().to_vec());
    anyhow::ensure!(
        bytes.len() >= 32,
        "the pseudonym secret in {} is shorter than 32 bytes",
        path.display()
    );
    Ok(bytes)
}
