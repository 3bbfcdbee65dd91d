//! The Windows service: `cic-conduit service install | uninstall | run`. CIC runs on Windows
//! Server, so this is where most conduits run.
//!
//! `install` checks the config as `run` would, then registers the service with the Service
//! Control Manager: automatic (delayed) start, so the conduit comes up after CIC's own services
//! at boot; restarted by the SCM when it fails; its command line `service run --name <name>
//! --config <absolute path>`. `uninstall` stops it (a graceful stop) and removes it.
//!
//! `run` is what the SCM starts. The service reports `StartPending` while the conduit starts,
//! `Running` once it serves, and answers the SCM's controls: **Stop** and **Shutdown** are a
//! graceful shutdown (stop ingesting, answer what is stored, let requests in flight finish within
//! `drain_timeout_ms`, sync the buffer), reported as `StopPending` with that time as its hint;
//! **ParamChange** (`sc control <name> paramchange`) and the user control 128 that `cic-conduit
//! service reload` sends reload what a reload changes, as SIGHUP does on Linux. A service has no console: its log goes to `log.file`, by default `logs\` beside the
//! config (`%ProgramData%\cic-conduit\logs\cic-conduit.log` with the default config). A failure
//! to start or a fatal error ends the service with a service-specific exit code (1: did not
//! start, 2: stopped on an error), which the SCM records and acts on (restart).

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use windows_service::service::{
    ServiceAccess, ServiceAction, ServiceActionType, ServiceControl, ServiceControlAccept, ServiceErrorControl,
    ServiceExitCode, ServiceFailureActions, ServiceFailureResetPeriod, ServiceInfo, ServiceStartType, ServiceState,
    ServiceStatus, ServiceType, UserEventCode,
};
use windows_service::service_control_handler::{self, ServiceControlHandlerResult, ServiceStatusHandle};
use windows_service::service_dispatcher;
use windows_service::service_manager::{ServiceManager, ServiceManagerAccess};

use crate::app::Controls;
use crate::config::{self, Config};

/// The service's name unless `--name` gives another (one per CIC server on a machine).
pub const DEFAULT_NAME: &str = "cic-conduit";

/// The user-defined control that asks the service to reload (as `paramchange` does; `service
/// reload` sends it).
fn reload_control() -> UserEventCode {
    UserEventCode::from_raw(128).expect("128 is a user control code")
}

/// Win32 errors the commands explain.
const ERROR_SERVICE_DOES_NOT_EXIST: i32 = 1060;
const ERROR_FAILED_SERVICE_CONTROLLER_CONNECT: i32 = 1063;
const ERROR_SERVICE_EXISTS: i32 = 1073;
const ERROR_ACCESS_DENIED: i32 = 5;

/// Why a service command failed.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The config does not load or does not suit a service.
    #[error("{0}")]
    Config(String),
    /// A call to the Service Control Manager failed.
    #[error("{what}: {}", describe(source))]
    Scm {
        /// What was being done.
        what: String,
        /// The Windows error.
        source: windows_service::Error,
    },
    /// `service run` started from a console rather than by the SCM.
    #[error(
        "`service run` is what the Service Control Manager starts; start the service with `sc start {0}` (or run the conduit in this console with `cic-conduit run --config <file>`)"
    )]
    NotFromScm(String),
    /// The service stopped on an error (logged in full to its log file).
    #[error("the service stopped on an error: {0}")]
    Failed(String),
}

fn scm(what: impl Into<String>) -> impl FnOnce(windows_service::Error) -> ServiceError {
    let what = what.into();
    move |source| {
        let what = match os_error(&source) {
            Some(ERROR_ACCESS_DENIED) => format!("{what} (run it from an administrator's prompt)"),
            _ => what,
        };
        ServiceError::Scm { what, source }
    }
}

/// The error with its Windows cause (the crate's own text leaves the cause out).
fn describe(e: &windows_service::Error) -> String {
    match e {
        windows_service::Error::Winapi(io) => io.to_string(),
        other => other.to_string(),
    }
}

fn os_error(e: &windows_service::Error) -> Option<i32> {
    match e {
        windows_service::Error::Winapi(io) => io.raw_os_error(),
        _ => None,
    }
}

/// `%ProgramData%\cic-conduit`: the default home of the config (and so of the log).
pub fn program_data() -> PathBuf {
    std::env::var_os("ProgramData")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(r"C:\ProgramData"))
        .join("cic-conduit")
}

