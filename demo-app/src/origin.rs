//! Which browser pages may publish: the publish API refuses a browser's cross-origin post.
//!
//! Any web page can make a visitor's browser post to another site. A post whose `Origin` is
//! neither this server's own (the host and port the request was sent to) nor one allowed with
//! `--allow-origin` is refused, and so is one that a browser marks `Sec-Fetch-Site: cross-site`
//! or `same-site` without an `Origin`. Clients that are not browsers send neither header.

use std::{fmt, str::FromStr};

use poem::{
    http::uri::{Authority, Uri},
    Request,
};

/// A web origin, `scheme://host[:port]`, as browsers send it in `Origin` and as
/// `--allow-origin` takes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    scheme: String,
    host: String,
    /// The port, the scheme's default when none is written (unknown for other schemes).
    port: Option<u16>,
}

impl Origin {
    /// Whether this origin is the host and port that `authority` (the request's `Host`) names.
    /// The scheme is not compared: one host and port serve one scheme.
    fn is_authority(&self, authority: &str) -> bool {
        let Ok(authority) = authority.parse::<Authority>() else {
            return false;
        };
        let port = authority.port_u16().or_else(|| default_port(&self.scheme));
        authority.host().eq_ignore_ascii_case(&self.host) && port == self.port
    }
}

impl FromStr for Origin {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let wrong = || {
            format!(
                "expected an origin like `https://dash.example.com` or `http://127.0.0.1:3000` \
                 (scheme, host and port only), got `{text}`"
            )
        };
        let uri = text.parse::<Uri>().map_err(|_| wrong())?;
        let (Some(scheme), Some(authority)) = (uri.scheme_str(), uri.authority()) else {
            return Err(wrong());
        };
        let has_user = authority.as_str().contains('@');
        if has_user || !matches!(uri.path(), "" | "/") || uri.query().is_some() {
            return Err(wrong());
        }
        let scheme = scheme.to_ascii_lowercase();
        Ok(Self {
            port: authority.port_u16().or_else(|| default_port(&scheme)),
            host: authority.host().to_ascii_lowercase(),
            scheme,
        })
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}", self.scheme, self.host)?;
        match self.port {
            Some(port) if Some(port) != default_port(&self.scheme) => write!(f, ":{port}"),
            _ => Ok(()),
        }
    }
}

/// The origins whose pages may publish besides the server's own (`--allow-origin`).
#[derive(Debug, Clone, Default)]
pub struct AllowedOrigins(pub Vec<Origin>);

/// A browser post from a page of another origin.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CrossOrigin {
    /// The `Origin` header names another origin.
    #[error(
        "publishing from a page of {origin} is refused: only this server's own pages may publish; \
         start the server with `--allow-origin {origin}` to allow that origin"
    )]
    Origin {
        /// The request's `Origin`.
        origin: String,
    },
    /// The `Origin` header is opaque (`null`, a sandboxed or local page) or not an origin.
    #[error("publishing from a page with the opaque origin `{origin}` is refused: only this server's own pages and `--allow-origin` origins may publish")]
    Opaque {
        /// The request's `Origin`.
        origin: String,
    },
    /// No `Origin`, but the browser says the request comes from another site.
    #[error("publishing from a page of another site (Sec-Fetch-Site: {site}) is refused: only this server's own pages may publish")]
    Site {
        /// The request's `Sec-Fetch-Site`.
        site: String,
    },
}

impl AllowedOrigins {
    /// Checks that `req` is not a browser's post from a page of another origin.
    ///
    /// # Errors
    /// [`CrossOrigin`] when it is.
    pub fn check(&self, req: &Request) -> Result<(), CrossOrigin> {
        if let Some(value) = req.headers().get("origin") {
            let text = String::from_utf8_lossy(value.as_bytes()).into_owned();
            let Ok(origin) = text.parse::<Origin>() else {
                return Err(CrossOrigin::Opaque { origin: text });
            };
            let own = req
                .uri()
                .authority()
                .map(Authority::as_str)
                .or_else(|| req.header("host"))
                .is_some_and(|authority| origin.is_authority(authority));
            return if own || self.0.contains(&origin) {
                Ok(())
            } else {
                Err(CrossOrigin::Origin {
                    origin: origin.to_string(),
                })
            };
        }
        match req.header("sec-fetch-site") {
            Some(site @ ("cross-site" | "same-site")) => Err(CrossOrigin::Site {
                site: site.to_owned(),
            }),
            _ => Ok(()),
        }
    }
}

