//! The `store` key of the configuration (SPEC §9): where state shared by replicas lives.
//! The store itself is [`crate::store`]; these are only its settings, so the configuration
//! does not depend on the store's machinery.

use sqlx::postgres::PgConnectOptions;
use std::path::PathBuf;
use std::str::FromStr as _;
use std::time::Duration;

/// Where the store is (the `store` configuration key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreLocation {
    /// An SQLite database file (created if missing).
    Sqlite(PathBuf),
    /// A PostgreSQL connection URL (`postgres://…`; `sslmode=require` or `verify-full` for TLS).
    Postgres(String),
}

impl StoreLocation {
    /// Whether the store is a PostgreSQL database (shared by replicas).
    pub fn is_postgres(&self) -> bool {
        matches!(self, Self::Postgres(_))
    }

    /// Reads the `store` value: a `postgres://` / `postgresql://` URL, or `sqlite:PATH`.
    pub fn parse(text: &str) -> std::result::Result<Self, String> {
        let text = text.trim();
        if text.starts_with("postgres://") || text.starts_with("postgresql://") {
            PgConnectOptions::from_str(text)
                .map_err(|e| format!("not a usable PostgreSQL URL: {e}"))?;
            Ok(Self::Postgres(text.to_string()))
        } else if let Some(path) = text.strip_prefix("sqlite:") {
            let path = path.trim_start_matches("//");
            if path.is_empty() {
                return Err(
                    "sqlite: needs a file path, e.g. sqlite:/var/lib/doelpoort/store.sqlite".into(),
                );
            }
            Ok(Self::Sqlite(PathBuf::from(path)))
        } else {
            Err("expected postgres://… or sqlite:PATH".into())
        }
    }

    /// The location without credentials, for logs and errors.
    pub fn describe(&self) -> String {
        match self {
            Self::Sqlite(path) => format!("sqlite:{}", path.display()),
            Self::Postgres(url) => match PgConnectOptions::from_str(url) {
                Ok(o) => format!(
                    "postgres://{}:{}/{}",
                    o.get_host(),
                    o.get_port(),
                    o.get_database().unwrap_or("")
                ),
                Err(_) => "postgres://…".into(),
            },
        }
    }
}

/// How to reach the store (the `store` section of the configuration).
#[derive(Debug, Clone)]
pub struct StoreSettings {
    pub location: StoreLocation,
    /// Pooled connections per replica.
    pub max_connections: u32,
    /// How long an exchange waits for a connection (or SQLite's lock) before it is refused.
    pub timeout: Duration,
}

impl StoreSettings {
    pub fn new(location: StoreLocation) -> Self {
        Self {
            location,
            max_connections: 8,
            timeout: Duration::from_secs(2),
        }
    }
}

/// The URL without a password (user part or `password=` parameter), for printing: the
/// password comes from `PGPASSWORD` or a passfile when the URL is used.
pub fn without_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (authority, tail) = rest.split_at(rest.find(['/', '?']).unwrap_or(rest.len()));
    let authority = match authority.rsplit_once('@') {
        Some((user, host)) => format!("{}@{host}", user.split(':').next().unwrap_or("")),
        None => authority.to_string(),
    };
    let tail = match tail.split_once('?') {
        Some((path, query)) => {
            let kept: Vec<&str> = query
                .split('&')
                .filter(|p| !p.to_ascii_lowercase().starts_with("password="))
                .collect();
            if kept.is_empty() {
                path.to_string()
            } else {
                format!("{path}?{}", kept.join("&"))
            }
        }
        None => tail.to_string(),
    };
    format!("{scheme}://{authority}{tail}")
}

/// Whether a PostgreSQL URL names a password (in its user part or as `password=`).
pub fn carries_password(url: &str) -> bool {
    let authority = url
        .split_once("://")
        .map_or("", |(_, rest)| rest.split(['/', '?']).next().unwrap_or(""));
    authority
        .split_once('@')
        .is_some_and(|(user, _)| user.contains(':'))
        || url.to_ascii_lowercase().contains("password=")
}

/// Reading the `store` key, and where state lives when it is not given.
impl super::validate::Validator<'_> {
    /// Where the gateway keeps its own state by default (the store, the household key): the
    /// audit directory's parent, or the configuration's own directory without an audit log.
    pub(super) fn data_dir(&self, audit: &super::AuditSettings) -> std::path::PathBuf {
        match audit.dir.parent() {
            Some(parent) if audit.enabled && !audit.dir.as_os_str().is_empty() => {
                parent.to_path_buf()
            }
            _ => self.base_dir.to_path_buf(),
        }
    }

    pub(super) fn store(
        &mut self,
        raw: Option<&serde_saphyr::Spanned<String>>,
        audit: &super::AuditSettings,
    ) -> super::store::StoreSettings {
        use super::store::{StoreLocation, StoreSettings};
        let default = StoreLocation::Sqlite(self.data_dir(audit).join("store.sqlite"));
        let location = match raw {
            None => default,
            Some(v) => match StoreLocation::parse(&v.value) {
                Ok(StoreLocation::Sqlite(path)) => {
                    StoreLocation::Sqlite(self.resolve(&path.to_string_lossy()))
                }
                Ok(location) => location,
                Err(e) => {
                    self.error(&v.referenced, e);
                    default
                }
            },
        };
        StoreSettings::new(location)
    }
}

#[cfg(test)]
mod tests {
    use super::carries_password;

    #[test]
    fn a_password_in_the_store_url_is_noticed() {
        assert!(carries_password("postgres://u:secret@db/x"));
        assert!(carries_password(
            "postgres://u@db/x?sslmode=require&password=secret"
        ));
        assert!(!carries_password(
            "postgres://u@db:5432/x?sslmode=verify-full"
        ));
        assert!(!carries_password("postgres://db/x"));
    }

    #[test]
    fn a_printed_url_has_no_password() {
        use super::without_password;
        assert_eq!(
            without_password("postgres://u:secret@db:5432/x"),
            "postgres://u@db:5432/x"
        );
        assert_eq!(
            without_password("postgres://u@db/x?sslmode=require&password=secret"),
            "postgres://u@db/x?sslmode=require"
        );
        assert_eq!(without_password("postgres://db/x"), "postgres://db/x");
    }
}
