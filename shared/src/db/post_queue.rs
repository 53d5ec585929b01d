//! Plain posts that arrive while others are being written wait here and go to Postgres
//! together: one statement for the lot ([`POST_BATCH`]), the way a database group-commits.
//!
//! One process serves many concurrent requests (Fluid compute), so under load many posts
//! are in flight at once. Written one by one, each pays a round trip, a transaction, a
//! statement's setup and a plpgsql call; written together they pay those once
//! (BENCHMARKS.md, "Posts written together"). Nothing waits for company: a post that finds
//! no batch in flight is sent at once, alone, through `chat_post` as before; posts that
//! arrive meanwhile queue, and the next batch takes them all (up to [`MAX_BATCH`], one per
//! author). At most [`MAX_IN_FLIGHT`] batches are written at a time.
//!
//! No task outlives its work: a batch is written by a task spawned when a post finds fewer
//! than [`MAX_IN_FLIGHT`] in flight, on the runtime serving that request, and it ends when
//! the queue is empty.
//!
//! [`POST_BATCH`]: crate::db::messages::POST_BATCH

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use futures_util::future::join_all;
use sqlx::PgPool;
use tokio::sync::oneshot;

use crate::db::limits::RateLimit;
use crate::db::messages::{self, NewMessage, PlainPost, WriteOutcome};
use crate::domain::FileIds;

/// The most posts one statement carries.
pub const MAX_BATCH: usize = 64;
/// The most batches written at once (each holds one pooled connection while it runs).
pub const MAX_IN_FLIGHT: usize = 2;

type Answer = oneshot::Sender<sqlx::Result<WriteOutcome>>;

/// The per-process queue of plain posts (cheap to clone).
#[derive(Clone)]
pub struct PostQueue(Arc<Shared>);

struct Shared {
    db: PgPool,
    limit: RateLimit,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    waiting: VecDeque<(PlainPost, Answer)>,
    in_flight: usize,
    /// Posts written so far in batches of two or more, and those batches (for tests and
    /// the benchmark's reading of what happened).
    batched_posts: u64,
    batches: u64,
}

/// What the queue has done since the process started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueStats {
    pub batched_posts: u64,
    pub batches: u64,
}

impl PostQueue {
    pub fn new(db: PgPool, limit: RateLimit) -> Self {
        Self(Arc::new(Shared {
            db,
            limit,
            state: Mutex::new(State::default()),
        }))
    }

    /// Writes `post` (alone, or with whatever else is waiting) and answers what
    /// `chat_post` would have answered for it.
    pub async fn post(&self, post: PlainPost) -> sqlx::Result<WriteOutcome> {
        let (tx, rx) = oneshot::channel();
        let start = {
            let mut state = self.0.state.lock().expect("post queue lock");
            state.waiting.push_back((post, tx));
            let start = state.in_flight < MAX_IN_FLIGHT;
            if start {
                state.in_flight += 1;
            }
            start
        };
        if start {
            tokio::spawn(drain(self.0.clone()));
        }
        // The writer only drops the answer if it panicked mid-batch; whether the batch
        // committed is then unknown, so the post is not retried.
        rx.await
            .map_err(|_| sqlx::Error::Protocol("the post's batch ended without an answer".into()))?
    }

    pub fn stats(&self) -> QueueStats {
        let state = self.0.state.lock().expect("post queue lock");
        QueueStats {
            batched_posts: state.batched_posts,
            batches: state.batches,
        }
    }
}

/// Writes batches until nothing waits. `in_flight` is given back under the same lock that
/// found the queue empty, so a post queued meanwhile always has a writer.
async fn drain(shared: Arc<Shared>) {
    let mut slot = Slot {
        shared: shared.clone(),
        held: true,
    };
    loop {
        let batch = {
            let mut state = shared.state.lock().expect("post queue lock");
            let batch = take_batch(&mut state.waiting);
            if batch.is_empty() {
                state.in_flight -= 1;
                slot.held = false;
                return;
            }
            if batch.len() > 1 {
                state.batches += 1;
                state.batched_posts += batch.len() as u64;
            }
            batch
        };
        write(&shared, batch).await;
    }
}

/// Gives the writer's slot back if it panicked, so later posts still find one.
struct Slot {
    shared: Arc<Shared>,
    held: bool,
}

impl Drop for Slot {
    fn drop(&mut self) {
        if self.held
            && let Ok(mut state) = self.shared.state.lock()
        {
            state.in_flight -= 1;
        }
    }
}

/// The oldest waiting posts, up to [`MAX_BATCH`], at most one per author (a bucket is
/// touched once per statement); an author's later post stays queued, in its place.
fn take_batch(waiting: &mut VecDeque<(PlainPost, Answer)>) -> Vec<(PlainPost, Answer)> {
    let mut batch: Vec<(PlainPost, Answer)> = Vec::new();
    let mut i = 0;
    while i < waiting.len() && batch.len() < MAX_BATCH {
        let author = &waiting[i].0.user_email;
        if batch.iter().any(|(p, _)| &p.user_email == author) {
            i += 1;
        } else if let Some(job) = waiting.remove(i) {
            batch.push(job);
        }
    }
    batch
}

async fn write(shared: &Shared, batch: Vec<(PlainPost, Answer)>) {
    if batch.len() > 1 {
        let posts: Vec<PlainPost> = batch.iter().map(|(p, _)| p.clone()).collect();
        match messages::post_batch(&shared.db, &posts, &shared.limit).await {
            Ok(outcomes) => {
                for ((_, answer), outcome) in batch.into_iter().zip(outcomes) {
                    let _ = answer.send(Ok(outcome));
                }
                return;
            }
            // Nothing of the batch was written (one statement). A repeated `client_id`
            // is the usual cause: each post then gets its own answer, as if sent alone.
            Err(err) => {
                tracing::debug!(error = %err, posts = batch.len(), "batch undone; posting one by one")
            }
        }
    }
    join_all(batch.into_iter().map(|(post, answer)| async move {
        let _ = answer.send(alone(&shared.db, &post, &shared.limit).await);
    }))
    .await;
}

/// One post through `chat_post`, exactly as an unbatched send.
async fn alone(db: &PgPool, post: &PlainPost, limit: &RateLimit) -> sqlx::Result<WriteOutcome> {
    let no_files = FileIds::default();
    let message = NewMessage {
        id: post.id,
        room: &post.room,
        user_email: &post.user_email,
        content: &post.content,
        client_id: post.client_id,
        file_ids: &no_files,
        reply_to: None,
    };
    messages::post(db, &message, limit).await
}
