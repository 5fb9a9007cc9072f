//! Building responses: JSON bodies, the error envelope and `Retry-After`.

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use http::{Response, StatusCode};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use serde::Serialize;

use semantic_stress::anthropic::ErrorEnvelope;

/// Body of every response of the reference server: a whole buffer or a stream of chunks.
pub type Body = UnsyncBoxBody<Bytes, Infallible>;

/// A body holding `bytes`.
pub(crate) fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).boxed_unsync()
}

/// A JSON response.
pub(crate) fn json(status: StatusCode, value: &impl Serialize) -> Response<Body> {
    // Serializing plain data structs and `serde_json::Value` cannot fail.
    let bytes = serde_json::to_vec(value).unwrap_or_default();
    let mut resp = Response::new(full(bytes));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

/// An error answered with the envelope `{"type":"error","error":{"type":…,"message":…}}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ApiError {
    pub(crate) status: StatusCode,
    pub(crate) kind: &'static str,
    pub(crate) message: String,
    pub(crate) retry_after: Option<Duration>,
    pub(crate) allow: Option<&'static str>,
    /// The exact body, when a personality answers in another shape than the envelope.
    pub(crate) body: Option<serde_json::Value>,
}

impl ApiError {
    fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            kind,
            message: message.into(),
            retry_after: None,
            allow: None,
            body: None,
        }
    }

    /// The same error answered with `body` instead of the envelope.
    #[must_use]
    pub(crate) fn with_body(mut self, body: serde_json::Value) -> Self {
        self.body = Some(body);
        self
    }

    /// The same error without `Retry-After`.
    #[must_use]
    pub(crate) fn without_retry_after(mut self) -> Self {
        self.retry_after = None;
        self
    }

    /// 400 `invalid_request_error`.
    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request_error", message)
    }

    /// 401 `authentication_error`.
    pub(crate) fn unauthenticated(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "authentication_error", message)
    }

    /// 403 `permission_error`.
    pub(crate) fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "permission_error", message)
    }

    /// 404 `not_found_error`.
    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found_error", message)
    }

    /// 405 with an `Allow` header.
    pub(crate) fn method_not_allowed(
        method: &http::Method,
        path: &str,
        allow: &'static str,
    ) -> Self {
        Self {
            allow: Some(allow),
            ..Self::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "invalid_request_error",
                format!("method {method} is not allowed on {path}; allowed: {allow}"),
            )
        }
    }

    /// 413 `request_too_large`.
    pub(crate) fn too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "request_too_large",
            format!("request body exceeds the limit of {limit} bytes"),
        )
    }

    /// 429 `rate_limit_error` with `Retry-After`.
    pub(crate) fn rate_limited(message: impl Into<String>, retry_after: Duration) -> Self {
        Self {
            retry_after: Some(retry_after),
            ..Self::new(StatusCode::TOO_MANY_REQUESTS, "rate_limit_error", message)
        }
    }

    /// `overloaded_error` with the given status (429, 503 or 529) and `Retry-After`.
    pub(crate) fn overloaded(
        status: u16,
        message: impl Into<String>,
        retry_after: Duration,
    ) -> Self {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::TOO_MANY_REQUESTS);
        Self {
            retry_after: Some(retry_after),
            ..Self::new(status, "overloaded_error", message)
        }
    }

    /// 500 `api_error`.
    pub(crate) fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "api_error", message)
    }

    /// The response; `Retry-After` is omitted when `strip_retry_after` (fault `no-retry-after`).
    pub(crate) fn into_response(self, strip_retry_after: bool) -> Response<Body> {
        let mut resp = match self.body {
            Some(body) => json(self.status, &body),
            None => json(self.status, &ErrorEnvelope::new(self.kind, self.message)),
        };
        if let Some(after) = self.retry_after.filter(|_| !strip_retry_after) {
            resp.headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from(retry_after_secs(after)));
        }
        if let Some(allow) = self.allow {
            resp.headers_mut()
                .insert(http::header::ALLOW, HeaderValue::from_static(allow));
        }
        resp
    }
}

/// `Retry-After` in whole seconds: rounded up, at least 1.
pub(crate) fn retry_after_secs(after: Duration) -> u64 {
    let secs = after.as_secs() + u64::from(after.subsec_nanos() > 0);
    secs.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_is_whole_seconds_at_least_one() {
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1001)), 2);
        assert_eq!(retry_after_secs(Duration::from_secs(40)), 40);
    }

    #[test]
    fn overloaded_carries_retry_after_unless_stripped() {
        let e = ApiError::overloaded(529, "full", Duration::from_millis(300));
        let resp = e.clone().into_response(false);
        assert_eq!(resp.status().as_u16(), 529);
        assert_eq!(resp.headers()[RETRY_AFTER], "1");
        assert!(e.into_response(true).headers().get(RETRY_AFTER).is_none());
    }
}
