//! Crash safety of the real binary: push events over HTTP, SIGKILL the conduit at random
//! moments, restart it, and check that every event that got a 202 is in the buffer.
#![cfg(unix)]

mod common;

use std::collections::HashSet;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;

const BIN: &str = env!("CARGO_BIN_EXE_cic-conduit");
const KILLS: usize = 24;

/// A small xorshift so kill moments differ run to run without a dependency.
fn rng(seed: &mut u64) -> u64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    *seed
}

#[test]
fn sigkill_never_loses_an_accepted_event() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = dir.path().join("conduit.toml");
    // Small segments so kills also land around segment rolls.
    std::fs::write(
        &config,
        config_text(&data, "segment_max_bytes = 65536\nmax_record_bytes = 16384", ""),
    )
    .unwrap();
    let accepted: Arc<Mutex<HashSet<String>>> = Arc::default();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    println!("seed {seed}");
    for round in 0..KILLS {
        let (mut child, addr) = spawn_conduit(BIN, &config);
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (acked_tx, acked_rx) = std::sync::mpsc::channel::<()>();
        let pushers: Vec<_> = (0..4)
            .map(|p| {
                let (accepted, stop, addr) = (accepted.clone(), stop.clone(), addr.clone());
                let acked_tx = acked_tx.clone();
                rt.spawn(async move {
                    let c = client();
                    let mut n = 0;
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        let ids: Vec<String> = (0..50).map(|i| format!("r{round}p{p}n{n}i{i}")).collect();
                        let body = serde_json::Value::Array(ids.iter().map(|id| item(id, "O")).collect());
                        let resp = c
                            .post(format!("http://{addr}/v1/interactions"))
                            .bearer_auth(TOKEN)
                            .body(body.to_string())
                            .send()
                            .await;
                        match resp {
                            Ok(r) if r.status().as_u16() == 202 => {
                                accepted.lock().unwrap().extend(ids);
                                let _ = acked_tx.send(());
                            }
                            Ok(r) => panic!("unexpected status {}", r.status()),
                            Err(_) => return, // killed mid-request: not accepted
                        }
                        n += 1;
                    }
                })
            })
            .collect();
        // The kill lands after a random number of accepted requests, while the other pushers'
        // requests are in flight.
        let target = 2 + rng(&mut seed) % 20;
        for _ in 0..target {
            acked_rx
                .recv_timeout(Duration::from_secs(30))
                .expect("pushers stalled before the kill");
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for p in pushers {
            rt.block_on(p).unwrap();
        }
    }
    let accepted = accepted.lock().unwrap().clone();
    assert!(
        accepted.len() > KILLS * 50,
        "too little traffic to mean anything: {}",
        accepted.len()
    );

    // Restart once more and stop cleanly with SIGTERM: recovery runs, exit status is 0.
    let (mut child, _) = spawn_conduit(BIN, &config);
    terminate(&child);
    assert!(child.wait().unwrap().success(), "SIGTERM must end in exit status 0");

    let stored: HashSet<String> = events_in(&data)
        .into_iter()
        .filter(|e| e.event_type == cic_conduit::event::EventType::Started)
        .map(|e| e.interaction.call_id)
        .collect();
    let lost: Vec<&String> = accepted.iter().filter(|id| !stored.contains(*id)).collect();
    assert!(
        lost.is_empty(),
        "{} accepted interactions lost, e.g. {:?}",
        lost.len(),
        &lost[..lost.len().min(5)]
    );

    let verify = Command::new(BIN)
        .args(["buffer", "verify", "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(verify.status.success(), "{}", String::from_utf8_lossy(&verify.stdout));
}