fn default_port(scheme: &str) -> Option<u16> {
    match scheme {
        "http" => Some(80),
        "https" => Some(443),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn post(headers: &[(&str, &str)]) -> Request {
        let mut req = Request::builder()
            .method(poem::http::Method::POST)
            .uri_str("/api");
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        req.finish()
    }

    fn check(allowed: &[&str], headers: &[(&str, &str)]) -> Result<(), CrossOrigin> {
        let allowed = allowed
            .iter()
            .map(|o| o.parse().unwrap_or_else(|e| panic!("{e}")));
        AllowedOrigins(allowed.collect()).check(&post(headers))
    }

    #[test]
    fn the_servers_own_pages_and_non_browsers_may_publish() {
        let own = [
            ("host", "127.0.0.1:8443"),
            ("origin", "https://127.0.0.1:8443"),
        ];
        assert_eq!(check(&[], &own), Ok(()));
        let own = [("host", "Example.com"), ("origin", "https://example.com")];
        assert_eq!(check(&[], &own), Ok(()));
        let own = [
            ("host", "example.com:443"),
            ("origin", "https://example.com"),
        ];
        assert_eq!(check(&[], &own), Ok(()));
        let own = [("host", "[::1]:8443"), ("origin", "https://[::1]:8443")];
        assert_eq!(check(&[], &own), Ok(()));
        let same = [("host", "a.example"), ("sec-fetch-site", "same-origin")];
        assert_eq!(check(&[], &same), Ok(()));
        assert_eq!(check(&[], &[("host", "a.example")]), Ok(()), "curl");
    }

    #[test]
    fn other_origins_are_refused_unless_allowed() {
        let evil = [
            ("host", "127.0.0.1:8443"),
            ("origin", "https://evil.example"),
        ];
        let refused = check(&[], &evil);
        assert_eq!(
            refused,
            Err(CrossOrigin::Origin {
                origin: "https://evil.example".into()
            })
        );
        let message = refused.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(
            message.contains("--allow-origin https://evil.example"),
            "{message}"
        );
        assert_eq!(check(&["https://evil.example"], &evil), Ok(()));
        assert_eq!(check(&["https://evil.example:443/"], &evil), Ok(()));
        // Another port or scheme is another origin.
        let port = [
            ("host", "127.0.0.1:8443"),
            ("origin", "https://127.0.0.1:8444"),
        ];
        assert!(check(&[], &port).is_err());
        assert!(check(&["http://evil.example"], &evil).is_err());
        let null = [("host", "127.0.0.1:8443"), ("origin", "null")];
        assert!(matches!(check(&[], &null), Err(CrossOrigin::Opaque { .. })));
        let no_host = [("origin", "https://127.0.0.1:8443")];
        assert!(check(&[], &no_host).is_err());
        for site in ["cross-site", "same-site"] {
            let headers = [("host", "a.example"), ("sec-fetch-site", site)];
            assert!(matches!(
                check(&[], &headers),
                Err(CrossOrigin::Site { .. })
            ));
        }
    }

    #[test]
    fn allow_origin_takes_origins_only() {
        let origin: Result<Origin, _> = "HTTPS://Dash.Example.com:443".parse();
        assert_eq!(
            origin.map(|o| o.to_string()),
            Ok("https://dash.example.com".into())
        );
        let origin: Result<Origin, _> = "http://127.0.0.1:3000".parse();
        assert_eq!(
            origin.map(|o| o.to_string()),
            Ok("http://127.0.0.1:3000".into())
        );
        for wrong in [
            "dash.example.com",
            "https://a.example/path",
            "https://u@a.example",
            "*",
            "",
        ] {
            let err = wrong.parse::<Origin>().err().unwrap_or_default();
            assert!(err.contains("expected an origin"), "{wrong}: {err}");
        }
    }
}
