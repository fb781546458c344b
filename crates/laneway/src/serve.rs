//! `laneway serve`: open the spool, bind the listeners, announce readiness
//! (log line and systemd `READY=1`), then run until SIGTERM, reloading on
//! SIGHUP and draining with a deadline on the way out.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use laneway_common::events::{EventSink, Events};
use laneway_common::{Config, Lifecycle};
use laneway_inbound::{Settings, Shared};
use laneway_outbound::{Dispatcher, DsnNotifier, Lookup, TlsClients};
use laneway_spool::queue::{Queue, QueueSettings, SystemClock};
use laneway_spool::{DiskStore, MessageState};
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
            eprintln!(
                "laneway: the configuration has {} problem(s); not starting",
                errors.0.len()
            );
            return ExitCode::FAILURE;
        }
    };
    crate::logging::init(&loaded.config.log);
    for w in loaded
        .warnings
        .iter()
        .chain(&laneway_auth::alignment_warnings(&loaded.config))
    {
        tracing::warn!("{w}");
    }
    let problems = config::deep_check(&loaded.config);
    if !problems.is_empty() {
        for p in &problems {
            tracing::error!("{p}");
        }
        return ExitCode::FAILURE;
    }
    // in a cluster every log line names the node: each runtime thread
    // (workers and blocking threads alike) runs inside a `node` span
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.enable_all();
    let node_span = loaded.config.cluster.as_ref().map(|_| {
        let node = crate::cluster::node_name(&loaded.config);
        move || std::mem::forget(tracing::info_span!("node", node = %node).entered())
    });
    if let Some(enter) = node_span.clone() {
        builder.on_thread_start(enter);
    }
    let rt = match builder.build() {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the runtime");
            return ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(async {
        if let Some(enter) = node_span {
            enter();
        }
        run(path, loaded.config).await
    });
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
    let prometheus = crate::metrics::install().context("installing the metrics recorder")?;
    // A file-size limit (ulimit -f) must fail the write, not kill the
    // daemon: take SIGXFSZ over and never act on it.
    #[cfg(target_os = "linux")]
    let _sigxfsz = signal(SignalKind::from_raw(25)).context("installing the SIGXFSZ handler")?;

    let lifecycle = Lifecycle::new();
    let dir = config.server.spool_dir.clone();
    let shards = config.spool.shards;
    let outbound = laneway_outbound::Settings::from_config(&config);
    // The scheduler needs the store and the store's recovery feeds the
    // scheduler: open first, list the spool (quick: names only), then read
    // the messages into the scheduler in the background, urgent lanes first,
    // while the listeners already accept new mail — so a restart with a
    // million queued messages serves again in seconds. New queue ids are
    // issued above the highest listed one.
    let open_dir = dir.clone();
    let settings = queue_settings(&config, &outbound);
    let shaping_view = outbound.shaping_view();
    let max_events = config.events.max_size;
    let (queue, scan, report, event_log) =
        tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
            // the event log once the spool is ours, before the journal's
            // replay hands it what a crash left
            let path = open_dir.join("events.redb");
            let mut opened = None;
            let (store, mut report) = DiskStore::lock_with(&open_dir, shards, || {
                let log = laneway_events::EventLog::open(&path, max_events)
                    .map_err(std::io::Error::other)?;
                opened = Some(log.clone());
                Ok(Some(
                    Arc::new(log) as Arc<dyn laneway_spool::journal::EventPersist>
                ))
            })?;
            let log = opened.expect("opened with the lock");
            let q = Arc::new(Queue::new(Arc::new(store), settings, Arc::new(SystemClock)));
            let scan = q
                .store()
                .scan(&mut report)
                .with_context(|| format!("listing the spool {}", open_dir.display()))?;
            Ok((q, scan, report, log))
        })
        .await
        .context("spool start-up task")?
        .with_context(|| format!("opening the spool {}", dir.display()))?;
    let node = crate::cluster::node_name(&config);
    let events = Events::open(config.log.events.as_deref())
        .with_context(|| format!("opening [log] events {:?}", config.log.events))?
        .with_node(&node);
    let events: Arc<dyn EventSink> = Arc::new(crate::events::JournalEvents::new(
        events,
        queue.store().clone(),
    ));
    queue.set_events(events.clone());
    tracing::info!(
        spool = %dir.display(),
        messages = scan.len(),
        temp_removed = report.temp_removed,
        "spool listed; reading it in the background"
    );
    let floor = report.max_id;
    {
        let (q, dir, life) = (queue.clone(), dir.clone(), lifecycle.clone());
        let (log, sink) = (event_log.clone(), events.clone());
        let mut report = report;
        tokio::task::spawn_blocking(move || {
            let started = std::time::Instant::now();
            match q.store().load(scan, &mut report, &mut |r| {
                q.insert(r.id, r.lane, &r.envelope, &r.state, r.size);
                // acknowledged just before a crash: its reception event
                // may not have reached the journal
                if r.state.attempts == 0 && log.has_reception(r.id).is_ok_and(|has| !has) {
                    for e in
                        crate::events::receptions(r.id, r.lane, &r.envelope, b"", r.size as usize)
                    {
                        sink.record(e);
                    }
                }
                !life.is_shutting_down()
            }) {
                Ok(()) if life.is_shutting_down() => {
                    tracing::info!("spool recovery stopped for shutdown; the rest stays on disk")
                }
                Ok(()) => tracing::info!(
                    spool = %dir.display(),
                    messages = report.messages,
                    quarantined = report.quarantined.len(),
                    orphans_removed = report.orphans_removed,
                    seconds = format_args!("{:.1}", started.elapsed().as_secs_f64()),
                    "spool recovered"
                ),
                // What could not be read stays on disk for the next start.
                Err(e) => {
                    tracing::error!(spool = %dir.display(), error = %e, "spool recovery stopped")
                }
            }
        });
    }
    let store = queue.store().clone();
    let mut ingestor = Ingestor::new(
        store.clone(),
        floor,
        config.server.hostname.clone(),
        config.spool.min_free_bytes,
        lifecycle.clone(),
    );
    ingestor.set_on_spooled(queue.clone());
    crate::metrics::zero(&config);
    ingestor.set_events(events.clone());
    if config.cluster.is_some() {
        ingestor.set_node(&node);
    }
    let policy =
        laneway_auth::Policy::from_config(&config).map_err(|e| anyhow::anyhow!(e.join("; ")))?;
    let auth_path = config.server.spool_dir.join("auth.redb");
    let auth_store = Arc::new(
        tokio::task::spawn_blocking(move || laneway_auth::Store::open(&auth_path))
            .await
            .context("auth store task")?
            .context("opening the suppression and bounce-token store")?,
    );
    let status = crate::cluster::status(queue.clone(), lifecycle.clone(), node.clone());
    let cluster = crate::cluster::join(&config, &auth_store, &queue, status.clone())?;
    let (suppressions, tokens): (
        Arc<dyn laneway_auth::SuppressionStore>,
        Arc<dyn laneway_auth::store::TokenStore>,
    ) = match &cluster {
        Some(c) => (c.suppressions(), c.tokens()),
        None => (auth_store.clone(), auth_store.clone()),
    };
    hold_destinations(&queue, cluster.as_deref(), &config);
    let sender_auth = laneway_auth::SenderAuth::new(policy, suppressions, tokens, events.clone());
    // tokens older than the bounce window are of no use: purged hourly
    // until this guard goes at the end of `run`
    let _purge = laneway_auth::writer::purge(
        sender_auth.tokens().clone(),
        Duration::from_secs(3600),
        laneway_common::envelope::now_ms,
    );
    spawn_suppression_gauge(sender_auth.clone(), lifecycle.clone());
    ingestor.set_auth(sender_auth.clone());
    let ingest = Arc::new(ingestor);
    let settings = Settings::new(&config)?;
    let shared = Shared::new(settings, ingest.clone(), lifecycle.clone());

    let mut servers = Vec::new();
    let mut own = Vec::new();
    for l in &config.listeners {
        let tcp = TcpListener::bind(l.bind)
            .await
            .with_context(|| format!("listener {}: cannot bind {}", l.name, l.bind))?;
        let addr = tcp.local_addr()?;
        tracing::info!(name = %l.name, addr = %addr, "listening");
        own.push(addr);
        servers.push(tokio::spawn(laneway_inbound::serve(
            tcp,
            l.clone(),
            shared.clone(),
        )));
    }

    let notifier = Arc::new(DsnNotifier::new(
        ingest.clone(),
        config.server.hostname.clone(),
    ));
    let notifier_for_admin = notifier.clone();
    let dispatcher = Dispatcher::new(laneway_outbound::Parts {
        queue: queue.clone(),
        lookup: lookup(&config, &own)?,
        tls: TlsClients::new(config.outbound.ca_file.as_deref()).map_err(anyhow::Error::msg)?,
        settings: outbound,
        notifier,
        hooks: Arc::new(crate::sender_auth::AuthHooks(sender_auth.clone())),
        events: events.clone(),
        lifecycle: lifecycle.clone(),
        limits: cluster.as_ref().map(|c| c.limits()),
    });
    dispatcher.automation().set_node(&node);
    if let Some(c) = &cluster {
        crate::cluster::share_shaping(c, dispatcher.automation());
    }
    let delivering = tokio::spawn(dispatcher.clone().run());
    let webhooks = laneway_events::Webhooks::start(event_log.clone(), &config.webhooks)
        .map_err(anyhow::Error::msg)?;
    // the history is kept for [events] history, longer for a webhook behind
    let _event_purge = laneway_events::webhook::purge(
        event_log.clone(),
        config.events.history,
        laneway_events::webhook::needs(&config.webhooks),
        laneway_common::envelope::now_ms,
    );
    if config.outbound.tls_reports {
        let hostname = config.server.hostname.clone();
        let from = config
            .outbound
            .tls_report_from
            .clone()
            .unwrap_or_else(|| format!("postmaster@{hostname}"));
        tokio::spawn(dispatcher.clone().tls_reports(
            ingest.clone(),
            laneway_outbound::ReportSettings {
                interval: config.outbound.tls_report_interval,
                hostname,
                from,
                lane: laneway_common::Priority::new(1).expect("lane 1"),
            },
        ));
    }

    let checker = Arc::new(crate::domain_check::Checker::new(config.clone()));
    let admin = Arc::new(
        crate::admin::QueueAdmin::new(
            queue.clone(),
            notifier_for_admin,
            sender_auth.suppressions().clone(),
            status,
            cluster.clone(),
        )
        .with_events(event_log.clone(), events.clone())
        .with_auth(sender_auth.clone())
        .with_automation(dispatcher.automation().clone())
        .with_checker(checker.clone()),
    );
    let render: laneway_api::MetricsRender = {
        let (h, q) = (prometheus.clone(), queue.clone());
        Arc::new(move || crate::metrics::render(&h, &q))
    };
    let api = Arc::new(laneway_api::Api {
        ingest: ingest.clone(),
        admin,
        settings: arc_swap::ArcSwap::from_pointee(api_settings(&config, shaping_view)),
        metrics: Some(render),
    });
    if let Some(a) = &config.api {
        let tcp = TcpListener::bind(a.bind)
            .await
            .with_context(|| format!("[api]: cannot bind {}", a.bind))?;
        tracing::info!(name = "api", addr = %tcp.local_addr()?, "listening");
        servers.push(tokio::spawn(serve_http(
            tcp,
            laneway_api::router(api.clone()),
        )));
    }
    if let Some(m) = &config.metrics {
        let tcp = TcpListener::bind(m.bind)
            .await
            .with_context(|| format!("[metrics]: cannot bind {}", m.bind))?;
        tracing::info!(name = "metrics", addr = %tcp.local_addr()?, "listening");
        servers.push(tokio::spawn(serve_http(
            tcp,
            laneway_api::metrics_router(api.clone()),
        )));
    }
    let api_for_reload = api.clone();
    let socket = control_socket(&config.server.spool_dir)?;
    tracing::info!(path = %config.server.spool_dir.join(CONTROL_SOCKET).display(), "control socket");
    servers.push(tokio::spawn(async move {
        let _ = axum::serve(socket, laneway_api::control_router(api.clone())).await;
    }));

    let api_handle = api_for_reload;
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
            _ = hup.recv() => reload(path.as_deref(), &config, &Live {
                shared: &shared,
                queue: &queue,
                dispatcher: &dispatcher,
                api: &api_handle,
                sender_auth: &sender_auth,
                own: &own,
                cluster: cluster.as_deref(),
                checker: &checker,
            }),
        }
    }

    tracing::info!(grace_period = ?config.server.grace_period, "shutting down: refusing new mail, finishing transactions in progress");
    notify(&[
        sd_notify::NotifyState::Stopping,
        sd_notify::NotifyState::Status("draining"),
    ]);
    lifecycle.begin_shutdown();
    let drained = lifecycle.drained(config.server.grace_period).await;
    // bounce tokens queued by the last deliveries are recorded before exit
    sender_auth.close().await;
    if let Some(c) = &cluster {
        c.stop().await;
    }
    if drained {
        tracing::info!("drained; exiting");
    } else {
        tracing::warn!(
            active = lifecycle.active(),
            "grace period over; exiting with work in progress (nothing acknowledged is lost)"
        );
    }
    for s in servers {
        s.abort();
    }
    delivering.abort();
    // the outcomes recorded last become state files: nothing to replay
    let store = queue.store().clone();
    let _ = tokio::task::spawn_blocking(move || store.close()).await;
    webhooks.stop().await;
    Ok(())
}

