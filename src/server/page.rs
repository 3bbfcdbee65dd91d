//! The Integration Health page at `GET /`: the `/health` document as a page a PureConnect admin
//! reads at a glance, on a desk or a phone.
//!
//! Server-rendered HTML with no script at all: it refreshes itself every [`REFRESH_SECS`], the
//! user table is filtered by a plain form (`?state=error&q=smith`), the charts are inline SVG.
//! Everything shown comes from the same [`Health`] document as `/health` (so the two never
//! disagree), the last hour's [`Point`]s and the dead-letter counters; every text that comes from
//! outside (names, messages, hosts) is escaped. Never shows a secret: the document holds none.

use std::fmt::Write as _;

use crate::dispatch::gate::{DestState, DestinationHealth};
use crate::health::{BufferState, Health, Overall};
use crate::history::Point;
use crate::users::status::{State as UserState, UserStatus};

/// The page reloads itself this often.
pub const REFRESH_SECS: u32 = 15;

/// At most this many users are listed (the filter narrows the rest down).
pub const USERS_SHOWN: usize = 200;

/// The user table's filter, from the query string.
#[derive(Debug, Default, Clone, serde::Deserialize)]
pub struct UserFilter {
    /// `synced`, `error`, `not_synced`, `removed`, or empty for all.
    #[serde(default)]
    pub state: String,
    /// Text the user's CIC id, email or reason contains (case-insensitive).
    #[serde(default)]
    pub q: String,
}

impl UserFilter {
    /// The state asked for, if it is one.
    pub fn state(&self) -> Option<UserState> {
        [
            UserState::Synced,
            UserState::Error,
            UserState::NotSynced,
            UserState::Removed,
        ]
        .into_iter()
        .find(|s| s.label() == self.state)
    }

    /// Whether `(id, status)` passes.
    pub fn passes(&self, id: &str, u: &UserStatus) -> bool {
        if self.state().is_some_and(|s| s != u.state) {
            return false;
        }
        let q = self.q.trim().to_lowercase();
        q.is_empty()
            || [
                Some(id),
                u.user_name.as_deref(),
                u.reason.as_deref(),
                u.message.as_deref(),
            ]
            .into_iter()
            .flatten()
            .any(|t| t.to_lowercase().contains(&q))
    }
}

/// The users listed: those passing the filter (at most [`USERS_SHOWN`]), and how many passed.
pub struct Users {
    /// The filter applied.
    pub filter: UserFilter,
    /// `(CIC user id, status)`, by id.
    pub shown: Vec<(String, UserStatus)>,
    /// How many passed the filter.
    pub matching: usize,
}

/// What the page shows besides the health document.
pub struct Extras {
    /// The last hour, oldest first.
    pub points: Vec<Point>,
    /// Dead letters since start: `(sink, reason, count)`, the non-zero ones.
    pub dead_letters: Vec<(String, String, u64)>,
    /// The user table, when user sync runs.
    pub users: Option<Users>,
    /// The data directory (for the commands the page suggests).
    pub data_dir: String,
}

/// HTML-escapes `s`.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `3 h 12 min`, `4 min 5 s`, `12 s`.
pub fn duration(secs: u64) -> String {
    match secs {
        s if s >= 86_400 => format!("{} d {} h", s / 86_400, s % 86_400 / 3600),
        s if s >= 3600 => format!("{} h {} min", s / 3600, s % 3600 / 60),
        s if s >= 60 => format!("{} min {} s", s / 60, s % 60),
        s => format!("{s} s"),
    }
}

/// `10 GiB`, `512 MiB`, `64 KiB`.
pub fn size(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 30 => format!("{:.1} GiB", b as f64 / (1u64 << 30) as f64).replace(".0 ", " "),
        b if b >= 1 << 20 => format!("{} MiB", b >> 20),
        b => format!("{} KiB", b.div_ceil(1024)),
    }
}

fn overall(o: Overall) -> (&'static str, &'static str, &'static str) {
    match o {
        Overall::Ok => ("OK", "ok", "Events flow from CIC to Genesys Cloud."),
        Overall::Degraded => ("DEGRADED", "warn", "Working, with something to look at below."),
        Overall::Standby => (
            "STANDBY",
            "info",
            "The own CIC server is the backup of its pair: nothing to read; the buffer drains.",
        ),
        Overall::Disabled => ("DISABLED", "info", "Ingesting is switched off (enabled = false)."),
        Overall::Failing => (
            "FAILING",
            "bad",
            "The conduit is stopping; its service manager restarts it.",
        ),
    }
}