/// The config file when `--config` is not given: `%ProgramData%\cic-conduit\cic-conduit.toml`.
pub fn default_config() -> PathBuf {
    program_data().join("cic-conduit.toml")
}

/// The log file when `log.file` is not set: `logs\cic-conduit.log` beside the config file (so
/// `%ProgramData%\cic-conduit\logs\cic-conduit.log` with the default config). Taken from the
/// config's path rather than the service's environment, the same for `install` and the service.
pub fn default_log_file(config: &Path) -> PathBuf {
    config
        .parent()
        .unwrap_or(Path::new(""))
        .join("logs")
        .join("cic-conduit.log")
}

/// Loads `path` as the service will, and checks what a service needs besides: absolute paths (a
/// service's working directory is the system directory).
fn load(path: &Path) -> Result<Config, ServiceError> {
    let cfg = config::load_file(path).map_err(|e| ServiceError::Config(format!("{}: {e}", path.display())))?;
    crate::settings::Settings::from_config(cfg.clone())
        .map_err(|e| ServiceError::Config(format!("{}: {e}", path.display())))?;
    if !cfg.data_dir.is_absolute() {
        return Err(ServiceError::Config(format!(
            "{}: data_dir `{}` must be an absolute path for a service (its working directory is the system directory), such as {}",
            path.display(),
            cfg.data_dir.display(),
            program_data().join("data").display()
        )));
    }
    Ok(cfg)
}

/// What `install` registered: the config on the service's command line, and the settings
/// Windows refused (the service runs without them).
pub struct Installed {
    /// The config file, absolute, on the service's command line.
    pub config: PathBuf,
    /// Settings the SCM did not take (failure actions, say), with why.
    pub warnings: Vec<String>,
}

/// Registers the service `name` to run this executable with `config`.
pub fn install(name: &str, config: &Path) -> Result<Installed, ServiceError> {
    let config = std::path::absolute(config).map_err(|e| ServiceError::Config(format!("{}: {e}", config.display())))?;
    load(&config)?;
    let exe = std::env::current_exe().map_err(|e| ServiceError::Config(format!("this executable's path: {e}")))?;
    let manager = ServiceManager::local_computer(
        None::<&str>,
        ServiceManagerAccess::CONNECT | ServiceManagerAccess::CREATE_SERVICE,
    )
    .map_err(scm("connecting to the Service Control Manager"))?;
    let info = ServiceInfo {
        name: OsString::from(name),
        display_name: OsString::from(if name == DEFAULT_NAME {
            DEFAULT_NAME.to_string()
        } else {
            format!("cic-conduit ({name})")
        }),
        service_type: ServiceType::OWN_PROCESS,
        start_type: ServiceStartType::AutoStart,
        error_control: ServiceErrorControl::Normal,
        executable_path: exe,
        launch_arguments: vec![
            "service".into(),
            "run".into(),
            "--name".into(),
            name.into(),
            "--config".into(),
            config.clone().into_os_string(),
        ],
        dependencies: vec![],
        account_name: None,
        account_password: None,
    };
    let exists = || {
        ServiceError::Config(format!(
            "a service named {name} is installed already: `cic-conduit service uninstall --name {name}` first, or give another --name"
        ))
    };
    if manager.open_service(name, ServiceAccess::QUERY_STATUS).is_ok() {
        return Err(exists());
    }
    let service = manager
        .create_service(&info, ServiceAccess::CHANGE_CONFIG | ServiceAccess::QUERY_STATUS)
        .map_err(|e| match os_error(&e) {
            Some(ERROR_SERVICE_EXISTS) => exists(),
            _ => scm(format!("creating the service {name}"))(e),
        })?;
    let mut warnings = Vec::new();
    let mut note = |what: &str, r: windows_service::Result<()>| {
        if let Err(e) = r {
            warnings.push(format!("{what}: {}", describe(&e)));
        }
    };
    note(
        "description",
        service.set_description(
            "Carries Genesys PureConnect (CIC) interaction events and user statuses to Genesys Cloud, durably.",
        ),
    );
    note("delayed automatic start", service.set_delayed_auto_start(true));
    let restart = |secs| ServiceAction {
        action_type: ServiceActionType::Restart,
        delay: Duration::from_secs(secs),
    };
    note(
        "restart on failure",
        service.update_failure_actions(ServiceFailureActions {
            reset_period: ServiceFailureResetPeriod::After(Duration::from_secs(86_400)),
            reboot_msg: None,
            command: None,
            actions: Some(vec![restart(10), restart(30), restart(60)]),
        }),
    );
    note(
        "restart after a stop on an error",
        service.set_failure_actions_on_non_crash_failures(true),
    );
    Ok(Installed { config, warnings })
}

