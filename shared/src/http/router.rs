//! The routing table: which public path and method is which endpoint, and which function
//! binary serves it. The dev server dispatches every route; each Vercel function only its own.

use http::Method;

use super::ApiError;
use super::query::Query;
use crate::domain::RoomId;

/// One function binary in `api/`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Function {
    Rooms,
    ListMessages,
    PostMessage,
    PresignUpload,
    Stream,
    Health,
}

/// A resolved request target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Endpoint {
    ListRooms,
    CreateRoom,
    ListMessages(RoomId),
    PostMessage(RoomId),
    PresignUpload,
    Stream(RoomId),
    Health,
}

impl Endpoint {
    pub fn function(&self) -> Function {
        match self {
            Self::ListRooms | Self::CreateRoom => Function::Rooms,
            Self::ListMessages(_) => Function::ListMessages,
            Self::PostMessage(_) => Function::PostMessage,
            Self::PresignUpload => Function::PresignUpload,
            Self::Stream(_) => Function::Stream,
            Self::Health => Function::Health,
        }
    }
}

impl Function {
    /// The binary's own path under `/api` (its `api/*.rs` file), which Vercel may show the
    /// function instead of the public path after a `routes` rewrite; the room then comes as
    /// `?room=`.
    fn from_internal_path(name: &str) -> Option<Self> {
        Some(match name {
            "rooms" => Self::Rooms,
            "list_messages" => Self::ListMessages,
            "post_message" => Self::PostMessage,
            "presign_upload" => Self::PresignUpload,
            "stream" => Self::Stream,
            "health" => Self::Health,
            _ => return None,
        })
    }
}

/// Resolves a request to an endpoint: 404 for an unknown path or room id, 405 for a known
/// path with another method.
pub fn resolve(method: &Method, path: &str, query: &Query) -> Result<Endpoint, ApiError> {
    let path = path
        .strip_suffix('/')
        .filter(|p| !p.is_empty())
        .unwrap_or(path);
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    let room = |raw: &str| RoomId::parse(raw).map_err(|_| ApiError::room_not_found());
    match segments.as_slice() {
        ["api", "health"] => by_method(method, "GET", [(Method::GET, Endpoint::Health)]),
        ["api", "rooms"] => by_method(
            method,
            "GET, POST",
            [
                (Method::GET, Endpoint::ListRooms),
                (Method::POST, Endpoint::CreateRoom),
            ],
        ),
        ["api", "rooms", id, "messages"] => {
            let id = room(id)?;
            by_method(
                method,
                "GET, POST",
                [
                    (Method::GET, Endpoint::ListMessages(id.clone())),
                    (Method::POST, Endpoint::PostMessage(id)),
                ],
            )
        }
        ["api", "rooms", id, "stream"] => {
            by_method(method, "GET", [(Method::GET, Endpoint::Stream(room(id)?))])
        }
        ["api", "uploads"] => by_method(method, "POST", [(Method::POST, Endpoint::PresignUpload)]),
        ["api", name] => match Function::from_internal_path(name) {
            Some(function) => resolve_internal(function, method, query),
            None => Err(route_not_found()),
        },
        _ => Err(route_not_found()),
    }
}

fn resolve_internal(
    function: Function,
    method: &Method,
    query: &Query,
) -> Result<Endpoint, ApiError> {
    let room = || -> Result<RoomId, ApiError> {
        let raw = query.get("room")?.ok_or_else(ApiError::room_not_found)?;
        RoomId::parse(raw).map_err(|_| ApiError::room_not_found())
    };
    let path = match function {
        Function::Rooms => "/api/rooms".to_owned(),
        Function::ListMessages | Function::PostMessage => {
            format!("/api/rooms/{}/messages", room()?.as_str())
        }
        Function::Stream => format!("/api/rooms/{}/stream", room()?.as_str()),
        Function::PresignUpload => "/api/uploads".to_owned(),
        Function::Health => "/api/health".to_owned(),
    };
    resolve(method, &path, query)
}

fn by_method<const N: usize>(
    method: &Method,
    allow: &'static str,
    table: [(Method, Endpoint); N],
) -> Result<Endpoint, ApiError> {
    table
        .into_iter()
        .find(|(m, _)| m == method || (method == Method::HEAD && m == Method::GET))
        .map(|(_, endpoint)| endpoint)
        .ok_or(ApiError::MethodNotAllowed { allow })
}

fn route_not_found() -> ApiError {
    ApiError::NotFound {
        code: "route_not_found",
        message: "No such route.".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(method: Method, target: &str) -> Result<Endpoint, ApiError> {
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        resolve(&method, path, &Query::parse(Some(query)))
    }

    fn room(id: &str) -> RoomId {
        RoomId::parse(id).unwrap()
    }

    #[test]
    fn public_paths_resolve_by_method() {
        assert_eq!(at(Method::GET, "/api/rooms").unwrap(), Endpoint::ListRooms);
        assert_eq!(
            at(Method::POST, "/api/rooms/").unwrap(),
            Endpoint::CreateRoom
        );
        assert_eq!(
            at(Method::POST, "/api/rooms/general/messages").unwrap(),
            Endpoint::PostMessage(room("general"))
        );
        assert_eq!(
            at(Method::GET, "/api/rooms/a-b_c/stream").unwrap(),
            Endpoint::Stream(room("a-b_c"))
        );
    }

    #[test]
    fn internal_function_paths_take_the_room_from_the_query() {
        assert_eq!(
            at(Method::GET, "/api/list_messages?room=general&limit=5").unwrap(),
            Endpoint::ListMessages(room("general"))
        );
        assert!(matches!(
            at(Method::GET, "/api/stream"),
            Err(ApiError::NotFound { .. })
        ));
    }

    #[test]
    fn a_wrong_method_is_405_with_allow() {
        assert!(matches!(
            at(Method::DELETE, "/api/rooms/general/messages"),
            Err(ApiError::MethodNotAllowed { allow: "GET, POST" })
        ));
    }

    #[test]
    fn unknown_paths_and_bad_room_ids_are_404() {
        assert!(matches!(
            at(Method::GET, "/api/nope"),
            Err(ApiError::NotFound { .. })
        ));
        assert!(matches!(
            at(Method::GET, "/api/rooms/a.b/messages"),
            Err(ApiError::NotFound { .. })
        ));
        assert!(matches!(
            at(Method::GET, "/"),
            Err(ApiError::NotFound { .. })
        ));
    }
}
