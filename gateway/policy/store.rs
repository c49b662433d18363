//! The live policy set and its reloads.
//!
//! The current [`PolicySet`] sits behind an atomic pointer (`arc-swap`): a request takes the
//! snapshot once, at its start, and keeps it to the end, so in-flight requests finish under
//! the version they started with. A reload (SIGHUP, or a change in the policy or schema
//! directory, debounced) compiles a complete new set off the request path, on a blocking
//! thread, and swaps it in only if it has no errors. An invalid set is logged with its
//! `file:line:col` diagnostics and counted; the running version stays.
//!
//! When the set cannot be loaded at start, the gateway still starts — every exchange is
//! refused and `/readyz` says why — so that a fix can be reloaded without a restart.

use super::{compile, PolicySet};
use crate::diagnostic::Diagnostic;
use crate::metrics::Metrics;
use arc_swap::ArcSwapOption;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long a burst of file events is allowed to settle before reloading: editors write a
/// file in several steps, and a set of files is often changed together.
const DEBOUNCE: Duration = Duration::from_millis(300);

pub struct PolicyStore {
    current: ArcSwapOption<PolicySet>,
    policies_dir: PathBuf,
    schemas_dir: PathBuf,
    metrics: Arc<Metrics>,
    /// Serialises reloads; never taken on the request path.
    reloading: Mutex<()>,
    /// The diagnostics of the last failed load (for /readyz and logs); empty after success.
    last_errors: Mutex<Vec<String>>,
    /// The versions this process has run, oldest first (at most [`HISTORY`]): the console
    /// compares two of them (who gains or loses access to which fields).
    history: Mutex<Vec<LoadedVersion>>,
}

/// How many loaded versions the store keeps for comparison.
pub const HISTORY: usize = 32;

/// A policy version this process has run, and when it was loaded.
#[derive(Clone)]
pub struct LoadedVersion {
    pub set: Arc<PolicySet>,
    pub loaded_at: std::time::SystemTime,
}

impl PolicyStore {
    /// Loads the initial set. Errors are logged and kept; the store is returned either way.
    pub fn open(policies_dir: &Path, schemas_dir: &Path, metrics: Arc<Metrics>) -> Arc<Self> {
        let store = Arc::new(Self {
            current: ArcSwapOption::empty(),
            policies_dir: policies_dir.to_path_buf(),
            schemas_dir: schemas_dir.to_path_buf(),
            metrics,
            reloading: Mutex::new(()),
            last_errors: Mutex::new(Vec::new()),
            history: Mutex::new(Vec::new()),
        });
        let _ = store.reload();
        store
    }

    /// The set to decide with (None: no valid set was ever loaded).
    pub fn current(&self) -> Option<Arc<PolicySet>> {
        self.current.load_full()
    }

    /// The versions loaded since the process started, oldest first.
    pub fn history(&self) -> Vec<LoadedVersion> {
        self.history.lock().map(|h| h.clone()).unwrap_or_default()
    }

    /// Why the store has no set, if it has none.
    pub fn last_errors(&self) -> Vec<String> {
        self.last_errors
            .lock()
            .map(|e| e.clone())
            .unwrap_or_default()
    }

    /// Compiles the directories and swaps the result in if it is valid. Blocking (file I/O):
    /// call it from a blocking thread.
    pub fn reload(&self) -> Result<String, Vec<Diagnostic>> {
        let _guard = self.reloading.lock().unwrap_or_else(|e| e.into_inner());
        let (set, diagnostics) =
            compile::load(&self.policies_dir, &self.schemas_dir, super::today());
        for d in diagnostics.iter().filter(|d| !d.is_error()) {
            tracing::warn!(target: "doelpoort::policy", "{d}");
        }
        match set {
            Some(set) => {
                let version = set.version.clone();
                let set = Arc::new(set);
                self.remember(&set);
                let previous = self.current.swap(Some(set));
                if let Some(previous) = previous {
                    let _ = self
                        .metrics
                        .policy_info
                        .remove_label_values(&[&previous.version]);
                }
                self.metrics
                    .policy_info
                    .with_label_values(&[&version])
                    .set(1.0);
                self.metrics.policy_reloads.with_label_values(&["ok"]).inc();
                if let Ok(mut e) = self.last_errors.lock() {
                    e.clear();
                }
                tracing::info!(target: "doelpoort::policy", version, "policy set loaded");
                Ok(version)
            }
            None => {
                let errors: Vec<Diagnostic> = diagnostics
                    .into_iter()
                    .filter(Diagnostic::is_error)
                    .collect();
                for d in &errors {
                    tracing::error!(target: "doelpoort::policy", "{d}");
                }
                self.metrics
                    .policy_reloads
                    .with_label_values(&["failed"])
                    .inc();
                tracing::error!(
                    target: "doelpoort::policy",
                    errors = errors.len(),
                    running = self.current.load().as_ref().map(|s| s.version.clone()).unwrap_or_default(),
                    "policy set rejected; the running version stays"
                );
                if let Ok(mut e) = self.last_errors.lock() {
                    *e = errors.iter().map(ToString::to_string).collect();
                }
                Err(errors)
            }
        }
    }