fn dest_state(s: DestState) -> (&'static str, &'static str) {
    match s {
        DestState::Ok => ("ok", "ok"),
        DestState::Retrying => ("retrying", "warn"),
        DestState::Paused => ("paused (rate limited)", "warn"),
        DestState::AuthFailing => ("credentials refused", "bad"),
    }
}

fn buffer_state(s: BufferState) -> (&'static str, &'static str) {
    match s {
        BufferState::Ok => ("ok", "ok"),
        BufferState::Full => ("full", "bad"),
        BufferState::WriteError => ("write error", "bad"),
        BufferState::Recovering => ("recovering", "warn"),
        BufferState::Damaged => ("damaged", "warn"),
        BufferState::Failed => ("failed", "bad"),
    }
}

const STYLE: &str = "body{font:15px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;margin:0;background:#f4f5f7;color:#1d2330}\
main{max-width:980px;margin:0 auto;padding:12px}\
h1{font-size:20px;margin:4px 0 10px}h2{font-size:16px;margin:0 0 8px}\
section{background:#fff;border-radius:8px;padding:12px 14px;margin:0 0 12px;box-shadow:0 1px 2px #0002}\
.badge{display:inline-block;border-radius:6px;padding:2px 8px;font-weight:600}\
.ok{background:#dff3e4;color:#14532d}.warn{background:#fff1d6;color:#7a4a00}.bad{background:#fde2e1;color:#8a1c14}.info{background:#e3ecfb;color:#1e3a8a}\
.big{font-size:26px;padding:6px 14px}.muted{color:#5b6475}\
table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:5px 8px;border-bottom:1px solid #e5e7eb;vertical-align:top}\
th{font-weight:600;color:#5b6475;white-space:nowrap}.scroll{overflow-x:auto}\
dl{display:grid;grid-template-columns:max-content 1fr;gap:3px 14px;margin:0}dt{color:#5b6475}dd{margin:0;overflow-wrap:anywhere}\
ul{margin:6px 0 0;padding-left:20px}code{background:#f0f1f4;padding:1px 4px;border-radius:4px;overflow-wrap:anywhere}\
meter{width:160px;max-width:100%}svg{width:100%;max-width:460px;height:auto;display:block}\
form{display:flex;flex-wrap:wrap;gap:6px;margin:0 0 8px}input,select,button{font:inherit;padding:4px 6px}\
.charts{display:grid;grid-template-columns:repeat(auto-fit,minmax(260px,1fr));gap:12px}@media (max-width:640px){table.cards tr:first-child{display:none}table.cards tr{display:block;border-bottom:1px solid #e5e7eb;padding:6px 0}table.cards td{display:block;border:0;padding:1px 0}table.cards td[data-l]::before{content:attr(data-l) \": \";color:#5b6475}}";

/// The page.
pub fn render(h: &Health, x: &Extras) -> String {
    let mut p = String::with_capacity(16 * 1024);
    let (label, class, meaning) = overall(h.status);
    let _ = write!(
        p,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
<meta http-equiv=\"refresh\" content=\"{REFRESH_SECS}\">\
<title>{label} · cic-conduit {cic}</title><style>{STYLE}</style></head><body><main>\
<h1>Integration Health · {cic}</h1>\
<section id=\"overall\"><span class=\"badge big {class}\">{label}</span> <span>{meaning}</span>\
<p class=\"muted\">cic-conduit {version} · role {role} · up {uptime} · refreshes every {REFRESH_SECS} s</p>",
        cic = esc(&h.cic_server),
        version = esc(h.version),
        role = esc(&serde_json::to_value(h.role)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default()),
        uptime = duration(h.uptime_secs),
    );
    let problems = problems(h, x);
    if !problems.is_empty() {
        p.push_str("<ul id=\"problems\">");
        for pr in problems {
            let _ = write!(p, "<li>{pr}</li>");
        }
        p.push_str("</ul>");
    }
    p.push_str("</section>");
    cic(&mut p, h);
    destinations(&mut p, &h.destinations);
    buffer(&mut p, h);
    charts(&mut p, &x.points);
    dead_letters(&mut p, x);
    users(&mut p, h, x);
    p.push_str("</main></body></html>\n");
    p
}