/// The control socket's file name in the spool directory.
pub const CONTROL_SOCKET: &str = "control.sock";

/// Binds the control socket (mode 0600; a stale one from a crash is
/// replaced — the spool lock already proves no other daemon uses it).
fn control_socket(spool: &Path) -> anyhow::Result<tokio::net::UnixListener> {
    use std::os::unix::fs::PermissionsExt;
    let path = spool.join(CONTROL_SOCKET);
    match std::fs::remove_file(&path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(e)
                .with_context(|| format!("removing the stale control socket {}", path.display()));
        }
        _ => {}
    }
    let l = tokio::net::UnixListener::bind(&path)
        .with_context(|| format!("binding the control socket {}", path.display()))?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("chmod 0600 {}", path.display()))?;
    Ok(l)
}

async fn serve_http(tcp: TcpListener, router: axum::Router) {
    if let Err(e) = axum::serve(tcp, router).await {
        tracing::error!(error = %e, "HTTP server stopped");
    }
}

/// The API settings of a configuration.
fn api_settings(
    c: &Config,
    shaping: laneway_common::admin::ShapingView,
) -> laneway_api::ApiSettings {
    let a = c.api.clone().unwrap_or_default();
    laneway_api::ApiSettings {
        keys: laneway_api::keys::Keys::new(&a.key),
        max_message_size: a.max_message_size,
        max_recipients: a.max_recipients,
        default_priority: c.queue.default_priority,
        hostname: c.server.hostname.clone(),
        shaping,
    }
}

