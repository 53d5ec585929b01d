//! Writes to the log that arrive while others are being written wait here and go to
//! Postgres together: one statement for the lot, the way a database group-commits. Plain
//! posts ([`POST_BATCH`]), edits ([`EDIT_BATCH`]), reaction changes ([`REACT_BATCH`]) and
//! deletes ([`DELETE_BATCH`]) are written this way.
//!
//! One process serves many concurrent requests (Fluid compute), so under load many writes
//! are in flight at once. Written one by one, each pays a round trip, a transaction, a
//! statement's setup and a plpgsql call; written together they pay those once
//! (BENCHMARKS.md, "Writes written together"). Nothing waits for company: a write that finds
//! nothing waiting and fewer than [`MAX_IN_FLIGHT`] writes in flight is sent at once, alone,
//! through its plpgsql function (`chat_post`, `chat_edit`, `chat_react`,
//! `chat_delete`), from the request's own task: no task is spawned and no thread woken for
//! it, which is what a write costs when the process is not busy. Writes that arrive meanwhile queue, and the next batch takes
//! them all (up to [`MAX_BATCH`], one per author: a bucket is touched once per statement,
//! and an author's edits of one message never meet in one). At most [`MAX_IN_FLIGHT`]
//! writes or batches of a kind are in flight at a time.
//!
//! No task outlives its work: queued writes are written by a task spawned on the runtime
//! serving the request that queued them (or that finished the write before them), and it
//! ends when the queue is empty.
//!
//! [`POST_BATCH`]: crate::db::messages::POST_BATCH
//! [`EDIT_BATCH`]: crate::db::messages::EDIT_BATCH
//! [`REACT_BATCH`]: crate::db::messages::REACT_BATCH
//! [`DELETE_BATCH`]: crate::db::messages::DELETE_BATCH

use std::collections::VecDeque;
use std::future::Future;
use std::sync::{Arc, Mutex};

use futures_util::future::join_all;
use sqlx::PgPool;
use tokio::sync::oneshot;

use crate::db::limits::RateLimit;
use crate::db::messages::{
    self, DeleteOf, EditOf, NewMessage, PlainPost, ReactionOf, WriteOutcome,
};
use crate::domain::FileIds;

/// The most writes one statement carries.
pub const MAX_BATCH: usize = 64;
/// The kinds of write with a queue: posts, edits, reactions, deletes.
pub const KINDS: u32 = 4;
/// The most writes or batches of a kind in flight at once (each holds one pooled connection
/// while it runs). One: the writes that arrive meanwhile make the next batch, so a busy
/// process sends bigger batches rather than more of them (BENCHMARKS.md, "The room's row,
/// HOT again": two in flight cost a post 15–35 % more CPU, for the same throughput).
pub const MAX_IN_FLIGHT: usize = 1;

/// A kind of write the queue can batch.
pub trait Batched: Send + Sync + 'static {
    type Item: Clone + Send + Sync + 'static;

    /// Whose bucket the write takes a token from.
    fn author(item: &Self::Item) -> &str;

    /// Whether two writes of different authors still may not share a statement.
    fn collide(_a: &Self::Item, _b: &Self::Item) -> bool {
        false
    }

    /// Two or more writes, one per author, in one statement; outcomes in `items`' order.
    fn batch(
        db: &PgPool,
        items: &[Self::Item],
        limit: &RateLimit,
    ) -> impl Future<Output = sqlx::Result<Vec<WriteOutcome>>> + Send;

    /// One write, exactly as an unbatched request writes it.
    fn alone(
        db: &PgPool,
        item: &Self::Item,
        limit: &RateLimit,
    ) -> impl Future<Output = sqlx::Result<WriteOutcome>> + Send;
}

/// Plain posts (no files, no reply): [`messages::post_batch`], or `chat_post` alone.
pub struct Posts;

impl Batched for Posts {
    type Item = PlainPost;

    fn author(item: &PlainPost) -> &str {
        &item.user_email
    }

    fn batch(
        db: &PgPool,
        items: &[PlainPost],
        limit: &RateLimit,
    ) -> impl Future<Output = sqlx::Result<Vec<WriteOutcome>>> + Send {
        messages::post_batch(db, items, limit)
    }

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
}

