//! Who the customer is: the remote address as CIC gives it, turned into an E.164 phone number,
//! an email address, or nothing (caller id withheld, an internal extension, a chat nickname).

use crate::event::Customer;

/// What CIC puts in `Eic_RemoteTnRaw` (or the address) when the caller id is withheld.
const WITHHELD: [&str; 4] = ["BLCKD", "NOCLID", "OOA", "PRIV"];

/// The customer's identifiers from `Eic_RemoteAddress` and `Eic_RemoteTnRaw`.
pub fn customer_of(remote_address: Option<&str>, remote_tn_raw: Option<&str>, default_cc: Option<&str>) -> Customer {
    let withheld = [remote_tn_raw, remote_address]
        .into_iter()
        .flatten()
        .any(|v| WITHHELD.iter().any(|w| v.trim().eq_ignore_ascii_case(w)));
    if withheld {
        return Customer {
            phone: None,
            email: None,
            caller_id_withheld: true,
        };
    }
    let Some(addr) = remote_address.map(str::trim).filter(|a| !a.is_empty()) else {
        return Customer::default();
    };
    if let Some(email) = email_of(addr) {
        return Customer {
            phone: None,
            email: Some(email),
            caller_id_withheld: false,
        };
    }
    Customer {
        phone: e164(addr, default_cc),
        email: None,
        caller_id_withheld: false,
    }
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix).then(|| &s[prefix.len()..])
}

/// A plausible email address, lower-cased; `None` for anything else (including SIP URIs).
pub fn email_of(addr: &str) -> Option<String> {
    let addr = strip_prefix_ci(addr, "mailto:").unwrap_or(addr);
    if strip_prefix_ci(addr, "sip:").is_some() || strip_prefix_ci(addr, "sips:").is_some() {
        return None;
    }
    let (local, domain) = addr.split_once('@')?;
    let ok = !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !addr
            .chars()
            .any(|c| c.is_whitespace() || c == '<' || c == '>' || c == '"')
        && !domain.contains('@');
    ok.then(|| addr.to_ascii_lowercase())
}

/// The E.164 form (`+` and 8 to 15 digits) of a phone address, or `None`.
///
/// Accepts `tel:`/`sip:` URIs (the user part), separators (space, `-`, `.`, `(`, `)`, `/`),
/// the `00` international prefix, and national numbers when a default country code is set
/// (for code 1, ten digits or eleven starting with 1; elsewhere one trunk `0` is dropped).
pub fn e164(addr: &str, default_cc: Option<&str>) -> Option<String> {
    let mut s = addr.trim();
    for p in ["tel:", "sip:", "sips:"] {
        if let Some(rest) = strip_prefix_ci(s, p) {
            s = rest;
        }
    }
    let s = s.split(['@', ';']).next().unwrap_or("").trim();
    let plus = s.starts_with('+');
    let body = if plus { &s[1..] } else { s };
    let mut digits = String::with_capacity(body.len());
    for c in body.chars() {
        match c {
            '0'..='9' => digits.push(c),
            ' ' | '-' | '.' | '(' | ')' | '/' => {}
            _ => return None,
        }
    }
    let valid = |d: &str| (8..=15).contains(&d.len()) && !d.starts_with('0');
    if plus {
        return valid(&digits).then(|| format!("+{digits}"));
    }
    if let Some(intl) = digits.strip_prefix("00") {
        return valid(intl).then(|| format!("+{intl}"));
    }
    let cc = default_cc?;
    let full = if cc == "1" {
        match digits.len() {
            10 => format!("1{digits}"),
            11 if digits.starts_with('1') => digits,
            _ => return None,
        }
    } else {
        let national = digits.strip_prefix('0').unwrap_or(&digits);
        if national.len() < 6 {
            return None;
        }
        format!("{cc}{national}")
    };
    valid(&full).then(|| format!("+{full}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phones() {
        let us = Some("1");
        assert_eq!(e164("+13175551234", None).as_deref(), Some("+13175551234"));
        assert_eq!(e164("tel:+1-317-555-1234", None).as_deref(), Some("+13175551234"));
        assert_eq!(
            e164("sip:+13175551234@10.1.2.3;user=phone", None).as_deref(),
            Some("+13175551234")
        );
        assert_eq!(e164("(317) 555-1234", us).as_deref(), Some("+13175551234"));
        assert_eq!(e164("13175551234", us).as_deref(), Some("+13175551234"));
        assert_eq!(e164("0044 20 7946 0958", None).as_deref(), Some("+442079460958"));
        assert_eq!(e164("020 7946 0958", Some("44")).as_deref(), Some("+442079460958"));
        assert_eq!(e164("3175551234", None), None, "national number without a country code");
        assert_eq!(e164("1234", us), None, "an extension");
        assert_eq!(e164("agent smith", us), None);
        assert_eq!(e164("+0123456789", None), None);
    }

    #[test]
    fn customers() {
        let c = customer_of(Some("Pat.Doe@Example.COM"), None, None);
        assert_eq!(c.email.as_deref(), Some("pat.doe@example.com"));
        assert_eq!(c.phone, None);
        let c = customer_of(Some("+13175551234"), Some("PRIV"), None);
        assert!(c.caller_id_withheld && c.phone.is_none());
        let c = customer_of(Some("NOCLID"), None, None);
        assert!(c.caller_id_withheld);
        let c = customer_of(Some("sip:7001@cic01"), None, Some("1"));
        assert_eq!(c, Customer::default());
        assert_eq!(customer_of(None, None, None), Customer::default());
    }
}
