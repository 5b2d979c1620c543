//! The SC Market HTTP API as typed calls: the REST routes of `serve` (and of production, for
//! the routes it has) that the tool uses around the realtime layer. Requests and answers are
//! the types of `protocol.rs`; every call goes through one `reqwest` pool.
//!
//! One [`ApiClient`] is shared by every caller of a run (thousands of load-test virtual users),
//! so the calls made as a user take that user's `Cookie` header text as an argument instead of
//! the client holding one.

use std::fmt;
use std::time::Duration;

use http::header::COOKIE;
use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};
use reqwest::{RequestBuilder, Response, Url};
use serde::de::DeserializeOwned;

use super::http::{client_from, reqwest_error};
use super::{ClientError, ConnectOptions};
use crate::protocol::{
    ChatDetail, ChatId, ChatSummary, CreateChatRequest, CreatedChat, DataEnvelope, DevBanRequest,
    DevCreateChatRequest, DevLoginRequest, DevLoginResponse, PostMessageRequest, ResultSuccess,
};

/// Characters a chat id must not carry into the URL as they are: they would end the path
/// segment, start a query or fragment, or be read as an escape.
const PATH_SEGMENT: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'/')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'\\')
    .add(b'`')
    .add(b'{')
    .add(b'}');

/// A REST route, to say which call failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ApiCall {
    DevLogin,
    DevCreateChat,
    DevBan,
    CreateChat,
    ListChats,
    GetChat,
    PostMessage,
}

impl ApiCall {
    pub fn route(self) -> &'static str {
        match self {
            ApiCall::DevLogin => "POST /api/dev/login",
            ApiCall::DevCreateChat => "POST /api/dev/chats",
            ApiCall::DevBan => "POST /api/dev/ban",
            ApiCall::CreateChat => "POST /api/chats",
            ApiCall::ListChats => "GET /api/chats",
            ApiCall::GetChat => "GET /api/chats/{chat_id}",
            ApiCall::PostMessage => "POST /api/chats/{chat_id}/messages",
        }
    }

    /// Served only by `serve --dev`: anything else answers 404.
    pub fn dev_only(self) -> bool {
        matches!(
            self,
            ApiCall::DevLogin | ApiCall::DevCreateChat | ApiCall::DevBan
        )
    }
}

impl fmt::Display for ApiCall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.route())
    }
}

/// The REST API of one server.
#[derive(Clone, Debug)]
pub struct ApiClient {
    /// `http(s)://host:port/`.
    base: Url,
    http: reqwest::Client,
    /// Budget per call; none by default (a load test's posts wait as long as the server takes,
    /// which is what they measure).
    timeout: Option<Duration>,
}

impl ApiClient {
    /// The API of the server `options` opens sessions with (same scheme, host and port).
    pub fn for_target(options: &ConnectOptions) -> Self {
        ApiClient {
            base: options.http_base().clone(),
            http: client_from(options.local_address),
            timeout: None,
        }
    }

    /// Give up on any call after `timeout`.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// `POST /api/dev/login` (`serve --dev` only): log in as a demo user, created when missing.
    /// The answer carries both cookies, ready for a `Cookie` header.
    pub async fn dev_login(&self, username: &str) -> Result<DevLoginResponse, ClientError> {
        let body = DevLoginRequest {
            username: username.to_string(),
        };
        let url = self.url(&["api", "dev", "login"])?;
        self.call(ApiCall::DevLogin, self.http.post(url).json(&body))
            .await
    }

    /// `POST /api/dev/chats` (`serve --dev` only): a chat among these users, created when
    /// missing.
    pub async fn dev_create_chat(
        &self,
        request: &DevCreateChatRequest,
    ) -> Result<ChatId, ClientError> {
        let url = self.url(&["api", "dev", "chats"])?;
        let created: CreatedChat = self
            .call(ApiCall::DevCreateChat, self.http.post(url).json(request))
            .await?;
        Ok(created.chat_id)
    }

    /// `POST /api/dev/ban` (`serve --dev` only): ban or unban a user; a ban also closes every
    /// socket the user has open.
    pub async fn dev_ban(&self, username: &str, banned: bool) -> Result<(), ClientError> {
        let body = DevBanRequest {
            username: username.to_string(),
            banned,
        };
        let url = self.url(&["api", "dev", "ban"])?;
        let _: ResultSuccess = self
            .call(ApiCall::DevBan, self.http.post(url).json(&body))
            .await?;
        Ok(())
    }

    /// `POST /api/chats` as `cookie`'s user: the direct chat with these users, found or created.
    pub async fn create_chat(
        &self,
        cookie: &str,
        request: &CreateChatRequest,
    ) -> Result<ChatId, ClientError> {
        let url = self.url(&["api", "chats"])?;
        let created: CreatedChat = self
            .call(
                ApiCall::CreateChat,
                self.http.post(url).header(COOKIE, cookie).json(request),
            )
            .await?;
        Ok(created.chat_id)
    }

    /// `GET /api/chats` as `cookie`'s user: the chats they take part in.
    pub async fn list_chats(&self, cookie: &str) -> Result<Vec<ChatSummary>, ClientError> {
        let url = self.url(&["api", "chats"])?;
        self.call(
            ApiCall::ListChats,
            self.http.get(url).header(COOKIE, cookie),
        )
        .await
    }