/// Stops the service `name` (gracefully, waiting for it) and removes it.
pub fn uninstall(name: &str) -> Result<(), ServiceError> {
    let manager = ServiceManager::local_computer(None::<&str>, ServiceManagerAccess::CONNECT)
        .map_err(scm("connecting to the Service Control Manager"))?;
    let service = manager
        .open_service(
            name,
            ServiceAccess::QUERY_STATUS | ServiceAccess::STOP | ServiceAccess::DELETE,
        )
        .map_err(|e| match os_error(&e) {
            Some(ERROR_SERVICE_DOES_NOT_EXIST) => ServiceError::Config(format!("no service named {name} is installed")),
            _ => scm(format!("opening the service {name}"))(e),
        })?;
    let status = service.query_status().map_err(scm("asking the service's state"))?;
    if status.current_state != ServiceState::Stopped {
        if status.current_state != ServiceState::StopPending {
            service.stop().map_err(scm(format!("stopping {name}")))?;
        }
        // The service's stop is bounded by its drain_timeout_ms (seconds); one still stopping
        // after 5 minutes is left installed, and said so.
        let deadline = Instant::now() + Duration::from_secs(300);
        loop {
            let s = service.query_status().map_err(scm("asking the service's state"))?;
            if s.current_state == ServiceState::Stopped {
                break;
            }
            if Instant::now() > deadline {
                return Err(ServiceError::Failed(format!(
                    "{name} did not stop within 5 minutes; it is left installed"
                )));
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }
    service.delete().map_err(scm(format!("removing {name}")))
}

/// Asks the running service `name` to reload its config (what a reload changes: `log.level`,
/// `enabled`, `sinks.journey.rate_limit_share`).
pub fn reload(name: &str) -> Result<(), ServiceError> {
    let manager = ServiceManager::local_computer(None::<&str>, ServiceManagerAccess::CONNECT)
        .map_err(scm("connecting to the Service Control Manager"))?;
    let service = manager
        .open_service(name, ServiceAccess::USER_DEFINED_CONTROL | ServiceAccess::QUERY_STATUS)
        .map_err(|e| match os_error(&e) {
            Some(ERROR_SERVICE_DOES_NOT_EXIST) => ServiceError::Config(format!("no service named {name} is installed")),
            _ => scm(format!("opening the service {name}"))(e),
        })?;
    service
        .notify(reload_control())
        .map_err(scm(format!("asking {name} to reload (is it running?)")))?;
    Ok(())
}

/// What [`run`] hands the service's main function (the SCM calls it on its own thread).
struct Launch {
    name: String,
    config: PathBuf,
    outcome: OnceLock<Result<(), String>>,
}

static LAUNCH: OnceLock<Launch> = OnceLock::new();

windows_service::define_windows_service!(ffi_service_main, service_main);

/// Runs as the service `name` (the SCM starts this), until the SCM stops it.
pub fn run(name: &str, config: &Path) -> Result<(), ServiceError> {
    let launch = Launch {
        name: name.to_string(),
        config: config.to_path_buf(),
        outcome: OnceLock::new(),
    };
    if LAUNCH.set(launch).is_err() {
        return Err(ServiceError::Failed("the service runs already in this process".into()));
    }
    service_dispatcher::start(name, ffi_service_main).map_err(|e| match os_error(&e) {
        Some(ERROR_FAILED_SERVICE_CONTROLLER_CONNECT) => ServiceError::NotFromScm(name.to_string()),
        _ => scm("starting the service dispatcher")(e),
    })?;
    match LAUNCH.get().and_then(|l| l.outcome.get()) {
        Some(Err(e)) => Err(ServiceError::Failed(e.clone())),
        _ => Ok(()),
    }
}

fn service_main(_arguments: Vec<OsString>) {
    let Some(launch) = LAUNCH.get() else { return };
    let outcome = run_service(launch);
    let _ = launch.outcome.set(outcome);
}

fn status(state: ServiceState, accept: ServiceControlAccept, exit: ServiceExitCode, wait: Duration) -> ServiceStatus {
    ServiceStatus {
        service_type: ServiceType::OWN_PROCESS,
        current_state: state,
        controls_accepted: accept,
        exit_code: exit,
        checkpoint: 0,
        wait_hint: wait,
        process_id: None,
    }
}

/// The service's life: report, start, serve, stop; the result is also the service's exit code.
fn run_service(launch: &Launch) -> Result<(), String> {
    let controls = Controls::default();
    let handle: Arc<OnceLock<ServiceStatusHandle>> = Arc::new(OnceLock::new());
    let stop_hint = Arc::new(OnceLock::<Duration>::new());
    let on_control = {
        let (controls, handle, stop_hint) = (controls.clone(), handle.clone(), stop_hint.clone());
        move |control| match control {
            ServiceControl::Stop | ServiceControl::Shutdown => {
                tracing::info!(control = ?control, "the Service Control Manager asks the service to stop");
                if let Some(h) = handle.get() {
                    let wait = stop_hint.get().copied().unwrap_or(Duration::from_secs(30));
                    let _ = h.set_service_status(status(
                        ServiceState::StopPending,
                        ServiceControlAccept::empty(),
                        ServiceExitCode::NO_ERROR,
                        wait,
                    ));
                }
                controls.stop.notify_one();
                ServiceControlHandlerResult::NoError
            }
            ServiceControl::ParamChange | ServiceControl::UserEvent(_) => {
                tracing::info!(control = ?control, "the Service Control Manager asks for a reload");
                controls.reload.notify_one();
                ServiceControlHandlerResult::NoError
            }
            ServiceControl::Interrogate => ServiceControlHandlerResult::NoError,
            _ => ServiceControlHandlerResult::NotImplemented,
        }
    };
    let h = service_control_handler::register(&launch.name, on_control).map_err(|e| describe(&e))?;
    let _ = handle.set(h);
    let report = |state, accept, exit, wait| {
        if let Err(e) = h.set_service_status(status(state, accept, exit, wait)) {
            tracing::warn!(error = %e, "the service status was not taken by the Service Control Manager");
        }
    };
    report(
        ServiceState::StartPending,
        ServiceControlAccept::empty(),
        ServiceExitCode::NO_ERROR,
        Duration::from_secs(60),
    );
    let stopped = |code: u32, why: String| {
        tracing::error!(error = %why, "the service stops");
        report(
            ServiceState::Stopped,
            ServiceControlAccept::empty(),
            ServiceExitCode::ServiceSpecific(code),
            Duration::ZERO,
        );
        Err(why)
    };
    let cfg = match load(&launch.config) {
        Ok(cfg) => cfg,
        Err(e) => {
            crate::telemetry::init_with(&Default::default(), Some(&default_log_file(&launch.config)));
            return stopped(1, e.to_string());
        }
    };
    crate::telemetry::init_with(&cfg.log, Some(&default_log_file(&launch.config)));
    for w in &cfg.warnings {
        tracing::warn!("{w}");
    }
    let _ = stop_hint.set(Duration::from_millis(cfg.drain_timeout_ms) + Duration::from_secs(15));
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("conduit")
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return stopped(1, format!("the runtime did not start: {e}")),
    };
    tracing::info!(service = %launch.name, config = %launch.config.display(), "starting as a Windows service");
    let ran = std::cell::Cell::new(false);
    let served = rt.block_on(crate::app::serve(cfg, &launch.config, controls, |running| {
        ran.set(true);
        tracing::info!(listen = %running.addr, "the service runs");
        report(
            ServiceState::Running,
            ServiceControlAccept::STOP | ServiceControlAccept::SHUTDOWN | ServiceControlAccept::PARAM_CHANGE,
            ServiceExitCode::NO_ERROR,
            Duration::ZERO,
        );
    }));
    drop(rt);
    match served {
        Ok(()) => {
            tracing::info!("the service stopped");
            report(
                ServiceState::Stopped,
                ServiceControlAccept::empty(),
                ServiceExitCode::NO_ERROR,
                Duration::ZERO,
            );
            Ok(())
        }
        Err(e) => stopped(if ran.get() { 2 } else { 1 }, e.to_string()),
    }
}
