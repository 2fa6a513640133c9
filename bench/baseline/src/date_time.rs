//! The RFC 3339 `date-time` check behind the schema's `"format": "date-time"`.

/// `2026-11-20T10:15:00Z`: a full date, `T` (or `t`, or a space), a time with optional
/// fractional seconds, and `Z` or a `±hh:mm` offset. A leap second (`:60`) passes, as RFC
/// 3339 allows it.
pub(crate) fn is_date_time(s: &str) -> bool {
    let b = s.as_bytes();
    let fixed_shape = b.len() >= 20
        && [4, 7].iter().all(|&i| b[i] == b'-')
        && matches!(b[10], b'T' | b't' | b' ')
        && [13, 16].iter().all(|&i| b[i] == b':');
    if !fixed_shape {
        return false;
    }
    let field = |range: std::ops::Range<usize>| number(&b[range]);
    let (Some(year), Some(month), Some(day), Some(hour), Some(minute), Some(second)) =
        (field(0..4), field(5..7), field(8..10), field(11..13), field(14..16), field(17..19))
    else {
        return false;
    };
    let date_ok = (1..=12).contains(&month) && (1..=days_in_month(year, month)).contains(&day);
    let time_ok = hour <= 23 && minute <= 59 && second <= 60;
    date_ok && time_ok && is_offset(skip_fraction(&b[19..]))
}

fn skip_fraction(rest: &[u8]) -> &[u8] {
    match rest {
        [b'.', fraction @ ..] => {
            let digits = fraction.iter().take_while(|c| c.is_ascii_digit()).count();
            if digits == 0 { rest } else { &fraction[digits..] }
        }
        _ => rest,
    }
}

fn is_offset(rest: &[u8]) -> bool {
    match rest {
        [b'Z' | b'z'] => true,
        [b'+' | b'-', h1, h2, b':', m1, m2] => {
            let hours = number(&[*h1, *h2]);
            let minutes = number(&[*m1, *m2]);
            hours.is_some_and(|h| h <= 23) && minutes.is_some_and(|m| m <= 59)
        }
        _ => false,
    }
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        2 if year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400)) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

fn number(digits: &[u8]) -> Option<u32> {
    digits.iter().try_fold(0, |n, &d| d.is_ascii_digit().then(|| n * 10 + u32::from(d - b'0')))
}

#[cfg(test)]
mod tests {
    use super::is_date_time;

    #[test]
    fn accepts_rfc3339() {
        for s in [
            "2026-11-20T10:15:00Z",
            "2024-02-29T23:59:60.123+03:00",
            "2026-01-01t00:00:00.5z",
            "2026-01-01 00:00:00-05:30",
        ] {
            assert!(is_date_time(s), "{s}");
        }
    }

    #[test]
    fn rejects_the_rest() {
        for s in [
            "2026-11-20",
            "2026-11-20T10:15:00",
            "2026-02-29T10:15:00Z",
            "2026-13-01T10:15:00Z",
            "2026-11-20T24:00:00Z",
            "2026-11-20T10:15:00.Z",
            "2026-11-20T10:15:00+3:00",
            "yesterday at noon, roughly",
        ] {
            assert!(!is_date_time(s), "{s}");
        }
    }
}
