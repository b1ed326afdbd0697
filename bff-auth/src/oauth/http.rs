//! Outbound requests to providers: no redirects, timeouts, a size cap, and
//! errors that never carry a URL (Facebook's token URL holds the secret) or a
//! body.

use std::time::Duration;

use serde_json::Value;

use super::OAuthError;

/// The largest answer read from a provider.
pub(crate) const MAX_RESPONSE_BYTES: usize = 1024 * 1024;

/// The HTTP client of an [`OAuthClient`](super::OAuthClient).
#[derive(Debug, Clone)]
pub(crate) struct Http {
    pub(crate) client: reqwest::Client,
}

impl Http {
    pub(crate) fn new(connect: Duration, total: Duration) -> Result<Self, OAuthError> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(connect)
            .timeout(total)
            .user_agent(concat!("bff-auth/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|_| OAuthError::Internal("cannot build the HTTP client".to_owned()))?;
        Ok(Self { client })
    }

    /// Sends `request` and reads a JSON object from a 2xx answer. `what`
    /// names the endpoint in errors ("Google token endpoint").
    pub(crate) async fn json(
        &self,
        what: &str,
        request: reqwest::RequestBuilder,
    ) -> Result<serde_json::Map<String, Value>, OAuthError> {
        let response = crate::outbound::send(&self.client, what, request)
            .await
            .map_err(|e| transport(what, &e))?;
        let status = response.status();
        let body = read_capped(what, response).await?;
        let parsed = serde_json::from_slice::<Value>(&body);
        if !status.is_success() {
            // The standard error code helps an operator; the description may
            // echo anything, so it stays out.
            let code = parsed
                .ok()
                .as_ref()
                .and_then(|v| v.get("error"))
                .and_then(Value::as_str)
                .filter(|code| is_error_code(code))
                .map(|code| format!(" ({code})"))
                .unwrap_or_default();
            return Err(OAuthError::Provider(format!(
                "{what} answered {}{code}",
                status.as_u16()
            )));
        }
        match parsed {
            Ok(Value::Object(map)) => {
                // Some providers answer 200 with an error object.
                if let Some(error) = map.get("error").filter(|e| !e.is_null()) {
                    let code = error
                        .as_str()
                        .filter(|code| is_error_code(code))
                        .map(|code| format!(" ({code})"))
                        .unwrap_or_default();
                    return Err(OAuthError::Provider(format!(
                        "{what} answered an error{code}"
                    )));
                }
                Ok(map)
            }
            _ => Err(OAuthError::Provider(format!(
                "{what} answered something other than a JSON object"
            ))),
        }
    }
}

/// An error code as OAuth spells them (RFC 6749 section 5.2), safe to log and
/// to hand on.
pub(crate) fn is_error_code(code: &str) -> bool {
    (1..=64).contains(&code.len())
        && code
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

fn transport(what: &str, error: &reqwest::Error) -> OAuthError {
    if error.is_timeout() {
        OAuthError::Unavailable(format!("{what} timed out"))
    } else if error.is_connect() {
        OAuthError::Unavailable(format!("cannot connect to {what}"))
    } else {
        OAuthError::Unavailable(format!("the request to {what} failed"))
    }
}

async fn read_capped(what: &str, mut response: reqwest::Response) -> Result<Vec<u8>, OAuthError> {
    let too_large = || OAuthError::Provider(format!("{what} answered more than 1 MiB"));
    if response
        .content_length()
        .is_some_and(|len| len > MAX_RESPONSE_BYTES as u64)
    {
        return Err(too_large());
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| transport(what, &e))? {
        if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// A string member, trimmed; `None` when absent, not a string, or empty.
pub(crate) fn str_of<'a>(map: &'a serde_json::Map<String, Value>, name: &str) -> Option<&'a str> {
    map.get(name)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

/// An id that providers send as a string or a number.
pub(crate) fn id_of(map: &serde_json::Map<String, Value>, name: &str) -> Option<String> {
    match map.get(name)? {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
        Value::Number(n) if n.is_u64() || n.is_i64() => Some(n.to_string()),
        _ => None,
    }
}