/// The scheduler settings of a configuration.
fn queue_settings(c: &Config, outbound: &laneway_outbound::Settings) -> QueueSettings {
    QueueSettings {
        policy: c.queue.clone(),
        pools: outbound.pool_lanes(),
        max_connections: c.outbound.max_connections,
        max_recipients: c.outbound.max_recipients_per_transaction,
    }
}

/// The next-hop resolver of a configuration; `own` are our listeners' addresses.
fn lookup(c: &Config, own: &[std::net::SocketAddr]) -> anyhow::Result<Lookup> {
    let resolver = laneway_outbound::lookup::resolver(&c.dns).map_err(anyhow::Error::msg)?;
    let lookup = Lookup::new(resolver, c.routes.clone(), c.outbound.port, own.to_vec());
    Ok(match c.dns.nameservers.first() {
        Some(server) if c.dns.dnssec => lookup.with_dnssec(*server, c.dns.timeout),
        _ => lookup,
    })
}

impl crate::ingest::OnSpooled for Queue {
    fn spooled(
        &self,
        id: laneway_common::MessageId,
        lane: laneway_common::Priority,
        envelope: &laneway_common::Envelope,
        size: usize,
    ) {
        self.insert(
            id,
            lane,
            envelope,
            &MessageState::new(envelope.recipients.len()),
            size as u64,
        );
    }
}

