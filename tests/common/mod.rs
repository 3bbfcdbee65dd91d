//! Shared helpers for the black-box tests: configs on disk, a loopback HTTP client, items.
#![allow(dead_code)]

use std::path::Path;

pub const TOKEN: &str = "test-push-token-0123456789";

/// A complete config for a conduit on loopback with its data under `dir`.
pub fn config_text(dir: &Path, extra_buffer: &str, extra_top: &str) -> String {
    format!(
        r#"
{extra_top}
cic_server = "cic-test"
[server]
listen = "127.0.0.1:0"
[log]
format = "json"
level = "info"
[organization]
short_name = "acme"
region = "us-east-1"
api_base_url = "http://127.0.0.1:9"
login_base_url = "http://127.0.0.1:9"
[buffer]
data_dir = "{}"
{extra_buffer}
[normalize]
default_country_code = "1"
[sources.http]
token = "{TOKEN}"
"#,
        dir.display().to_string().replace('\\', "\\\\")
    )
}

/// One push item: a new inbound call in `state`.
pub fn item(id: &str, state: &str) -> serde_json::Value {
    serde_json::json!({
        "interactionId": id,
        "attributes": {
            "Eic_CallIdKey": format!("{id}20240409"),
            "Eic_State": state,
            "Eic_CallDirection": "I",
            "Eic_ObjectType": "Call",
            "Eic_RemoteAddress": "+13175551234",
            "Eic_WorkgroupName": "Support",
            "Eic_InitiationTime": "20240409T140311Z"
        }
    })
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(30))
        .build()
        .unwrap()
}

/// Every event in a buffer directory, decoded, in sequence order.
pub fn events_in(data_dir: &Path) -> Vec<cic_conduit::event::InteractionEvent> {
    let codec = cic_conduit::event::EventCodec::new();
    let mut out = Vec::new();
    cic_conduit::buffer::inspect::scan_dir(data_dir, |_, p| out.push(codec.decode(p).expect("valid record")))
        .expect("scan");
    out
}