/// Edits: [`messages::edit_batch`], or `chat_edit` alone.
pub struct Edits;

impl Batched for Edits {
    type Item = EditOf;

    fn author(item: &EditOf) -> &str {
        &item.user_email
    }

    fn batch(
        db: &PgPool,
        items: &[EditOf],
        limit: &RateLimit,
    ) -> impl Future<Output = sqlx::Result<Vec<WriteOutcome>>> + Send {
        messages::edit_batch(db, items, limit)
    }

    async fn alone(db: &PgPool, edit: &EditOf, limit: &RateLimit) -> sqlx::Result<WriteOutcome> {
        messages::edit(
            db,
            &edit.room,
            edit.id,
            &edit.user_email,
            &edit.content,
            limit,
        )
        .await
    }
}

/// Reaction changes: [`messages::react_batch`], or `chat_react` alone. Two changes to one
/// message never share a statement (its row's counts are rewritten once per statement).
pub struct Reactions;

impl Batched for Reactions {
    type Item = ReactionOf;

    fn author(item: &ReactionOf) -> &str {
        &item.user_email
    }

    fn collide(a: &ReactionOf, b: &ReactionOf) -> bool {
        a.id == b.id
    }

    fn batch(
        db: &PgPool,
        items: &[ReactionOf],
        limit: &RateLimit,
    ) -> impl Future<Output = sqlx::Result<Vec<WriteOutcome>>> + Send {
        messages::react_batch(db, items, limit)
    }

    async fn alone(db: &PgPool, r: &ReactionOf, limit: &RateLimit) -> sqlx::Result<WriteOutcome> {
        messages::react(db, &r.room, r.id, &r.user_email, &r.emoji, r.add, limit).await
    }
}

/// Deletes: [`messages::delete_batch`], or `chat_delete` alone. Two deletes of one message
/// never share a statement.
pub struct Deletes;

impl Batched for Deletes {
    type Item = DeleteOf;

    fn author(item: &DeleteOf) -> &str {
        &item.user_email
    }

    fn collide(a: &DeleteOf, b: &DeleteOf) -> bool {
        a.id == b.id
    }

    fn batch(
        db: &PgPool,
        items: &[DeleteOf],
        limit: &RateLimit,
    ) -> impl Future<Output = sqlx::Result<Vec<WriteOutcome>>> + Send {
        messages::delete_batch(db, items, limit)
    }

    async fn alone(db: &PgPool, d: &DeleteOf, limit: &RateLimit) -> sqlx::Result<WriteOutcome> {
        messages::delete(db, &d.room, d.id, &d.user_email, limit).await
    }
}

type Answer = oneshot::Sender<sqlx::Result<WriteOutcome>>;

/// The per-process queue of one kind of write (cheap to clone).
pub struct WriteQueue<W: Batched>(Arc<Shared<W>>);

impl<W: Batched> Clone for WriteQueue<W> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

struct Shared<W: Batched> {
    db: PgPool,
    limit: RateLimit,
    state: Mutex<State<W::Item>>,
}

struct State<T> {
    waiting: VecDeque<(T, Answer)>,
    in_flight: usize,
    /// Writes so far in batches of two or more, and those batches (for tests and the
    /// benchmark's reading of what happened).
    batched: u64,
    batches: u64,
}

/// What a queue has done since the process started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueStats {
    pub batched: u64,
    pub batches: u64,
}

impl<W: Batched> WriteQueue<W> {
    pub fn new(db: PgPool, limit: RateLimit) -> Self {
        Self(Arc::new(Shared {
            db,
            limit,
            state: Mutex::new(State {
                waiting: VecDeque::new(),
                in_flight: 0,
                batched: 0,
                batches: 0,
            }),
        }))
    }