/// One line per thing to look at, most serious first (already escaped).
fn problems(h: &Health, x: &Extras) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(f) = &h.failure {
        out.push(format!("A part of the conduit failed: {}", esc(f)));
    }
    if h.buffer.state != BufferState::Ok {
        out.push(format!(
            "Buffer {}{}",
            buffer_state(h.buffer.state).0,
            h.buffer
                .reason
                .as_deref()
                .map(|r| format!(": {}", esc(r)))
                .unwrap_or_default()
        ));
    }
    for d in h.destinations.iter().filter(|d| d.state != DestState::Ok) {
        let why = d
            .last_error
            .as_ref()
            .map(|e| format!(": {}", esc(&e.message)))
            .unwrap_or_default();
        out.push(format!(
            "Genesys Cloud ({}) {}{why}",
            esc(d.name),
            dest_state(d.state).0
        ));
    }
    if let Some(c) = &h.cic
        && !c.connected
        && c.role != crate::source::icws::Role::Standby
    {
        out.push(format!(
            "No session with CIC{}",
            c.last_error
                .as_deref()
                .map(|e| format!(": {}", esc(e)))
                .unwrap_or_default()
        ));
    }
    let dead: u64 = x.dead_letters.iter().map(|(_, _, n)| n).sum();
    if dead > 0 {
        out.push(format!("{dead} events refused for good since start: see Dead letters"));
    }
    if let Some(u) = &h.users
        && u.error > 0
    {
        out.push(format!("{} CIC users cannot be synced: see Users", u.error));
    }
    out
}

fn cic(p: &mut String, h: &Health) {
    let Some(c) = &h.cic else { return };
    let (state, class) = match (c.connected, c.role) {
        (_, crate::source::icws::Role::Standby) => ("standing by (own server is the backup)", "info"),
        (true, _) => ("connected", "ok"),
        (false, _) => ("not connected", "bad"),
    };
    let opt = |v: &Option<String>| v.as_deref().map(esc).unwrap_or_else(|| "—".into());
    let secs = |v: Option<u64>| v.map(duration).unwrap_or_else(|| "—".into());
    let _ = write!(
        p,
        "<section id=\"cic\"><h2>CIC connection</h2><dl>\
<dt>State</dt><dd><span class=\"badge {class}\">{state}</span></dd>\
<dt>Role in the pair</dt><dd>{role}</dd><dt>Host</dt><dd>{host}</dd><dt>IC server</dt><dd>{ic}</dd>\
<dt>Pair</dt><dd>{pair}</dd><dt>Session age</dt><dd>{age}</dd><dt>Last message</dt><dd>{last} ago</dd>\
<dt>Last error</dt><dd>{err}</dd></dl></section>",
        role = match c.role {
            crate::source::icws::Role::Active => "active",
            crate::source::icws::Role::Standby => "standby",
        },
        host = opt(&c.host),
        ic = opt(&c.ic_server),
        pair = if c.pair.is_empty() {
            "—".to_string()
        } else {
            esc(&c.pair.join(", "))
        },
        age = secs(c.session_age_secs),
        last = secs(c.last_message_secs_ago),
        err = opt(&c.last_error),
    );
}

