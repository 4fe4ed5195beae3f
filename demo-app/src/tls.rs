//! The demo's certificate: given with `--cert`/`--key`, or a self-signed one for development.

use std::{
    fs, io,
    path::{Path, PathBuf},
};

/// Where the development certificate is kept (git-ignored).
pub const DEV_CERT: &str = "certs/cert.pem";
/// Where the development certificate's key is kept (git-ignored).
pub const DEV_KEY: &str = "certs/key.pem";

/// Why no certificate could be had.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    /// A file given on the command line does not exist or can not be read.
    #[error("can not read {}: {source}", path.display())]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The development certificate could not be generated.
    #[error("generating a development certificate failed: {0}")]
    Generate(#[from] rcgen::Error),
    /// The development certificate could not be written.
    #[error("writing {}: {source}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
}

/// The certificate and key files to serve with: `explicit` when given (they must be readable),
/// else `certs/cert.pem` and `certs/key.pem`, generated first when either is missing.
///
/// # Errors
/// An unreadable explicit file, or a development certificate that can not be made.
pub fn cert_files(explicit: Option<(PathBuf, PathBuf)>) -> Result<(PathBuf, PathBuf), CertError> {
    if let Some((cert, key)) = explicit {
        for path in [&cert, &key] {
            fs::File::open(path).map_err(|source| CertError::Unreadable {
                path: path.clone(),
                source,
            })?;
        }
        return Ok((cert, key));
    }
    let (cert, key) = (PathBuf::from(DEV_CERT), PathBuf::from(DEV_KEY));
    if !cert.exists() || !key.exists() {
        generate(&cert, &key)?;
        tracing::info!(
            cert = %cert.display(),
            key = %key.display(),
            "generated a self-signed development certificate for localhost and 127.0.0.1"
        );
    }
    Ok((cert, key))
}

/// Writes a self-signed certificate for `localhost`, `127.0.0.1` and `::1`; the key file is
/// readable by its owner only.
fn generate(cert: &Path, key: &Path) -> Result<(), CertError> {
    let names = vec![
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
    ];
    let certified = rcgen::generate_simple_self_signed(names)?;
    let write = |path: &Path, contents: String, private: bool| {
        let err = |source| CertError::Write {
            path: path.to_owned(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            fs::create_dir_all(dir).map_err(err)?;
        }
        let mut options = fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        if private {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        #[cfg(not(unix))]
        let _ = private;
        io::Write::write_all(&mut options.open(path).map_err(err)?, contents.as_bytes())
            .map_err(err)
    };
    // The key first: a reloading server that sees the new certificate finds its key.
    write(key, certified.signing_key.serialize_pem(), true)?;
    write(cert, certified.cert.pem(), false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_certificate_loads() -> Result<(), Box<dyn std::error::Error>> {
        let dir = std::env::temp_dir().join(format!("demo-app-tls-{}", std::process::id()));
        let (cert, key) = (dir.join("c/cert.pem"), dir.join("c/key.pem"));
        generate(&cert, &key)?;
        poem_serve::ReloadingTls::from_pem_files(&cert, &key)?;
        let missing = cert_files(Some((dir.join("nope.pem"), key.clone())));
        assert!(matches!(missing, Err(CertError::Unreadable { .. })));
        fs::remove_dir_all(dir)?;
        Ok(())
    }
}