    /// Adds a loaded set to the history, unless it is the version already running (a reload
    /// that changed nothing the version covers).
    fn remember(&self, set: &Arc<PolicySet>) {
        let mut history = self.history.lock().unwrap_or_else(|e| e.into_inner());
        if history.last().is_some_and(|l| l.set.version == set.version) {
            return;
        }
        if history.len() == HISTORY {
            history.remove(0);
        }
        history.push(LoadedVersion {
            set: set.clone(),
            loaded_at: std::time::SystemTime::now(),
        });
    }

    /// Reloads on SIGHUP and on changes in the policy and schema directories, until the task
    /// is aborted.
    pub fn spawn_watcher(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let store = self.clone();
        // Both event sources are registered before returning, not inside the task: a change or
        // a SIGHUP that arrives before the task first runs must still reload (and a SIGHUP
        // must never fall through to its default action, which terminates the process).
        let mut hangup =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
        let changed = Arc::new(tokio::sync::Notify::new());
        // Absolute, so that events (whose paths the watcher joins from the watched path) and
        // the directories compare, and a relative directory still has a parent to watch.
        let dirs = [&store.policies_dir, &store.schemas_dir]
            .map(|d| std::fs::canonicalize(d).unwrap_or_else(|_| d.clone()));
        let watcher = {
            let changed = changed.clone();
            let dirs = dirs.clone();
            notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                // The parents are watched too (to see a directory come back); of their events
                // only those about the policy or schema directory itself count.
                let relevant = event.is_ok_and(|e| {
                    !e.kind.is_access()
                        && e.paths
                            .iter()
                            .any(|p| dirs.iter().any(|d| p.starts_with(d)))
                });
                if relevant {
                    changed.notify_one();
                }
            })
        };
        let mut watcher = match watcher {
            Ok(mut w) => {
                use notify::Watcher;
                for dir in &dirs {
                    if let Some(parent) = dir.parent() {
                        let _ = w.watch(parent, notify::RecursiveMode::NonRecursive);
                    }
                    if let Err(e) = w.watch(dir, notify::RecursiveMode::Recursive) {
                        tracing::warn!(target: "doelpoort::policy", error = %e, dir = %dir.display(), "cannot watch; reload with SIGHUP");
                    }
                }
                Some(w)
            }
            Err(e) => {
                tracing::warn!(target: "doelpoort::policy", error = %e, "no file watcher; reload with SIGHUP");
                None
            }
        };
        tokio::spawn(async move {
            // The task owns the watcher: aborting the task drops it, which stops it.
            loop {
                let hup = async {
                    match hangup.as_mut() {
                        Some(s) => {
                            s.recv().await;
                        }
                        None => std::future::pending::<()>().await,
                    }
                };
                tokio::select! {
                    _ = changed.notified() => {
                        // Let the burst settle, then swallow the events it produced.
                        tokio::time::sleep(DEBOUNCE).await;
                        let _ = tokio::time::timeout(Duration::ZERO, changed.notified()).await;
                    }
                    _ = hup => {
                        tracing::info!(target: "doelpoort::policy", "SIGHUP: reloading policies");
                    }
                }
                // A directory that was removed and made again is a new directory: its old
                // watch died with it, so watch it afresh (a no-op while it is the same one).
                if let Some(w) = watcher.as_mut() {
                    use notify::Watcher;
                    for dir in &dirs {
                        let _ = w.watch(dir, notify::RecursiveMode::Recursive);
                    }
                }
                let store = store.clone();
                let _ = tokio::task::spawn_blocking(move || store.reload()).await;
            }
        })
    }
}
