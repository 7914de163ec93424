//! Event-time text: RFC 3339 and the export formats, to and from epoch milliseconds.

/// Formats epoch milliseconds as RFC 3339 UTC (`2015-02-21T14:05:00.000Z`).
pub fn format_rfc3339(ms: i64) -> String {
    let nanos = i128::from(ms) * 1_000_000;
    match time::OffsetDateTime::from_unix_timestamp_nanos(nanos) {
        Ok(t) => {
            let fmt = time::macros::format_description!(
                "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
            );
            t.format(&fmt).unwrap_or_else(|_| ms.to_string())
        }
        Err(_) => ms.to_string(),
    }
}

/// Parses RFC 3339 (`2015-02-21T06:00:00-08:00`) or the space-separated variant used by many
/// exports (`2015-02-21 06:00:00 -0800`, `2015-02-21 06:00:00`, taken as UTC) into epoch millis.
pub fn parse_timestamp(s: &str) -> Option<i64> {
    use time::format_description::well_known::Rfc3339;
    let s = s.trim();
    if let Some(ms) = rfc3339_fast(s.as_bytes()) {
        return Some(ms);
    }
    if let Ok(t) = time::OffsetDateTime::parse(s, &Rfc3339) {
        return Some((t.unix_timestamp_nanos() / 1_000_000) as i64);
    }
    let with_offset = time::macros::format_description!(
        "[year]-[month]-[day] [hour]:[minute]:[second] [offset_hour sign:mandatory][offset_minute]"
    );
    if let Ok(t) = time::OffsetDateTime::parse(s, &with_offset) {
        return Some((t.unix_timestamp_nanos() / 1_000_000) as i64);
    }
    let naive = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
    let naive_t =
        time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]");
    for f in [naive, naive_t] {
        if let Ok(t) = time::PrimitiveDateTime::parse(s, &f) {
            return Some((t.assume_utc().unix_timestamp_nanos() / 1_000_000) as i64);
        }
    }
    s.parse::<i64>().ok()
}

/// The common shape, `YYYY-MM-DDTHH:MM:SS[.fraction](Z|+HH:MM|-HH:MM)` from 1970 on, parsed
/// without the general parser (this runs per event). `None` for anything else, including
/// what is valid but rare (leap seconds, lowercase `t`/`z`, long fractions): the general
/// parser decides those. `fast_path_agrees_with_the_time_crate` holds it to the same answers.
fn rfc3339_fast(b: &[u8]) -> Option<i64> {
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let num = |at: usize, len: usize| -> Option<u32> {
        let mut v = 0u32;
        for &c in b.get(at..at + len)? {
            if !c.is_ascii_digit() {
                return None;
            }
            v = v * 10 + u32::from(c - b'0');
        }
        Some(v)
    };
    let (year, month, day) = (num(0, 4)?, num(5, 2)?, num(8, 2)?);
    let (hour, minute, second) = (num(11, 2)?, num(14, 2)?, num(17, 2)?);
    if !(1970..=9999).contains(&year) || !(1..=12).contains(&month) || day == 0 {
        return None;
    }
    if day > days_in_month(year, month) || hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let mut i = 19;
    let mut nanos = 0u32;
    if b[i] == b'.' {
        let digits = b[i + 1..].iter().take_while(|c| c.is_ascii_digit()).count();
        if !(1..=9).contains(&digits) {
            return None;
        }
        nanos = num(i + 1, digits)? * 10u32.pow(9 - digits as u32);
        i += 1 + digits;
    }
    let offset_s = match &b[i..] {
        [b'Z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let digits = [*h1, *h2, *m1, *m2];
            if !digits.iter().all(u8::is_ascii_digit) {
                return None;
            }
            let oh = i64::from((h1 - b'0') * 10 + (h2 - b'0'));
            let om = i64::from((m1 - b'0') * 10 + (m2 - b'0'));
            if oh > 23 || om > 59 {
                return None;
            }
            let v = oh * 3600 + om * 60;
            if *sign == b'-' { -v } else { v }
        }
        _ => return None,
    };
    let days = days_from_civil(i64::from(year), month, day);
    let secs = days * 86_400 + i64::from(hour * 3600 + minute * 60 + second) - offset_s;
    if secs < 0 {
        return None;
    }
    Some(secs * 1000 + i64::from(nanos / 1_000_000))
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        2 if year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400)) => {
            29
        }
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = i64::from((month + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The general parser alone: what `parse_timestamp` returned before the fast path.
    fn general(s: &str) -> Option<i64> {
        use time::format_description::well_known::Rfc3339;
        time::OffsetDateTime::parse(s, &Rfc3339)
            .ok()
            .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64)
    }

    #[test]
    fn fast_path_agrees_with_the_time_crate() {
        let mut cases: Vec<String> = [
            "2015-02-21T06:00:00-08:00",
            "2015-02-21T14:00:00Z",
            "2024-02-29T23:59:59.999Z",
            "2023-02-29T00:00:00Z",
            "2100-02-29T00:00:00Z",
            "2000-02-29T00:00:00+23:59",
            "1970-01-01T00:00:00+00:01",
            "1970-01-01T00:00:00-00:00",
            "1969-12-31T23:59:59.5Z",
            "2015-06-30T23:59:60Z",
            "2015-02-21t06:00:00z",
            "2015-02-21T06:00:00.1234567891Z",
            "2015-02-21T06:00:00.Z",
            "2015-02-21T24:00:00Z",
            "2015-13-01T00:00:00Z",
            "2015-02-21T06:00:00+24:00",
            "2015-02-21T06:00:00+05:60",
            "2015-02-21T06:00:00+0500",
            "2015-02-21T06:00:00",
            "9999-12-31T23:59:59.999999999Z",
            "+015-02-21T06:00:00Z",
            "2015-02-21T06:00:00Z ",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        // Every field at and around its limits, with the fraction and offset forms.
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        for _ in 0..20_000 {
            let mut r = |n: u64| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x % n
            };
            let frac = match r(4) {
                0 => String::new(),
                1 => format!(".{}", r(10)),
                2 => format!(".{:03}", r(1000)),
                _ => format!(".{:09}", r(1_000_000_000)),
            };
            let off = match r(3) {
                0 => "Z".to_string(),
                _ => format!(
                    "{}{:02}:{:02}",
                    if r(2) == 0 { '+' } else { '-' },
                    r(25),
                    r(61)
                ),
            };
            cases.push(format!(
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}{frac}{off}",
                1969 + r(140),
                r(14),
                r(33),
                r(25),
                r(61),
                r(61)
            ));
        }
        for c in &cases {
            if let Some(fast) = rfc3339_fast(c.as_bytes()) {
                assert_eq!(Some(fast), general(c), "{c}");
            }
        }
        // The fast path does take the common shapes.
        for c in ["2015-02-21T06:00:00-08:00", "2024-02-29T23:59:59.999Z"] {
            assert!(rfc3339_fast(c.as_bytes()).is_some(), "{c}");
        }
    }
}