    /// `GET /api/chats/{chat_id}` as `cookie`'s user: one chat with all its messages.
    pub async fn get_chat(&self, cookie: &str, chat_id: ChatId) -> Result<ChatDetail, ClientError> {
        let url = self.url(&["api", "chats", &chat_id.to_string()])?;
        self.call(ApiCall::GetChat, self.http.get(url).header(COOKIE, cookie))
            .await
    }

    /// `POST /api/chats/{chat_id}/messages` as `cookie`'s user. `chat_id` goes into the path as
    /// given (one percent-encoded segment), so a load test can also post to ids the server must
    /// refuse.
    ///
    /// A load test posts on its hot path, so this costs two allocations for the URL and one for
    /// the body, the success answer (`{"data":{"result":"Success"}}`, nothing the status does not
    /// say) is not read, and the future stays small: a virtual user's step future is as large
    /// as its largest step and lives as long as the session, so the error path (reading the
    /// body) is boxed instead of inline.
    pub async fn post_message(
        &self,
        cookie: &str,
        chat_id: &str,
        request: &PostMessageRequest,
    ) -> Result<(), ClientError> {
        let url = self.url(&["api", "chats", chat_id, "messages"])?;
        let mut request = self.http.post(url).json(request);
        // A session without credentials (`setup.users: none`) posts without a Cookie header.
        if !cookie.is_empty() {
            request = request.header(COOKIE, cookie);
        }
        let response = self
            .timed(request)
            .send()
            .await
            .map_err(|e| self.failure(ApiCall::PostMessage, e))?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(Box::pin(self.refusal(ApiCall::PostMessage, response)).await)
        }
    }

    /// The base followed by `segments`, each percent-encoded as one path segment: built in one
    /// buffer sized up front, then parsed once.
    fn url(&self, segments: &[&str]) -> Result<Url, ClientError> {
        let base = self.base.as_str();
        let length = base.len() + segments.iter().map(|s| s.len() + 1).sum::<usize>();
        let mut text = String::with_capacity(length);
        text.push_str(base);
        for (i, segment) in segments.iter().enumerate() {
            if i > 0 {
                text.push('/');
            }
            text.extend(utf8_percent_encode(segment, PATH_SEGMENT));
        }
        Url::parse(&text).map_err(|e| {
            ClientError::InvalidOption(format!("cannot build a URL from {text:?}: {e}"))
        })
    }

    /// `request` with this client's timeout, if it has one.
    fn timed(&self, request: RequestBuilder) -> RequestBuilder {
        match self.timeout {
            Some(timeout) => request.timeout(timeout),
            None => request,
        }
    }

    /// Send, then read a `{"data": ...}` answer.
    async fn call<T: DeserializeOwned>(
        &self,
        call: ApiCall,
        request: RequestBuilder,
    ) -> Result<T, ClientError> {
        let response = self
            .timed(request)
            .send()
            .await
            .map_err(|e| self.failure(call, e))?;
        if !response.status().is_success() {
            return Err(self.refusal(call, response).await);
        }
        let body = response.bytes().await.map_err(|e| self.failure(call, e))?;
        serde_json::from_slice::<DataEnvelope<T>>(&body)
            .map(|envelope| envelope.data)
            .map_err(|e| ClientError::Protocol(format!("unexpected answer to {call}: {e}")))
    }

    /// An answer with an error status, with as much of its body as can be read.
    async fn refusal(&self, call: ApiCall, response: Response) -> ClientError {
        let status = response.status().as_u16();
        let body = response.text().await.unwrap_or_default();
        ClientError::ApiStatus { call, status, body }
    }

    fn failure(&self, call: ApiCall, e: reqwest::Error) -> ClientError {
        if e.is_timeout() {
            return ClientError::Timeout {
                waiting_for: call.route(),
                after: self.timeout.unwrap_or_default(),
            };
        }
        let target = e
            .url()
            .map_or_else(|| self.base.to_string(), Url::to_string);
        reqwest_error(e, &target, call.route())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(url: &str) -> ApiClient {
        ApiClient::for_target(&ConnectOptions::new(url, None).unwrap())
    }

    #[test]
    fn urls_keep_a_chat_id_in_its_segment() {
        let local = api("ws://127.0.0.1:7000/ws");
        let id = "5c0000c4-0000-4000-8000-000000000001";
        assert_eq!(
            local
                .url(&["api", "chats", id, "messages"])
                .unwrap()
                .as_str(),
            format!("http://127.0.0.1:7000/api/chats/{id}/messages")
        );
        assert_eq!(
            local
                .url(&["api", "chats", "a/b?c#d", "messages"])
                .unwrap()
                .as_str(),
            "http://127.0.0.1:7000/api/chats/a%2Fb%3Fc%23d/messages"
        );
        assert_eq!(
            api("wss://api.sc-market.space/ws")
                .url(&["api", "dev", "login"])
                .unwrap()
                .as_str(),
            "https://api.sc-market.space/api/dev/login"
        );
    }
}
