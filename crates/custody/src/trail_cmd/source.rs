//! Where `custody trail` reads: the audit sink (a directory, or object storage
//! downloaded to a temporary directory) and the spool of rows not yet rolled.

use super::usage;
use custody_audit::ship::{ShipConfig, Shipper, SinkUrl};
use custody_proxy::Config;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Schemes of the object stores custody ships to.
const REMOTE: &[&str] = &["s3", "gs", "az", "azure", "abfs", "abfss", "http", "https"];

/// The spool directory to read, and whether it was asked for by name.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum SpoolDir {
    /// `--spool DIR`: it must be readable.
    Given(PathBuf),
    /// The config's `audit.spool.dir`, or `.spool` beside a local `--sink`: read
    /// if it is there.
    Default(PathBuf),
    /// None known (a remote `--sink` without `--config`): why.
    None(&'static str),
}

/// The sink and the config it came from.
pub(super) struct Located {
    pub(super) source: Source,
    pub(super) spool: SpoolDir,
}

/// The sink and spool from `--sink`, `--spool`, `--config` or the built-in default.
pub(super) fn locate(
    sink: Option<&str>,
    spool: Option<&Path>,
    config: Option<&Path>,
) -> Result<Located, ExitCode> {
    let loaded = match (sink, config) {
        (Some(_), None) => None,
        (_, Some(p)) => Some(Config::load(p).map_err(|e| usage(format_args!("{e}")))?),
        (None, None) => Some(Config::defaults()),
    };
    let source = sink_source(sink, loaded.as_ref())?;
    let spool = match (spool, &loaded, &source) {
        (Some(dir), _, _) => SpoolDir::Given(dir.to_owned()),
        (None, Some(c), _) => SpoolDir::Default(c.audit.spool_dir.clone()),
        (None, None, Source::Local(dir)) => SpoolDir::Default(dir.join(".spool")),
        (None, None, Source::Remote(_)) => SpoolDir::None(
            "a remote --sink has no local spool; rows not yet rolled are in the spool of the pod that wrote them (give it with --spool DIR where it is readable)",
        ),
    };
    Ok(Located { source, spool })
}

/// Where the audit files are.
pub(super) enum Source {
    /// A local directory.
    Local(PathBuf),
    /// Object storage.
    Remote(Box<ShipConfig>),
}

/// The audit sink from `--sink`, `--config` or the built-in default.
fn sink_source(sink: Option<&str>, config: Option<&Config>) -> Result<Source, ExitCode> {
    if let Some(sink) = sink {
        return match sink.split_once("://") {
            None => Ok(Source::Local(PathBuf::from(sink))),
            Some(("file", path)) if !path.is_empty() => Ok(Source::Local(PathBuf::from(path))),
            Some((scheme, _)) if REMOTE.contains(&scheme.to_ascii_lowercase().as_str()) => {
                SinkUrl::parse(sink)
                    .map(|url| Source::Remote(Box::new(ShipConfig::new(url))))
                    .map_err(|e| usage(format!("--sink {sink:?}: {e}")))
            }
            Some(_) => Err(usage(format!(
                "--sink {sink:?}: expected a directory, file://DIR, or an s3://, gs://, az:// URL"
            ))),
        };
    }
    let defaults;
    let config = match config {
        Some(c) => c,
        None => {
            defaults = Config::defaults();
            &defaults
        }
    };
    match config.audit.sink.local_dir() {
        Some(dir) => Ok(Source::Local(dir.to_owned())),
        None => config
            .audit
            .ship_config()
            .map(|ship| Source::Remote(Box::new(ship)))
            .map_err(|(path, e)| usage(format!("audit.s3: {}: {e}", path.display()))),
    }
}

/// Downloads a remote sink's audit files (`*.parquet`, digests aside) into a
/// temporary directory, keys as paths.
pub(super) fn download(ship: ShipConfig) -> Result<tempfile::TempDir, String> {
    let url = ship.url.to_string();
    let shipper = Shipper::new(ship).map_err(|e| e.to_string())?;
    let tmp = tempfile::tempdir().map_err(|e| format!("a temporary directory: {e}"))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    runtime.block_on(async {
        let keys = shipper
            .list("")
            .await
            .map_err(|e| format!("cannot list {url}: {e}"))?;
        for key in keys
            .iter()
            .filter(|k| k.ends_with(".parquet") && !k.starts_with("digests/"))
        {
            let bytes = shipper
                .get(key)
                .await
                .map_err(|e| format!("cannot read {url}: {e}"))?;
            let path = tmp.path().join(key);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).map_err(|e| e.to_string())?;
            }
            std::fs::write(&path, &bytes).map_err(|e| e.to_string())?;
        }
        Ok::<_, String>(())
    })?;
    Ok(tmp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sinks_are_local_directories_file_urls_or_object_stores() {
        let local = |s: Result<Source, ExitCode>| match s {
            Ok(Source::Local(dir)) => Some(dir),
            _ => None,
        };
        assert!(matches!(
            sink_source(Some("s3://bucket/audit"), None),
            Ok(Source::Remote(_))
        ));
        assert!(matches!(
            sink_source(Some("gs://bucket"), None),
            Ok(Source::Remote(_))
        ));
        assert!(sink_source(Some("ftp://x"), None).is_err());
        assert_eq!(
            local(sink_source(Some("file:///var/audit"), None)),
            Some(PathBuf::from("/var/audit"))
        );
        assert_eq!(
            local(sink_source(None, None)),
            Some(PathBuf::from("./custody-audit"))
        );
    }

    #[test]
    fn the_spool_is_given_beside_a_local_sink_or_the_configs() {
        let spool = |sink, spool: Option<&str>| {
            locate(sink, spool.map(Path::new), None)
                .map(|l| l.spool)
                .ok()
        };
        assert_eq!(
            spool(Some("/a"), None),
            Some(SpoolDir::Default(PathBuf::from("/a/.spool")))
        );
        assert_eq!(
            spool(Some("/a"), Some("/s")),
            Some(SpoolDir::Given(PathBuf::from("/s")))
        );
        assert!(matches!(
            spool(Some("s3://bucket/audit"), None),
            Some(SpoolDir::None(_))
        ));
        assert_eq!(
            spool(None, None),
            Some(SpoolDir::Default(PathBuf::from("./custody-audit/.spool")))
        );
    }
}
