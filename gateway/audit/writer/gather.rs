//! How a group commit gathers its batch: what is queued, and (with `commit_delay`) what is on
//! its way while enough exchanges are under way (`commit_siblings`), never for a lone request.

use super::{Pending, Writer};
use std::sync::atomic::Ordering;
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

impl Writer {
    /// The adaptive part of the group commit: while at least `commit_siblings` exchanges are
    /// on their way to the writer, waits up to `commit_delay` for their records, and stops
    /// waiting once every one of them has handed its record over (or the batch is full).
    ///
    /// Why it sleeps in short slices instead of blocking on the queue: a blocking receive
    /// wakes the writer (a context switch, expensive on a VM) for every record that arrives,
    /// which cost as much as the larger batch saved (docs/performance.md). Slices of a quarter
    /// of the delay wake it at most four times and still end the wait early.
    pub(super) fn wait_for_siblings(&self, queue: &Receiver<Pending>, batch: &mut Vec<Pending>) {
        let delay = self.settings.commit_delay;
        if delay.is_zero() || self.settings.commit_siblings == 0 {
            return;
        }
        if self.upcoming.load(Ordering::Relaxed) < self.settings.commit_siblings {
            return;
        }
        let deadline = Instant::now() + delay;
        let slice = (delay / 4).max(Duration::from_micros(20));
        loop {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            std::thread::sleep(slice.min(deadline - now));
            self.take_queued(queue, batch);
            if batch.len() >= self.settings.batch_max || self.upcoming.load(Ordering::Relaxed) == 0
            {
                break;
            }
        }
    }

    /// Adds what is queued to `batch`, up to `batch_max`, without waiting.
    pub(super) fn take_queued(&self, queue: &Receiver<Pending>, batch: &mut Vec<Pending>) {
        while batch.len() < self.settings.batch_max {
            match queue.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
    }
}