fn destinations(p: &mut String, ds: &[DestinationHealth]) {
    p.push_str("<section id=\"destinations\"><h2>Genesys Cloud</h2>");
    if ds.is_empty() {
        p.push_str(
            "<p class=\"muted\">No destination is enabled in this process: events stay in the buffer.</p></section>",
        );
        return;
    }
    p.push_str(
        "<div class=\"scroll\"><table class=\"cards\"><tr><th>Destination</th><th>State</th><th>Rate limit left</th>\
<th>In flight</th><th>Last success</th><th>Last error</th></tr>",
    );
    for d in ds {
        let (state, class) = dest_state(d.state);
        let paused = d
            .paused_until
            .as_deref()
            .map(|t| format!("<br><span class=\"muted\">until {}</span>", esc(t)))
            .unwrap_or_default();
        let err = match &d.last_error {
            None => "—".to_string(),
            Some(e) => format!(
                "{}{} {}{}",
                esc(&e.at),
                e.status.map(|s| format!(" · HTTP {s}")).unwrap_or_default(),
                esc(&e.message),
                e.correlation_id
                    .as_deref()
                    .map(|c| format!(
                        "<br><span class=\"muted\">correlation id <code>{}</code></span>",
                        esc(c)
                    ))
                    .unwrap_or_default()
            ),
        };
        let _ = write!(
            p,
            "<tr><td><b>{name}</b></td><td data-l=\"State\"><span class=\"badge {class}\">{state}</span>{paused}</td>\
<td data-l=\"Rate limit left\">{rl}</td><td data-l=\"In flight\">{fl}</td><td data-l=\"Last success\">{ok}</td>\
<td data-l=\"Last error\">{err}</td></tr>",
            name = esc(d.name),
            rl = d
                .ratelimit_remaining
                .map(|r| r.to_string())
                .unwrap_or_else(|| "—".into()),
            fl = d.in_flight,
            ok = d.last_success.as_deref().map(esc).unwrap_or_else(|| "—".into()),
        );
    }
    p.push_str("</table></div></section>");
}

fn buffer(p: &mut String, h: &Health) {
    let b = &h.buffer;
    let (state, class) = buffer_state(b.state);
    let _ = write!(
        p,
        "<section id=\"buffer\"><h2>Buffer</h2><dl>\
<dt>State</dt><dd><span class=\"badge {class}\">{state}</span>{reason}</dd>\
<dt>Waiting</dt><dd>{backlog} events</dd><dt>Oldest waiting</dt><dd>{oldest}</dd>",
        reason = b.reason.as_deref().map(|r| format!(" {}", esc(r))).unwrap_or_default(),
        backlog = b.backlog_records,
        oldest = match (b.backlog_records, b.oldest_age_secs) {
            (0, _) => "nothing waits".to_string(),
            (_, Some(s)) => format!("{} ago", duration(s)),
            (_, None) => "not read yet".to_string(),
        },
    );
    if b.max_bytes > 0 {
        let _ = write!(
            p,
            "<dt>Fill</dt><dd><meter min=\"0\" max=\"100\" low=\"70\" high=\"90\" optimum=\"0\" value=\"{pct}\"></meter> \
{pct}% of {cap}</dd>",
            pct = b.used_percent,
            cap = size(b.max_bytes),
        );
    }
    let _ = write!(
        p,
        "<dt>Damaged records</dt><dd>{}</dd><dt>Persist</dt><dd>{}</dd>",
        b.damaged_records,
        esc(&serde_json::to_value(b.persist)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default())
    );
    if let Some(k) = &b.kafka {
        let parts: Vec<String> = k
            .partitions
            .iter()
            .map(|x| format!("{} (lag {})", x.partition, x.lag))
            .collect();
        let _ = write!(
            p,
            "<dt>Kafka topic</dt><dd>{}</dd><dt>Partitions</dt><dd>{}</dd>",
            esc(&k.topic),
            if parts.is_empty() {
                "—".to_string()
            } else {
                parts.join(", ")
            }
        );
        if let Some(e) = &k.last_error {
            let _ = write!(p, "<dt>Kafka error</dt><dd>{}</dd>", esc(e));
        }
    }
    p.push_str("</dl></section>");
}

/// A line chart of `series` (each `(values, colour)`) as inline SVG, the values' top at `max`.
fn chart(series: &[(Vec<Option<f64>>, &str)], max: f64) -> String {
    let (w, h) = (300.0, 70.0);
    let n = series.iter().map(|(v, _)| v.len()).max().unwrap_or(0);
    let mut s = format!(
        "<svg viewBox=\"0 0 {w} {h}\" role=\"img\" preserveAspectRatio=\"none\"><rect width=\"{w}\" height=\"{h}\" fill=\"#fafbfc\"/>"
    );
    for (values, colour) in series {
        let pts: Vec<String> = values
            .iter()
            .enumerate()
            .filter_map(|(i, v)| {
                let v = (*v)?;
                let x = if n <= 1 { w } else { i as f64 * w / (n - 1) as f64 };
                let y = h - 2.0 - (v / max).clamp(0.0, 1.0) * (h - 4.0);
                Some(format!("{x:.1},{y:.1}"))
            })
            .collect();
        if pts.len() == 1 {
            let (x, y) = pts[0].split_once(',').unwrap_or(("0", "0"));
            let _ = write!(s, "<circle cx=\"{x}\" cy=\"{y}\" r=\"2.5\" fill=\"{colour}\"/>");
        } else if !pts.is_empty() {
            let _ = write!(
                s,
                "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"1.8\" points=\"{}\"/>",
                pts.join(" ")
            );
        }
    }
    s.push_str("</svg>");
    s
}

