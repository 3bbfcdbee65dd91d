//! A real Prometheus (Debian's `prometheus` package; `.ci/run` installs it) on loopback, for the
//! tests of the alert rules and the dashboard.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use super::{client, wait_until};

/// A free port on loopback (Prometheus takes a port, not `:0` with a way to learn it).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A Prometheus on loopback scraping `targets` (job `cic-conduit`) every second, with the rules
/// of `rules` (if any) evaluated every second.
pub struct Prometheus {
    child: Child,
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    pub async fn start(targets: &[&str], rules: Option<&Path>) -> Prometheus {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("prometheus.yml");
        let list = targets.iter().map(|t| format!("'{t}'")).collect::<Vec<_>>().join(", ");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n{}scrape_configs:\n  - job_name: cic-conduit\n    static_configs:\n      - targets: [{list}]\n",
                rules.map(|r| format!("rule_files:\n  - '{}'\n", r.display())).unwrap_or_default()
            ),
        )
        .unwrap();
        let port = free_port();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus (Debian's prometheus package: apt-get install prometheus)");
        let base = format!("http://127.0.0.1:{port}");
        let ready = format!("{base}/-/ready");
        wait_until(Duration::from_secs(60), "prometheus ready", || async {
            matches!(client().get(&ready).send().await, Ok(r) if r.status().is_success())
        })
        .await;
        Prometheus { child, base, _dir: dir }
    }

    /// The alerts pending or firing: (name, instance, state).
    pub async fn alerts(&self) -> Vec<(String, String, String)> {
        let v: Value = client()
            .get(format!("{}/api/v1/alerts", self.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        v["data"]["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| {
                let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
                (
                    s(&a["labels"]["alertname"]),
                    s(&a["labels"]["instance"]),
                    s(&a["state"]),
                )
            })
            .collect()
    }
}

impl Prometheus {
    /// The result of the instant query `expr`: Prometheus's `data.result`, or its error.
    pub async fn query(&self, expr: &str) -> Result<Vec<Value>, String> {
        let v: Value = client()
            .get(format!("{}/api/v1/query", self.base))
            .query(&[("query", expr)])
            .send()
            .await
            .map_err(|e| e.to_string())?
            .json()
            .await
            .map_err(|e| e.to_string())?;
        if v["status"] != "success" {
            return Err(format!("{}: {}", v["errorType"], v["error"]));
        }
        Ok(v["data"]["result"].as_array().cloned().unwrap_or_default())
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
