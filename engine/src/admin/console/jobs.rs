//! Bulk replays run in the background; the page polls their progress.

use std::collections::HashMap;
use std::sync::Mutex;

use serde::Serialize;

use crate::admin::Answer;

/// At most this many jobs are remembered (the oldest finished ones go first).
const KEPT: usize = 100;

#[derive(Debug, Clone, Serialize)]
pub(super) struct Job {
    pub id: String,
    pub total: usize,
    pub done: usize,
    /// Went through the route.
    pub replayed: usize,
    /// Failed again: each is a new dead letter.
    pub failed_again: usize,
    /// Not replayed (already replayed meanwhile, route gone, store down).
    pub skipped: usize,
    pub last_error: String,
    pub finished: bool,
}

#[derive(Default)]
pub(super) struct Jobs {
    jobs: Mutex<HashMap<String, Job>>,
}

impl Jobs {
    pub(super) fn start(&self, total: usize) -> Job {
        let job = Job {
            id: uuid::Uuid::now_v7().to_string(),
            total,
            done: 0,
            replayed: 0,
            failed_again: 0,
            skipped: 0,
            last_error: String::new(),
            finished: total == 0,
        };
        let mut jobs = self.lock();
        if jobs.len() >= KEPT {
            // Ids are uuid v7: the smallest finished one is the oldest.
            if let Some(oldest) = jobs.values().filter(|j| j.finished).map(|j| j.id.clone()).min() {
                jobs.remove(&oldest);
            }
        }
        jobs.insert(job.id.clone(), job.clone());
        job
    }

    /// Counts one replay's answer.
    pub(super) fn count(&self, id: &str, answer: &Answer) {
        if let Some(job) = self.lock().get_mut(id) {
            job.done += 1;
            match (answer.status.is_success(), answer.body["outcome"].as_str()) {
                (true, Some("done")) => job.replayed += 1,
                (true, _) => job.failed_again += 1,
                (false, _) => {
                    job.skipped += 1;
                    job.last_error = answer.body["detail"].as_str().unwrap_or_default().to_owned();
                }
            }
        }
    }

    pub(super) fn finish(&self, id: &str) {
        if let Some(job) = self.lock().get_mut(id) {
            job.finished = true;
        }
    }

    pub(super) fn get(&self, id: &str) -> Option<Job> {
        self.lock().get(id).cloned()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Job>> {
        self.jobs.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