fn charts(p: &mut String, points: &[Point]) {
    p.push_str("<section id=\"last-hour\"><h2>Last hour</h2><div class=\"charts\">");
    let rates: Vec<Option<f64>> = points.iter().map(|x| Some(x.per_minute)).collect();
    let top = rates.iter().flatten().fold(0.0_f64, |a, b| a.max(*b));
    let now = points.last().map(|x| x.per_minute).unwrap_or(0.0);
    let _ = write!(
        p,
        "<figure style=\"margin:0\"><figcaption>Delivered: <b>{now:.0}</b> events/min now, peak {top:.0}</figcaption>{}</figure>",
        chart(&[(rates, "#2563eb")], top.max(1.0))
    );
    let p50: Vec<Option<f64>> = points.iter().map(|x| x.p50).collect();
    let p99: Vec<Option<f64>> = points.iter().map(|x| x.p99).collect();
    let top = p99.iter().chain(&p50).flatten().fold(0.0_f64, |a, b| a.max(*b));
    let last = |v: &[Option<f64>]| {
        v.iter()
            .rev()
            .flatten()
            .next()
            .map(|s| format!("{s:.2} s"))
            .unwrap_or_else(|| "—".into())
    };
    let _ = write!(
        p,
        "<figure style=\"margin:0\"><figcaption>Accept to confirm: median <b>{}</b>, 99th percentile <b>{}</b> \
<span class=\"muted\">(<span style=\"color:#16a34a\">median</span>, <span style=\"color:#dc2626\">p99</span>)</span></figcaption>{}</figure>",
        last(&p50),
        last(&p99),
        chart(&[(p50.clone(), "#16a34a"), (p99.clone(), "#dc2626")], top.max(0.001))
    );
    p.push_str("</div></section>");
}

fn dead_letters(p: &mut String, x: &Extras) {
    p.push_str("<section id=\"dead-letters\"><h2>Dead letters</h2>");
    if x.dead_letters.is_empty() {
        p.push_str("<p>None since start: Genesys Cloud has taken everything sent.</p></section>");
        return;
    }
    p.push_str(
        "<div class=\"scroll\"><table class=\"cards\"><tr><th>Destination</th><th>Reason</th><th>Events</th></tr>",
    );
    for (sink, reason, n) in &x.dead_letters {
        let _ = write!(
            p,
            "<tr><td><b>{}</b></td><td data-l=\"Reason\">{}</td><td data-l=\"Events\">{n}</td></tr>",
            esc(sink),
            esc(reason)
        );
    }
    let dir = esc(&x.data_dir);
    let _ = write!(
        p,
        "</table></div><p>Events refused for good are kept, not lost. See each with the cloud's message and \
correlation id: <code>cic-conduit dead-letter list --data-dir {dir} --verbose</code>. Fix the cause \
(the schema, the OAuth client's permissions, a status mapping), stop the conduit, run \
<code>cic-conduit dead-letter replay --data-dir {dir}</code>, and start it again.</p></section>"
    );
}

