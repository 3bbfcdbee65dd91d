//! A generator of realistic CIC interaction traffic: Poisson arrivals at a given rate, realistic
//! state sequences, a media mix of calls, chats, emails and callbacks, inbound and outbound,
//! realistic durations (scaled, so that a short run sees interactions finish), phone numbers
//! and email addresses — emitted as the `Eic_*` attribute changes CIC reports.
//!
//! Deterministic for a seed. [`Traffic::advance`] is pure apart from its own state: the caller
//! supplies the clock.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use crate::timefmt;

/// One attribute change of one interaction (the first carries the full snapshot).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// The interaction id (CIC's call id).
    pub interaction_id: String,
    /// `Eic_*` attributes that changed.
    pub attributes: Vec<(&'static str, String)>,
}

/// Media types and their shares.
const MEDIA: [(&str, u32); 4] = [("Call", 62), ("Chat", 15), ("Email Object", 13), ("Callback", 10)];
/// The workgroups interactions are queued to.
pub const WORKGROUPS: [&str; 5] = ["Support", "Sales", "Billing", "Retention", "Technical"];
const AGENTS: [&str; 8] = [
    "jdoe", "asmith", "mgarcia", "lchen", "pkumar", "okafor", "bnovak", "tnguyen",
];
const NAMES: [&str; 8] = [
    "Pat Customer",
    "Robin Lee",
    "Sam Ortiz",
    "Alex Moreau",
    "Jamie Park",
    "Casey Brown",
    "Morgan Diaz",
    "Taylor Reed",
];

/// The generator.
pub struct Traffic {
    rng: fastrand::Rng,
    arrivals_per_sec: f64,
    /// Durations are multiplied by this (1.0: real time; 0.1: ten times faster).
    time_scale: f64,
    next_arrival_ms: i64,
    next_call: u64,
    order: u64,
    due: BinaryHeap<Reverse<(i64, u64, usize)>>,
    pending: Vec<Option<Change>>,
    free: Vec<usize>,
    started: u64,
}

impl Traffic {
    /// Average attribute changes per interaction, to turn a change rate into an arrival rate.
    pub const CHANGES_PER_INTERACTION: f64 = 5.0;

    /// Interactions arriving at `arrivals_per_sec` from `start_ms` on.
    pub fn new(seed: u64, arrivals_per_sec: f64, time_scale: f64, start_ms: i64) -> Self {
        Traffic {
            rng: fastrand::Rng::with_seed(seed),
            arrivals_per_sec: arrivals_per_sec.max(0.001),
            time_scale: time_scale.clamp(0.001, 10.0),
            next_arrival_ms: start_ms,
            next_call: 1_000_000_000 + seed % 1_000_000,
            order: 0,
            due: BinaryHeap::new(),
            pending: Vec::new(),
            free: Vec::new(),
            started: 0,
        }
    }

    /// Interactions started so far.
    pub fn started(&self) -> u64 {
        self.started
    }

    /// Changes scheduled but not yet due.
    pub fn scheduled(&self) -> usize {
        self.due.len()
    }

    fn secs(&mut self, lo: f64, hi: f64) -> i64 {
        ((lo + self.rng.f64() * (hi - lo)) * self.time_scale * 1000.0) as i64
    }

    fn schedule(&mut self, at: i64, change: Change) {
        let slot = match self.free.pop() {
            Some(i) => {
                self.pending[i] = Some(change);
                i
            }
            None => {
                self.pending.push(Some(change));
                self.pending.len() - 1
            }
        };
        self.order += 1;
        self.due.push(Reverse((at, self.order, slot)));
    }

    fn phone(&mut self) -> String {
        format!("+1{}555{:04}", 200 + self.rng.u32(0..800), self.rng.u32(0..10_000))
    }

