//! The route table: every REST route `serve` answers, once. The axum router (`server::start`)
//! and the served `/openapi.json` (`apidoc::server_doc`) are both built from it, each with an
//! exhaustive `match`, so a route cannot be served without being documented or the reverse.

use http::Method;

/// One REST operation of the reference server.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Route {
    Healthz,
    Metrics,
    OpenApi,
    Docs,
    ListChats,
    CreateChat,
    GetChat,
    PostMessage,
    DevLogin,
    DevCreateChat,
    DevBan,
}

impl Route {
    /// Every route, in the order `/openapi.json` lists them. A new variant goes here too: the
    /// router and the document mount only what this lists.
    pub const ALL: [Route; 11] = [
        Route::Healthz,
        Route::Metrics,
        Route::OpenApi,
        Route::Docs,
        Route::ListChats,
        Route::CreateChat,
        Route::GetChat,
        Route::PostMessage,
        Route::DevLogin,
        Route::DevCreateChat,
        Route::DevBan,
    ];

    /// The routes a server serves: the dev-only ones only in development mode.
    pub fn served(dev: bool) -> impl Iterator<Item = Route> {
        Route::ALL.into_iter().filter(move |r| dev || !r.dev_only())
    }

    /// The path as both axum 0.8 and OpenAPI write it (`{name}` for a parameter).
    pub fn path(self) -> &'static str {
        match self {
            Route::Healthz => "/healthz",
            Route::Metrics => "/metrics",
            Route::OpenApi => "/openapi.json",
            Route::Docs => "/docs",
            Route::ListChats | Route::CreateChat => "/api/chats",
            Route::GetChat => "/api/chats/{chat_id}",
            Route::PostMessage => "/api/chats/{chat_id}/messages",
            Route::DevLogin => "/api/dev/login",
            Route::DevCreateChat => "/api/dev/chats",
            Route::DevBan => "/api/dev/ban",
        }
    }

    pub fn method(self) -> Method {
        match self {
            Route::Healthz
            | Route::Metrics
            | Route::OpenApi
            | Route::Docs
            | Route::ListChats
            | Route::GetChat => Method::GET,
            Route::CreateChat
            | Route::PostMessage
            | Route::DevLogin
            | Route::DevCreateChat
            | Route::DevBan => Method::POST,
        }
    }

    /// Mounted only with `serve --dev`: helpers that provision users and rooms for tests and
    /// load tests, and would be a hole in any real deployment.
    pub fn dev_only(self) -> bool {
        matches!(self, Route::DevLogin | Route::DevCreateChat | Route::DevBan)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_two_routes_share_a_method_and_path() {
        let mut seen = std::collections::HashSet::new();
        for route in Route::ALL {
            assert!(
                seen.insert((route.method(), route.path())),
                "{route:?} repeats {} {}",
                route.method(),
                route.path()
            );
        }
    }

    #[test]
    fn dev_routes_only_in_dev_mode() {
        assert_eq!(Route::served(true).count(), Route::ALL.len());
        assert!(Route::served(false).all(|r| !r.dev_only()));
        assert!(Route::served(false).any(|r| r == Route::PostMessage));
        for route in Route::ALL.into_iter().filter(|r| r.dev_only()) {
            assert!(route.path().starts_with("/api/dev/"), "{route:?}");
        }
    }
}
