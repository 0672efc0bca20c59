//! The TLS flags of `jobc` and `jobadmin` (the gearman tools': `-S`/`--ssl`, `--ssl-ca-file`,
//! `--ssl-certificate`, `--ssl-key`), included by both programs.

use std::path::PathBuf;

/// Client TLS flags.
#[derive(clap::Args, Debug)]
pub(crate) struct ClientTlsArgs {
    /// Speak TLS to the job server (never falls back to plaintext).
    #[arg(short = 'S', long)]
    pub(crate) ssl: bool,
    /// CAs the server's certificate is checked against (PEM; default: the system's).
    #[arg(long, value_name = "FILE")]
    pub(crate) ssl_ca_file: Option<PathBuf>,
    /// A client certificate chain to present (PEM; with --ssl-key).
    #[arg(long, value_name = "FILE", requires = "ssl_key")]
    pub(crate) ssl_certificate: Option<PathBuf>,
    /// The client certificate's private key (PEM; with --ssl-certificate).
    #[arg(long, value_name = "FILE", requires = "ssl_certificate")]
    pub(crate) ssl_key: Option<PathBuf>,
}

impl ClientTlsArgs {
    /// Refuses TLS flags in a build without TLS, and TLS files without `--ssl`: either way
    /// the user asked for what would not happen.
    pub(crate) fn check(&self) -> Result<(), String> {
        let files =
            self.ssl_ca_file.is_some() || self.ssl_certificate.is_some() || self.ssl_key.is_some();
        if cfg!(not(feature = "rustls")) && (self.ssl || files) {
            return Err("this build has no TLS (the `rustls` feature): refusing to connect in \
                        plaintext"
                .into());
        }
        if files && !self.ssl {
            return Err("TLS files were given without --ssl".into());
        }
        Ok(())
    }

    /// The client's TLS settings, or `None` without `--ssl`. The certificate is checked
    /// against the host each server is named by (its address, when given as one).
    #[cfg(feature = "rustls")]
    pub(crate) fn client_tls(&self) -> Result<Option<jobclient::ClientTls>, String> {
        if !self.ssl {
            return Ok(None);
        }
        let identity = self.ssl_certificate.as_deref().zip(self.ssl_key.as_deref());
        let tls = jobclient::ClientTls::from_files(self.ssl_ca_file.as_deref(), identity)
            .map_err(|e| e.to_string())?;
        Ok(Some(tls))
    }
}