/// SIGHUP: re-read the configuration file; swap in what can change while
/// running (TLS certificates, relay policy, users, limits of new
/// connections, routes, retry policy, destination limits). An invalid file
/// is reported and the running settings kept.
/// What a reload swaps settings into.
struct Live<'a> {
    shared: &'a Arc<Shared>,
    queue: &'a Queue,
    dispatcher: &'a Dispatcher,
    api: &'a laneway_api::Api,
    sender_auth: &'a laneway_auth::SenderAuth,
    own: &'a [std::net::SocketAddr],
    cluster: Option<&'a laneway_cluster::Cluster>,
    checker: &'a crate::domain_check::Checker,
}

fn reload(path: Option<&Path>, running: &Config, live: &Live<'_>) {
    let Live {
        shared,
        queue,
        dispatcher,
        api,
        sender_auth,
        own,
        cluster,
        checker,
    } = live;
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
        Ok(loaded) => match prepare(&loaded.config, own) {
            Err(e) => {
                tracing::error!("reload: {e}");
                tracing::error!("reload failed; keeping the running configuration");
            }
            Ok((settings, lookup, tls, auth)) => {
                sender_auth.reload(auth);
                checker.set(loaded.config.clone());
                let outbound = laneway_outbound::Settings::from_config(&loaded.config);
                queue.set_settings(queue_settings(&loaded.config, &outbound));
                let shaping_view = outbound.shaping_view();
                hold_destinations(queue, *cluster, &loaded.config);
                dispatcher.reload(outbound, lookup, tls);
                queue.refresh_sites();
                api.settings
                    .store(Arc::new(api_settings(&loaded.config, shaping_view)));
                if loaded.config.api.as_ref().map(|a| a.bind)
                    != running.api.as_ref().map(|a| a.bind)
                    || loaded.config.metrics.as_ref().map(|m| m.bind)
                        != running.metrics.as_ref().map(|m| m.bind)
                {
                    tracing::warn!("reload: [api] or [metrics] bind changed; that takes a restart");
                }
                if format!("{:?}{:?}", loaded.config.webhooks, loaded.config.events)
                    != format!("{:?}{:?}", running.webhooks, running.events)
                {
                    tracing::warn!("reload: [[webhook]] or [events] changed; that takes a restart");
                }
                let binds = |c: &Config| {
                    c.listeners
                        .iter()
                        .map(|l| (l.name.clone(), l.bind))
                        .collect::<Vec<_>>()
                };
                if binds(&loaded.config) != binds(running) {
                    tracing::warn!(
                        "reload: listener names or addresses changed; that takes a restart"
                    );
                }
                shared.settings.store(Arc::new(settings));
                tracing::info!(config = %path.display(), "configuration reloaded");
            }
        },
    }
    notify(&[sd_notify::NotifyState::Ready]);
}

