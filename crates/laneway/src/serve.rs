//! `laneway serve`: open the spool, bind the listeners, announce readiness
//! (log line and systemd `READY=1`), then run until SIGTERM, reloading on
//! SIGHUP and draining with a deadline on the way out.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use laneway_common::{Config, Lifecycle};
use laneway_inbound::{Settings, Shared};
use laneway_spool::DiskStore;
use tokio::net::TcpListener;
use tokio::signal::unix::{SignalKind, signal};

use crate::config;
use crate::ingest::Ingestor;

/// Runs the daemon; the process exit code.
pub fn main(path: Option<PathBuf>) -> ExitCode {
    let loaded = match config::load(path.as_deref()) {
        Ok(l) => l,
        Err(errors) => {
            for e in &errors.0 {
                eprintln!("error: {e}");
            }
            eprintln!("laneway: the configuration has {} problem(s); not starting", errors.0.len());
            return ExitCode::FAILURE;
        }
    };
    crate::logging::init(&loaded.config.log);
    for w in &loaded.warnings {
        tracing::warn!("{w}");
    }
    let problems = config::deep_check(&loaded.config);
    if !problems.is_empty() {
        for p in &problems {
            tracing::error!("{p}");
        }
        return ExitCode::FAILURE;
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the runtime");
            return ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(run(path, loaded.config));
    rt.shutdown_timeout(Duration::from_secs(1));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}

fn notify(states: &[sd_notify::NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(states) {
        tracing::warn!(error = %e, "systemd notification failed");
    }
}

async fn run(path: Option<PathBuf>, config: Config) -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    // A file-size limit (ulimit -f) must fail the write, not kill the
    // daemon: take SIGXFSZ over and never act on it.
    #[cfg(target_os = "linux")]
    let _sigxfsz = signal(SignalKind::from_raw(25)).context("installing the SIGXFSZ handler")?;

    let lifecycle = Lifecycle::new();
    let dir = config.server.spool_dir.clone();
    let shards = config.spool.shards;
    let open_dir = dir.clone();
    let (store, recovered, report) =
        tokio::task::spawn_blocking(move || DiskStore::open(&open_dir, shards))
            .await
            .context("spool start-up task")?
            .with_context(|| format!("opening the spool {}", dir.display()))?;
    tracing::info!(
        spool = %dir.display(),
        messages = recovered.len(),
        temp_removed = report.temp_removed,
        quarantined = report.quarantined.len(),
        "spool recovered"
    );
    let floor = recovered.iter().map(|r| r.id).max();
    let store = Arc::new(store);
    let ingest = Arc::new(Ingestor::new(
        store.clone(),
        floor,
        config.server.hostname.clone(),
        config.spool.min_free_bytes,
        lifecycle.clone(),
    ));
    let settings = Settings::new(&config)?;
    let shared = Shared::new(settings, ingest.clone(), lifecycle.clone());

    let mut servers = Vec::new();
    for l in &config.listeners {
        let tcp = TcpListener::bind(l.bind)
            .await
            .with_context(|| format!("listener {}: cannot bind {}", l.name, l.bind))?;
        let addr = tcp.local_addr()?;
        tracing::info!(name = %l.name, addr = %addr, "listening");
        servers.push(tokio::spawn(laneway_inbound::serve(tcp, l.clone(), shared.clone())));
    }

    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    notify(&[
        sd_notify::NotifyState::Ready,
        sd_notify::NotifyState::Status("accepting mail"),
    ]);
    tracing::info!(listeners = servers.len(), "ready");

    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = hup.recv() => reload(path.as_deref(), &config, &shared),
        }
    }

    tracing::info!(grace_period = ?config.server.grace_period, "shutting down: refusing new mail, finishing transactions in progress");
    notify(&[
        sd_notify::NotifyState::Stopping,
        sd_notify::NotifyState::Status("draining"),
    ]);
    lifecycle.begin_shutdown();
    if lifecycle.drained(config.server.grace_period).await {
        tracing::info!("drained; exiting");
    } else {
        tracing::warn!(active = lifecycle.active(), "grace period over; exiting with work in progress (nothing acknowledged is lost)");
    }
    for s in servers {
        s.abort();
    }
    Ok(())
}

/// SIGHUP: re-read the configuration file; swap in what can change while
/// running (TLS certificates, relay policy, users, limits of new
/// connections). An invalid file is reported and the running settings kept.
fn reload(path: Option<&Path>, running: &Config, shared: &Arc<Shared>) {
    let Some(path) = path else {
        tracing::info!("SIGHUP: running the embedded default configuration; nothing to reload");
        return;
    };
    notify(&[sd_notify::NotifyState::Reloading]);
    match Config::load(path) {
        Err(errors) => {
            for e in &errors.0 {
                tracing::error!("reload: {e}");
            }
            tracing::error!("reload failed; keeping the running configuration");
        }
        Ok(loaded) => match Settings::new(&loaded.config) {
            Err(e) => {
                tracing::error!("reload: {e}");
                tracing::error!("reload failed; keeping the running configuration");
            }
            Ok(settings) => {
                let binds = |c: &Config| {
                    c.listeners
                        .iter()
                        .map(|l| (l.name.clone(), l.bind))
                        .collect::<Vec<_>>()
                };
                if binds(&loaded.config) != binds(running) {
                    tracing::warn!("reload: listener names or addresses changed; that takes a restart");
                }
                shared.settings.store(Arc::new(settings));
                tracing::info!(config = %path.display(), "configuration reloaded");
            }
        },
    }
    notify(&[sd_notify::NotifyState::Ready]);
}
