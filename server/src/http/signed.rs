//! The signed-request extractor: every HTTP API endpoint takes a [`Signed`] argument, so a
//! handler is authenticated because of its type. Before the body is read, [`authenticate`]
//! checks the app id, `auth_key`, `auth_timestamp` within 600 s and `auth_signature`
//! (HMAC-SHA256 of `METHOD\nPATH\nsorted-query`, compared in constant time), and a
//! `Content-Length` over the limit is refused, and the request is taken from the app's rate
//! (`max_api_requests_per_second`, 429 beyond); the body, read within `request_timeout`, must
//! then match the signed `body_md5`.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{FromRequest, FromRequestParts, OriginalUri, Path, RawPathParams, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, Method, Uri};
use chorus_protocol::sign;

use crate::app::App;
use crate::error::{quoted, ApiError};
use crate::state::ServerState;

/// How far `auth_timestamp` may be from the server's clock.
pub const MAX_CLOCK_SKEW_SECS: u64 = 600;

/// [`Path`] whose rejection (e.g. a parameter that is not UTF-8) is a JSON [`ApiError`].
pub struct ApiPath<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiPath<T>
where
    Path<T>: FromRequestParts<S, Rejection = PathRejection>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Ok(Self(Path::<T>::from_request_parts(parts, state).await?.0))
    }
}

/// A request that passed [`authenticate`]: the app, the decoded query parameters and the body.
/// Taking it as a handler argument is what makes an endpoint signed.
pub struct Signed {
    pub app: Arc<App>,
    pub params: HashMap<String, String>,
    pub body: Bytes,
}

impl FromRequest<Arc<ServerState>> for Signed {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &Arc<ServerState>) -> Result<Self, ApiError> {
        let (mut parts, body) = req.into_parts();
        let path_params = RawPathParams::from_request_parts(&mut parts, state).await?;
        let app_id = path_params
            .iter()
            .find(|(k, _)| *k == "app_id")
            .map(|(_, v)| v.to_owned())
            .ok_or(ApiError::NotFound)?;
        let uri = parts
            .extensions
            .get::<OriginalUri>()
            .map(|u| u.0.clone())
            .unwrap_or_else(|| parts.uri.clone());
        let method = parts.method.clone();
        // Everything the signature covers is checked before a byte of the body is read, so an
        // unsigned request costs no buffer; the body is then bounded in size and in time.
        let (app, params) = authenticate(state, &app_id, &method, &uri)?;
        // After the signature: nobody but the app can spend its budget.
        app.api_request()
            .map_err(|retry_after| ApiError::TooManyRequests {
                limit: app.config().max_api_requests_per_second,
                retry_after,
            })?;
        let limit = state.config.max_request_kb.saturating_mul(1024);
        if content_length(&parts.headers).is_some_and(|len| len > limit as u64) {
            return Err(ApiError::PayloadTooLarge(
                "request body is over the server's limit".into(),
            ));
        }
        let read = Bytes::from_request(Request::from_parts(parts, body), state);
        let mut read = std::pin::pin!(read);
        // A small body usually came with the head: only a body still on its way needs a timer.
        let body = match std::future::poll_fn(|cx| Poll::Ready(read.as_mut().poll(cx))).await {
            Poll::Ready(body) => body?,
            Poll::Pending => {
                let wait = Duration::from_secs(state.config.request_timeout);
                tokio::time::timeout(wait, read)
                    .await
                    .map_err(|_| ApiError::RequestTimeout(state.config.request_timeout))??
            }
        };
        check_body_md5(&params, &body)?;
        Ok(Self { app, params, body })
    }
}

fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

/// `body_md5` (signed with the rest of the query) must match a non-empty body.
fn check_body_md5(params: &HashMap<String, String>, body: &[u8]) -> Result<(), ApiError> {
    if body.is_empty() {
        return Ok(());
    }
    let unauthorized = |m: &str| Err(ApiError::Unauthorized(m.to_owned()));
    match params.get("body_md5") {
        Some(md5) if md5.eq_ignore_ascii_case(&sign::md5_hex(body)) => Ok(()),
        Some(_) => unauthorized("body_md5 does not match the body"),
        None => unauthorized("body_md5 is missing"),
    }
}

fn authenticate(
    state: &ServerState,
    app_id: &str,
    method: &Method,
    uri: &Uri,
) -> Result<(Arc<App>, HashMap<String, String>), ApiError> {
    let app = state
        .apps
        .by_id(app_id)
        .ok_or_else(|| ApiError::AppNotFound(quoted(app_id)))?;
    if !app.config().enabled {
        return Err(ApiError::AppDisabled(quoted(app_id)));
    }
    let pairs: Vec<(String, String)> = form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
        .into_owned()
        .collect();
    let params: HashMap<String, String> = pairs.iter().cloned().collect();
    let get = |k: &str| params.get(k).map(String::as_str);
    let unauthorized = |m: &str| ApiError::Unauthorized(m.to_owned());

    if get("auth_key") != Some(app.config().key.as_str()) {
        return Err(unauthorized(
            "auth_key is missing or does not match the app",
        ));
    }
    let ts: u64 = get("auth_timestamp")
        .and_then(|t| t.parse().ok())
        .ok_or_else(|| unauthorized("auth_timestamp is missing or not a number"))?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    if now.abs_diff(ts) > MAX_CLOCK_SKEW_SECS {
        return Err(unauthorized(
            "auth_timestamp is more than 600 seconds from the server's clock",
        ));
    }
    if get("auth_version").is_some_and(|v| v != "1.0") {
        return Err(unauthorized("auth_version must be 1.0"));
    }
    let signature =
        get("auth_signature").ok_or_else(|| unauthorized("auth_signature is missing"))?;
    let to_sign = sign::api_string_to_sign(
        method.as_str(),
        uri.path(),
        pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())),
    );
    if !sign::verify_hex(&app.config().secret, &to_sign, signature) {
        return Err(unauthorized("invalid auth_signature"));
    }
    Ok((app, params))
}
