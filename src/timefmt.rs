//! ISO-8601 timestamps and durations as CIC writes them, to and from Unix milliseconds.
//!
//! CIC's format for `Eic_InitiationTime` and friends is not documented, so both the compact
//! (`20201029T082018Z`) and the extended (`2020-10-29T08:20:18.250+02:00`) forms are accepted.
//! A timestamp without a zone is taken as UTC. Every function is total: bad input is `None`,
//! never a panic.

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil date of a day count since 1970-01-01.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        _ => 28,
    }
}

/// Reads exactly `n` ASCII digits.
fn digits(s: &[u8], n: usize) -> Option<(u32, &[u8])> {
    if s.len() < n {
        return None;
    }
    let mut v = 0u32;
    for &c in &s[..n] {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + u32::from(c - b'0');
    }
    Some((v, &s[n..]))
}

fn skip(s: &[u8], c: u8) -> &[u8] {
    if s.first() == Some(&c) { &s[1..] } else { s }
}

/// Parses an ISO-8601 timestamp (compact or extended, optional fraction and zone) to Unix ms.
pub fn parse_timestamp_ms(input: &str) -> Option<i64> {
    let s = input.trim().as_bytes();
    let (year, s) = digits(s, 4)?;
    let s = skip(s, b'-');
    let (month, s) = digits(s, 2)?;
    let s = skip(s, b'-');
    let (day, s) = digits(s, 2)?;
    let s = match s.first() {
        Some(b'T') | Some(b't') | Some(b' ') => &s[1..],
        _ => return None,
    };
    let (hour, s) = digits(s, 2)?;
    let s = skip(s, b':');
    let (minute, s) = digits(s, 2)?;
    let s = skip(s, b':');
    let (second, mut s) = digits(s, 2)?;
    let mut millis = 0i64;
    if let Some(b'.') | Some(b',') = s.first() {
        s = &s[1..];
        let n = s.iter().take_while(|c| c.is_ascii_digit()).count();
        if n == 0 {
            return None;
        }
        for (i, &c) in s[..n].iter().take(3).enumerate() {
            millis += i64::from(c - b'0') * 10i64.pow(2 - i as u32);
        }
        s = &s[n..];
    }
    let offset_min: i64 = match s.first() {
        None => 0,
        Some(b'Z') | Some(b'z') if s.len() == 1 => 0,
        Some(&sign @ (b'+' | b'-')) => {
            let (oh, rest) = digits(&s[1..], 2)?;
            let rest = skip(rest, b':');
            let (om, rest) = if rest.is_empty() { (0, rest) } else { digits(rest, 2)? };
            if !rest.is_empty() || oh > 23 || om > 59 {
                return None;
            }
            let m = i64::from(oh * 60 + om);
            if sign == b'-' { -m } else { m }
        }
        _ => return None,
    };
    if !(1..=12).contains(&month)
        || day == 0
        || day > days_in_month(i64::from(year), month)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let days = days_from_civil(i64::from(year), month, day);
    let secs = days * 86_400 + i64::from(hour) * 3600 + i64::from(minute) * 60 + i64::from(second) - offset_min * 60;
    Some(secs * 1000 + millis)
}

/// Formats Unix ms as `YYYY-MM-DDTHH:MM:SS.mmmZ` (the form Genesys Cloud's `dateCreated` takes).
pub fn format_timestamp_ms(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let millis = ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        sod / 3600,
        (sod / 60) % 60,
        sod % 60
    )
}

/// `YYYYMMDD` of Unix ms, in UTC: the date part CIC appends to a call id to make `Eic_CallIdKey`.
pub fn yyyymmdd(ms: i64) -> String {
    let (y, m, d) = civil_from_days(ms.div_euclid(86_400_000));
    format!("{y:04}{m:02}{d:02}")
}

/// Parses a duration to ms: ISO-8601 (`PT1M30.5S`), clock form (`01:02:03[.5]`) or plain seconds.
pub fn parse_duration_ms(input: &str) -> Option<i64> {
    let s = input.trim();
    if let Some(rest) = s.strip_prefix("PT").or_else(|| s.strip_prefix("pt")) {
        let mut total = 0f64;
        let mut num = String::new();
        for c in rest.chars() {
            match c {
                '0'..='9' | '.' => num.push(c),
                'H' | 'h' | 'M' | 'm' | 'S' | 's' => {
                    let v: f64 = num.parse().ok()?;
                    num.clear();
                    total += v * match c.to_ascii_uppercase() {
                        'H' => 3600.0,
                        'M' => 60.0,
                        _ => 1.0,
                    };
                }
                _ => return None,
            }
        }
        return num.is_empty().then_some((total * 1000.0).round() as i64);
    }
    if s.contains(':') {
        let parts: Vec<&str> = s.split(':').collect();
        if parts.len() > 3 {
            return None;
        }
        let mut total = 0f64;
        for p in &parts {
            let v: f64 = p.parse().ok()?;
            if !v.is_finite() || v < 0.0 {
                return None;
            }
            total = total * 60.0 + v;
        }
        return Some((total * 1000.0).round() as i64);
    }
    let v: f64 = s.parse().ok()?;
    (0.0..1e12).contains(&v).then_some((v * 1000.0).round() as i64)
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_and_extended_agree() {
        let a = parse_timestamp_ms("20201029T082018Z").unwrap();
        let b = parse_timestamp_ms("2020-10-29T08:20:18Z").unwrap();
        let c = parse_timestamp_ms("2020-10-29T10:20:18.000+02:00").unwrap();
        assert_eq!(a, 1_603_959_618_000);
        assert_eq!(a, b);
        assert_eq!(a, c);
        assert_eq!(parse_timestamp_ms("2020-10-29T08:20:18.25Z"), Some(a + 250));
        assert_eq!(parse_timestamp_ms("20201029T082018"), Some(a));
    }

    #[test]
    fn rejects_nonsense() {
        for s in [
            "",
            "2020",
            "2020-13-01T00:00:00Z",
            "2021-02-29T00:00:00Z",
            "garbage",
            "2020-10-29T08:20:18Zjunk",
        ] {
            assert_eq!(parse_timestamp_ms(s), None, "{s}");
        }
    }

    #[test]
    fn format_round_trips() {
        for ms in [0, 1_603_959_618_123, 951_782_400_000, -1] {
            assert_eq!(parse_timestamp_ms(&format_timestamp_ms(ms)), Some(ms));
        }
        assert_eq!(format_timestamp_ms(1_603_959_618_123), "2020-10-29T08:20:18.123Z");
        assert_eq!(yyyymmdd(1_603_959_618_123), "20201029");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration_ms("PT1M30.5S"), Some(90_500));
        assert_eq!(parse_duration_ms("00:01:30"), Some(90_000));
        assert_eq!(parse_duration_ms("42"), Some(42_000));
        assert_eq!(parse_duration_ms("-3"), None);
        assert_eq!(parse_duration_ms("P1D"), None);
    }
}
