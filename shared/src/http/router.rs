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
    Members,
    CleanupUploads,
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
    ListMembers(RoomId),
    AddMember(RoomId),
    RemoveMember(RoomId, String),
    CleanupUploads,
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
            Self::ListMembers(_) | Self::AddMember(_) | Self::RemoveMember(..) => Function::Members,
            Self::CleanupUploads => Function::CleanupUploads,
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
            "members" => Self::Members,
            "health" => Self::Health,
            _ => return None,
        })
    }
}

/// Every public route as (method, path template), in the order `resolve` matches them.
/// `openapi.yaml` must document each one (`tests/api/openapi.rs`); a unit test below keeps
/// this list and `resolve` in agreement. `HEAD` is accepted wherever `GET` is.
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", "/api/health"),
    ("GET", "/api/rooms"),
    ("POST", "/api/rooms"),
    ("GET", "/api/rooms/{room}/messages"),
    ("POST", "/api/rooms/{room}/messages"),
    ("GET", "/api/rooms/{room}/stream"),
    ("GET", "/api/rooms/{room}/members"),
    ("POST", "/api/rooms/{room}/members"),
    ("DELETE", "/api/rooms/{room}/members/{email}"),
    ("GET", "/api/cron/cleanup-uploads"),
    ("POST", "/api/cron/cleanup-uploads"),
    ("POST", "/api/uploads"),
];

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
        ["api", "rooms", id, "members"] => {
            let id = room(id)?;
            by_method(
                method,
                "GET, POST",
                [
                    (Method::GET, Endpoint::ListMembers(id.clone())),
                    (Method::POST, Endpoint::AddMember(id)),
                ],
            )
        }
        ["api", "rooms", id, "members", email] => {
            let email = percent_encoding::percent_decode_str(email)
                .decode_utf8()
                .map_err(|_| route_not_found())?
                .into_owned();
            by_method(
                method,
                "DELETE",
                [(Method::DELETE, Endpoint::RemoveMember(room(id)?, email))],
            )
        }
        ["api", "cron", "cleanup-uploads"] => by_method(
            method,
            "GET, POST",
            [
                (Method::GET, Endpoint::CleanupUploads),
                (Method::POST, Endpoint::CleanupUploads),
            ],
        ),
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
        Function::Members => match query.get("email")? {
            Some(email) => format!(
                "/api/rooms/{}/members/{}",
                room()?.as_str(),
                percent_encoding::utf8_percent_encode(email, percent_encoding::NON_ALPHANUMERIC)
            ),
            None => format!("/api/rooms/{}/members", room()?.as_str()),
        },
        Function::PresignUpload => "/api/uploads".to_owned(),
        Function::Health => "/api/health".to_owned(),
        Function::CleanupUploads => "/api/cron/cleanup-uploads".to_owned(),
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

    /// A concrete path for a template: `{room}` and `{email}` filled in.
    fn sample(template: &str) -> String {
        template
            .replace("{room}", "general")
            .replace("{email}", "bob%40example.com")
    }

    /// The route an endpoint is served at. Exhaustive, so a new endpoint does not compile
    /// until it is placed here, and the test below then asks for it in `ROUTES`.
    fn route_of(endpoint: &Endpoint) -> (&'static str, &'static str) {
        match endpoint {
            Endpoint::Health => ("GET", "/api/health"),
            Endpoint::ListRooms => ("GET", "/api/rooms"),
            Endpoint::CreateRoom => ("POST", "/api/rooms"),
            Endpoint::ListMessages(_) => ("GET", "/api/rooms/{room}/messages"),
            Endpoint::PostMessage(_) => ("POST", "/api/rooms/{room}/messages"),
            Endpoint::Stream(_) => ("GET", "/api/rooms/{room}/stream"),
            Endpoint::ListMembers(_) => ("GET", "/api/rooms/{room}/members"),
            Endpoint::AddMember(_) => ("POST", "/api/rooms/{room}/members"),
            Endpoint::RemoveMember(..) => ("DELETE", "/api/rooms/{room}/members/{email}"),
            Endpoint::CleanupUploads => ("GET", "/api/cron/cleanup-uploads"),
            Endpoint::PresignUpload => ("POST", "/api/uploads"),
        }
    }

    #[test]
    fn the_routes_table_is_what_resolve_serves() {
        for &(method, template) in ROUTES {
            let method: Method = method.parse().unwrap();
            let path = sample(template);
            let endpoint = at(method.clone(), &path)
                .unwrap_or_else(|err| panic!("{method} {template} does not resolve: {err:?}"));
            // The endpoint it reaches is served at this template (the cron route takes both
            // GET and POST to one endpoint).
            assert_eq!(route_of(&endpoint).1, template, "{method} {template}");
            // `Allow` for this path lists exactly the table's methods for it.
            let mut listed: Vec<&str> = ROUTES
                .iter()
                .filter(|(_, t)| *t == template)
                .map(|(m, _)| *m)
                .collect();
            let Err(ApiError::MethodNotAllowed { allow }) = at(Method::PATCH, &path) else {
                panic!("PATCH {template} is not a 405");
            };
            let mut allowed: Vec<&str> = allow.split(", ").collect();
            listed.sort_unstable();
            allowed.sort_unstable();
            assert_eq!(listed, allowed, "methods of {template}");
        }
        // Every endpoint is in the table.
        let endpoints = [
            Endpoint::Health,
            Endpoint::ListRooms,
            Endpoint::CreateRoom,
            Endpoint::ListMessages(room("general")),
            Endpoint::PostMessage(room("general")),
            Endpoint::Stream(room("general")),
            Endpoint::ListMembers(room("general")),
            Endpoint::AddMember(room("general")),
            Endpoint::RemoveMember(room("general"), "bob@example.com".into()),
            Endpoint::CleanupUploads,
            Endpoint::PresignUpload,
        ];
        for endpoint in &endpoints {
            let (method, template) = route_of(endpoint);
            assert!(
                ROUTES.contains(&(method, template)),
                "{method} {template} is missing from ROUTES"
            );
            assert_eq!(
                &at(method.parse().unwrap(), &sample(template)).unwrap(),
                endpoint
            );
        }
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
