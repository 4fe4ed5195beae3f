//! Security headers on every response: a Content-Security-Policy that forbids inline script,
//! `nosniff`, a same-origin referrer policy, and over TLS `Strict-Transport-Security`.
//!
//! The pages keep every script in `/assets/`; the only `<script>` element without `src` is the
//! page's embedded state (`type="application/json"`, never executed), so `script-src 'self'`
//! costs the demo nothing and makes a notification like `<img src=x onerror=...>` inert even if
//! it ever reached the markup unescaped.
//!
//! ```ignore
//! let app = Route::new().at("/", get(page)).with(SecurityHeaders::new(tls));
//! ```

use poem::{
    http::{header, HeaderValue},
    Endpoint, IntoResponse, Middleware, Request, Response, Result,
};

/// The policy: scripts, styles and connections only from this origin; no plugins, no framing,
/// no `<base>`, forms post only here. `data:` images for the empty favicon.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; object-src 'none'; \
     base-uri 'none'; frame-ancestors 'none'; form-action 'self'";

/// `Strict-Transport-Security` sent over TLS: one year, no `preload` (a demo must stay easy to
/// take back off a host name).
pub const STRICT_TRANSPORT_SECURITY: &str = "max-age=31536000";

/// Middleware adding the security headers to every response, error answers included.
#[derive(Debug, Clone, Copy)]
pub struct SecurityHeaders {
    tls: bool,
}

impl SecurityHeaders {
    /// Headers for a server that serves over TLS (`tls`, adding HSTS) or cleartext.
    #[must_use]
    pub fn new(tls: bool) -> Self {
        Self { tls }
    }
}

impl<E: Endpoint> Middleware<E> for SecurityHeaders {
    type Output = SecurityHeadersEndpoint<E>;

    fn transform(&self, inner: E) -> Self::Output {
        SecurityHeadersEndpoint {
            inner,
            tls: self.tls,
        }
    }
}

/// The endpoint made by [`SecurityHeaders`].
#[derive(Debug)]
pub struct SecurityHeadersEndpoint<E> {
    inner: E,
    tls: bool,
}

impl<E: Endpoint> Endpoint for SecurityHeadersEndpoint<E> {
    type Output = Response;

    async fn call(&self, req: Request) -> Result<Response> {
        let mut response = match self.inner.call(req).await {
            Ok(output) => output.into_response(),
            Err(err) => err.into_response(),
        };
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        );
        headers.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        headers.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("same-origin"),
        );
        if self.tls {
            headers.insert(
                header::STRICT_TRANSPORT_SECURITY,
                HeaderValue::from_static(STRICT_TRANSPORT_SECURITY),
            );
        }
        Ok(response)
    }
}

#[cfg(test)]
mod tests {
    use poem::{get, handler, test::TestClient, web::Html, EndpointExt, Route};

    use super::*;

    #[handler]
    fn page() -> Html<&'static str> {
        Html("<p>hi</p>")
    }

    #[tokio::test]
    async fn pages_and_errors_carry_the_headers_and_hsts_only_over_tls() {
        for tls in [false, true] {
            let app = Route::new()
                .at("/", get(page))
                .with(SecurityHeaders::new(tls));
            let client = TestClient::new(app);
            for (path, status) in [("/", 200), ("/missing", 404)] {
                let response = client.get(path).send().await;
                response.assert_status(poem::http::StatusCode::from_u16(status).unwrap());
                response.assert_header(header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY);
                response.assert_header(header::X_CONTENT_TYPE_OPTIONS, "nosniff");
                response.assert_header(header::REFERRER_POLICY, "same-origin");
                if tls {
                    response.assert_header(
                        header::STRICT_TRANSPORT_SECURITY,
                        STRICT_TRANSPORT_SECURITY,
                    );
                } else {
                    response.assert_header_is_not_exist(header::STRICT_TRANSPORT_SECURITY);
                }
            }
        }
    }
}
