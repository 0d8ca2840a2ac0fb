//! URLs in config files.

/// An `http://` or `https://` URL with a host, parsed as the HTTP client will
/// parse it, so a URL that loads is one that can be sent to.
pub fn check_http_url(text: &str) -> Result<(), String> {
    match url::Url::parse(text) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => Ok(()),
        _ => Err(format!("not an http(s) URL: {text:?}")),
    }
}
