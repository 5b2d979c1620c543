//! The SC Market HTTP API around the realtime layer.

use super::http::{reqwest_error, shared_client};
use super::{ClientError, ConnectOptions};
use crate::protocol::{DataEnvelope, DevLoginRequest, DevLoginResponse};

/// `POST /api/dev/login` on a `serve --dev`: the cookies of a demo user.
pub async fn dev_login(
    options: &ConnectOptions,
    username: &str,
) -> Result<DevLoginResponse, ClientError> {
    let url = options
        .http_base()
        .join("api/dev/login")
        .map_err(|e| ClientError::InvalidOption(e.to_string()))?;
    let target = url.to_string();
    let response = shared_client()
        .post(url)
        .json(&DevLoginRequest {
            username: username.to_string(),
        })
        .timeout(options.timeout)
        .send()
        .await
        .map_err(|e| reqwest_error(e, &target, "the dev login answer"))?;
    let status = response.status().as_u16();
    let body = response
        .text()
        .await
        .map_err(|e| reqwest_error(e, &target, "the dev login answer"))?;
    if status == 404 {
        return Err(ClientError::InvalidOption(format!(
            "{target} answered 404: --login needs a server started with serve --dev"
        )));
    }
    if status != 200 {
        return Err(ClientError::LoginFailed { status, body });
    }
    serde_json::from_str::<DataEnvelope<DevLoginResponse>>(&body)
        .map(|e| e.data)
        .map_err(|e| ClientError::Protocol(format!("unexpected dev login answer: {e}")))
}