    /// Starts one interaction at `t` and schedules its whole life.
    fn arrive(&mut self, t: i64) {
        self.started += 1;
        self.next_call += 1;
        let call_id = format!("{:010}", self.next_call % 10_000_000_000);
        let id = call_id.clone();
        let mut pick = self.rng.u32(0..100);
        let media = MEDIA
            .iter()
            .find(|(_, share)| {
                if pick < *share {
                    true
                } else {
                    pick -= share;
                    false
                }
            })
            .map_or("Call", |(m, _)| *m);
        let outbound = media == "Call" && self.rng.u32(0..100) < 20;
        let workgroup = WORKGROUPS[self.rng.usize(..WORKGROUPS.len())];
        let agent = AGENTS[self.rng.usize(..AGENTS.len())];
        let name = NAMES[self.rng.usize(..NAMES.len())];
        let remote = match media {
            "Chat" | "Email Object" => format!("customer{}@example.com", self.rng.u32(0..100_000)),
            _ if self.rng.u32(0..100) < 5 => "BLCKD".to_string(),
            _ => self.phone(),
        };
        let first_state = if outbound { "R" } else { "O" };
        let snapshot = vec![
            ("Eic_CallIdKey", format!("{call_id}{}", timefmt::yyyymmdd(t))),
            ("Eic_CallId", call_id),
            ("Eic_State", first_state.to_string()),
            ("Eic_CallDirection", if outbound { "O" } else { "I" }.to_string()),
            ("Eic_ObjectType", media.to_string()),
            ("Eic_RemoteAddress", remote),
            ("Eic_RemoteName", name.to_string()),
            ("Eic_LocalAddress", "+13175550100".to_string()),
            ("Eic_WorkgroupName", workgroup.to_string()),
            ("Eic_InitiationTime", timefmt::format_timestamp_ms(t)),
        ];
        let change = |attrs: Vec<(&'static str, String)>| Change {
            interaction_id: id.clone(),
            attributes: attrs,
        };
        self.schedule(t, change(snapshot));
        let state = |s: &str| vec![("Eic_State", s.to_string())];
        let mut at = t;
        if !outbound {
            at += self.secs(0.5, 6.0);
            // Offered to an agent: CIC names the alerted agent as the phone rings.
            let mut alert = state("A");
            alert.push(("Eic_UserName", agent.to_string()));
            self.schedule(at, change(alert));
            if self.rng.u32(0..100) < 6 {
                // Abandoned in queue.
                at += self.secs(1.0, 20.0);
                let mut end = state("E");
                end.push(("Eic_TerminationTime", timefmt::format_timestamp_ms(at)));
                self.schedule(at, change(end));
                return;
            }
        }
        at += self.secs(1.0, 4.0);
        let mut connect = state("C");
        connect.push(("Eic_UserName", agent.to_string()));
        self.schedule(at, change(connect));
        if media == "Call" && self.rng.u32(0..100) < 30 {
            at += self.secs(5.0, 60.0);
            self.schedule(at, change(state("H")));
            at += self.secs(5.0, 45.0);
            self.schedule(at, change(state("C")));
        }
        if self.rng.u32(0..100) < 10 {
            at += self.secs(10.0, 90.0);
            let other = WORKGROUPS[self.rng.usize(..WORKGROUPS.len())];
            let next_agent = AGENTS[self.rng.usize(..AGENTS.len())];
            self.schedule(
                at,
                change(vec![
                    ("Eic_WorkgroupName", other.to_string()),
                    ("Eic_UserName", next_agent.to_string()),
                ]),
            );
        }
        at += self.secs(20.0, 240.0);
        let local_end = outbound || media != "Call" || self.rng.bool();
        let mut end = state(if local_end { "I" } else { "E" });
        end.push(("Eic_TerminationTime", timefmt::format_timestamp_ms(at)));
        self.schedule(at, change(end));
    }

    /// Appends to `out` every change due by `now_ms`, in time order, starting the interactions
    /// that arrived by then.
    pub fn advance(&mut self, now_ms: i64, out: &mut Vec<Change>) {
        while self.next_arrival_ms <= now_ms {
            let t = self.next_arrival_ms;
            self.arrive(t);
            // Exponential inter-arrival times: a Poisson process.
            let gap = -(1.0 - self.rng.f64()).ln() / self.arrivals_per_sec;
            self.next_arrival_ms += ((gap * 1000.0) as i64).max(1);
        }
        self.drain(now_ms, out);
    }

    /// Appends to `out` every change due by `now_ms` of the interactions already started, with no
    /// new arrival: to let the lives under way run their course.
    pub fn drain(&mut self, now_ms: i64, out: &mut Vec<Change>) {
        while let Some(Reverse((at, _, slot))) = self.due.peek().copied() {
            if at > now_ms {
                break;
            }
            self.due.pop();
            if let Some(c) = self.pending[slot].take() {
                out.push(c);
            }
            self.free.push(slot);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arrivals_follow_the_rate_and_lives_run_their_course() {
        let mut t = Traffic::new(7, 20.0, 0.1, 0);
        let mut out = Vec::new();
        for ms in (0..=60_000).step_by(100) {
            t.advance(ms, &mut out);
        }
        let started = t.started() as f64;
        assert!(
            (1000.0..1400.0).contains(&started),
            "{started} arrivals in 60 s at 20/s"
        );
        let per = out.len() as f64 / started;
        assert!((3.0..7.0).contains(&per), "{per} changes per interaction");
        // Every interaction's first change is its full snapshot, and most have ended by now.
        let firsts = out.iter().filter(|c| c.attributes.len() >= 10).count() as f64;
        assert_eq!(firsts, started);
        let ends = out
            .iter()
            .filter(|c| c.attributes.iter().any(|(k, _)| *k == "Eic_TerminationTime"))
            .count() as f64;
        // Scaled lives last up to about 40 s: those that arrived in the last 40 s may still run.
        assert!(ends > 0.6 * started, "{ends} of {started} ended");
        let emails = out
            .iter()
            .filter(|c| {
                c.attributes
                    .iter()
                    .any(|(k, v)| *k == "Eic_RemoteAddress" && v.contains('@'))
            })
            .count();
        assert!(emails > 0);
        // Deterministic for a seed.
        let mut again = Traffic::new(7, 20.0, 0.1, 0);
        let mut out2 = Vec::new();
        for ms in (0..=60_000).step_by(100) {
            again.advance(ms, &mut out2);
        }
        assert_eq!(out, out2);
    }
}