/// Everything a reload must build before it may swap anything in.
fn prepare(
    c: &Config,
    own: &[std::net::SocketAddr],
) -> anyhow::Result<(Settings, Lookup, TlsClients, laneway_auth::Policy)> {
    let settings = Settings::new(c)?;
    let lookup = lookup(c, own)?;
    let tls = TlsClients::new(c.outbound.ca_file.as_deref()).map_err(anyhow::Error::msg)?;
    let auth = laneway_auth::Policy::from_config(c).map_err(|e| anyhow::anyhow!(e.join("; ")))?;
    Ok((settings, lookup, tls, auth))
}

/// Suspends the destinations the configuration holds (`hold = true`): on
/// every node of a cluster.
fn hold_destinations(queue: &Queue, cluster: Option<&laneway_cluster::Cluster>, config: &Config) {
    let holds = crate::cluster::config_holds(config);
    if let Some(c) = cluster {
        c.holds().configure(&holds);
        return;
    }
    for d in holds {
        queue.suspend(&d);
        tracing::info!(domain = %d, "destination held by configuration");
    }
}

/// Keeps `laneway_suppressions` current (the count is a store call, not
/// made at scrape time); ends with the daemon.
fn spawn_suppression_gauge(auth: Arc<laneway_auth::SenderAuth>, lifecycle: Lifecycle) {
    tokio::spawn(async move {
        loop {
            if let Ok(n) = auth.suppressions().count().await {
                metrics::gauge!(laneway_common::metrics::SUPPRESSIONS).set(n as f64);
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(10)) => {}
                _ = lifecycle.shutdown_requested() => return,
            }
        }
    });
}
