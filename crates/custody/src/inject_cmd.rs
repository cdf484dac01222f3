//! `custody inject`: the webhook's injection, offline (like `istioctl kube-inject`),
//! for GitOps and for reviewing what the webhook will do. Reads a manifest
//! (multi-document YAML or JSON), injects its Pods and the pod templates of
//! Deployments, StatefulSets, DaemonSets, ReplicaSets, ReplicationControllers, Jobs
//! and CronJobs with [`custody_inject::manifest::inject`] (the very same review as
//! the webhook's), passes everything else through and writes the result.
//! `--stale` instead lists the injected pods of a pod list whose sidecar differs
//! from what the config injects now.
//!
//! Exit codes: 0 done (also when stale pods are found), 1 a pod or template was
//! denied (nothing is written), 2 invalid config, unreadable input or usage.

use custody_inject::manifest::{self, Manifest};
use custody_inject::{InjectConfig, Outcome, RawConfig};
use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// `custody inject` flags.
#[derive(clap::Args, Debug)]
pub(crate) struct InjectArgs {
    /// Injection settings: the webhook's config file (see docs/injection.md).
    #[arg(long, short, env = "CUSTODY_WEBHOOK_CONFIG")]
    config: PathBuf,
    /// The manifest to read, or `-` for standard input.
    #[arg(long = "filename", short = 'f', default_value = "-")]
    filename: String,
    /// Where to write the injected manifest (default: standard output).
    #[arg(long, short)]
    output: Option<PathBuf>,
    /// The namespace of objects that name none (as `kubectl apply -n` would use).
    #[arg(long, short = 'n')]
    namespace: Option<String>,
    /// The sidecar image (overrides the config's `image`).
    #[arg(long)]
    image: Option<String>,
    /// List the injected pods of the input (e.g. `kubectl get pods -A -o json`)
    /// whose custody.dev/sidecar-hash differs from this config's, and why.
    #[arg(long, conflicts_with = "output")]
    stale: bool,
}

pub(crate) fn run(args: InjectArgs) -> ExitCode {
    let cfg = match config(&args.config, args.image.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("custody: {e}");
            return ExitCode::from(2);
        }
    };
    let input = match read_input(&args.filename) {
        Ok(text) => text,
        Err(e) => {
            eprintln!("custody: {e}");
            return ExitCode::from(2);
        }
    };
    let mut parsed = match Manifest::parse(&input) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("custody: {}: {e}", shown_name(&args.filename));
            return ExitCode::from(2);
        }
    };
    if args.stale {
        return stale(&parsed, &cfg);
    }
    let reports = manifest::inject(&mut parsed.documents, &cfg, args.namespace.as_deref());
    let mut denied = 0;
    for r in &reports {
        for w in &r.warnings {
            eprintln!(
                "warning: {}: {}",
                r.object,
                w.trim_start_matches("custody: ")
            );
        }
        match &r.outcome {
            Outcome::Injected { mode, .. } => {
                eprintln!("{}: injected ({} mode)", r.object, mode.as_str());
            }
            Outcome::Skipped(reason) => eprintln!("{}: not injected ({reason})", r.object),
            Outcome::Denied(message) | Outcome::Rejected(message) => {
                denied += 1;
                eprintln!("custody: {}: {message}", r.object);
            }
        }
    }
    if denied > 0 {
        eprintln!("custody: {denied} object(s) denied: nothing written");
        return ExitCode::FAILURE;
    }
    let text = match parsed.render() {
        Ok(t) => t,
        Err(e) => {
            eprintln!("custody: cannot write the manifest: {e}");
            return ExitCode::FAILURE;
        }
    };
    let written = match &args.output {
        Some(path) => std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display())),
        None => std::io::stdout()
            .write_all(text.as_bytes())
            .map_err(|e| format!("standard output: {e}")),
    };
    match written {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("custody: cannot write the manifest: {e}");
            ExitCode::FAILURE
        }
    }
}

fn stale(parsed: &Manifest, cfg: &InjectConfig) -> ExitCode {
    let (injected, stale) = manifest::stale(&parsed.documents, cfg);
    let mut out = String::new();
    for s in &stale {
        let owner = s
            .owner
            .as_deref()
            .map(|o| format!(" (owner: {o})"))
            .unwrap_or_default();
        out += &format!("{}/{}{owner}: {}\n", s.namespace, s.name, s.reason);
    }
    // A closed stdout (`| head`) is not an error worth reporting.
    let _ = std::io::stdout().write_all(out.as_bytes());
    eprintln!(
        "{} of {injected} injected pod(s) stale (current sidecar hash {}, image {}); roll them with `kubectl rollout restart` of their Deployment, StatefulSet or DaemonSet (docs/injection.md)",
        stale.len(),
        custody_inject::sidecar_hash(cfg),
        cfg.image()
    );
    ExitCode::SUCCESS
}

fn config(path: &Path, image: Option<&str>) -> Result<InjectConfig, String> {
    let text =
        std::fs::read_to_string(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    let mut raw = RawConfig::from_yaml(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    if let Some(image) = image {
        raw.image = Some(image.to_owned());
    }
    raw.validate()
        .map_err(|e| format!("{}: {e}", path.display()))
}

fn read_input(name: &str) -> Result<String, String> {
    if name == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| format!("reading standard input: {e}"))?;
        Ok(text)
    } else {
        std::fs::read_to_string(name).map_err(|e| format!("reading {name}: {e}"))
    }
}

fn shown_name(name: &str) -> &str {
    if name == "-" { "standard input" } else { name }
}
