//! `PUT` and `DELETE /api/rooms/{room}/messages/{message}/reactions/{emoji}`.

use axum::extract::State;
use http::Response;

use crate::App;
use crate::db::messages::ReactionOf;
use crate::http::extract::{Authed, ReactionPath};
use crate::http::{ApiError, Body};
use crate::routes::messages::{brought_back, respond, written};

/// `PUT …/reactions/{emoji}`: adds the caller's reaction → 200 with the message. Adding one
/// already there changes nothing and answers the same.
pub async fn add(
    State(app): State<App>,
    ReactionPath(room, id, emoji): ReactionPath,
    Authed(user): Authed,
) -> Result<Response<Body>, ApiError> {
    react(app, ReactionPath(room, id, emoji), &user.email, true).await
}

/// `DELETE …/reactions/{emoji}`: removes the caller's reaction → 200 with the message.
/// Removing one that is not there changes nothing and answers the same.
pub async fn remove(
    State(app): State<App>,
    ReactionPath(room, id, emoji): ReactionPath,
    Authed(user): Authed,
) -> Result<Response<Body>, ApiError> {
    react(app, ReactionPath(room, id, emoji), &user.email, false).await
}

async fn react(
    app: App,
    ReactionPath(room, id, emoji): ReactionPath,
    user: &str,
    add: bool,
) -> Result<Response<Body>, ApiError> {
    let limit = &app.config.limits.reactions;
    let change = ReactionOf {
        room: room.clone(),
        id,
        user_email: user.to_owned(),
        emoji,
        add,
    };
    // Written together with whatever other reaction changes are waiting.
    let mut outcome = app.reactions.write(change.clone()).await?;
    if brought_back(&app, &outcome, &room, id, user).await? {
        outcome = app.reactions.write(change).await?;
    }
    respond(&app, written(outcome, limit)?).await
}