    /// Writes `item` (alone, or with whatever else is waiting) and answers what its
    /// plpgsql function would have answered for it alone.
    pub async fn write(&self, item: W::Item) -> sqlx::Result<WriteOutcome> {
        let alone = {
            let mut state = self.0.state.lock().expect("write queue lock");
            let alone = state.waiting.is_empty() && state.in_flight < MAX_IN_FLIGHT;
            if alone {
                state.in_flight += 1;
            }
            alone
        };
        if alone {
            // Here, in the request's task. The slot goes back when the write ends (or the
            // request is dropped mid-write), to a new writer if writes queued meanwhile.
            let _slot = Slot {
                shared: self.0.clone(),
                held: true,
            };
            return W::alone(&self.0.db, &item, &self.0.limit).await;
        }
        let (tx, rx) = oneshot::channel();
        let start = {
            let mut state = self.0.state.lock().expect("write queue lock");
            state.waiting.push_back((item, tx));
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
        // committed is then unknown, so the write is not retried.
        rx.await.map_err(|_| {
            sqlx::Error::Protocol("the write's batch ended without an answer".into())
        })?
    }

    /// The connections this queue writes with (`db::lazy_write_pool`).
    pub fn db(&self) -> &PgPool {
        &self.0.db
    }

    pub fn stats(&self) -> QueueStats {
        let state = self.0.state.lock().expect("write queue lock");
        QueueStats {
            batched: state.batched,
            batches: state.batches,
        }
    }
}

/// Writes batches until nothing waits. `in_flight` is given back under the same lock that
/// found the queue empty, so a write queued meanwhile always has a writer.
async fn drain<W: Batched>(shared: Arc<Shared<W>>) {
    let mut slot = Slot {
        shared: shared.clone(),
        held: true,
    };
    loop {
        let batch = {
            let mut state = shared.state.lock().expect("write queue lock");
            let batch = take_batch::<W>(&mut state.waiting);
            if batch.is_empty() {
                state.in_flight -= 1;
                slot.held = false;
                return;
            }
            if batch.len() > 1 {
                state.batches += 1;
                state.batched += batch.len() as u64;
            }
            batch
        };
        write(&shared, batch).await;
    }
}

/// A writer's place among the [`MAX_IN_FLIGHT`]. Dropped while held (a write alone that
/// ended, or was dropped with its request; a batch writer that panicked), it passes to a new
/// batch writer when writes are waiting, and is given back otherwise, so a queued write
/// always has a writer.
struct Slot<W: Batched> {
    shared: Arc<Shared<W>>,
    held: bool,
}

impl<W: Batched> Drop for Slot<W> {
    fn drop(&mut self) {
        if !self.held {
            return;
        }
        let Ok(mut state) = self.shared.state.lock() else {
            return;
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) if !state.waiting.is_empty() => {
                drop(state);
                runtime.spawn(drain(self.shared.clone()));
            }
            _ => state.in_flight -= 1,
        }
    }
}

/// The oldest waiting writes, up to [`MAX_BATCH`], at most one per author (and none that
/// [`Batched::collide`]); a write left out stays queued, in its place.
fn take_batch<W: Batched>(waiting: &mut VecDeque<(W::Item, Answer)>) -> Vec<(W::Item, Answer)> {
    let mut batch: Vec<(W::Item, Answer)> = Vec::new();
    let mut i = 0;
    while i < waiting.len() && batch.len() < MAX_BATCH {
        let next = &waiting[i].0;
        if batch
            .iter()
            .any(|(item, _)| W::author(item) == W::author(next) || W::collide(item, next))
        {
            i += 1;
        } else if let Some(job) = waiting.remove(i) {
            batch.push(job);
        }
    }
    batch
}

async fn write<W: Batched>(shared: &Shared<W>, batch: Vec<(W::Item, Answer)>) {
    if batch.len() > 1 {
        let items: Vec<W::Item> = batch.iter().map(|(item, _)| item.clone()).collect();
        match W::batch(&shared.db, &items, &shared.limit).await {
            Ok(outcomes) => {
                for ((_, answer), outcome) in batch.into_iter().zip(outcomes) {
                    let _ = answer.send(Ok(outcome));
                }
                return;
            }
            // Nothing of the batch was written (one statement). A repeated `client_id`
            // is the usual cause: each write then gets its own answer, as if sent alone.
            Err(err) => {
                tracing::debug!(error = %err, writes = batch.len(), "batch undone; writing one by one")
            }
        }
    }
    join_all(batch.into_iter().map(|(item, answer)| async move {
        let _ = answer.send(W::alone(&shared.db, &item, &shared.limit).await);
    }))
    .await;
}