fn users(p: &mut String, h: &Health, x: &Extras) {
    let (Some(summary), Some(u)) = (&h.users, &x.users) else {
        return;
    };
    let _ = write!(
        p,
        "<section id=\"users\"><h2>Users</h2><p><span class=\"badge ok\">{} synced</span> \
<span class=\"badge {}\">{} in error</span> <span class=\"badge info\">{} not synced</span> \
<span class=\"badge info\">{} removed</span> <span class=\"muted\">last reconcile {}</span></p>",
        summary.synced,
        if summary.error > 0 { "bad" } else { "ok" },
        summary.error,
        summary.not_synced,
        summary.removed,
        summary
            .last_reconcile
            .as_deref()
            .map(esc)
            .unwrap_or_else(|| "not yet".into()),
    );
    p.push_str("<form method=\"get\" action=\"/#users\"><select name=\"state\" aria-label=\"state\">");
    for (value, label) in [
        ("", "All states"),
        ("synced", "Synced"),
        ("error", "Error"),
        ("not_synced", "Not synced"),
        ("removed", "Removed"),
    ] {
        let sel = if u.filter.state == value { " selected" } else { "" };
        let _ = write!(p, "<option value=\"{value}\"{sel}>{label}</option>");
    }
    let _ = write!(
        p,
        "</select><input name=\"q\" placeholder=\"user, email or reason\" aria-label=\"search\" value=\"{}\">\
<button type=\"submit\">Filter</button></form>",
        esc(&u.filter.q)
    );
    let _ = write!(
        p,
        "<p class=\"muted\">{} of {} users{}</p>",
        u.shown.len(),
        u.matching,
        if u.matching > u.shown.len() {
            " (narrow the filter to see the others; cic-conduit users status lists all)"
        } else {
            ""
        }
    );
    p.push_str(
        "<div class=\"scroll\"><table class=\"cards\"><tr><th>CIC user</th><th>State</th><th>Synced as</th><th>Last synced</th>\
<th>Reason</th></tr>",
    );
    for (id, s) in &u.shown {
        let (label, class) = match s.state {
            UserState::Synced => ("Synced", "ok"),
            UserState::Error => ("Error", "bad"),
            UserState::NotSynced => ("Not synced", "info"),
            UserState::Removed => ("Removed", "info"),
        };
        let reason = [s.reason.as_deref(), s.message.as_deref()]
            .into_iter()
            .flatten()
            .map(esc)
            .collect::<Vec<_>>()
            .join(" · ");
        let corr = s
            .correlation_id
            .as_deref()
            .map(|c| {
                format!(
                    "<br><span class=\"muted\">correlation id <code>{}</code></span>",
                    esc(c)
                )
            })
            .unwrap_or_default();
        let _ = write!(
            p,
            "<tr><td><b>{}</b></td><td data-l=\"State\"><span class=\"badge {class}\">{label}</span></td>\
<td data-l=\"Synced as\">{}</td><td data-l=\"Last synced\">{}</td><td data-l=\"Reason\">{reason}{corr}</td></tr>",
            esc(id),
            s.user_name.as_deref().map(esc).unwrap_or_else(|| "—".into()),
            s.last_synced.as_deref().map(esc).unwrap_or_else(|| "—".into()),
        );
    }
    p.push_str("</table></div></section>");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_as_a_person_says_them() {
        assert_eq!(size(10 << 30), "10 GiB");
        assert_eq!(size(3 << 29), "1.5 GiB");
        assert_eq!(size(512 << 20), "512 MiB");
        assert_eq!(size(1000), "1 KiB");
    }

    #[test]
    fn text_from_outside_is_escaped() {
        assert_eq!(esc("<b a=\"1\">&'"), "&lt;b a=&quot;1&quot;&gt;&amp;&#39;");
    }

    #[test]
    fn durations_read_as_a_person_says_them() {
        assert_eq!(duration(12), "12 s");
        assert_eq!(duration(245), "4 min 5 s");
        assert_eq!(duration(3 * 3600 + 720), "3 h 12 min");
        assert_eq!(duration(2 * 86_400 + 3600), "2 d 1 h");
    }

    #[test]
    fn the_filter_matches_state_and_text() {
        let u = UserStatus {
            state: UserState::Error,
            cloud_id: None,
            user_name: Some("A.Smith@example.com".into()),
            last_synced: None,
            reason: Some("email taken".into()),
            message: None,
            correlation_id: None,
            since: "2024-01-01T00:00:00.000Z".into(),
        };
        let f = |state: &str, q: &str| UserFilter {
            state: state.into(),
            q: q.into(),
        };
        assert!(f("", "").passes("asmith", &u));
        assert!(f("error", "smith@").passes("asmith", &u));
        assert!(f("", "TAKEN").passes("asmith", &u));
        assert!(!f("synced", "").passes("asmith", &u));
        assert!(!f("", "jones").passes("asmith", &u));
    }
}
