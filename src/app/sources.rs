//! The sources of a process that ingests: the shared ingest path, the carried state taken back
//! and saved, the push endpoint and the ICWS source.

use std::sync::Arc;
use std::time::Duration;

use super::AppError;
use crate::buffer::Buffer;
use crate::metrics::Metrics;
use crate::normalize::Normalizer;
use crate::settings::Settings;
use crate::shutdown::Shutdown;
use crate::source::Ingest;
use crate::source::carry::{self, Carrier};
use crate::source::http::HttpSource;
use crate::source::icws::members::Members;
use crate::source::icws::people::People;
use crate::source::icws::{IcwsSource, IcwsStatus};
use crate::supervisor::Supervisor;

/// The running sources (of a process that ingests).
#[derive(Default)]
pub(super) struct Sources {
    pub(super) push: Option<Arc<HttpSource>>,
    pub(super) icws: Option<tokio::task::JoinHandle<()>>,
    pub(super) icws_status: Option<Arc<IcwsStatus>>,
    pub(super) carrier: Option<(Arc<Carrier>, tokio::task::JoinHandle<()>)>,
}

/// What every source runs with.
pub(super) struct Around<'a> {
    pub(super) metrics: &'a Metrics,
    /// The `enabled` switch.
    pub(super) enabled: &'a crate::switch::Switch,
    pub(super) shutdown: &'a Shutdown,
    pub(super) supervisor: &'a Supervisor,
}

/// Starts the sources on `buffer`, after taking back their carried state.
pub(super) async fn start_sources(
    settings: &Settings,
    buffer: &Arc<dyn Buffer>,
    carried: Option<carry::Carried>,
    people: Option<People>,
    around: Around<'_>,
) -> Result<Sources, AppError> {
    let Around {
        metrics,
        enabled,
        shutdown,
        supervisor,
    } = around;
    let config = &settings.config;
    // One normalizer for every source: they describe the same CIC server's interactions.
    let normalizer = Normalizer::new(&config.cic_server, &config.normalize, metrics.normalize.clone());
    let ingest = Arc::new(Ingest::new(normalizer, buffer.clone()));
    let members: Option<Arc<Members>> = settings.icws_password.is_some().then(Default::default);
    if let Some(carried) = carried {
        let (ingest, members) = (ingest.clone(), members.clone());
        let only_icws = settings.push_token.is_none();
        let restored =
            tokio::task::spawn_blocking(move || carry::restore(carried, &ingest, members.as_deref(), only_icws))
                .await
                .map_err(|e| AppError::Join(e.to_string()))?;
        tracing::info!(
            interactions = restored.interactions,
            replayed_records = restored.replayed,
            "source state from before the restart taken back"
        );
    }
    let carrier = Arc::new(Carrier::new(
        &config.data_dir,
        &config.cic_server,
        ingest.clone(),
        members.clone(),
    ));
    let carrier_task = supervisor.spawn("source_state", carrier.clone().run(shutdown.clone()));
    let push = settings.push_token.clone().map(|token| {
        Arc::new(HttpSource::new(
            config.sources.http.clone(),
            token,
            ingest.clone(),
            metrics.source.clone(),
            enabled.clone(),
            shutdown.clone(),
            Duration::from_millis(config.server.body_timeout_ms),
        ))
    });
    let mut sources = Sources {
        push,
        carrier: Some((carrier, carrier_task)),
        ..Sources::default()
    };
    if let (Some(password), Some(members)) = (&settings.icws_password, members) {
        let source = IcwsSource::new(
            config.sources.icws.clone(),
            password.clone(),
            config.ha.clone(),
            ingest,
            metrics,
            shutdown.clone(),
            members,
        )?;
        let source = match people {
            Some(p) => source.with_people(p),
            None => source,
        }
        .with_switch(enabled.clone());
        sources.icws_status = Some(source.status());
        sources.icws = Some(supervisor.spawn("icws", source.run()));
    }
    Ok(sources)
}
